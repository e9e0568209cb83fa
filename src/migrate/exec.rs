//! Running one migration script against the database, with its timeouts and lock retries.
//!
//! Transactional scripts run as `BEGIN; SET LOCAL lock_timeout/statement_timeout; <file>;
//! <history write>; COMMIT`, so the change and its record commit together: a SIGKILL at any
//! moment leaves the migration either absent or applied and recorded. `SET LOCAL` overrides
//! whatever the role or a pooler configured (a pool-wide statement_timeout must not kill a
//! legitimate migration; a missing lock_timeout must not queue production traffic behind us).
//!
//! Within one run, every transactional migration but the last commits with
//! `synchronous_commit = off`: WAL is flushed in order, so the last, synchronous commit makes
//! all of them durable before the run reports success, while each migration still commits
//! atomically with its history row. A server crash mid-run can only lose whole migrations
//! together with their rows, and the run that saw it has failed. This removes one WAL flush
//! per migration, the dominant cost of a long run of small migrations.
//!
//! No-transaction scripts (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE ... ADD VALUE`, a Prisma
//! file with its own `BEGIN`/`COMMIT`) cannot be atomic, so they are recorded as failed first
//! and marked successful after: a crash leaves a visible "failed" row for an operator to
//! check, never a silent re-run. Their statements are sent one by one, as the parser split
//! them, so a failure names how many had run.
//!
//! Nothing a migration does to its session outlives it: every migration starts by resetting
//! the session (`RESET ROLE`, `RESET SESSION AUTHORIZATION`, `RESET ALL`, then the run's own
//! `search_path`), in the same round trip as its `BEGIN`, so a `SET ROLE` or `SET search_path`
//! in one file cannot change where or as whom the next file, or the next tenant, runs.
//!
//! And "nothing was committed" is said only when it is true: the transaction carries a marker
//! set with `SET LOCAL`, checked before the history row is written. A file that ended our
//! transaction by a way the parser could not see (a procedure that commits) has its row
//! recorded as failed instead of applied.

use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnection, PgDatabaseError, PgErrorPosition};

use crate::duration;
use crate::error::Error;
use crate::migrate::history::{self, HistoryTable, NewRow, Writer};
use crate::migrate::plan::ORIGIN_APPLY;
use crate::migrate::source::{Migration, Script};

/// What every migration's session is reset to before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDefaults {
    /// The run's `search_path`, quoted (`"tenant_a"`); `None` keeps the connection's default.
    pub search_path: Option<String>,
}

impl SessionDefaults {
    /// The statements that undo whatever an earlier migration set on the session, each with
    /// its `;`. `RESET ALL` leaves advisory locks alone (the session holds the migration lock);
    /// the idle timeouts it would bring back are turned off again, as at connect.
    pub fn reset_sql(&self, conn: &PgConnection) -> String {
        let mut sql = format!(
            "RESET ROLE; RESET SESSION AUTHORIZATION; RESET ALL; {}",
            crate::db::keep_session_sql(conn)
        );
        if let Some(path) = &self.search_path {
            sql.push_str(&format!("SET search_path TO {path}; "));
        }
        sql
    }
}

/// The custom setting our transaction carries while it is ours (see the module header).
const MARKER: &str = "shipgate.migration_tx";

/// Timeouts and retries from flags; a file's header overrides the timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_retries: u32,
}

