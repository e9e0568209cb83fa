//! The `shipgate_migrations` history table: its DDL and every statement that touches it.
//!
//! The columns are a superset of sqlx's `_sqlx_migrations` facts (version, description,
//! success, SHA-384 checksum, execution time) plus what an operator asks after an incident:
//! which run applied it, from which ECS task or host, and whether it was applied, baselined
//! or repaired.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::db::quote_ident;
use crate::migrate::plan::AppliedRow;

pub const TABLE: &str = "shipgate_migrations";

/// The history table of one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTable {
    pub schema: String,
}

impl HistoryTable {
    pub fn new(schema: impl Into<String>) -> Self {
        HistoryTable { schema: schema.into() }
    }

    /// `"schema".shipgate_migrations`, safe to splice into SQL.
    pub fn qualified(&self) -> String {
        format!("{}.{TABLE}", quote_ident(&self.schema))
    }
}

/// Facts about the run that writes a row.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub run_id: &'a str,
    pub applied_by: &'a str,
}

pub async fn exists(conn: &mut PgConnection, table: &HistoryTable) -> sqlx::Result<bool> {
    crate::db::relation_exists(conn, &table.qualified()).await
}

/// Whether the table exists, and which of the columns added since its first version it has
/// (`statements_done`, `phase`): one round trip, since a run with nothing to do asks twice.
async fn shape(conn: &mut PgConnection, table: &HistoryTable) -> sqlx::Result<(bool, bool, bool)> {
    sqlx::query_as(
        "SELECT t.oid IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid
                          AND a.attname = 'statements_done' AND NOT a.attisdropped),
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid
                          AND a.attname = 'phase' AND NOT a.attisdropped)
         FROM (SELECT to_regclass($1) AS oid) t",
    )
    .bind(table.qualified())
    .fetch_one(conn)
    .await
}

