//! `shipgate config …`: checks of shipgate.toml that need no AWS, and its reference.

pub mod check;
pub mod reference;
