//! The migration lock: a PostgreSQL session advisory lock, held on the session that migrates
//! (as sqlx does), so the lock cannot end without the work ending with it.
//!
//! Polled with `pg_try_advisory_lock`, never waited on with `pg_advisory_lock`: a blocked
//! waiter holds a snapshot, and `CREATE INDEX CONCURRENTLY` in the holder waits for every
//! older snapshot, so a blocking waiter deadlocks the deploy (flyway#1654, golang-migrate#960).
//! The key covers database, schema and table, so tenant schemas migrate in parallel while two
//! runs on the same schema never overlap. The session is never left idle in a transaction.
//!
//! A lock can still be lost while the connection lives on: a pooler in transaction mode hands
//! each statement to another server session, and a migration may call
//! `pg_advisory_unlock_all()`. So the runner asks [`held`] right after taking it and before
//! every migration, and stops (exit 3) the moment the answer is no.

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

/// Try once; the answer carries the server session that answered, for [`confirm`].
async fn try_take(conn: &mut PgConnection, key: i64) -> sqlx::Result<(bool, i32)> {
    sqlx::query_as("SELECT pg_try_advisory_lock($1), pg_backend_pid()").bind(key).fetch_one(conn).await
}

/// Poll until the lock is ours (and [`confirm`]ed), `timeout` passes (exit 3), or a signal
/// arrives.
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
        let (taken, pid) = try_take(conn, key).await.map_err(db_err)?;
        if taken {
            if let Err(e) = confirm(conn, pid, what).await {
                // Through a pooler this may reach another session; ending ours releases it anyway.
                let _ = release(conn, key).await;
                return Err(e);
            }
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
            let within = if timeout.is_zero() {
                "at once (--lock-timeout 0s)".to_string()
            } else {
                format!("within {}", duration::human(timeout))
            };
            return Err(Error::unavailable(format!(
                "could not take the migration lock for {what} {within}{by}"
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

/// Whether this very server session (`pg_backend_pid()`) holds `key`, as `pg_locks` says.
pub async fn held(conn: &mut PgConnection, key: i64) -> sqlx::Result<bool> {
    let (classid, objid) = split_key(key);
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid()
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND classid::bigint = $1 AND objid::bigint = $2)",
    )
    .bind(classid)
    .bind(objid)
    .fetch_one(conn)
    .await
}

/// Refuse to go on unless the lock taken for `what` is still this session's. `after` is the
/// last version this run applied or reverted (`None`: none yet). Exit 3 either way.
pub async fn check(conn: &mut PgConnection, key: i64, what: &str, after: Option<i64>) -> Result<()> {
    let reason = match held(conn, key).await {
        Ok(true) => return Ok(()),
        Ok(false) => {
            "the session no longer holds it: a migration released it (pg_advisory_unlock_all, DISCARD \
                      ALL) or a pooler moved the connection to another server session"
                .to_string()
        }
        Err(e) => format!("session ended: {}", crate::db::error_text(&e)),
    };
    let done = match after {
        Some(v) => format!("nothing after {v} was applied"),
        None => "nothing was applied".to_string(),
    };
    Err(Error::unavailable(format!("lost the migration lock for {what} ({reason}); {done}"))
        .hint("rerun to continue: only what is pending runs. If this repeats, connect directly or through a \
               session-mode pooler (PgBouncer pool_mode = session), and keep idle-session cuts longer than a migration"))
}

/// Right after taking the lock: a second statement on the same connection must reach the
/// server session that took it (`pid`), where a session lock lives. A pooler in transaction
/// mode (PgBouncer `pool_mode = transaction`, RDS Proxy) hands each statement to another
/// session and fails this, and no lock can be held through it. (Asking the session for its
/// pid is what `pg_locks` would answer here, without scanning the lock table.)
async fn confirm(conn: &mut PgConnection, pid: i32, what: &str) -> Result<()> {
    let answered: sqlx::Result<i32> = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await;
    match answered {
        Ok(now) if now == pid => Ok(()),
        Ok(_) => Err(Error::unavailable(format!(
            "took the migration lock for {what}, but the next statement on the same connection does not hold it: \
             the connection goes through a pooler in transaction mode, which hands each statement to another \
             server session; nothing was changed"
        ))
        .hint("connect directly to the database, or through a session-mode pool (PgBouncer pool_mode = session; \
               RDS Proxy pins sessions that take advisory locks only in session mode)")),
        Err(e) => Err(Error::unavailable(format!(
            "could not confirm the migration lock for {what}: {}; nothing was changed",
            crate::db::error_text(&e)
        ))),
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
