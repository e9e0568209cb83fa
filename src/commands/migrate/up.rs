//! `shipgate migrate up`: apply pending migrations, or print the plan with `--dry-run`.

use std::time::Instant;

use super::{current_version, with_session};
use crate::config::MigrateConfig;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::exec::{Direction, Limits};
use crate::migrate::history::Writer;
use crate::migrate::plan::{self, Entry, UpOptions};
use crate::migrate::session::Mode;
use crate::migrate::source::{self, Migration};
use crate::output::{Event, PlanItem, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    opts: &UpOptions,
    dry_run: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source)?;
    let dir = cfg.source.display().to_string();
    let started = Instant::now();
    let mode = if dry_run { Mode::ReadOnly } else { Mode::Write };
    with_session(cfg, mode, shutdown, async |s| {
        if !dry_run {
            s.ensure_history().await?;
        }
        let history = s.history().await?;
        let entries = plan::reconcile(&set, &history);
        let todo = plan::plan_up(&entries, &dir, opts)?;
        if dry_run {
            out.emit(&Event::Plan {
                schema: s.table.schema.clone(),
                direction: "up",
                dry_run: true,
                migrations: plan_items(&todo, &entries, &cfg.limits),
            });
            return Ok(());
        }
        let applied_by = if todo.is_empty() { String::new() } else { identity::applied_by().await };
        let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
        let mut version = current_version(&history);
        for (done, m) in todo.iter().enumerate() {
            if let Some(signal) = shutdown.requested() {
                return Err(Error::interrupted(
                    signal,
                    format!(
                        "interrupted by {} before migration {}; {done} of {} applied",
                        signal.name(),
                        m.version,
                        todo.len()
                    ),
                ));
            }
            let late = is_late(&entries, m.version);
            if late {
                tracing::warn!(
                    "migration {} ({}) is older than the newest applied one (merged late); applying it",
                    m.version,
                    m.description
                );
            }
            tracing::info!("applying {} ({})", m.version, m.description);
            let took =
                s.execute(m, Direction::Up, &cfg.limits, &by, done + 1 == todo.len(), shutdown).await?;
            version = version.max(Some(m.version));
            out.emit(&Event::Applied {
                version: m.version,
                description: m.description.clone(),
                duration_ms: took.as_millis(),
                no_transaction: m.up.directives.no_transaction,
                late,
            });
        }
        let at = version.map(|v| format!("version {v}")).unwrap_or_else(|| "no version".into());
        let message = if todo.is_empty() {
            format!("{} is up to date at {at}; nothing to apply", s.describe())
        } else {
            format!(
                "applied {} migration{} to {} in {:.2}s; now at {at}",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" },
                s.describe(),
                started.elapsed().as_secs_f64()
            )
        };
        out.emit(&Event::Summary {
            command: "up",
            schema: Some(s.table.schema.clone()),
            changed: todo.len(),
            duration_ms: started.elapsed().as_millis(),
            version,
            message,
        });
        Ok(())
    })
    .await
}

fn is_late(entries: &[Entry], version: i64) -> bool {
    entries.iter().any(|e| e.version == version && e.late)
}

/// The plan as printed by `--dry-run` (up or down).
pub fn plan_items(todo: &[&Migration], entries: &[Entry], limits: &Limits) -> Vec<PlanItem> {
    todo.iter()
        .map(|m| {
            let (lock, statement) = limits.for_script(&m.up);
            PlanItem {
                version: m.version,
                description: m.description.clone(),
                file: m.up.path.display().to_string(),
                no_transaction: m.up.directives.no_transaction,
                lock_timeout: duration::human(lock),
                statement_timeout: duration::human(statement),
                late: is_late(entries, m.version),
            }
        })
        .collect()
}
