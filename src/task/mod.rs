//! Running one ECS task and following it: what to run (`spec`), the plain view of a task
//! (`view`), the decisions (`outcome`, `guard`, `logs`, `verdict`), the loop that ties them to
//! AWS (`follow`), and one run from start to verdict (`run`); `local` runs a task definition's
//! container as a process on this machine instead; `exec` opens an ECS Exec session in one.

pub mod exec;
pub mod follow;
pub mod guard;
pub mod local;
pub mod logs;
pub mod outcome;
pub mod run;
pub mod spec;
pub mod verdict;
pub mod view;
