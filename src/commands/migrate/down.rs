//! `shipgate migrate down`: revert applied migrations with their `.down.sql`, newest first.

use std::time::Instant;

use super::{current_version, with_session};
use crate::config::MigrateConfig;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::exec::Direction;
use crate::migrate::history::Writer;
use crate::migrate::plan::{self, DownTo};
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::{Event, PlanItem, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    to: DownTo,
    dry_run: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source)?;
    let dir = cfg.source.display().to_string();
    let started = Instant::now();
    let mode = if dry_run { Mode::ReadOnly } else { Mode::Write };
    with_session(cfg, mode, shutdown, async |s| {
        let history = s.history().await?;
        let entries = plan::reconcile(&set, &history);
        let todo = plan::plan_down(&entries, &dir, to)?;
        if dry_run {
            let migrations = todo
                .iter()
                .map(|m| {
                    let down = m.down.as_ref().expect("plan_down checked");
                    let (lock, statement) = cfg.limits.for_script(down);
                    PlanItem {
                        version: m.version,
                        description: m.description.clone(),
                        file: down.path.display().to_string(),
                        no_transaction: down.directives.no_transaction,
                        lock_timeout: duration::human(lock),
                        statement_timeout: duration::human(statement),
                        late: false,
                    }
                })
                .collect();
            out.emit(&Event::Plan {
                schema: s.table.schema.clone(),
                direction: "down",
                dry_run: true,
                migrations,
            });
            return Ok(());
        }
        let applied_by = if todo.is_empty() { String::new() } else { identity::applied_by().await };
        let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
        for (done, m) in todo.iter().enumerate() {
            if let Some(signal) = shutdown.requested() {
                return Err(Error::interrupted(
                    signal,
                    format!(
                        "interrupted by {} before reverting {}; {done} of {} reverted",
                        signal.name(),
                        m.version,
                        todo.len()
                    ),
                ));
            }
            tracing::info!("reverting {} ({})", m.version, m.description);
            let took =
                s.execute(m, Direction::Down, &cfg.limits, &by, done + 1 == todo.len(), shutdown).await?;
            out.emit(&Event::Reverted {
                version: m.version,
                description: m.description.clone(),
                duration_ms: took.as_millis(),
            });
        }
        let version = current_version(&s.history().await?);
        let at = version.map(|v| format!("version {v}")).unwrap_or_else(|| "no applied migration".into());
        let message = if todo.is_empty() {
            format!("nothing to revert in {}; at {at}", s.describe())
        } else {
            format!(
                "reverted {} migration{} in {} in {:.2}s; now at {at}",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" },
                s.describe(),
                started.elapsed().as_secs_f64()
            )
        };
        out.emit(&Event::Summary {
            command: "down",
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
