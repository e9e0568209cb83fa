//! The PostgreSQL edge: where credentials are resolved (flags, variables, Secrets Manager),
//! how TLS is set up, and how connections are opened.

pub mod connect;
pub mod credentials;
pub mod secret;
pub mod target;
pub mod tls;

pub use connect::{ConnectSpec, connect};
pub use credentials::Credentials;
pub use target::DbTarget;

/// A database error as an operator should read it: the server's message and SQLSTATE.
/// (sqlx's `Display` appends PostgreSQL's internal source line, "at line 3655", which reads
/// like a line of the migration file.)
pub fn error_text(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().unwrap_or_default()),
        None => e.to_string(),
    }
}

/// Quote an identifier for SQL text (`"tenant ""a"""`): the only way a schema name reaches
/// a statement, since identifiers cannot be bind parameters.
/// A database error as a failure (exit 1): `what` went wrong, then PostgreSQL's reason.
pub fn failed(what: &str) -> impl Fn(sqlx::Error) -> crate::error::Error + '_ {
    move |e| crate::error::Error::failed(format!("{what}: {}", error_text(&e)))
}

/// Whether a table (or view) exists; `qualified` is `"schema"."name"`.
pub async fn relation_exists(conn: &mut sqlx::PgConnection, qualified: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(qualified).fetch_one(conn).await
}

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
