//! Running one ECS task and following it: what to run (`spec`), the plain view of a task
//! (`view`), the decisions (`outcome`, `guard`, `logs`), and the loop that ties them to AWS
//! (`follow`).

pub mod follow;
pub mod guard;
pub mod local;
pub mod logs;
pub mod outcome;
pub mod spec;
pub mod view;
