//! Baselines: recording migrations as applied without running them (one transaction, all or
//! nothing), and replaying a set in a scratch schema that is always rolled back, reading the
//! catalog after each migration, so `baseline --from-schema` compares what PostgreSQL made of
//! the migrations with the live schema.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use crate::db::{self, quote_ident};
use crate::duration;
use crate::error::{Error, Result};
use crate::migrate::catalog::{self, Shape};
use crate::migrate::history::{self, HistoryTable, NewRow, Writer};
use crate::migrate::plan::ORIGIN_BASELINE;
use crate::migrate::script::{Migration, MigrationSet};

/// Record `todo` as applied by a baseline, in one transaction: all of them, or none.
pub async fn record(
    conn: &mut PgConnection,
    table: &HistoryTable,
    todo: &[&Migration],
    by: &Writer<'_>,
) -> sqlx::Result<()> {
    db::in_transaction(conn, async |conn| {
        for m in todo {
            let row = NewRow {
                version: m.version,
                description: &m.description,
                checksum: &m.up.checksum,
                checksum_normalized: m.up.checksum_normalized(),
                success: true,
                execution_ms: 0,
                origin: ORIGIN_BASELINE,
                applied_at: None,
                statements_done: None,
                phase: Some(m.phase().name()),
            };
            history::insert(&mut *conn, table, &row, by).await?;
        }
        Ok(())
    })
    .await
}

/// Replay every migration of `set` in a fresh schema inside a transaction that is rolled back
/// (the scratch schema goes with it), and read the shape after each migration. A migration
/// that fails there ends the replay (returned with its error).
pub async fn replay(
    conn: &mut PgConnection,
    lock_timeout: Duration,
    set: &MigrationSet,
    live_schema: &str,
) -> Result<(Vec<(i64, Shape)>, Option<(i64, String)>)> {
    let rehearsal =
        db::rolled_back(conn, async |conn| Ok(replay_in(conn, lock_timeout, set, live_schema).await)).await;
    rehearsal.map_err(db::failed("could not start the replay's transaction"))?
}

/// Apply every migration in a fresh schema, one savepoint each, and read the shape after each.
async fn replay_in(
    conn: &mut PgConnection,
    lock_timeout: Duration,
    set: &MigrationSet,
    live_schema: &str,
) -> Result<(Vec<(i64, Shape)>, Option<(i64, String)>)> {
    let scratch = format!("shipgate_scratch_{}", std::process::id());
    // Types and functions of extensions (citext, uuid-ossp, pgcrypto) live in the schemas the
    // extensions were created in, usually public: the replay must still resolve them.
    let extension_schemas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db::failed("could not list the database's extensions"))?;
    let mut path = vec![quote_ident(&scratch)];
    for schema in extension_schemas.iter().map(String::as_str).chain(["public"]) {
        let quoted = quote_ident(schema);
        if !path.contains(&quoted) {
            path.push(quoted);
        }
    }
    let setup = format!(
        "SET LOCAL lock_timeout = '{}'; CREATE SCHEMA {q}; SET LOCAL search_path TO {}",
        duration::pg_setting(lock_timeout),
        path.join(", "),
        q = quote_ident(&scratch)
    );
    sqlx::raw_sql(AssertSqlSafe(setup)).execute(&mut *conn).await.map_err(|e| {
        Error::failed(format!("could not create a scratch schema to replay the migrations in: {}", db::error_text(&e)))
            .hint("the database user needs CREATE on the database (the scratch schema is rolled back and never committed)")
    })?;
    let mut shapes = Vec::new();
    for m in &set.migrations {
        sqlx::raw_sql("SAVEPOINT replay")
            .execute(&mut *conn)
            .await
            .map_err(db::failed("could not set a savepoint"))?;
        let mut failed = None;
        for statement in m.up.units().into_iter().map(|r| &m.up.sql[r]) {
            let sql = for_replay(statement, live_schema, &scratch, m.up.directives.no_transaction);
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
                failed = Some(db::error_text(&e));
                break;
            }
        }
        if let Some(error) = failed {
            let _ = sqlx::raw_sql("ROLLBACK TO SAVEPOINT replay").execute(&mut *conn).await;
            return Ok((shapes, Some((m.version, error))));
        }
        let shape = catalog::snapshot(&mut *conn, &scratch)
            .await
            .map_err(db::failed("could not read the catalog"))?;
        shapes.push((m.version, shape));
    }
    Ok((shapes, None))
}

/// A statement as replayed: names qualified with the live schema point at the scratch one
/// (drizzle-kit writes `"public"."users"`), and CONCURRENTLY is dropped, since the replay
/// runs in a transaction and only the resulting shape matters. Pure.
pub fn for_replay(sql: &str, live: &str, scratch: &str, no_transaction: bool) -> String {
    let quoted_live = format!("{}.", quote_ident(live));
    let quoted_scratch = format!("{}.", quote_ident(scratch));
    let mut out = sql.replace(&quoted_live, &quoted_scratch);
    let bare = format!("{live}.");
    let mut rewritten = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find(&bare) {
        let before = rest[..at].chars().last();
        let boundary = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '.'));
        rewritten.push_str(&rest[..at]);
        rewritten.push_str(if boundary { &quoted_scratch } else { &bare });
        rest = &rest[at + bare.len()..];
    }
    rewritten.push_str(rest);
    out = rewritten;
    if no_transaction {
        for word in ["CONCURRENTLY", "concurrently", "Concurrently"] {
            out = out.replace(&format!(" {word} "), " ");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_statements_point_at_the_scratch_schema() {
        let cases = [
            (
                r#"CREATE TYPE "public"."role" AS ENUM('a');"#,
                false,
                r#"CREATE TYPE "s"."role" AS ENUM('a');"#,
            ),
            ("ALTER TABLE public.users ADD x int", false, r#"ALTER TABLE "s".users ADD x int"#),
            (
                "CREATE TABLE notpublic.t (); SELECT my_public.x",
                false,
                "CREATE TABLE notpublic.t (); SELECT my_public.x",
            ),
            ("CREATE INDEX CONCURRENTLY i ON t (x)", true, "CREATE INDEX i ON t (x)"),
            ("CREATE INDEX CONCURRENTLY i ON t (x)", false, "CREATE INDEX CONCURRENTLY i ON t (x)"),
        ];
        for (sql, no_tx, expected) in cases {
            assert_eq!(for_replay(sql, "public", "s", no_tx), expected, "{sql}");
        }
    }
}
