//! One module per command. Each receives validated configuration, never clap types.

pub mod completions;
pub mod config;
pub mod db;
pub mod deploy;
pub mod man;
pub mod migrate;
pub mod rollback;
pub mod task;
pub mod taskdef;
pub mod tenants;
