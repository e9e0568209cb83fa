//! Deploying an environment, as domain code. The pipeline (`pipeline`: check the services,
//! register what changed, run the migration steps, roll the services out) is written over its
//! parts: what can be checked offline (`prepare`), the migration steps and their shards
//! (`migrations`), the rollouts (`services`), the dry run (`plan`), the local platform
//! (`local`), where a deploy reports besides stdout (`ci`), and the old revisions it
//! deregisters (`revisions`). The decisions are pure: the
//! plain view of a service (`view`), is a rollout done, failed, rolled back, superseded or
//! stuck (`rollout`), and what a deploy reports to CI (`report`). `commands::deploy` and
//! `commands::rollback` are thin adapters over it.

pub mod ci;
pub mod local;
pub mod migrations;
pub mod pipeline;
pub mod plan;
pub mod prepare;
pub mod report;
pub mod revisions;
pub mod rollout;
pub mod services;
pub mod view;
