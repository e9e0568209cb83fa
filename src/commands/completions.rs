//! `shipgate completions SHELL`: a completion script generated from the clap definitions, so
//! it knows every command and flag of this very binary.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Result;

pub fn run(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "shipgate", &mut script);
    crate::output::document(&script);
    Ok(())
}
