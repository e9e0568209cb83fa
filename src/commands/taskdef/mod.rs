//! `shipgate taskdef …`: render templates and register task definitions only when they changed.

pub mod register;
pub mod render;
