//! The fleet's SQL: listing tenants, reading many tenants' histories in few round trips, the
//! fleet lock's key, and the table in the master schema that remembers which tenants failed
//! in the last run (a rolled-back migration leaves no other trace, and `tenants status` must
//! still say which tenants failed and why).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::db::quote_ident;
use crate::fleet::names::Shard;
use crate::fleet::state::Fact;
use crate::migrate::history::{self, HistoryTable, Writer};

pub const FAILURES_TABLE: &str = "shipgate_tenant_failures";

/// The fleet lock: one per database, master schema and shard, so two fleet runs never
/// overlap while the N shards of one deploy run side by side.
pub fn fleet_key(database: &str, master: &str, shard: Option<Shard>) -> i64 {
    let shard = shard.map(|s| s.to_string()).unwrap_or_default();
    let mut hash = Sha256::new();
    for part in ["shipgate-fleet", database, master, &shard] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A row of `tenants_query`: a name, or a value that cannot be one.
pub enum Listed {
    Name(String),
    Unusable(String),
}

/// Run `tenants_query`, in a read-only transaction (a query that lists tenants must not
/// change anything, and a typo must not be able to); its first column must be text.
pub async fn list(conn: &mut PgConnection, query: &str) -> Result<Vec<Listed>, String> {
    sqlx::raw_sql("BEGIN TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(|e| crate::db::error_text(&e))?;
    let rows = sqlx::query(AssertSqlSafe(query.to_string())).fetch_all(&mut *conn).await;
    // Rolled back either way: it only read.
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    let rows = rows.map_err(|e| crate::db::error_text(&e))?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.len() == 0 {
            return Err("it returns no columns; it must return the schema names in its first column".into());
        }
        match row.try_get::<Option<String>, _>(0) {
            Ok(Some(name)) => out.push(Listed::Name(name)),
            Ok(None) => out.push(Listed::Unusable(format!("row {} has a NULL schema name", i + 1))),
            Err(_) => {
                use sqlx::{Column, TypeInfo};
                let (name, ty) =
                    row.columns().first().map_or(("?", "?"), |c| (c.name(), c.type_info().name()));
                return Err(format!(
                    "its first column must be text (the schema name), but `{name}` is of type {}; cast it \
                     (`SELECT {name}::text …`) or select the name column first",
                    ty.to_lowercase()
                ));
            }
        }
    }
    Ok(out)
}

/// Of `names`, the schemas that exist, and those that have a history table.
pub async fn schemas(
    conn: &mut PgConnection,
    names: &[&str],
) -> sqlx::Result<(BTreeSet<String>, BTreeSet<String>)> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid
                                    AND c.relname = $2 AND c.relkind IN ('r', 'p'))
         FROM pg_namespace n WHERE n.nspname = ANY($1)",
    )
    .bind(names)
    .bind(history::TABLE)
    .fetch_all(conn)
    .await?;
    let exists = rows.iter().map(|(n, _)| n.clone()).collect();
    let with_history = rows.into_iter().filter(|(_, h)| *h).map(|(n, _)| n).collect();
    Ok((exists, with_history))
}

/// Tenants per statement when reading histories. Planning a UNION ALL grows faster than its
/// branches (measured: 100 tables 12 ms, 500 tables 150 ms), so 5,000 tenants take 50 short
/// statements rather than 10 long ones.
const BATCH: usize = 100;

/// The history facts of every named tenant (each must have a history table).
pub async fn facts(conn: &mut PgConnection, names: &[&str]) -> sqlx::Result<BTreeMap<String, Vec<Fact>>> {
    let mut out: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
    for chunk in names.chunks(BATCH) {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!(
                    "SELECT {i}::int4 AS t, version, success, checksum, checksum_normalized FROM {}",
                    HistoryTable::new(*name).qualified()
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // Simple protocol: a one-off statement is not worth preparing and caching.
        let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
        for row in rows {
            let i: i32 = row.try_get("t")?;
            out.entry(chunk[i as usize].to_string()).or_default().push(Fact {
                version: row.try_get("version")?,
                success: row.try_get("success")?,
                checksum: row.try_get("checksum")?,
                checksum_normalized: row.try_get("checksum_normalized")?,
            });
        }
    }
    Ok(out)
}

/// A failure as the last run recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub direction: String,
    pub version: Option<i64>,
    pub reason: String,
    pub run_id: String,
    pub failed_at: String,
}

fn failures_table(master: &str) -> String {
    format!("{}.{FAILURES_TABLE}", quote_ident(master))
}

pub async fn ensure_failures(conn: &mut PgConnection, master: &str) -> sqlx::Result<()> {
    let exists = crate::db::relation_exists(&mut *conn, &failures_table(master)).await?;
    if exists {
        return Ok(());
    }
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {t} (
             tenant     TEXT PRIMARY KEY,
             direction  TEXT NOT NULL,
             version    BIGINT,
             reason     TEXT NOT NULL,
             run_id     TEXT NOT NULL,
             applied_by TEXT NOT NULL,
             failed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
         );
         COMMENT ON TABLE {t} IS 'Tenants whose last shipgate fleet run failed; see `shipgate tenants status`.';",
        t = failures_table(master)
    );
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

/// Every recorded failure (none when the table does not exist yet).
pub async fn failures(conn: &mut PgConnection, master: &str) -> sqlx::Result<BTreeMap<String, Failure>> {
    let exists = crate::db::relation_exists(&mut *conn, &failures_table(master)).await?;
    if !exists {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "SELECT tenant, direction, version, reason, run_id,
                to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"') AS failed_at
         FROM {}",
        failures_table(master)
    );
    let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("tenant")?,
                Failure {
                    direction: r.try_get("direction")?,
                    version: r.try_get("version")?,
                    reason: r.try_get("reason")?,
                    run_id: r.try_get("run_id")?,
                    failed_at: r.try_get("failed_at")?,
                },
            ))
        })
        .collect()
}

/// Remember that `tenant` failed in this run.
pub async fn record_failure(
    conn: &mut PgConnection,
    master: &str,
    tenant: &str,
    direction: &str,
    version: Option<i64>,
    reason: &str,
    by: &Writer<'_>,
) -> sqlx::Result<()> {
    let sql = format!(
        "INSERT INTO {} (tenant, direction, version, reason, run_id, applied_by) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant) DO UPDATE SET direction = EXCLUDED.direction, version = EXCLUDED.version,
             reason = EXCLUDED.reason, run_id = EXCLUDED.run_id, applied_by = EXCLUDED.applied_by,
             failed_at = clock_timestamp()",
        failures_table(master)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(direction)
        .bind(version)
        .bind(reason)
        .bind(by.run_id)
        .bind(by.applied_by)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forget an earlier failure of `tenant` (it has just succeeded).
pub async fn clear_failure(conn: &mut PgConnection, master: &str, tenant: &str) -> sqlx::Result<()> {
    let sql = format!("DELETE FROM {} WHERE tenant = $1", failures_table(master));
    sqlx::query(AssertSqlSafe(sql)).bind(tenant).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_keys_differ_by_database_master_and_shard() {
        let a = fleet_key("app", "public", None);
        let others = [
            fleet_key("app2", "public", None),
            fleet_key("app", "core", None),
            fleet_key("app", "public", Some(Shard { index: 1, count: 2 })),
            fleet_key("app", "public", Some(Shard { index: 2, count: 2 })),
            crate::migrate::lock::key("app", &HistoryTable::new("public")),
        ];
        for other in others {
            assert_ne!(a, other);
        }
        assert_eq!(a, fleet_key("app", "public", None));
    }
}