/// Create the schema (if named and missing) and the table. Idempotent; callers hold the lock.
pub async fn ensure(conn: &mut PgConnection, table: &HistoryTable) -> sqlx::Result<()> {
    match shape(&mut *conn, table).await? {
        (true, true, true) => return Ok(()),
        (true, ..) => {
            // Tables made by earlier versions gain the columns added since (`NULL`: not
            // recorded): no-transaction progress, and the phase.
            let sql = format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS statements_done INTEGER;
                 ALTER TABLE {t} ADD COLUMN IF NOT EXISTS phase TEXT",
                t = table.qualified()
            );
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
            return Ok(());
        }
        (false, ..) => {}
    }
    // CREATE SCHEMA IF NOT EXISTS checks the database-level CREATE privilege before it checks
    // for the schema, so a least-privilege role that owns only its schema would fail on it.
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&table.schema)
            .fetch_one(&mut *conn)
            .await?;
    let create_schema = if schema_exists {
        String::new()
    } else {
        format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(&table.schema))
    };
    let sql = format!(
        "{create_schema}
         CREATE TABLE IF NOT EXISTS {t} (
             version             BIGINT PRIMARY KEY,
             description         TEXT NOT NULL,
             checksum            BYTEA NOT NULL,
             checksum_normalized BYTEA NOT NULL,
             success             BOOLEAN NOT NULL,
             applied_at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
             execution_ms        BIGINT NOT NULL DEFAULT 0,
             run_id              TEXT NOT NULL,
             applied_by          TEXT NOT NULL,
             origin              TEXT NOT NULL DEFAULT 'apply',
             statements_done     INTEGER,
             phase               TEXT
         );
         COMMENT ON TABLE {t} IS 'Migration history written by shipgate; see `shipgate migrate status`.';",
        t = table.qualified()
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

/// Every row, by version. An absent table is an empty history.
pub async fn load(conn: &mut PgConnection, table: &HistoryTable) -> sqlx::Result<Vec<AppliedRow>> {
    // A read-only session reads an old table as it is: no progress recorded.
    let (progress, phase) = match shape(&mut *conn, table).await? {
        (false, ..) => return Ok(Vec::new()),
        (true, progress, phase) => (
            if progress { "statements_done" } else { "NULL::int" },
            if phase { "phase" } else { "NULL::text" },
        ),
    };
    let sql = format!(
        "SELECT version, description, checksum, checksum_normalized, success, applied_at,
                execution_ms, run_id, applied_by, origin, {progress} AS statements_done, {phase} AS phase
         FROM {} ORDER BY version",
        table.qualified()
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.into_iter()
        .map(|r| {
            Ok(AppliedRow {
                version: r.try_get("version")?,
                description: r.try_get("description")?,
                checksum: r.try_get("checksum")?,
                checksum_normalized: r.try_get("checksum_normalized")?,
                success: r.try_get("success")?,
                applied_at: r.try_get::<DateTime<Utc>, _>("applied_at")?,
                execution_ms: r.try_get("execution_ms")?,
                run_id: r.try_get("run_id")?,
                applied_by: r.try_get("applied_by")?,
                origin: r.try_get("origin")?,
                statements_done: r.try_get("statements_done")?,
                phase: r.try_get("phase")?,
            })
        })
        .collect()
}

/// What to write for one migration.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    pub version: i64,
    pub description: &'a str,
    pub checksum: &'a [u8],
    pub checksum_normalized: &'a [u8],
    pub success: bool,
    pub execution_ms: i64,
    pub origin: &'a str,
    /// When it was applied, if not now (adopted rows keep the other tool's time).
    pub applied_at: Option<DateTime<Utc>>,
    /// How many statements of a no-transaction migration have completed; `None` otherwise.
    pub statements_done: Option<i32>,
    /// `pre` or `post`, for a migration that was applied (or recorded) from its file.
    pub phase: Option<&'a str>,
}

pub async fn insert(
    conn: &mut PgConnection,
    table: &HistoryTable,
    row: &NewRow<'_>,
    by: &Writer<'_>,
) -> sqlx::Result<()> {
    let sql = format!(
        "INSERT INTO {} (version, description, checksum, checksum_normalized, success, execution_ms, run_id, applied_by, origin, applied_at, statements_done, phase)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, clock_timestamp()), $11, $12)",
        table.qualified()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(row.version)
        .bind(row.description)
        .bind(row.checksum)
        .bind(row.checksum_normalized)
        .bind(row.success)
        .bind(row.execution_ms)
        .bind(by.run_id)
        .bind(by.applied_by)
        .bind(row.origin)
        .bind(row.applied_at)
        .bind(row.statements_done)
        .bind(row.phase)
        .execute(conn)
        .await?;
    Ok(())
}

/// Record that the first `done` statements of a no-transaction migration have completed.
pub async fn set_progress(
    conn: &mut PgConnection,
    table: &HistoryTable,
    version: i64,
    done: i32,
) -> sqlx::Result<()> {
    let sql = format!("UPDATE {} SET statements_done = $2 WHERE version = $1", table.qualified());
    sqlx::query(AssertSqlSafe(sql)).bind(version).bind(done).execute(conn).await?;
    Ok(())
}

/// The progress of a failed no-transaction migration, if its row records one.
pub async fn progress(
    conn: &mut PgConnection,
    table: &HistoryTable,
    version: i64,
) -> sqlx::Result<Option<i32>> {
    let sql = format!("SELECT statements_done FROM {} WHERE version = $1 AND NOT success", table.qualified());
    Ok(sqlx::query_scalar::<_, Option<i32>>(AssertSqlSafe(sql))
        .bind(version)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// Mark a row finished (no-transaction migrations) or failed (before a no-transaction down);
/// either way its progress is over.
pub async fn set_success(
    conn: &mut PgConnection,
    table: &HistoryTable,
    version: i64,
    success: bool,
    execution_ms: i64,
) -> sqlx::Result<()> {
    let sql = format!(
        "UPDATE {} SET success = $2, execution_ms = $3, applied_at = clock_timestamp(), statements_done = NULL \
         WHERE version = $1",
        table.qualified()
    );
    sqlx::query(AssertSqlSafe(sql)).bind(version).bind(success).bind(execution_ms).execute(conn).await?;
    Ok(())
}

/// Record the file as it is now (`repair --mark-applied`).
pub async fn restamp(
    conn: &mut PgConnection,
    table: &HistoryTable,
    row: &NewRow<'_>,
    by: &Writer<'_>,
) -> sqlx::Result<u64> {
    let sql = format!(
        "UPDATE {} SET description = $2, checksum = $3, checksum_normalized = $4, success = true,
                origin = $5, run_id = $6, applied_by = $7, applied_at = clock_timestamp(), statements_done = NULL
         WHERE version = $1",
        table.qualified()
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(row.version)
        .bind(row.description)
        .bind(row.checksum)
        .bind(row.checksum_normalized)
        .bind(row.origin)
        .bind(by.run_id)
        .bind(by.applied_by)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

pub async fn delete(conn: &mut PgConnection, table: &HistoryTable, version: i64) -> sqlx::Result<u64> {
    let sql = format!("DELETE FROM {} WHERE version = $1", table.qualified());
    Ok(sqlx::query(AssertSqlSafe(sql)).bind(version).execute(conn).await?.rows_affected())
}
