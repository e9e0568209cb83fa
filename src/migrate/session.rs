//! One runner's view of one schema: a worker connection that holds the advisory lock and runs
//! the migrations, plus (for writing commands) a second session that can cancel the worker's
//! statement when a signal arrives. The lock lives on the worker, so losing the session that
//! migrates loses the lock and the work together, never one without the other.
//!
//! Every path out of a locked session goes through [`Session::close`], which unlocks and
//! closes both connections; if we die instead, PostgreSQL drops the session lock with the
//! connection, so the lock can never outlive the process.

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

use crate::config::MigrateConfig;
use crate::db::{self, ConnectSpec};
use crate::error::{Error, Result};
use crate::migrate::exec::{self, Direction, Limits, Run, SessionDefaults};
use crate::migrate::history::{self, HistoryTable, Writer};
use crate::migrate::lock;
use crate::migrate::plan::AppliedRow;
use crate::migrate::source::Migration;
use crate::shutdown::Shutdown;

/// Whether the session may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read-only connection, no lock: `status`, `verify`, `--dry-run`.
    ReadOnly,
    /// Worker + lock session.
    Write,
}

pub struct Session {
    worker: PgConnection,
    worker_pid: i32,
    guard: Option<PgConnection>,
    locked: bool,
    key: i64,
    defaults: SessionDefaults,
    pub database: String,
    pub table: HistoryTable,
}

impl Session {
    /// Connect (both sessions at once, to keep a no-op deploy fast) and resolve the schema.
    pub async fn open(cfg: &MigrateConfig, mode: Mode, shutdown: &Shutdown) -> Result<Session> {
        let spec = ConnectSpec {
            credentials: &cfg.credentials,
            application_name: &cfg.application_name,
            read_only: mode == Mode::ReadOnly,
            timeout: cfg.connect_timeout,
            announce: true,
        };
        let (mut worker, guard) = match mode {
            Mode::ReadOnly => (db::connect(&spec, shutdown).await?, None),
            Mode::Write => {
                let quiet = ConnectSpec { announce: false, ..spec.clone() };
                let (w, g) = tokio::try_join!(db::connect(&spec, shutdown), db::connect(&quiet, shutdown))?;
                (w, Some(g))
            }
        };
        if let Some(schema) = &cfg.schema {
            db::set_search_path(&mut worker, schema)
                .await
                .map_err(db::failed("could not set search_path"))?;
        }
        let (database, current_schema, worker_pid): (String, Option<String>, i32) =
            sqlx::query_as("SELECT current_database(), current_schema(), pg_backend_pid()")
                .fetch_one(&mut worker)
                .await
                .map_err(db::failed("could not read the session's database and schema"))?;
        let schema = match (&cfg.schema, current_schema) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(Error::input(format!(
                    "no schema in the search_path of {} exists, so there is nowhere to keep the history table",
                    cfg.credentials
                ))
                .hint("pass --schema NAME (or SHIPGATE_SCHEMA)"));
            }
        };
        let table = HistoryTable::new(schema);
        let key = lock::key(&database, &table);
        let defaults = SessionDefaults { search_path: cfg.schema.as_deref().map(db::quote_ident) };
        Ok(Session { worker, worker_pid, guard, locked: false, key, defaults, database, table })
    }

    /// [`Session::open`] while `work` (reading and parsing the migration folder) runs on a
    /// blocking thread: with a large folder and nothing to apply the two cost about the same,
    /// and neither needs the other. An error from `work` is the user's to fix first and
    /// changes nothing, so it wins over a failed connection, and ends the connecting at once.
    pub async fn open_while<W: Send + 'static>(
        cfg: &MigrateConfig,
        mode: Mode,
        shutdown: &Shutdown,
        work: impl FnOnce() -> Result<W> + Send + 'static,
    ) -> Result<(Session, W)> {
        let mut work = tokio::task::spawn_blocking(work);
        let open = Session::open(cfg, mode, shutdown);
        tokio::pin!(open);
        let joined = |done: std::result::Result<Result<W>, tokio::task::JoinError>| {
            done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        };
        tokio::select! {
            biased;
            done = &mut work => {
                let value = joined(done)?;
                Ok((open.await?, value))
            }
            session = &mut open => {
                let value = joined(work.await);
                let session = session?;
                Ok((session, value?))
            }
        }
    }

    /// "schema `public` of database `app`", for messages.
    pub fn describe(&self) -> String {
        format!("schema `{}` of database `{}`", self.table.schema, self.database)
    }

    /// Take the migration lock for this schema (write sessions only), on the worker.
    pub async fn lock(&mut self, timeout: Duration, shutdown: &Shutdown) -> Result<()> {
        debug_assert!(self.guard.is_some(), "lock() needs a write session");
        let what = self.describe();
        lock::acquire(&mut self.worker, self.key, &what, timeout, shutdown).await?;
        self.locked = true;
        tracing::debug!("holding the migration lock for {what}");
        Ok(())
    }

    /// Stop (exit 3) unless the lock is still ours; `after` is the last version this run changed.
    pub async fn check_lock(&mut self, after: Option<i64>) -> Result<()> {
        let what = self.describe();
        lock::check(&mut self.worker, self.key, &what, after).await
    }

    /// The history rows (empty when the table does not exist yet).
    pub async fn history(&mut self) -> Result<Vec<AppliedRow>> {
        history::load(&mut self.worker, &self.table)
            .await
            .map_err(db::failed(&format!("could not read {}", self.table.qualified())))
    }

    /// Create the history table if needed. Requires the lock.
    pub async fn ensure_history(&mut self) -> Result<()> {
        debug_assert!(self.locked);
        history::ensure(&mut self.worker, &self.table).await.map_err(|e| {
            Error::failed(format!("could not create {}: {}", self.table.qualified(), db::error_text(&e)))
                .hint("the database user needs CREATE on the schema (or create the table once as its owner)")
        })
    }

    /// The worker connection, for commands that write history rows directly.
    pub fn worker(&mut self) -> &mut PgConnection {
        &mut self.worker
    }

    /// Run one migration, cancelling its statement if a signal arrives. `last` marks the
    /// final migration of the run, whose commit must make the whole run durable.
    pub async fn execute(
        &mut self,
        m: &Migration,
        direction: Direction,
        limits: &Limits,
        by: &Writer<'_>,
        last: bool,
        shutdown: &Shutdown,
    ) -> Result<Duration> {
        let Session { worker, worker_pid, guard, table, defaults, .. } = self;
        let canceller = match guard.as_mut() {
            Some(g) => Canceller::Own(g),
            None => Canceller::None,
        };
        let step = Run { table, m, direction, limits, by, session: defaults, last };
        execute(worker, *worker_pid, canceller, &step, shutdown).await
    }

    /// Release the lock and close both sessions. Safe to call on every path.
    pub async fn close(self) {
        let Session { mut worker, guard, locked, key, .. } = self;
        if locked {
            match lock::release(&mut worker, key).await {
                Ok(true) => tracing::debug!("released the migration lock"),
                // Already reported by the check that found it gone.
                Ok(false) => tracing::debug!("the migration lock was not held at release"),
                // Closing the session below releases it server-side anyway.
                Err(e) => tracing::debug!("unlock failed ({e}); closing the session releases it"),
            }
        }
        if let Some(guard) = guard {
            let _ = guard.close().await;
        }
        let _ = worker.close().await;
    }
}

