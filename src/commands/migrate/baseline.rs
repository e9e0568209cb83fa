//! `shipgate migrate baseline --version V`: record migrations up to V as applied without
//! running them, for databases that were migrated by hand before any tracking existed; and
//! `--from-schema`, which finds V from the live catalog instead of trusting a guess.

use serde_json::json;

use crate::config::MigrateConfig;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::baseline;
use crate::migrate::catalog::{self, Point, Proposal};
use crate::migrate::history::Writer;
use crate::migrate::plan::current_version;
use crate::migrate::run::with_session;
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    version: i64,
    force: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    if set.get(version).is_none() {
        return Err(Error::input(format!(
            "--version {version} is not the version of any migration in {}",
            cfg.source.display()
        ))
        .hint("run `shipgate migrate status` to list the versions"));
    }
    with_session(cfg, Mode::Write, shutdown, async |s| {
        s.ensure_history().await?;
        let existing = s.history().await?;
        if !existing.is_empty() && !force {
            return Err(Error::failed(format!(
                "{} already has {} history row{}; a baseline is for databases with no history",
                s.describe(),
                existing.len(),
                if existing.len() == 1 { "" } else { "s" }
            ))
            .hint("pass --force to also record the versions up to the baseline that have no row yet"));
        }
        let applied_by = identity::applied_by().await;
        let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
        let todo: Vec<_> = set
            .migrations
            .iter()
            .filter(|m| m.version <= version && !existing.iter().any(|r| r.version == m.version))
            .collect();
        let table = s.table.clone();
        baseline::record(s.worker(), &table, &todo, &by).await.map_err(|e| {
            Error::failed(format!(
                "could not record the baseline: {}; nothing was recorded",
                crate::db::error_text(&e)
            ))
        })?;
        for m in &todo {
            out.emit(&Event::Baselined { version: m.version, description: m.description.clone() });
        }
        let history = s.history().await?;
        out.emit(&Event::Summary {
            command: "baseline",
            schema: Some(s.table.schema.clone()),
            changed: todo.len(),
            duration_ms: 0,
            version: current_version(&history),
            message: format!(
                "recorded {} migration{} up to {version} as applied in {} without running them",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" },
                s.describe()
            ),
        });
        Ok(())
    })
    .await
}

/// `shipgate migrate baseline --from-schema`: replay the migrations in a scratch schema inside
/// a transaction that is rolled back, read the catalog after each one, and propose the version
/// the live schema matches. Records nothing: the operator confirms with `--version V`.
pub async fn propose(cfg: &MigrateConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    with_session(cfg, Mode::Write, shutdown, async |s| {
        let live_schema = s.table.schema.clone();
        let history = s.history().await?;
        let conn = s.worker();
        let live = catalog::snapshot(&mut *conn, &live_schema).await.map_err(crate::db::failed("could not read the catalog"))?;
        let (shapes, stopped) = baseline::replay(conn, cfg.limits.lock_timeout, &set, &live_schema).await?;
        let (points, proposal) = catalog::compare(&live, &shapes);
        let doc = json!({
            "schema": live_schema,
            "replayed": shapes.len(),
            "stopped": stopped.as_ref().map(|(v, e)| json!({"version": v, "error": e})),
            "points": points,
            "proposal": match &proposal {
                Proposal::Version { version, ambiguous } => json!({"version": version, "ambiguous": ambiguous}),
                Proposal::Nothing => json!({"version": null}),
                Proposal::NoMatch { closest } => json!({"version": null, "closest": closest}),
            },
            "history_rows": history.len(),
        });
        out.document(&doc, &render(&s.describe(), &points, stopped.as_ref()));
        conclude(&proposal, &history, stopped.as_ref(), out)
    })
    .await
}

fn render(scope: &str, points: &[Point], stopped: Option<&(i64, String)>) -> String {
    let mut s =
        format!("the migrations replayed in a scratch schema (rolled back), compared with {scope}:\n");
    s.push_str(&format!(
        "  {:>14}  {:<5}  {:>7}  {:>10}\n",
        "AFTER VERSION", "MATCH", "MISSING", "UNEXPECTED"
    ));
    for p in points {
        s.push_str(&format!(
            "  {:>14}  {:<5}  {:>7}  {:>10}\n",
            p.version,
            if p.exact() { "yes" } else { "no" },
            p.missing.len(),
            p.unexpected.len()
        ));
    }
    if let Some((version, error)) = stopped {
        s.push_str(&format!("  replay stopped at {version}, which failed in the scratch schema: {error}\n"));
    }
    s
}

fn conclude(
    proposal: &Proposal,
    history: &[crate::migrate::plan::AppliedRow],
    stopped: Option<&(i64, String)>,
    out: &Reporter,
) -> Result<()> {
    let force = if history.is_empty() { "" } else { " --force" };
    match proposal {
        Proposal::Version { version, ambiguous } => {
            if !ambiguous.is_empty() {
                tracing::warn!(
                    "the schema also matches after {}: they change no table, column or index, so the catalog cannot tell \
                     whether they ran; check their effect by hand before recording a later version",
                    ambiguous.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            out.emit(&Event::Summary {
                command: "baseline",
                schema: None,
                changed: 0,
                duration_ms: 0,
                version: Some(*version),
                message: format!(
                    "the live schema is what the migrations make at version {version}; record it with \
                     `shipgate migrate baseline --version {version}{force}`"
                ),
            });
            Ok(())
        }
        Proposal::Nothing => {
            out.emit(&Event::Summary {
                command: "baseline",
                schema: None,
                changed: 0,
                duration_ms: 0,
                version: None,
                message:
                    "the live schema has none of the tables, columns or indexes the migrations create: no \
                          baseline is needed; `shipgate migrate up` applies them all"
                        .into(),
            });
            Ok(())
        }
        Proposal::NoMatch { closest } => {
            let mut list: Vec<String> = closest.missing.iter().map(|m| format!("  - missing: {m}")).collect();
            list.extend(closest.unexpected.iter().map(|u| format!("  - unexpected: {u}")));
            let stop = stopped.map_or(String::new(), |(v, _)| format!(" (the replay stopped at {v})"));
            Err(Error::failed(format!(
                "the live schema matches no point of the migration history{stop}; the closest is after version {}:\n{}",
                closest.version,
                list.join("\n")
            ))
            .hint("the database drifted from the migrations (a hand-made change, or a migration edited after it ran); \
                   fix the drift or write a migration for it, then try again; `--version V` records a baseline anyway"))
        }
    }
}
