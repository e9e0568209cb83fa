//! `shipgate migrate lint`: lint every migration of every set (or, with `--pending`, what one
//! schema has not applied), report each finding in the chosen format, and fail on an error.

use crate::cli::OutputFormat;
use crate::config::LintJob;
use crate::error::Result;
use crate::migrate::lint::{self, Report};
use crate::migrate::plan::{self, State};
use crate::migrate::run::{lint_pending, with_set};
use crate::migrate::script::Migration;
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::{Event, Reporter, append_file};
use crate::shutdown::Shutdown;

pub async fn run(job: &LintJob, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    // Findings go to stdout as lines, JSON or annotations; with --output github only the
    // annotations are printed, so collect them quietly and print them after.
    let (quiet, captured) = Reporter::capturing(out.format());
    let shown = if out.format() == OutputFormat::Github { &quiet } else { out };
    let mut report = Report::default();
    let mut names = Vec::new();
    match &job.pending {
        Some(cfg) => {
            let found = with_set(
                cfg,
                Mode::ReadOnly,
                shutdown,
                |_| Ok(()),
                async |s, set| {
                    let history = s.history().await?;
                    let entries = plan::reconcile(set, &history);
                    let todo: Vec<&Migration> = entries
                        .iter()
                        .filter(|e| matches!(e.state, State::Pending | State::Partial))
                        .filter_map(|e| e.local)
                        .collect();
                    if job.explain {
                        explain(&todo, shown);
                    }
                    lint_pending(s, set, &todo, &job.settings, shown).await
                },
            )
            .await?;
            names.push(job.sets.first().map_or("master", |s| s.name).to_string());
            report = found;
        }
        None => {
            for set in &job.sets {
                let loaded = source::load(&set.dir, &set.read)?;
                if job.explain {
                    explain(&loaded.migrations.iter().collect::<Vec<_>>(), shown);
                }
                let found = lint::lint_set(&loaded, &job.settings)?;
                for f in &found.findings {
                    shown.emit(&Event::Finding(f.clone()));
                }
                report.absorb(found);
                names.push(set.name.to_string());
            }
        }
    }
    drop(captured);
    if job.github || out.format() == OutputFormat::Github {
        for f in &report.findings {
            out.raw(&lint::annotation(f));
        }
    }
    if let Some(path) = &job.step_summary {
        append_file(path, &lint::step_summary("shipgate migrate lint", &report), "GITHUB_STEP_SUMMARY");
    }
    out.emit(&Event::LintSummary {
        sets: names,
        linted: report.linted,
        skipped: report.skipped,
        errors: report.errors(),
        warnings: report.warnings(),
        allowed: report.allowed(),
        message: lint::summary_message(&report),
    });
    report.refusal("the migration lint found", "", "")
}

/// `--explain`: each statement's lock, in the order they would run.
fn explain(migrations: &[&Migration], out: &Reporter) {
    for statement in lint::lock_plan(migrations) {
        out.emit(&Event::StatementLock(statement));
    }
}
