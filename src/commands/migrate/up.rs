//! `shipgate migrate up`: apply pending migrations, or print the plan with `--dry-run`.

use std::time::Instant;

use crate::config::MigrateConfig;
use crate::error::Result;
use crate::migrate::exec::Direction;
use crate::migrate::lint;
use crate::migrate::plan::current_version;
use crate::migrate::plan::{self, Entry, UpOptions};
use crate::migrate::run::{
    lint_pending, phase_close, plan_item, report_blockers, run_each, source_event, summary, warn_late_pre,
    with_set,
};
use crate::migrate::session::Mode;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    opts: &UpOptions,
    dry_run: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let dir = cfg.source.display().to_string();
    let started = Instant::now();
    let mode = if dry_run { Mode::ReadOnly } else { Mode::Write };
    with_set(
        cfg,
        mode,
        shutdown,
        |_| Ok(()),
        async |s, set| {
            out.emit(&source_event(set));
            let history = s.history().await?;
            let entries = plan::reconcile(set, &history);
            let plan::Selected { todo, waiting } = plan::plan_up(&entries, &dir, opts)?;
            let plan = match &cfg.lint {
                Some(settings) => {
                    let report = lint_pending(s, set, &todo, settings, out).await?;
                    if !dry_run {
                        lint::gate(&report, "the pending migrations")?;
                    }
                    report.plan
                }
                None => {
                    tracing::warn!("the pending migrations were not linted (--no-lint / SHIPGATE_LINT=off)");
                    lint::lock_plan(&todo)
                }
            };
            report_blockers(s, cfg, &plan, out).await;
            if !dry_run {
                s.ensure_history().await?;
            }
            if dry_run {
                out.emit(&Event::Plan {
                    schema: s.table.schema.clone(),
                    direction: "up",
                    dry_run: true,
                    migrations: todo
                        .iter()
                        .map(|m| plan_item(m, Direction::Up, &cfg.limits, is_late(&entries, m.version)))
                        .collect(),
                    waiting: waiting.iter().map(|m| m.version).collect(),
                });
                return Ok(());
            }
            warn_late_pre(opts.phase, &todo, &s.describe());
            for m in todo.iter().filter(|m| is_late(&entries, m.version)) {
                tracing::warn!(
                    "migration {} ({}) is older than the newest applied one (merged late); applying it",
                    m.version,
                    m.description
                );
            }
            run_each(s, cfg, &todo, Direction::Up, shutdown, out, |m, took| Event::Applied {
                version: m.version,
                description: m.description.clone(),
                duration_ms: took.as_millis(),
                no_transaction: m.up.directives.no_transaction,
                late: is_late(&entries, m.version),
            })
            .await?;
            let version = current_version(&history).max(todo.last().map(|m| m.version));
            let mut done = summary("up", s, todo.len(), started, version);
            if let (None, Event::Summary { message, .. }) = (&cfg.lint, &mut done)
                && !todo.is_empty()
            {
                message.push_str(" (not linted: --no-lint)");
            }
            let report = phase_close(opts.phase, &s.table.schema, todo.len(), waiting.len(), &mut done);
            out.emit(&done);
            if let Some(report) = report {
                out.emit(&report);
            }
            Ok(())
        },
    )
    .await
}

fn is_late(entries: &[Entry], version: i64) -> bool {
    entries.iter().any(|e| e.version == version && e.late)
}