impl Limits {
    /// The timeouts that apply to one script.
    pub fn for_script(&self, script: &Script) -> (Duration, Duration) {
        (
            script.directives.lock_timeout.unwrap_or(self.lock_timeout),
            script.directives.statement_timeout.unwrap_or(self.statement_timeout),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// The script this direction runs. Down is only ever planned for reversible migrations.
    pub fn script(self, m: &Migration) -> &Script {
        match self {
            Direction::Up => &m.up,
            Direction::Down => m.down.as_ref().expect("plan_down only selects reversible migrations"),
        }
    }
}

const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A failure while running a script, and which of its statements failed (`None`: the
/// bookkeeping around them).
#[derive(Debug)]
struct ScriptError {
    statement: Option<usize>,
    error: sqlx::Error,
    /// The file ended the transaction it ran in (our marker was gone before the history write).
    ended_transaction: bool,
}

impl ScriptError {
    fn setup(error: sqlx::Error) -> Self {
        ScriptError { statement: None, error, ended_transaction: false }
    }
}

impl From<sqlx::Error> for ScriptError {
    fn from(error: sqlx::Error) -> Self {
        ScriptError::setup(error)
    }
}

/// Send the script's units one after the other (one batch for a plain transactional file).
async fn run_statements(conn: &mut PgConnection, script: &Script) -> Result<(), ScriptError> {
    for (i, range) in script.units().into_iter().enumerate() {
        sqlx::raw_sql(AssertSqlSafe(&script.sql[range]))
            .execute(&mut *conn)
            .await
            .map_err(|error| ScriptError { statement: Some(i), error, ended_transaction: false })?;
    }
    Ok(())
}

/// Send a no-transaction script's statements from `start` on, recording after each one (on
/// the way up) how many have completed, so that a rerun resumes after them. A statement and
/// its record are two commits: a crash between them runs that one statement again.
async fn run_recording_progress(
    conn: &mut PgConnection,
    step: &Step<'_>,
    start: usize,
) -> Result<(), ScriptError> {
    for (i, range) in step.script.units().into_iter().enumerate().skip(start) {
        sqlx::raw_sql(AssertSqlSafe(&step.script.sql[range]))
            .execute(&mut *conn)
            .await
            .map_err(|error| ScriptError { statement: Some(i), error, ended_transaction: false })?;
        if step.direction == Direction::Up {
            let done = i32::try_from(i + 1).unwrap_or(i32::MAX);
            history::set_progress(&mut *conn, step.table, step.m.version, done)
                .await
                .map_err(ScriptError::setup)?;
        }
    }
    Ok(())
}

/// The script being run, and everything needed to run and record it.
struct Step<'a> {
    table: &'a HistoryTable,
    m: &'a Migration,
    script: &'a Script,
    direction: Direction,
    lock_timeout: Duration,
    statement_timeout: Duration,
    by: &'a Writer<'a>,
    reset: String,
}

/// One migration to run on a worker connection.
pub struct Run<'a> {
    pub table: &'a HistoryTable,
    pub m: &'a Migration,
    pub direction: Direction,
    pub limits: &'a Limits,
    pub by: &'a Writer<'a>,
    /// What the session is reset to before the migration runs.
    pub session: &'a SessionDefaults,
    /// The final migration of a run, whose commit must make the whole run durable.
    pub last: bool,
}

/// Apply (or revert) one migration. Returns how long its SQL took. `last` is false for all
/// but the last migration of a run (see the module header).
pub async fn run(conn: &mut PgConnection, run: &Run<'_>) -> Result<Duration, Error> {
    let Run { table, m, direction, limits, by, session, last: durable } = *run;
    let script = direction.script(m);
    let (lock_timeout, statement_timeout) = limits.for_script(script);
    let reset = session.reset_sql(conn);
    let step = Step { table, m, script, direction, lock_timeout, statement_timeout, by, reset };
    if script.directives.no_transaction {
        return run_outside_transaction(conn, &step).await;
    }
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_in_transaction(conn, &step, durable).await {
            Ok(elapsed) => return Ok(elapsed),
            Err(e)
                if sqlstate(&e.error).as_deref() == Some(LOCK_NOT_AVAILABLE)
                    && attempt <= limits.lock_retries =>
            {
                let wait = crate::db::connect::jitter(backoff);
                tracing::warn!(
                    "migration {} ({}) hit lock_timeout ({}) on attempt {attempt}; rolled back, retrying in {} ({} retries left)",
                    m.version,
                    m.description,
                    duration::human(lock_timeout),
                    duration::human(wait),
                    limits.lock_retries + 1 - attempt
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) if e.ended_transaction => return ended_our_transaction(conn, &step).await,
            Err(e) => return Err(failure(&step, &e, attempt, true)),
        }
    }
}

/// The file committed or rolled back the transaction it ran in: part of it may be committed,
/// so it is recorded as failed (never as applied, never as "nothing committed").
async fn ended_our_transaction(conn: &mut PgConnection, step: &Step<'_>) -> Result<Duration, Error> {
    let m = step.m;
    let recorded = match step.direction {
        Direction::Up => {
            history::insert(conn, step.table, &up_row(m, false, Duration::ZERO, None), step.by).await
        }
        Direction::Down => history::set_success(conn, step.table, m.version, false, 0).await,
    };
    let record = match recorded {
        Ok(()) => "it is recorded as failed".to_string(),
        Err(e) => format!("its history row could not be written ({})", crate::db::error_text(&e)),
    };
    Err(Error::failed(format!(
        "migration {} ({}) ended the transaction it ran in ({}): statements before that point may be committed \
         while the rest ran outside any transaction; {record}",
        m.version,
        m.description,
        step.script.path.display()
    ))
    .hint(format!(
        "check the schema, then run `shipgate migrate repair --version {} --mark-applied` or `--remove`; mark \
         the file no-transaction if it manages its own transactions",
        m.version
    )))
}

async fn run_in_transaction(
    conn: &mut PgConnection,
    step: &Step<'_>,
    durable: bool,
) -> Result<Duration, ScriptError> {
    let begin = format!(
        "{}BEGIN; SET LOCAL {MARKER} = 'on'; SET LOCAL lock_timeout = '{}'; SET LOCAL statement_timeout = '{}'{}",
        step.reset,
        duration::pg_setting(step.lock_timeout),
        duration::pg_setting(step.statement_timeout),
        if durable { "" } else { "; SET LOCAL synchronous_commit = off" }
    );
    sqlx::raw_sql(AssertSqlSafe(begin)).execute(&mut *conn).await?;
    let started = Instant::now();
    let body = async {
        run_statements(&mut *conn, step.script).await?;
        let elapsed = started.elapsed();
        let ours: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT current_setting('{MARKER}', true)")))
                .fetch_one(&mut *conn)
                .await?;
        if ours.as_deref() != Some("on") {
            return Err(ScriptError {
                statement: None,
                error: sqlx::Error::RowNotFound,
                ended_transaction: true,
            });
        }
        match step.direction {
            Direction::Up => {
                history::insert(&mut *conn, step.table, &up_row(step.m, true, elapsed, None), step.by).await?
            }
            Direction::Down => {
                history::delete(&mut *conn, step.table, step.m.version).await?;
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        Ok(elapsed)
    };
    let result = body.await;
    if result.is_err() {
        // The transaction is aborted; a failed ROLLBACK means the connection is gone, which
        // rolls it back just the same.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

async fn run_outside_transaction(conn: &mut PgConnection, step: &Step<'_>) -> Result<Duration, Error> {
    let (m, table) = (step.m, step.table);
    let record_err = |e: sqlx::Error| {
        Error::failed(format!(
            "migration {} ({}): could not write its history row: {}",
            m.version,
            m.description,
            crate::db::error_text(&e)
        ))
    };
    // A rerun of an unchanged file that stopped part-way resumes after its last completed
    // statement (the plan lets only such a failed row through).
    let resume_at = match step.direction {
        Direction::Up => history::progress(conn, table, m.version).await.map_err(record_err)?,
        Direction::Down => None,
    };
    let units = step.script.units().len();
    match (step.direction, resume_at) {
        (Direction::Up, Some(done)) => {
            tracing::info!(
                "resuming migration {} ({}) at statement {} of {units}: the first {done} completed in an earlier run",
                m.version,
                m.description,
                done + 1
            );
            Ok(())
        }
        (Direction::Up, None) => {
            history::insert(conn, table, &up_row(m, false, Duration::ZERO, Some(0)), step.by).await
        }
        (Direction::Down, _) => history::set_success(conn, table, m.version, false, 0).await,
    }
    .map_err(record_err)?;
    let set = format!(
        "{}SET lock_timeout = '{}'; SET statement_timeout = '{}'",
        step.reset,
        duration::pg_setting(step.lock_timeout),
        duration::pg_setting(step.statement_timeout)
    );
    let started = Instant::now();
    let mut result =
        sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut *conn).await.map(|_| ()).map_err(ScriptError::setup);
    if result.is_ok() {
        result = run_recording_progress(&mut *conn, step, resume_at.map_or(0, |d| d.max(0) as usize)).await;
    }
    let elapsed = started.elapsed();
    // A transaction the file opened and did not close (or that a failure aborted) is rolled
    // back, so that the bookkeeping below is not written into it.
    let left_open = match in_transaction_block(conn).await {
        Ok(open) => open,
        // "current transaction is aborted": a failure inside the file's own transaction.
        Err(e) => sqlstate(&e).as_deref() == Some("25P02"),
    };
    if left_open {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    let _ = sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout").execute(&mut *conn).await;
    if let Err(e) = result {
        let mut error = failure(step, &e, 1, false);
        if left_open {
            error =
                error.map_message(|m| format!("{m}; the transaction the file had opened was rolled back"));
        }
        return Err(error);
    }
    if left_open {
        return Err(Error::failed(format!(
            "migration {} ({}) left a transaction open (a BEGIN without its COMMIT) at the end of {}; it was \
             rolled back, and the migration is recorded as failed",
            m.version,
            m.description,
            step.script.path.display()
        ))
        .hint(
            "end the file's transaction with COMMIT, then run `shipgate migrate repair` and deploy again",
        ));
    }
    let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
    match step.direction {
        Direction::Up => history::set_success(conn, table, m.version, true, ms).await,
        Direction::Down => history::delete(conn, table, m.version).await.map(|_| ()),
    }
    .map_err(record_err)?;
    Ok(elapsed)
}

/// Whether the session is inside a transaction block: a simple-protocol statement that
/// starts its own implicit transaction sees its start time as the transaction's. (The
/// extended protocol would not do: its Execute message restarts the statement clock.)
async fn in_transaction_block(conn: &mut PgConnection) -> sqlx::Result<bool> {
    let row = sqlx::raw_sql("SELECT now() <> statement_timestamp()").fetch_one(conn).await?;
    sqlx::Row::try_get::<bool, _>(&row, 0)
}

fn up_row(m: &Migration, success: bool, elapsed: Duration, statements_done: Option<i32>) -> NewRow<'_> {
    NewRow {
        version: m.version,
        description: &m.description,
        checksum: &m.up.checksum,
        checksum_normalized: m.up.checksum_normalized(),
        success,
        execution_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        origin: ORIGIN_APPLY,
        applied_at: None,
        statements_done,
        phase: Some(m.phase().name()),
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// 1-based line and column of a character offset (PostgreSQL reports positions in characters).
pub fn line_col(text: &str, char_position: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for ch in text.chars().take(char_position.saturating_sub(1)) {
        if ch == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

fn failure(step: &Step<'_>, failed: &ScriptError, attempts: u32, transactional: bool) -> Error {
    let Step { m, script, direction, lock_timeout, statement_timeout, .. } = *step;
    let e = &failed.error;
    // PostgreSQL counts positions in characters from the start of the statement it was sent.
    let units = script.units();
    let before =
        failed.statement.and_then(|i| units.get(i)).map_or(0, |r| script.sql[..r.start].chars().count());
    let verb = match direction {
        Direction::Up => "failed",
        Direction::Down => "failed to revert",
    };
    let mut location = script.path.display().to_string();
    let mut reason = e.to_string();
    if let Some(db) = e.as_database_error() {
        reason = crate::db::error_text(e);
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
            if let Some(PgErrorPosition::Original(pos)) = pg.position() {
                let (line, col) = line_col(&script.sql, before + pos);
                location = format!("{location}:{line}:{col}");
            }
            if let Some(detail) = pg.detail() {
                reason = format!("{reason}; {detail}");
            }
        }
    }
    if let Some(i) = failed.statement.filter(|_| units.len() > 1) {
        location = format!("{location} (statement {} of {})", i + 1, units.len());
    }
    if crate::db::session_lost(e) {
        return lost_session(step, failed, &location, transactional);
    }
    let tries = if attempts > 1 { format!(" after {attempts} attempts") } else { String::new() };
    let message =
        format!("migration {} ({}) {verb}{tries} at {location}: {reason}", m.version, m.description);
    let code = sqlstate(e);
    let hint = match code.as_deref() {
        Some(LOCK_NOT_AVAILABLE) => format!(
            "every attempt gave up after lock_timeout ({}): another session holds a conflicting lock on a \
             table this migration changes (look in pg_locks / pg_stat_activity). Deploy again when it is \
             released, raise --lock-retries, or raise the limit for this file with `-- shipgate:lock-timeout=30s`",
            duration::human(lock_timeout)
        ),
        Some("57014") if reason.contains("statement timeout") => format!(
            "the statement ran longer than statement_timeout ({}); raise it for this file with \
             `-- shipgate:statement-timeout=30min` or with --statement-timeout",
            duration::human(statement_timeout)
        ),
        Some("25001") => {
            "this statement cannot run inside a transaction: put `-- shipgate:no-transaction` on the \
                          first line of the file, and keep such a statement alone in its file"
                .to_string()
        }
        _ if transactional => {
            "nothing from this migration was committed; fix the SQL and deploy again".to_string()
        }
        _ => match (failed.statement, direction) {
            (Some(i), Direction::Up) if i < units.len() => format!(
                "it runs without a transaction: {} (its history row says so) and it is recorded as failed. Fix the \
                 cause and run `shipgate migrate up` again: while the file is unchanged it resumes at statement {}. \
                 Or check the schema (an interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index to drop) \
                 and settle it with `shipgate migrate repair --version {} --mark-applied` or `--remove`",
                match i {
                    0 => "no statement of it had completed".to_string(),
                    1 => "its first statement had completed".to_string(),
                    _ => format!("statements 1-{i} of {} had completed", units.len()),
                },
                i + 1,
                m.version
            ),
            _ => format!(
                "it ran without a transaction, so part of it may have been applied; it is recorded as failed. Check \
                 the schema, then run `shipgate migrate repair --version {} --mark-applied` or `--remove`",
                m.version
            ),
        },
    };
    Error::failed(message).hint(hint)
}

/// The session ended under the migration (terminated, timed out, the network cut): exit 3,
/// since the SQL is not at fault, with what became of the migration.
fn lost_session(step: &Step<'_>, failed: &ScriptError, location: &str, transactional: bool) -> Error {
    let m = step.m;
    let reason = crate::db::error_text(&failed.error);
    let became = if transactional {
        "its transaction was rolled back with the session (unless the connection broke during its COMMIT: its \
         history row is written in the same transaction, so `shipgate migrate status` tells)"
            .to_string()
    } else {
        match failed.statement {
            Some(0) | None => "it runs without a transaction; no statement of it had completed".to_string(),
            Some(i) => format!(
                "it runs without a transaction: statements 1-{i} of {} had completed and its history row says so",
                step.script.units().len()
            ),
        }
    };
    Error::unavailable(format!(
        "lost the connection to the database during migration {} ({}) at {location}: {reason}; {became}",
        m.version, m.description
    ))
    .hint(
        "the migration lock ended with the session, so rerun to continue (only what is pending runs; an unchanged \
         no-transaction file resumes after its last completed statement). If sessions are cut on purpose, check \
         idle_session_timeout, the pooler's idle limits, or who ran pg_terminate_backend",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_line_and_column() {
        let sql = "CREATE TABLE a ();\nCREATE TABLE b (\n  x nosuchtype\n);";
        let cases = [(1, (1, 1)), (5, (1, 5)), (20, (2, 1)), (41, (3, 5))];
        for (pos, expected) in cases {
            assert_eq!(line_col(sql, pos), expected, "{pos}");
        }
    }
}
