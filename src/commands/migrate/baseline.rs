//! `shipgate migrate baseline --version V`: record migrations up to V as applied without
//! running them, for databases that were migrated by hand before any tracking existed.

use super::{current_version, with_session};
use crate::config::MigrateConfig;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::history::{self, NewRow, Writer};
use crate::migrate::plan::ORIGIN_BASELINE;
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
    let set = source::load(&cfg.source, cfg.format)?;
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
        let conn = s.worker();
        let write = async {
            sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
            for m in &todo {
                let row = NewRow {
                    version: m.version,
                    description: &m.description,
                    checksum: &m.up.checksum,
                    checksum_normalized: &m.up.checksum_normalized,
                    success: true,
                    execution_ms: 0,
                    origin: ORIGIN_BASELINE,
                    applied_at: None,
                };
                history::insert(&mut *conn, &table, &row, &by).await?;
            }
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await
        };
        if let Err(e) = write.await {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(Error::failed(format!(
                "could not record the baseline: {}; nothing was recorded",
                crate::db::error_text(&e)
            )));
        }
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