/// Another session that can cancel the worker's statement: the lock session of a single-schema
/// run, or the control session a tenant fleet's workers share.
pub enum Canceller<'a> {
    Own(&'a mut PgConnection),
    Shared(&'a tokio::sync::Mutex<PgConnection>),
    None,
}

/// How often an idle session is touched while a migration runs.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

impl Canceller<'_> {
    /// Touch the session so it does not look idle; a failure shows at the next real use.
    async fn ping(&mut self) {
        let result = match self {
            Canceller::Own(conn) => sqlx::raw_sql("SELECT 1").execute(&mut **conn).await,
            // The fleet's control session is touched by the fleet run itself.
            Canceller::Shared(_) | Canceller::None => return,
        };
        if let Err(e) = result {
            tracing::debug!("the cancelling session did not answer: {}", db::error_text(&e));
        }
    }

    async fn signal(&mut self, pid: i32, function: &str) {
        let sql = format!("SELECT {function}($1)");
        let result = match self {
            Canceller::Own(conn) => sqlx::query(AssertSqlSafe(sql)).bind(pid).execute(&mut **conn).await,
            Canceller::Shared(conn) => {
                sqlx::query(AssertSqlSafe(sql)).bind(pid).execute(&mut *conn.lock().await).await
            }
            Canceller::None => return,
        };
        if let Err(e) = result {
            tracing::debug!("{function}({pid}) failed: {e}");
        }
    }
}

/// Run one migration on `worker` (backend `worker_pid`); when a signal arrives, cancel its
/// statement through `canceller` (terminate the backend if the cancel does not land) and
/// report what became of the migration.
pub async fn execute(
    worker: &mut PgConnection,
    worker_pid: i32,
    mut canceller: Canceller<'_>,
    step: &Run<'_>,
    shutdown: &Shutdown,
) -> Result<Duration> {
    let (m, direction) = (step.m, step.direction);
    let work = exec::run(worker, step);
    tokio::pin!(work);
    // The cancelling session idles while the worker migrates: a cheap query every few
    // seconds keeps a pooler's or a firewall's idle cut from ending it.
    // First tick one period out: `interval`'s immediate first tick still waits for a turn of
    // the timer driver (about a millisecond), which 1,000 quick migrations would pay 1,000 times.
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let signal = loop {
        tokio::select! {
            result = &mut work => return result,
            signal = shutdown.wait() => break signal,
            _ = keepalive.tick() => canceller.ping().await,
        }
    };
    tracing::warn!("cancelling migration {} ({}) after {}", m.version, m.description, signal.name());
    canceller.signal(worker_pid, "pg_cancel_backend").await;
    let finished = match tokio::time::timeout(Duration::from_secs(5), &mut work).await {
        Ok(result) => Some(result),
        Err(_) => {
            // The cancel did not land (e.g. the statement ignores interrupts): ending the
            // backend rolls its transaction back all the same.
            canceller.signal(worker_pid, "pg_terminate_backend").await;
            None
        }
    };
    let outcome = match finished {
        // The COMMIT won the race: the migration is applied and recorded.
        Some(Ok(_)) => {
            format!("migration {} had already committed; stopping before the next one", m.version)
        }
        _ if direction.script(m).directives.no_transaction => format!(
            "migration {} ran without a transaction and was interrupted; it is recorded as failed with the \
             statements it completed, so `shipgate migrate up` resumes after them while the file is unchanged \
             (or check the schema and settle it with `shipgate migrate repair --version {}`)",
            m.version, m.version
        ),
        _ => format!(
            "migration {} ({}) was cancelled and rolled back; nothing was recorded",
            m.version, m.description
        ),
    };
    Err(Error::interrupted(signal, format!("interrupted by {}: {outcome}", signal.name())))
}
