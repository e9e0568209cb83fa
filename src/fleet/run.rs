//! Applying (or reverting) the tenant set across many tenant schemas at once.
//!
//! N workers, each with one connection, take tenants from a shared queue. For each tenant a
//! worker points `search_path` at the schema, takes that schema's own advisory lock (on the
//! same connection: the lock is polled, never waited on, so holding it there is safe), runs
//! the plan with the runner's transaction discipline, and releases the lock. Connections stay
//! open from tenant to tenant, so a fleet of thousands costs N connects, not thousands.
//!
//! One control connection (which holds the fleet lock) cancels in-flight statements when a
//! signal arrives; the budget is therefore N + 1 connections. All of it runs on one task:
//! the work happens in PostgreSQL, and one task means no locking around the queue.
//!
//! Every migration commits with its history row, so a run killed at any moment is resumed by
//! the next one: each tenant's plan is recomputed from its own history.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use crate::config::MigrateConfig;
use crate::db::{self, ConnectSpec, quote_ident};
use crate::error::{Error, Kind, Result};
use crate::fleet::db as fleet_db;
use crate::fleet::state::Outcome;
use crate::migrate::adopt::apply::{self, AdoptOptions, Request};
use crate::migrate::exec::{self, Direction, SessionDefaults};
use crate::migrate::history::{self, HistoryTable, Writer};
use crate::migrate::lock;
use crate::migrate::plan::{self, DownTo, UpOptions};
use crate::migrate::session::{self, Canceller};
use crate::migrate::source::{Migration, MigrationSet};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

/// What the run does to each tenant.
#[derive(Debug, Clone)]
pub enum Work {
    Up(UpOptions),
    Down(DownTo),
    /// Record another tool's per-tenant history as ours, running nothing (`tenants adopt`:
    /// the table is a name in each tenant's schema).
    Adopt(AdoptOptions),
}

impl Work {
    pub fn command(&self) -> &'static str {
        match self {
            Work::Up(_) => "up",
            Work::Down(_) => "down",
            Work::Adopt(a) if a.dry_run => "adopt-dry-run",
            Work::Adopt(_) => "adopt",
        }
    }

    /// How the summary names a changed tenant.
    pub fn verb(&self) -> &'static str {
        match self {
            Work::Up(_) => "migrated",
            Work::Down(_) => "reverted",
            Work::Adopt(a) if a.dry_run => "to adopt",
            Work::Adopt(_) => "adopted",
        }
    }

    /// False for a dry run: no history, no failure record, read-only sessions.
    pub fn writes(&self) -> bool {
        !matches!(self, Work::Adopt(AdoptOptions { dry_run: true, .. }))
    }
}

/// A tenant to work on.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    /// The last run recorded a failure for it (cleared when it succeeds).
    pub failed_before: bool,
}

/// Everything a fleet run needs besides the tenants.
pub struct Fleet<'a> {
    pub cfg: &'a MigrateConfig,
    pub set: &'a MigrationSet,
    pub database: &'a str,
    pub master: &'a str,
    pub work: Work,
    pub concurrency: usize,
    pub canary: usize,
    pub fail_fast: bool,
    pub by: Writer<'a>,
    /// The fleet lock the control session holds, checked every few seconds while tenants run.
    pub fleet_lock: Option<i64>,
    /// A live bar of the tenants done, for a person at a terminal.
    pub progress: bool,
}

/// Shared by the workers of one run (one task, so plain cells).
struct Board {
    queue: RefCell<VecDeque<Tenant>>,
    results: RefCell<Vec<(String, Outcome)>>,
    /// Why no further tenant may start (`--fail-fast` tripped, a signal).
    halt: RefCell<Option<String>>,
    failed: Cell<usize>,
    /// The control session lost the fleet lock: the run stops starting tenants and exits 3.
    lost: RefCell<Option<Error>>,
    /// Post migrations a pre run left pending, summed over the tenants.
    waiting: Cell<usize>,
}

/// What a fleet run did.
#[derive(Debug)]
pub struct Ran {
    /// Every tenant's outcome, in the order they finished.
    pub results: Vec<(String, Outcome)>,
    /// The signal, or the lost fleet lock, that stopped the run early.
    pub interrupted: Option<Error>,
    /// Post migrations a `--phase pre` run left pending, summed over the tenants.
    pub waiting: usize,
}

