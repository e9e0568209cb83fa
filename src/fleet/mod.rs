//! Multi-tenant databases: a master schema plus one schema per tenant, each with its own
//! history and lock. `names` and `state` decide, `db` reads and records, `run` migrates the
//! tenants, `control` holds a command's control session and roster, `survey` reads where
//! every tenant stands, `provision` creates and registers one.

pub mod control;
pub mod db;
pub mod names;
pub mod provision;
pub mod run;
pub mod state;
pub mod survey;
