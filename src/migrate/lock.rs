//! The migration lock: a PostgreSQL session advisory lock held on a dedicated connection.
//!
//! Polled with `pg_try_advisory_lock`, never waited on with `pg_advisory_lock`: a blocked
//! waiter holds a snapshot, and `CREATE INDEX CONCURRENTLY` in the holder waits for every
//! older snapshot, so a blocking waiter deadlocks the deploy (flyway#1654, golang-migrate#960).
//! The key covers database, schema and table, so tenant schemas migrate in parallel while two
//! runs on the same schema never overlap. The session is never left idle in a transaction.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;

use crate::duration;
use crate::error::{Error, Result};
use crate::migrate::history::HistoryTable;
use crate::shutdown::Shutdown;

/// The advisory-lock key for one history table. Stable across versions of shipgate.
pub fn key(database: &str, table: &HistoryTable) -> i64 {
    let mut hash = Sha256::new();
    for part in ["shipgate-migrate", database, &table.schema, crate::migrate::history::TABLE] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// `pg_locks` shows a bigint advisory key split into `classid` (high) and `objid` (low).
pub fn split_key(key: i64) -> (i64, i64) {
    let bits = key as u64;
    ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64)
}

/// Who holds a lock, as `pg_stat_activity` sees them.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: i32,
    pub application_name: String,
    pub client: String,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} (application_name `{}`, client {}, connected since {})",
            self.pid, self.application_name, self.client, self.since
        )
    }
}

pub async fn holder(conn: &mut PgConnection, key: i64) -> sqlx::Result<Option<Holder>> {
    let (classid, objid) = split_key(key);
    let row: Option<(i32, String, String, String)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'),
                coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'), '?')
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = $2
         LIMIT 1",
    )
    .bind(classid)
    .bind(objid)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(pid, application_name, client, since)| Holder { pid, application_name, client, since }))
}

async fn try_take(conn: &mut PgConnection, key: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(conn).await
}

/// Poll until the lock is ours, `timeout` passes (exit 3), or a signal arrives.
pub async fn acquire(
    conn: &mut PgConnection,
    key: i64,
    what: &str,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<()> {
    let db_err = |e: sqlx::Error| {
        Error::unavailable(format!(
            "could not take the migration lock for {what}: {}",
            crate::db::error_text(&e)
        ))
    };
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut last_report: Option<Instant> = None;
    loop {
        if try_take(conn, key).await.map_err(db_err)? {
            if last_report.is_some() {
                tracing::info!(
                    "took the migration lock for {what} after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= timeout {
            let who = holder(conn, key).await.ok().flatten();
            let by = who.map(|h| format!("; it is held by {h}")).unwrap_or_default();
            return Err(Error::unavailable(format!(
                "could not take the migration lock for {what} within {}{by}",
                duration::human(timeout)
            ))
            .hint(
                "another deploy is migrating this schema; wait for it, or raise --lock-timeout. \
                   If that session is stuck, end it with SELECT pg_terminate_backend(<pid>)",
            ));
        }
        if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            match holder(conn, key).await {
                Ok(Some(h)) => tracing::info!("waiting for the migration lock on {what}: held by {h}"),
                _ => tracing::info!("waiting for the migration lock on {what}"),
            }
            last_report = Some(Instant::now());
        }
        let wait = crate::db::connect::jitter(delay).min(timeout - waited);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            signal = shutdown.wait() => {
                return Err(Error::interrupted(signal, format!(
                    "interrupted by {} while waiting for the migration lock; nothing changed", signal.name())));
            }
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

pub async fn release(conn: &mut PgConnection, key: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1)").bind(key).fetch_one(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_database_and_schema_and_are_stable() {
        let a = key("app", &HistoryTable::new("public"));
        let cases = [
            key("app", &HistoryTable::new("tenant_1")),
            key("app2", &HistoryTable::new("public")),
            key("apppublic", &HistoryTable::new("")),
        ];
        for other in cases {
            assert_ne!(a, other);
        }
        assert_eq!(a, key("app", &HistoryTable::new("public")));
    }

    #[test]
    fn split_matches_pg_locks_columns() {
        let cases = [
            (0x0000_0001_0000_0002_i64, (1, 2)),
            (-1_i64, (0xffff_ffff, 0xffff_ffff)),
            (i64::MIN, (0x8000_0000, 0)),
        ];
        for (key, parts) in cases {
            assert_eq!(split_key(key), parts);
        }
    }
}
