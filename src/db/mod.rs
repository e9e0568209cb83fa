//! The PostgreSQL edge: where credentials are resolved and connections are opened.

pub mod connect;
pub mod target;

pub use connect::{ConnectSpec, connect};
pub use target::DbTarget;

/// Quote an identifier for SQL text (`"tenant ""a"""`): the only way a schema name reaches
/// a statement, since identifiers cannot be bind parameters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quote_ident_escapes_quotes() {
        let cases = [("public", "\"public\""), ("a\"b", "\"a\"\"b\""), ("Mixed Case", "\"Mixed Case\"")];
        for (name, quoted) in cases {
            assert_eq!(super::quote_ident(name), quoted);
        }
    }
}
