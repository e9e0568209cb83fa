//! `shipgate db …`: the database connection itself, before any migration runs.

pub mod check;
