//! Entry point of the `demoweb-operator` binary.

use std::process::ExitCode;

use clap::Parser;
use demoweb_operator::cli::{Cli, execute};

/// jemalloc instead of glibc's malloc: glibc keeps much of what a burst of new DemoWebs allocated
/// and freed, jemalloc hands it back (docs/decisions/jemalloc.md). Its settings are built in, from
/// `JEMALLOC_SYS_WITH_MALLOC_CONF` in `.cargo/config.toml`. The benchmark, the playground and
/// `cargo cluster` run the operator from their own executables and declare the same allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    execute(Cli::parse())
}
