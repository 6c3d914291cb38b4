//! The `foldersync` command: parses the command line and runs the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    foldersync::allocator::tune();
    foldersync::app::run(foldersync::cli::Cli::parse())
}
