//! `shipgate task …`: run a task and follow it, attach to one, print its logs, or exec into it.

pub mod attach;
pub mod exec;
pub mod logs;
pub mod run;
