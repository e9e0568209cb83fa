//! `shipgate config …`: checks of shipgate.toml that need no AWS.

pub mod check;
