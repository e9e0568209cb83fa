//! The discipline every migrate command follows over a [`Session`]: connect (reading the
//! folder meanwhile), take the lock when writing, do the work, and always unlock and close;
//! run pending migrations in order with the lock checked between them; and the events that
//! open and close a run.

use std::time::{Duration, Instant};

use crate::config::MigrateConfig;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::exec::{Direction, Limits};
use crate::migrate::history::Writer;
use crate::migrate::lint;
use crate::migrate::phase::{self, Phase, RunPhase};
use crate::migrate::session::{Mode, Session};
use crate::migrate::source::{self, Migration, MigrationSet};
use crate::output::{Event, PlanItem, Reporter};
use crate::shutdown::Shutdown;

/// Open a session, take the lock when writing, run `body`, then unlock and close whatever
/// `body` returned: the one place that guarantees the lock never outlives the work.
pub async fn with_session<T>(
    cfg: &MigrateConfig,
    mode: Mode,
    shutdown: &Shutdown,
    body: impl AsyncFnOnce(&mut Session) -> Result<T>,
) -> Result<T> {
    let session = Session::open(cfg, mode, shutdown).await?;
    locked(session, cfg, mode, shutdown, body).await
}

/// Take the lock when writing, run `body`, then unlock and close.
async fn locked<T>(
    mut session: Session,
    cfg: &MigrateConfig,
    mode: Mode,
    shutdown: &Shutdown,
    body: impl AsyncFnOnce(&mut Session) -> Result<T>,
) -> Result<T> {
    let result = match mode {
        Mode::ReadOnly => body(&mut session).await,
        Mode::Write => match session.lock(cfg.lock_timeout, shutdown).await {
            Ok(()) => body(&mut session).await,
            Err(e) => Err(e),
        },
    };
    session.close().await;
    result
}

/// [`with_session`] for a command that works on the migration folder: the folder is read,
/// and checked by `check`, while the session connects (see [`Session::open_while`]).
pub async fn with_set<T>(
    cfg: &MigrateConfig,
    mode: Mode,
    shutdown: &Shutdown,
    check: fn(&MigrationSet) -> Result<()>,
    body: impl AsyncFnOnce(&mut Session, &MigrationSet) -> Result<T>,
) -> Result<T> {
    let (dir, options) = (cfg.source.clone(), cfg.read.clone());
    let read = move || {
        let set = source::load(&dir, &options)?;
        check(&set)?;
        Ok(set)
    };
    let (session, set) = Session::open_while(cfg, mode, shutdown, read).await?;
    locked(session, cfg, mode, shutdown, async |s| body(s, &set).await).await
}

/// Lint `todo`, the migrations about to run in this session's schema, as one run: with the
/// server's version and each finding's table size. Every finding is reported; the caller
/// decides whether they stop the run ([`lint::gate`]).
pub async fn lint_pending(
    s: &mut Session,
    set: &MigrationSet,
    todo: &[&Migration],
    settings: &lint::Settings,
    out: &Reporter,
) -> Result<lint::Report> {
    let settings = settings.clone().with_server_version(s.worker().server_version_num());
    let mut report = lint::lint(&set.dir, todo, &settings, lint::Run::Together)?;
    add_sizes(s, &mut report.findings).await;
    for finding in &report.findings {
        out.emit(&Event::Finding(finding.clone()));
    }
    Ok(report)
}

/// Before a run: the sessions whose transaction has been open for `cfg.blocker_age` or more
/// and holds a lock a statement of `plan` (the pending migrations' lock plan) will wait for,
/// each reported once per relation. The run still waits as it always does (`lock_timeout`,
/// then retries); this says for whom.
pub async fn report_blockers(
    s: &mut Session,
    cfg: &MigrateConfig,
    plan: &[lint::StatementLock],
    out: &Reporter,
) {
    let planned = crate::migrate::locks::strongest(plan.iter().flat_map(|s| s.locks.iter().cloned()));
    if planned.is_empty() {
        return;
    }
    let names: Vec<String> = planned.iter().map(|l| l.relation.clone()).collect();
    let schema = s.table.schema.clone();
    let holders = match crate::db::lock_holders(s.worker(), &schema, &names, cfg.blocker_age).await {
        Ok(holders) => holders,
        Err(e) => {
            tracing::debug!("could not list the sessions holding locks: {}", crate::db::error_text(&e));
            return;
        }
    };
    let held: Vec<(String, String)> = holders.iter().map(|h| (h.relation.clone(), h.mode.clone())).collect();
    for (hi, pi) in crate::migrate::locks::blocking(&planned, &held) {
        let (h, p) = (&holders[hi], &planned[pi]);
        out.emit(&Event::Blocker {
            pid: h.pid,
            user: h.user.clone(),
            application: h.application.clone(),
            state: h.state.clone(),
            open_s: h.age_s.round() as u64,
            query: h.query_kind.clone(),
            holds: h.mode.clone(),
            relation: h.relation.clone(),
            needs: p.mode.name(),
        });
    }
}

