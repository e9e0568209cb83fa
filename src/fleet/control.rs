//! One fleet command's control: the control session in the master schema (it runs
//! `tenants_query`, holds the fleet lock for writing commands, and cancels workers' statements
//! on a signal), the roster of tenants it lists, the fleet run over them, and its closing tally.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::config::FleetConfig;
use crate::db::{self, ConnectSpec};
use crate::error::{Error, Result};
use crate::fleet::db::{self as fleet_db, Listed};
use crate::fleet::names;
use crate::fleet::run::{self as fleet_run, Fleet, Tenant, Work};
use crate::fleet::state::{Outcome, Tally, pending_anywhere, unknown_only};
use crate::identity;
use crate::migrate::adopt::apply as adoption;
use crate::migrate::history::Writer;
use crate::migrate::lint;
use crate::migrate::lock;
use crate::migrate::phase::RunPhase;
use crate::migrate::script::{Migration, MigrationSet};
use crate::migrate::source;
use crate::output::{Event, Reporter, TenantFailure};
use crate::shutdown::Shutdown;

/// The control session, in the master schema.
pub struct Control {
    conn: tokio::sync::Mutex<PgConnection>,
    pub database: String,
    pub master: String,
    pub fleet_lock: Option<i64>,
}

impl Control {
    pub async fn open(cfg: &FleetConfig, read_only: bool, shutdown: &Shutdown) -> Result<Control> {
        let spec = ConnectSpec {
            credentials: &cfg.db.credentials,
            application_name: &cfg.db.application_name,
            read_only,
            timeout: cfg.db.connect_timeout,
            announce: true,
        };
        let mut conn = db::connect(&spec, shutdown).await?;
        if let Some(schema) = &cfg.db.schema {
            db::set_search_path(&mut conn, schema)
                .await
                .map_err(|e| Error::failed(format!("could not set search_path: {}", db::error_text(&e))))?;
        }
        let (database, master): (String, Option<String>) =
            sqlx::query_as("SELECT current_database(), current_schema()")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| {
                    Error::failed(format!("could not read the master schema: {}", db::error_text(&e)))
                })?;
        let master = master.ok_or_else(|| {
            Error::input(format!(
                "no schema in the search_path of {} exists to be the master schema",
                cfg.db.credentials
            ))
            .hint("pass --schema NAME (or SHIPGATE_SCHEMA) to name the master schema")
        })?;
        Ok(Control { conn: tokio::sync::Mutex::new(conn), database, master, fleet_lock: None })
    }

    /// The control connection as the fleet run shares it: its cancel guard locks it to cancel
    /// the workers' statements on a signal.
    pub fn shared_conn(&self) -> &tokio::sync::Mutex<PgConnection> {
        &self.conn
    }

    /// The control connection, for a statement of the command's own.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.get_mut()
    }

    /// "database `app`, master schema `public`", for messages.
    pub fn describe(&self, cfg: &FleetConfig) -> String {
        let shard = cfg.shard.map(|s| format!(", shard {s}")).unwrap_or_default();
        format!("database `{}`, master schema `{}`{shard}", self.database, self.master)
    }

    /// Take the fleet lock: no two fleet runs (of the same shard) overlap.
    pub async fn lock_fleet(&mut self, cfg: &FleetConfig, shutdown: &Shutdown) -> Result<()> {
        let key = fleet_db::fleet_key(&self.database, &self.master, cfg.shard);
        let what = format!("the tenant fleet ({})", self.describe(cfg));
        lock::acquire(self.conn.get_mut(), key, &what, cfg.db.lock_timeout, shutdown).await?;
        self.fleet_lock = Some(key);
        Ok(())
    }

    pub async fn close(self) {
        let mut conn = self.conn.into_inner();
        if let Some(key) = self.fleet_lock {
            let _ = lock::release(&mut conn, key).await;
        }
        let _ = conn.close().await;
    }
}

