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
//! No-transaction scripts (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE ... ADD VALUE`) cannot be
//! atomic, so they are recorded as failed first and marked successful after: a crash leaves a
//! visible "failed" row for an operator to check, never a silent re-run.

use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnection, PgDatabaseError, PgErrorPosition};

use crate::duration;
use crate::error::Error;
use crate::migrate::history::{self, HistoryTable, NewRow, Writer};
use crate::migrate::plan::ORIGIN_APPLY;
use crate::migrate::source::{Migration, Script};

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
}

impl ScriptError {
    fn setup(error: sqlx::Error) -> Self {
        ScriptError { statement: None, error }
    }
}

impl From<sqlx::Error> for ScriptError {
    fn from(error: sqlx::Error) -> Self {
        ScriptError::setup(error)
    }
}

/// Send the script's statements one after the other (one batch for a plain .sql file).
async fn run_statements(conn: &mut PgConnection, script: &Script) -> Result<(), ScriptError> {
    for (i, text) in script.statement_texts().enumerate() {
        sqlx::raw_sql(AssertSqlSafe(text))
            .execute(&mut *conn)
            .await
            .map_err(|error| ScriptError { statement: Some(i), error })?;
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
}

/// Apply (or revert) one migration. Returns how long its SQL took. `durable` is false for all
/// but the last migration of a run (see the module header).
pub async fn run(
    conn: &mut PgConnection,
    table: &HistoryTable,
    m: &Migration,
    direction: Direction,
    limits: &Limits,
    by: &Writer<'_>,
    durable: bool,
) -> Result<Duration, Error> {
    let script = direction.script(m);
    let (lock_timeout, statement_timeout) = limits.for_script(script);
    let step = Step { table, m, script, direction, lock_timeout, statement_timeout, by };
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
            Err(e) => return Err(failure(&step, &e, attempt, true)),
        }
    }
}

async fn run_in_transaction(
    conn: &mut PgConnection,
    step: &Step<'_>,
    durable: bool,
) -> Result<Duration, ScriptError> {
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}'; SET LOCAL statement_timeout = '{}'{}",
        duration::pg_setting(step.lock_timeout),
        duration::pg_setting(step.statement_timeout),
        if durable { "" } else { "; SET LOCAL synchronous_commit = off" }
    );
    sqlx::raw_sql(AssertSqlSafe(begin)).execute(&mut *conn).await?;
    let started = Instant::now();
    let body = async {
        run_statements(&mut *conn, step.script).await?;
        let elapsed = started.elapsed();
        match step.direction {
            Direction::Up => {
                history::insert(&mut *conn, step.table, &up_row(step.m, true, elapsed), step.by).await?
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
    match step.direction {
        Direction::Up => history::insert(conn, table, &up_row(m, false, Duration::ZERO), step.by).await,
        Direction::Down => history::set_success(conn, table, m.version, false, 0).await,
    }
    .map_err(record_err)?;
    let set = format!(
        "SET lock_timeout = '{}'; SET statement_timeout = '{}'",
        duration::pg_setting(step.lock_timeout),
        duration::pg_setting(step.statement_timeout)
    );
    let started = Instant::now();
    let mut result =
        sqlx::raw_sql(AssertSqlSafe(set)).execute(&mut *conn).await.map(|_| ()).map_err(ScriptError::setup);
    if result.is_ok() {
        result = run_statements(&mut *conn, step.script).await;
    }
    let elapsed = started.elapsed();
    let _ = sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout").execute(&mut *conn).await;
    if let Err(e) = result {
        return Err(failure(step, &e, 1, false));
    }
    let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
    match step.direction {
        Direction::Up => history::set_success(conn, table, m.version, true, ms).await,
        Direction::Down => history::delete(conn, table, m.version).await.map(|_| ()),
    }
    .map_err(record_err)?;
    Ok(elapsed)
}

fn up_row(m: &Migration, success: bool, elapsed: Duration) -> NewRow<'_> {
    NewRow {
        version: m.version,
        description: &m.description,
        checksum: &m.up.checksum,
        checksum_normalized: &m.up.checksum_normalized,
        success,
        execution_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        origin: ORIGIN_APPLY,
        applied_at: None,
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
    let before = failed.statement.map_or(0, |i| script.sql[..script.statements[i].start].chars().count());
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
    if let Some(i) = failed.statement.filter(|_| script.statements.len() > 1) {
        location = format!("{location} (statement {} of {})", i + 1, script.statements.len());
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
        _ => format!(
            "it ran without a transaction, so part of it may have been applied; it is recorded as failed. Check the \
             schema, then run `shipgate migrate repair --version {} --mark-applied` or `--remove`",
            m.version
        ),
    };
    Error::failed(message).hint(hint)
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