/// Run the fleet: canaries first (if any), then the rest.
pub async fn run(
    fleet: &Fleet<'_>,
    tenants: Vec<Tenant>,
    control: &tokio::sync::Mutex<PgConnection>,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<Ran> {
    if tenants.is_empty() {
        return Ok(Ran { results: Vec::new(), interrupted: None, waiting: 0 });
    }
    let (canaries, rest) = crate::fleet::state::split_canaries(tenants, fleet.canary);
    let workers = fleet.concurrency.min(canaries.len().max(rest.len())).max(1);
    let spec = ConnectSpec {
        credentials: &fleet.cfg.credentials,
        application_name: &fleet.cfg.application_name,
        read_only: !fleet.work.writes(),
        timeout: fleet.cfg.connect_timeout,
        announce: true,
    };
    let mut conns =
        futures_util::future::try_join_all((0..workers).map(|_| db::connect(&spec, shutdown))).await?;
    let board = Board {
        queue: RefCell::new(VecDeque::new()),
        results: RefCell::new(Vec::new()),
        halt: RefCell::new(None),
        failed: Cell::new(0),
        lost: RefCell::new(None),
        waiting: Cell::new(0),
    };
    let total = canaries.len() + rest.len();
    if fleet.progress {
        crate::progress::tenants(total, "");
    }
    if !canaries.is_empty() {
        tracing::info!(
            "migrating {} canary tenant{} first",
            canaries.len(),
            if canaries.len() == 1 { "" } else { "s" }
        );
        board.queue.borrow_mut().extend(canaries);
        phase(fleet, &board, &mut conns, &spec, control, shutdown, out, total).await;
        if board.failed.get() > 0 && board.halt.borrow().is_none() {
            *board.halt.borrow_mut() = Some("a canary tenant failed".into());
        }
    }
    board.queue.borrow_mut().extend(rest);
    if board.halt.borrow().is_none() {
        phase(fleet, &board, &mut conns, &spec, control, shutdown, out, total).await;
    }
    if !board.queue.borrow().is_empty() && board.halt.borrow().is_none() {
        *board.halt.borrow_mut() = Some("every worker lost its database connection".into());
    }
    let reason = board.halt.borrow().clone().unwrap_or_else(|| "the run stopped".into());
    for t in board.queue.borrow_mut().drain(..) {
        let outcome = Outcome::NotAttempted { reason: reason.clone() };
        out.emit(&Event::Tenant {
            command: fleet.work.command(),
            tenant: t.name.clone(),
            outcome: outcome.clone(),
            duration_ms: 0,
        });
        board.results.borrow_mut().push((t.name, outcome));
    }
    crate::progress::clear();
    for conn in conns {
        let _ = sqlx::Connection::close(conn).await;
    }
    let interrupted = shutdown.requested().map(|signal| {
        Error::interrupted(
            signal,
            format!("interrupted by {}; the tenants in flight were rolled back", signal.name()),
        )
    });
    Ok(Ran {
        results: board.results.into_inner(),
        interrupted: board.lost.into_inner().or(interrupted),
        waiting: board.waiting.get(),
    })
}

/// Drain the queue with every worker, reporting progress every few seconds.
#[allow(clippy::too_many_arguments)]
async fn phase(
    fleet: &Fleet<'_>,
    board: &Board,
    conns: &mut [PgConnection],
    spec: &ConnectSpec<'_>,
    control: &tokio::sync::Mutex<PgConnection>,
    shutdown: &Shutdown,
    out: &Reporter,
    total: usize,
) {
    let started = Instant::now();
    let workers =
        join_all(conns.iter_mut().map(|conn| worker(fleet, board, conn, spec, control, shutdown, out)));
    tokio::pin!(workers);
    loop {
        tokio::select! {
            _ = &mut workers => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                let done = board.results.borrow().len();
                tracing::info!(
                    "tenants: {done} of {total} done ({} failed), {:.0}s",
                    board.failed.get(),
                    started.elapsed().as_secs_f64()
                );
                // Also keeps the control session from looking idle.
                if let Some(key) = fleet.fleet_lock && board.lost.borrow().is_none() {
                    let held = lock::held(&mut *control.lock().await, key).await;
                    if let Some(error) = lost_fleet_lock(held) {
                        tracing::error!("{error}");
                        board.halt.borrow_mut().get_or_insert_with(|| "the fleet lock was lost".into());
                        *board.lost.borrow_mut() = Some(error);
                    }
                }
            }
        }
    }
}

/// The error for a fleet lock that is no longer the control session's, if it is not.
fn lost_fleet_lock(held: sqlx::Result<bool>) -> Option<Error> {
    let reason = match held {
        Ok(true) => return None,
        Ok(false) => "the control session no longer holds it".to_string(),
        Err(e) => format!("session ended: {}", db::error_text(&e)),
    };
    Some(
        Error::unavailable(format!(
            "lost the fleet lock ({reason}); no tenant was started after that, and each tenant in flight \
             finished under its own lock"
        ))
        .hint("rerun to continue: each tenant's pending migrations run, nothing twice"),
    )
}