/// The tenants a command works on.
pub struct Roster {
    /// Valid names in this shard and `--only`, in `tenants_query` order.
    pub tenants: Vec<String>,
    /// Names that cannot be schemas, with why.
    pub invalid: Vec<(String, String)>,
    /// Of `tenants`, those whose schema exists, and those with a history table.
    pub existing: BTreeSet<String>,
    pub with_history: BTreeSet<String>,
}

impl Roster {
    pub async fn load(control: &mut Control, cfg: &FleetConfig) -> Result<Roster> {
        let listed = fleet_db::list(control.conn(), &cfg.tenants_query).await.map_err(|reason| {
            Error::input(format!("tenants_query failed: {reason}\n  query: {}", cfg.tenants_query)).hint(
                "check tenants_query in shipgate.toml (or --tenants-query); it runs in the master schema, \
                 whose migrations must create the table it reads (`shipgate migrate up --set master`)",
            )
        })?;
        let mut seen = BTreeSet::new();
        let mut tenants = Vec::new();
        let mut invalid = Vec::new();
        for row in listed {
            match row {
                Listed::Unusable(reason) => invalid.push((String::new(), reason)),
                Listed::Name(name) => match names::invalid(&name, &control.master) {
                    Some(reason) => invalid.push((name, reason)),
                    None if seen.insert(name.clone()) => tenants.push(name),
                    None => tracing::debug!("tenants_query returned `{name}` twice; migrating it once"),
                },
            }
        }
        if !cfg.only.is_empty() {
            let listed: BTreeSet<&str> = tenants.iter().map(String::as_str).collect();
            let unknown = unknown_only(&cfg.only, &listed);
            if !unknown.is_empty() {
                return Err(Error::input(format!(
                    "--only names {} that tenants_query does not return: {}",
                    if unknown.len() == 1 { "a tenant" } else { "tenants" },
                    unknown.join(", ")
                ))
                .hint(
                    "`shipgate tenants status` lists the tenants; check the spelling, or the query's filter",
                ));
            }
            let only: BTreeSet<&str> = cfg.only.iter().map(String::as_str).collect();
            tenants.retain(|t| only.contains(t.as_str()));
            invalid.clear();
        }
        if let Some(shard) = cfg.shard {
            let before = tenants.len();
            tenants.retain(|t| shard.owns(t));
            tracing::info!("shard {shard}: {} of {before} tenants", tenants.len());
        }
        let refs: Vec<&str> = tenants.iter().map(String::as_str).collect();
        let (existing, with_history) = fleet_db::schemas(control.conn(), &refs).await.map_err(|e| {
            Error::failed(format!("could not look up the tenant schemas: {}", db::error_text(&e)))
        })?;
        Ok(Roster { tenants, invalid, existing, with_history })
    }

    /// Outcomes for the tenants a run skips: invalid names and missing schemas.
    pub fn skipped(&self) -> Vec<(String, Outcome)> {
        let invalid = self.invalid.iter().map(|(name, reason)| {
            (name.clone(), Outcome::Skipped { reason: format!("not a valid schema name: {reason}") })
        });
        let missing = self.tenants.iter().filter(|t| !self.existing.contains(*t)).map(|t| {
            let reason = format!("schema does not exist; create it with `shipgate tenants provision {t}`");
            (t.clone(), Outcome::Skipped { reason })
        });
        invalid.chain(missing).collect()
    }
}

