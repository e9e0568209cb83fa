//! `shipgate man [--dir DIR]`: man pages generated from the clap definitions: the top page on
//! stdout, or `shipgate.1` and one `shipgate-COMMAND.1` per command written into a folder.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

pub fn run(dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).expect("rendering into memory cannot fail");
            crate::output::document(&page);
            Ok(())
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)).map_err(|e| {
                Error::input(format!("cannot write the man pages into {}: {e}", dir.display()))
                    .hint("check that the folder is writable")
            })?;
            tracing::info!("wrote the man pages into {}", dir.display());
            Ok(())
        }
    }
}
