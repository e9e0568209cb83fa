//! `shipgate migrate down`: revert applied migrations with their `.down.sql`, newest first.

use std::time::Instant;

use crate::config::MigrateConfig;
use crate::error::Result;
use crate::migrate::exec::Direction;
use crate::migrate::plan::current_version;
use crate::migrate::plan::{self, DownTo};
use crate::migrate::run::{plan_item, run_each, source_event, summary, with_set};
use crate::migrate::session::Mode;
use crate::migrate::source::MigrationSet;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    to: DownTo,
    dry_run: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let dir = cfg.source.display().to_string();
    let started = Instant::now();
    let mode = if dry_run { Mode::ReadOnly } else { Mode::Write };
    with_set(cfg, mode, shutdown, MigrationSet::require_downs, async |s, set| {
        out.emit(&source_event(set));
        let history = s.history().await?;
        let entries = plan::reconcile(set, &history);
        let todo = plan::plan_down(&entries, &dir, to)?;
        if dry_run {
            let migrations = todo.iter().map(|m| plan_item(m, Direction::Down, &cfg.limits, false)).collect();
            out.emit(&Event::Plan {
                schema: s.table.schema.clone(),
                direction: "down",
                dry_run: true,
                migrations,
                waiting: Vec::new(),
            });
            return Ok(());
        }
        run_each(s, cfg, &todo, Direction::Down, shutdown, out, |m, took| Event::Reverted {
            version: m.version,
            description: m.description.clone(),
            duration_ms: took.as_millis(),
        })
        .await?;
        let version = current_version(&s.history().await?);
        out.emit(&summary("down", s, todo.len(), started, version));
        Ok(())
    })
    .await
}
