//! Provisioning one tenant, at the database edge: its schema created unless it exists, and
//! its row added by `provision_sql`. Each step accepts that a concurrent provision (or an
//! earlier, interrupted one) already did it, so provisioning can always be run again.

use sqlx::AssertSqlSafe;

use crate::db::{self, quote_ident};
use crate::error::{Error, Result};
use crate::fleet::control::Control;

/// SQLSTATEs that mean "someone already did this": duplicate_schema, unique_violation.
const ALREADY_THERE: [&str; 2] = ["42P06", "23505"];

/// Create the schema unless it exists. Returns whether this call created it.
pub async fn create_schema(control: &mut Control, name: &str) -> Result<bool> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(control.conn())
        .await
        .map_err(|e| Error::failed(format!("could not look up schema `{name}`: {}", db::error_text(&e))))?;
    if exists {
        return Ok(false);
    }
    // Not IF NOT EXISTS: that checks the database-level CREATE privilege even when the schema
    // exists; a concurrent provision that won the race shows up as an error we accept below.
    let sql = format!("CREATE SCHEMA {}", quote_ident(name));
    match sqlx::raw_sql(AssertSqlSafe(sql)).execute(control.conn()).await {
        Ok(_) => Ok(true),
        Err(e) if sqlstate_in(&e, &ALREADY_THERE) => Ok(false),
        Err(e) => Err(Error::failed(format!("could not create schema `{name}`: {}", db::error_text(&e)))
            .hint("the database user needs CREATE on the database (GRANT CREATE ON DATABASE ... TO ...)")),
    }
}

/// Run `provision_sql` with the name as `$1`. Returns whether it added a row.
pub async fn register(control: &mut Control, provision_sql: &str, name: &str) -> Result<bool> {
    let done = sqlx::query(AssertSqlSafe(provision_sql.to_string())).bind(name).execute(control.conn()).await;
    match done {
        Ok(r) => Ok(r.rows_affected() > 0),
        // A provision_sql without ON CONFLICT: the row is there, which is all we need.
        Err(e) if sqlstate_in(&e, &ALREADY_THERE[1..]) => Ok(false),
        Err(e) => Err(Error::failed(format!(
            "provision_sql failed for tenant `{name}`: {}\n  sql: {}",
            db::error_text(&e),
            provision_sql
        ))
        .hint(
            "provision_sql (shipgate.toml or --provision-sql) runs in the master schema with $1 = the schema \
             name; the master migrations must have created its table (`shipgate migrate up --set master`). \
             The schema was created and is kept; running provision again continues from here",
        )),
    }
}

fn sqlstate_in(e: &sqlx::Error, codes: &[&str]) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| codes.contains(&c.as_ref()))
}
