//! One module per command. Each receives validated configuration, never clap types.

pub mod db;
pub mod migrate;
pub mod task;
pub mod taskdef;
pub mod tenants;
