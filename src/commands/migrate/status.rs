//! `shipgate migrate status`: every version with its state, from a read-only session.

use serde_json::json;

use crate::config::MigrateConfig;
use crate::error::Result;
use crate::migrate::plan::counts;
use crate::migrate::plan::{self, Entry, State};
use crate::migrate::run::{source_event, with_set};
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &MigrateConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    with_set(
        cfg,
        Mode::ReadOnly,
        shutdown,
        |_| Ok(()),
        async |s, set| {
            let history = s.history().await?;
            let entries = plan::reconcile(set, &history);
            let counts = counts(&entries);
            let rows: Vec<serde_json::Value> = entries.iter().map(row_json).collect();
            let doc = json!({
                "database": s.database,
                "schema": s.table.schema,
                "history_table": s.table.qualified(),
                "source": source_json(set),
                "migrations": rows,
                "summary": counts_json(&counts),
            });
            out.document(&doc, &render_text(&s.describe(), &entries, &counts));
            Ok(())
        },
    )
    .await
}

/// Which folder was read, in which layout, and how much of it: the proof that a short status
/// is not a folder read wrong.
pub fn source_json(set: &source::MigrationSet) -> serde_json::Value {
    let mut value = serde_json::to_value(source_event(set)).expect("events serialize");
    if let Some(fields) = value.as_object_mut() {
        fields.remove("event");
    }
    value
}

fn counts_json(counts: &[(State, usize)]) -> serde_json::Value {
    serde_json::Value::Object(counts.iter().map(|(s, n)| (s.as_str().to_string(), json!(n))).collect())
}

fn row_json(e: &Entry) -> serde_json::Value {
    json!({
        "version": e.version,
        "description": e.description(),
        "state": e.state,
        "late": e.late,
        "file": e.local.map(|m| m.up.path.display().to_string()),
        "no_transaction": e.local.map(|m| m.up.directives.no_transaction),
        "reversible": e.local.map(|m| m.down.is_some()),
        "applied_at": e.applied.map(|r| r.applied_at.to_rfc3339()),
        "execution_ms": e.applied.map(|r| r.execution_ms),
        "run_id": e.applied.map(|r| r.run_id.clone()),
        "applied_by": e.applied.map(|r| r.applied_by.clone()),
        "origin": e.applied.map(|r| r.origin.clone()),
        "statements_done": e.applied.and_then(|r| r.statements_done),
        // The file's phase; for a row without a file, the phase it was applied in.
        "phase": e.local.map(|m| m.phase().name().to_string()).or(e.applied.and_then(|r| r.phase.clone())),
    })
}

fn render_text(scope: &str, entries: &[Entry], counts: &[(State, usize)]) -> String {
    let mut s = format!("{scope}\n");
    if entries.is_empty() {
        s.push_str("  no migrations (no files, no history)\n");
    } else {
        s.push_str(&format!(
            "  {:>14}  {:<8}  {:<23}  {:>9}  {:<24}  {}\n",
            "VERSION", "STATE", "APPLIED AT", "DURATION", "RUN", "DESCRIPTION"
        ));
        for e in entries {
            let (at, took, run) = match e.applied {
                Some(r) => (
                    r.applied_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    format!("{} ms", r.execution_ms),
                    r.run_id.clone(),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let mut state = e.state.as_str().to_string();
            if e.late {
                state.push('*');
            }
            let progress = match (e.state, e.applied.and_then(|r| r.statements_done), e.local) {
                (State::Partial, Some(done), Some(m)) => {
                    format!("  [{done} of {} statements done; `up` resumes]", m.up.units().len())
                }
                _ => String::new(),
            };
            let post = match e.local.map(|m| m.phase()) {
                Some(crate::migrate::phase::Phase::Post) => "  [post]",
                _ => "",
            };
            s.push_str(&format!(
                "  {:>14}  {:<8}  {:<23}  {:>9}  {:<24}  {}{post}{progress}\n",
                e.version,
                state,
                at,
                took,
                run,
                e.description()
            ));
        }
    }
    let summary: Vec<String> = counts
        .iter()
        .filter(|(state, n)| !matches!(state, State::Retired | State::Partial) || *n > 0)
        .map(|(state, n)| format!("{n} {}", state.as_str()))
        .collect();
    s.push_str(&summary.join(", "));
    if entries.iter().any(|e| e.late) {
        s.push_str("\n* pending but older than the newest applied migration (merged late); `up` applies it");
    }
    s
}