async fn worker(
    fleet: &Fleet<'_>,
    board: &Board,
    conn: &mut PgConnection,
    spec: &ConnectSpec<'_>,
    control: &tokio::sync::Mutex<PgConnection>,
    shutdown: &Shutdown,
    out: &Reporter,
) {
    let mut pid = backend_pid(conn).await;
    loop {
        if let Some(signal) = shutdown.requested() {
            board.halt.borrow_mut().get_or_insert_with(|| format!("interrupted by {}", signal.name()));
        }
        if board.halt.borrow().is_some() {
            return;
        }
        // Without a connection this worker stops; the others take the rest of the queue.
        let Some(backend) = pid else { return };
        let Some(tenant) = board.queue.borrow_mut().pop_front() else { return };
        let started = Instant::now();
        let (outcome, waiting) = one(fleet, conn, backend, &tenant.name, control, shutdown).await;
        board.waiting.set(board.waiting.get() + waiting);
        if let Outcome::Failed { version, reason, .. } = &outcome {
            board.failed.set(board.failed.get() + 1);
            if fleet.fail_fast {
                board
                    .halt
                    .borrow_mut()
                    .get_or_insert_with(|| format!("--fail-fast: tenant `{}` failed", tenant.name));
            }
            // A failure can be the connection itself (a terminated backend): start afresh.
            if !alive(conn).await {
                pid = reconnect(conn, spec, shutdown).await;
            }
            if pid.is_some() && fleet.work.writes() {
                let recorded = fleet_db::record_failure(
                    conn,
                    fleet.master,
                    &tenant.name,
                    fleet.work.command(),
                    *version,
                    reason,
                    &fleet.by,
                );
                if let Err(e) = recorded.await {
                    tracing::warn!(
                        "could not record the failure of tenant `{}`: {}",
                        tenant.name,
                        db::error_text(&e)
                    );
                }
            }
        } else if tenant.failed_before
            && fleet.work.writes()
            && let Err(e) = fleet_db::clear_failure(conn, fleet.master, &tenant.name).await
        {
            tracing::warn!(
                "could not clear the earlier failure of `{}`: {}",
                tenant.name,
                db::error_text(&e)
            );
        }
        out.emit(&Event::Tenant {
            command: fleet.work.command(),
            tenant: tenant.name.clone(),
            outcome: outcome.clone(),
            duration_ms: started.elapsed().as_millis(),
        });
        board.results.borrow_mut().push((tenant.name, outcome));
        if fleet.progress {
            crate::progress::tenant_done(board.failed.get());
        }
    }
}

async fn backend_pid(conn: &mut PgConnection) -> Option<i32> {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.ok()
}

async fn alive(conn: &mut PgConnection) -> bool {
    sqlx::raw_sql("SELECT 1").execute(conn).await.is_ok()
}

async fn reconnect(conn: &mut PgConnection, spec: &ConnectSpec<'_>, shutdown: &Shutdown) -> Option<i32> {
    match db::connect(spec, shutdown).await {
        Ok(fresh) => {
            *conn = fresh;
            backend_pid(conn).await
        }
        Err(e) => {
            tracing::warn!("a tenant worker lost its connection and could not reconnect: {e}");
            None
        }
    }
}

/// Migrate one tenant on `conn`: search_path, lock, plan, run, unlock. Also the post
/// migrations a pre run left pending in it.
async fn one(
    fleet: &Fleet<'_>,
    conn: &mut PgConnection,
    pid: i32,
    name: &str,
    control: &tokio::sync::Mutex<PgConnection>,
    shutdown: &Shutdown,
) -> (Outcome, usize) {
    let table = HistoryTable::new(name);
    // The previous tenant's migrations may have changed the session (SET ROLE, SET ...): this
    // tenant starts from the connection's defaults, pointed at its own schema.
    let defaults = SessionDefaults { search_path: Some(quote_ident(name)) };
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(defaults.reset_sql(conn))).execute(&mut *conn).await {
        return (failed(None, None, format!("could not set search_path: {}", db::error_text(&e))), 0);
    }
    let key = lock::key(fleet.database, &table);
    let what = format!("tenant `{name}`");
    if let Err(e) = lock::acquire(conn, key, &what, fleet.cfg.lock_timeout, shutdown).await {
        return (failed(None, None, e.to_string()), 0);
    }
    let mut waiting = 0;
    let outcome = locked(fleet, conn, pid, &table, &defaults, key, control, shutdown, &mut waiting).await;
    if let Err(e) = lock::release(conn, key).await {
        // The connection is gone, and the lock with it.
        tracing::debug!("unlocking {what} failed ({e}); the session's end released it");
    }
    (outcome, waiting)
}

