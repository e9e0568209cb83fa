//! The `shipgate` binary: parse the command line and hand it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ExitCode::from(shipgate::main(shipgate::cli::Cli::parse()))
}