/// Each finding's table size, when the table exists. A failed lookup only leaves the sizes out.
async fn add_sizes(s: &mut Session, findings: &mut [lint::Finding]) {
    let names: Vec<String> = findings.iter().filter_map(|f| f.relation.clone()).collect();
    if names.is_empty() {
        return;
    }
    let schema = s.table.schema.clone();
    match crate::db::relation_sizes(s.worker(), &schema, &names).await {
        Ok(sizes) => lint::attach_sizes(
            findings,
            sizes.into_iter().map(|s| s.map(|(bytes, rows)| (bytes, rows, None))),
        ),
        Err(e) => tracing::debug!("table sizes for the lint findings: {}", crate::db::error_text(&e)),
    }
}

/// How long a run goes between two checks that it still holds its lock.
const LOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Run `todo` in order, stopping cleanly at a signal between migrations. `event` turns each
/// finished migration and its duration into what is reported.
pub async fn run_each(
    s: &mut Session,
    cfg: &MigrateConfig,
    todo: &[&Migration],
    direction: Direction,
    shutdown: &Shutdown,
    out: &Reporter,
    event: impl Fn(&Migration, Duration) -> Event,
) -> Result<()> {
    if todo.is_empty() {
        return Ok(());
    }
    let applied_by = identity::applied_by().await;
    let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
    let (doing, done_word) = match direction {
        Direction::Up => ("applying", "applied"),
        Direction::Down => ("reverting", "reverted"),
    };
    let mut after = None;
    // The lock was confirmed when taken; a check costs ~1 ms, so a burst of quick migrations
    // checks once a second, a slow one before it starts, and every run after its last.
    let mut checked = Instant::now();
    for (done, m) in todo.iter().enumerate() {
        if checked.elapsed() >= LOCK_CHECK_EVERY {
            s.check_lock(after).await?;
            checked = Instant::now();
        }
        if let Some(signal) = shutdown.requested() {
            return Err(Error::interrupted(
                signal,
                format!(
                    "interrupted by {} before {doing} {}; {done} of {} {done_word}",
                    signal.name(),
                    m.version,
                    todo.len()
                ),
            ));
        }
        tracing::info!("{doing} {} ({})", m.version, m.description);
        let last = done + 1 == todo.len();
        let took = s.execute(m, direction, &cfg.limits, &by, last, shutdown).await?;
        after = Some(m.version);
        out.emit(&event(m, took));
    }
    // A lock lost during the last migration still fails the run: never exit 0 after one.
    s.check_lock(after).await
}

/// One line of a `--dry-run` plan: the script this direction would run, with its timeouts.
pub fn plan_item(m: &Migration, direction: Direction, limits: &Limits, late: bool) -> PlanItem {
    let script = direction.script(m);
    let (lock, statement) = limits.for_script(script);
    PlanItem {
        version: m.version,
        description: m.description.clone(),
        file: script.path.display().to_string(),
        no_transaction: script.directives.no_transaction,
        lock_timeout: duration::human(lock),
        statement_timeout: duration::human(statement),
        late,
        phase: m.phase().name(),
        statements: lint::script_locks(script, m.version),
    }
}

/// The closing summary of `up` and `down`.
pub fn summary(
    command: &'static str,
    s: &Session,
    changed: usize,
    started: Instant,
    version: Option<i64>,
) -> Event {
    let at = version.map(|v| format!("version {v}")).unwrap_or_else(|| "no applied migration".into());
    let message = match (command, changed) {
        ("up", 0) => format!("{} is up to date at {at}; nothing to apply", s.describe()),
        (_, 0) => format!("nothing to revert in {}; at {at}", s.describe()),
        _ => format!(
            "{} {changed} migration{} {} {} in {:.2}s; now at {at}",
            if command == "up" { "applied" } else { "reverted" },
            if changed == 1 { "" } else { "s" },
            if command == "up" { "to" } else { "in" },
            s.describe(),
            started.elapsed().as_secs_f64()
        ),
    };
    Event::Summary {
        command,
        schema: Some(s.table.schema.clone()),
        changed,
        duration_ms: started.elapsed().as_millis(),
        version,
        message,
    }
}

/// What a run leaves for the post phase, said after its summary: a note in the summary's
/// message, and in a pre run the report the deploy reads.
pub fn phase_close(
    phase: RunPhase,
    set: &str,
    applied: usize,
    waiting: usize,
    summary: &mut Event,
) -> Option<Event> {
    if let Event::Summary { message, .. } | Event::FleetSummary { message, .. } = summary
        && waiting > 0
    {
        message.push_str(&format!(
            "; {} for the post phase (`--phase post`, or the deploy's post task)",
            phase::waiting_words(waiting)
        ));
    }
    (phase == RunPhase::Pre).then(|| {
        Event::PhaseReport(phase::Report { phase: phase.name().into(), set: set.into(), applied, waiting })
    })
}

/// Warn about pre migrations a post run applies: the new version ran without them.
pub fn warn_late_pre(phase: RunPhase, todo: &[&Migration], place: &str) {
    if phase != RunPhase::Post {
        return;
    }
    for m in todo.iter().filter(|m| m.phase() == Phase::Pre) {
        tracing::warn!(
            "{place}: pre migration {} ({}) is applied in the post phase: it was not applied before the rollout",
            m.version,
            m.description
        );
    }
}

/// The `source` event `up`, `down` and `verify` start with.
pub fn source_event(set: &MigrationSet) -> Event {
    Event::Source {
        dir: set.dir.display().to_string(),
        layout: set.format.name(),
        detected: set.detected,
        files_read: set.files_read,
        migrations: set.migrations.len(),
    }
}