/// `tenants up` / `tenants down`: lock the fleet, run every tenant, report, and fail when any
/// tenant failed.
pub async fn fleet_run(cfg: &FleetConfig, work: Work, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let set = source::load(&cfg.db.source, &cfg.db.read)?;
    match &work {
        Work::Down(_) => set.require_downs()?,
        Work::Adopt(options) => adoption::check(options, &set)?,
        Work::Up(_) => {}
    }
    let started = Instant::now();
    let mut control = Control::open(cfg, !work.writes(), shutdown).await?;
    let result = async {
        control.lock_fleet(cfg, shutdown).await?;
        let roster = Roster::load(&mut control, cfg).await?;
        let master = control.master.clone();
        let failed_before = if work.writes() {
            fleet_db::ensure_failures(control.conn(), &master).await.map_err(|e| {
                Error::failed(format!(
                    "could not create {master}.{}: {}",
                    fleet_db::FAILURES_TABLE,
                    db::error_text(&e)
                ))
                .hint("the database user needs CREATE on the master schema")
            })?;
            recorded_failures(&mut control).await?
        } else {
            BTreeMap::new()
        };
        if let (Work::Up(_), Some(settings)) = (&work, &cfg.db.lint) {
            lint_fleet(&mut control, &set, &roster, settings, out).await?;
        }
        let skipped = roster.skipped();
        for (name, outcome) in &skipped {
            out.emit(&Event::Tenant {
                command: work.command(),
                tenant: name.clone(),
                outcome: outcome.clone(),
                duration_ms: 0,
            });
        }
        let tenants: Vec<Tenant> = roster
            .tenants
            .iter()
            .filter(|t| roster.existing.contains(*t))
            .map(|t| Tenant { name: t.clone(), failed_before: failed_before.contains_key(t) })
            .collect();
        let workers = cfg.concurrency.min(tenants.len()).max(1);
        tracing::info!(
            "{} {} tenant{} ({}) with {workers} worker{}",
            match &work {
                Work::Up(_) => "migrating",
                Work::Down(_) => "reverting",
                Work::Adopt(a) if a.dry_run => "dry run: reading the history of",
                Work::Adopt(_) => "adopting the history of",
            },
            tenants.len(),
            if tenants.len() == 1 { "" } else { "s" },
            control.describe(cfg),
            if workers == 1 { "" } else { "s" },
        );
        let applied_by = identity::applied_by().await;
        let fleet = Fleet {
            cfg: &cfg.db,
            set: &set,
            database: &control.database,
            master: &master,
            work: work.clone(),
            concurrency: cfg.concurrency,
            canary: cfg.canary,
            fail_fast: cfg.fail_fast,
            by: Writer { run_id: &cfg.db.run_id, applied_by: &applied_by },
            fleet_lock: control.fleet_lock,
            progress: cfg.progress,
        };
        let ran = fleet_run::run(&fleet, tenants, &control.conn, shutdown, out).await?;
        let mut results = ran.results;
        results.extend(skipped);
        let phase = match &work {
            Work::Up(options) => options.phase,
            _ => RunPhase::All,
        };
        let closing = Closing { phase, waiting: ran.waiting };
        finish(work.command(), work.verb(), &results, started, out, ran.interrupted, closing)
    }
    .await;
    control.close().await;
    result
}

/// Lint what at least one tenant has still to apply, as one run, before any tenant starts:
/// an error finding stops the fleet with nothing applied.
async fn lint_fleet(
    control: &mut Control,
    set: &MigrationSet,
    roster: &Roster,
    settings: &lint::Settings,
    out: &Reporter,
) -> Result<()> {
    let existing: Vec<&str> =
        roster.tenants.iter().filter(|t| roster.existing.contains(*t)).map(String::as_str).collect();
    let with_history: Vec<&str> =
        existing.iter().copied().filter(|t| roster.with_history.contains(*t)).collect();
    let facts = fleet_db::facts(control.conn(), &with_history).await.map_err(|e| {
        Error::failed(format!("could not read the tenants' histories: {}", db::error_text(&e)))
    })?;
    let pending = pending_anywhere(set, existing.len() - with_history.len(), &facts, with_history.len());
    let todo: Vec<&Migration> = set.migrations.iter().filter(|m| pending.contains(&m.version)).collect();
    let settings = settings.clone().with_server_version(control.conn().server_version_num());
    let mut report = lint::lint(&set.dir, &todo, &settings, lint::Run::Together)?;
    let tenants: Vec<String> = existing.iter().map(|t| t.to_string()).collect();
    add_largest_sizes(control.conn(), &tenants, &mut report.findings).await;
    for finding in &report.findings {
        out.emit(&Event::Finding(finding.clone()));
    }
    lint::gate(&report, "the tenants' pending migrations")
}

