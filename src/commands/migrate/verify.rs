//! `shipgate migrate verify`: succeed only when files and history agree and nothing is
//! pending, failed, modified or missing. The orchestrator's pre-flight and a CI gate.

use crate::config::MigrateConfig;
use crate::error::{Error, Result};
use crate::migrate::plan::counts;
use crate::migrate::plan::current_version;
use crate::migrate::plan::{self, State};
use crate::migrate::run::{source_event, with_set};
use crate::migrate::session::Mode;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    ignore_missing: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    with_set(cfg, Mode::ReadOnly, shutdown, |_| Ok(()), async |s, set| {
        out.emit(&source_event(set));
        let history = s.history().await?;
        let entries = plan::reconcile(set, &history);
        let agrees = |state: State| {
            matches!(state, State::Applied | State::Retired) || (ignore_missing && state == State::Missing)
        };
        let problems: Vec<String> = entries
            .iter()
            .filter(|e| !agrees(e.state))
            .map(|e| format!("  - {} ({}): {}", e.version, e.description(), e.state.as_str()))
            .collect();
        if !problems.is_empty() {
            let summary: Vec<String> = counts(&entries)
                .into_iter()
                .filter(|(state, n)| !agrees(*state) && *n > 0)
                .map(|(state, n)| format!("{n} {}", state.as_str()))
                .collect();
            return Err(Error::failed(format!(
                "{} does not match {}: {}\n{}",
                s.describe(),
                cfg.source.display(),
                summary.join(", "),
                problems.join("\n")
            ))
            .hint("`shipgate migrate status` shows the details; `shipgate migrate up` applies pending migrations"));
        }
        let version = current_version(&history);
        out.emit(&Event::Summary {
            command: "verify",
            schema: Some(s.table.schema.clone()),
            changed: 0,
            duration_ms: 0,
            version,
            message: format!(
                "verified {}: {} migrations applied, files and history agree ({} .sql file{} read as {})",
                s.describe(),
                entries.iter().filter(|e| e.state != State::Missing).count(),
                set.files_read,
                if set.files_read == 1 { "" } else { "s" },
                set.format.name()
            ),
        });
        Ok(())
    })
    .await
}
