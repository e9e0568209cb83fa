//! `shipgate task …`: run a task and follow it, attach to one, or print its logs.

pub mod attach;
pub mod logs;
pub mod run;