#[allow(clippy::too_many_arguments)]
async fn locked(
    fleet: &Fleet<'_>,
    conn: &mut PgConnection,
    pid: i32,
    table: &HistoryTable,
    defaults: &SessionDefaults,
    key: i64,
    control: &tokio::sync::Mutex<PgConnection>,
    shutdown: &Shutdown,
    waiting: &mut usize,
) -> Outcome {
    let dir = fleet.set.dir.display().to_string();
    if matches!(fleet.work, Work::Up(_))
        && let Err(e) = history::ensure(conn, table).await
    {
        return failed(None, None, format!("could not create {}: {}", table.qualified(), db::error_text(&e)));
    }
    let rows = match history::load(conn, table).await {
        Ok(rows) => rows,
        Err(e) => {
            return failed(
                None,
                None,
                format!("could not read {}: {}", table.qualified(), db::error_text(&e)),
            );
        }
    };
    let from = plan::current_version(&rows);
    let entries = plan::reconcile(fleet.set, &rows);
    let (planned, direction) = match &fleet.work {
        Work::Up(opts) => (
            plan::plan_up(&entries, &dir, opts).map(|s| {
                *waiting = s.waiting.len();
                crate::migrate::run::warn_late_pre(
                    opts.phase,
                    &s.todo,
                    &format!("tenant `{}`", table.schema),
                );
                s.todo
            }),
            Direction::Up,
        ),
        Work::Down(to) => (plan::plan_down(&entries, &dir, *to), Direction::Down),
        Work::Adopt(options) => return adopt(fleet, conn, table, options, from).await,
    };
    // A refusal (dirty, modified, missing, out of phase order) is this tenant's failure,
    // not the fleet's.
    let todo: Vec<&Migration> = match planned {
        Ok(todo) => todo,
        Err(e) => return failed(None, from, e.to_string()),
    };
    if todo.is_empty() {
        return Outcome::Current { version: from };
    }
    let mut at = from;
    let what = format!("tenant `{}`", table.schema);
    for (i, m) in todo.iter().enumerate() {
        if let Err(e) = lock::check(conn, key, &what, (i > 0).then_some(at).flatten()).await {
            return failed(Some(m.version), at, e.to_string());
        }
        if let Some(signal) = shutdown.requested() {
            return failed(
                None,
                at,
                format!("interrupted by {} before migration {}", signal.name(), m.version),
            );
        }
        let step = exec::Run {
            table,
            m,
            direction,
            limits: &fleet.cfg.limits,
            by: &fleet.by,
            session: defaults,
            last: i + 1 == todo.len(),
        };
        match session::execute(conn, pid, Canceller::Shared(control), &step, shutdown).await {
            Ok(_) => {
                at = match direction {
                    Direction::Up => at.max(Some(m.version)),
                    Direction::Down => entries
                        .iter()
                        .filter(|e| e.applied.is_some_and(|r| r.success) && e.version < m.version)
                        .map(|e| e.version)
                        .max(),
                };
            }
            Err(e) if matches!(e.kind(), Kind::Interrupted(_)) => {
                return failed(Some(m.version), at, e.message().to_string());
            }
            Err(e) => return failed(Some(m.version), at, e.to_string()),
        }
    }
    if let Err(e) = lock::check(conn, key, &what, at).await {
        return failed(None, at, e.to_string());
    }
    Outcome::Changed { from, to: at, count: todo.len() }
}

/// Adopt their history in this tenant's schema, as `migrate adopt` does in one.
async fn adopt(
    fleet: &Fleet<'_>,
    conn: &mut PgConnection,
    table: &HistoryTable,
    options: &AdoptOptions,
    from: Option<i64>,
) -> Outcome {
    let place = format!("tenant schema `{}`", table.schema);
    let request = Request { options, place: &place, set: fleet.set, table, by: &fleet.by };
    match apply::adopt(conn, &request, &mut |_| {}).await {
        Ok(written) if written.is_empty() => Outcome::Current { version: from },
        Ok(written) => {
            Outcome::Changed { from, to: from.max(written.iter().copied().max()), count: written.len() }
        }
        Err(e) => failed(None, from, e.to_string()),
    }
}

fn failed(version: Option<i64>, at: Option<i64>, reason: String) -> Outcome {
    Outcome::Failed { version, at, reason }
}
