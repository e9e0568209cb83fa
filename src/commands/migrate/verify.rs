//! `shipgate migrate verify`: succeed only when files and history agree and nothing is
//! pending, failed, modified or missing. The orchestrator's pre-flight and a CI gate.

use super::{current_version, status::counts, with_session};
use crate::config::MigrateConfig;
use crate::error::{Error, Result};
use crate::migrate::plan::{self, State};
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(cfg: &MigrateConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let set = source::load(&cfg.source, cfg.format)?;
    with_session(cfg, Mode::ReadOnly, shutdown, async |s| {
        let history = s.history().await?;
        let entries = plan::reconcile(&set, &history);
        let problems: Vec<String> = entries
            .iter()
            .filter(|e| !matches!(e.state, State::Applied | State::Retired))
            .map(|e| format!("  - {} ({}): {}", e.version, e.description(), e.state.as_str()))
            .collect();
        if !problems.is_empty() {
            let summary: Vec<String> = counts(&entries)
                .into_iter()
                .filter(|(state, n)| !matches!(state, State::Applied | State::Retired) && *n > 0)
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
                "verified {}: {} migrations applied, files and history agree",
                s.describe(),
                entries.len()
            ),
        });
        Ok(())
    })
    .await
}
