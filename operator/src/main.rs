//! Entry point of the `demoweb-operator` binary.

use std::process::ExitCode;

use clap::Parser;
use demoweb_operator::cli::{Cli, execute};

fn main() -> ExitCode {
    execute(Cli::parse())
}