/// What a fleet summary says about the phases: the run's, and the post migrations it left.
#[derive(Debug, Clone, Copy, Default)]
pub struct Closing {
    pub phase: RunPhase,
    pub waiting: usize,
}

/// Each finding's table size in the tenant where it is largest (the one the statement would
/// lock longest). A failed lookup only leaves the sizes out.
async fn add_largest_sizes(
    conn: &mut sqlx::PgConnection,
    tenants: &[String],
    findings: &mut [lint::Finding],
) {
    let names: Vec<String> = findings.iter().filter_map(|f| f.relation.clone()).collect();
    if names.is_empty() || tenants.is_empty() {
        return;
    }
    match db::largest_relation_sizes(conn, tenants, &names).await {
        Ok(sizes) => lint::attach_sizes(
            findings,
            sizes.into_iter().map(|s| s.map(|(bytes, rows, tenant)| (bytes, rows, Some(tenant)))),
        ),
        Err(e) => tracing::debug!("table sizes for the lint findings: {}", db::error_text(&e)),
    }
}

/// Print the fleet summary and turn it into the exit code: 1 when any tenant failed.
pub fn finish(
    command: &'static str,
    verb: &str,
    results: &[(String, Outcome)],
    started: Instant,
    out: &Reporter,
    interrupted: Option<Error>,
    closing: Closing,
) -> Result<()> {
    let tally = Tally::of(results.iter().map(|(_, o)| o));
    let failures: Vec<TenantFailure> = results
        .iter()
        .filter_map(|(name, o)| match o {
            Outcome::Failed { version, reason, .. } => {
                Some(TenantFailure { tenant: name.clone(), version: *version, reason: reason.clone() })
            }
            _ => None,
        })
        .collect();
    let dry_run = if command == "adopt-dry-run" { "dry run: " } else { "" };
    let message = format!("{dry_run}{} in {:.1}s", tally.line(verb), started.elapsed().as_secs_f64());
    let mut summary = Event::FleetSummary {
        command,
        tally: tally.clone(),
        failures: failures.clone(),
        duration_ms: started.elapsed().as_millis(),
        message,
    };
    let applied = results
        .iter()
        .map(|(_, o)| match o {
            Outcome::Changed { count, .. } => *count,
            _ => 0,
        })
        .sum();
    let report =
        crate::migrate::run::phase_close(closing.phase, "tenants", applied, closing.waiting, &mut summary);
    out.emit(&summary);
    // A run that failed leaves no report: the deploy stops at its failure anyway.
    if let Some(report) = report.filter(|_| interrupted.is_none() && failures.is_empty()) {
        out.emit(&report);
    }
    if let Some(e) = interrupted {
        return Err(e);
    }
    if failures.is_empty() && tally.not_attempted > 0 {
        return Err(Error::unavailable(format!(
            "{} of {} tenants were not attempted: the database connections were lost",
            tally.not_attempted, tally.tenants
        ))
        .hint("run again when the database is reachable; only what is pending runs"));
    }
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().take(10).map(|f| f.tenant.as_str()).collect();
        let more =
            if failures.len() > 10 { format!(" and {} more", failures.len() - 10) } else { String::new() };
        return Err(Error::failed(format!(
            "{} of {} tenants failed: {}{more}",
            failures.len(),
            tally.tenants,
            names.join(", ")
        ))
        .hint(
            "each failed tenant kept the migrations before the failing one; fix the cause and run again \
             (only what is pending runs). `shipgate tenants status` shows every tenant's state",
        ));
    }
    Ok(())
}

/// Failures recorded by earlier runs, by tenant.
pub async fn recorded_failures(control: &mut Control) -> Result<BTreeMap<String, fleet_db::Failure>> {
    let master = control.master.clone();
    fleet_db::failures(control.conn(), &master)
        .await
        .map_err(|e| Error::failed(format!("could not read the recorded failures: {}", db::error_text(&e))))
}
