//! Entry point of the `demoweb-operator` binary: parses flags and dispatches.

use std::process::ExitCode;

use clap::Parser;
use demoweb_operator::cli::{Cli, Command, crd_yaml};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { only } => match crd_yaml(&only) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
