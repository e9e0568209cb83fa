//! The migration runner's engine: reading migration files, deciding what to do, and doing it
//! against PostgreSQL under a lock. Commands in `commands::migrate` drive it.

pub mod adopt;
pub mod baseline;
pub mod catalog;
pub mod checksum;
pub mod directives;
pub mod drizzle;
pub mod exec;
pub mod flyway;
pub mod folders;
pub mod history;
pub mod lint;
pub mod lock;
pub mod locks;
pub mod phase;
pub mod plan;
pub mod run;
pub mod script;
pub mod sections;
pub mod session;
pub mod source;
pub mod sql;
