//! `shipgate migrate repair --version V`: after an operator checked the schema by hand,
//! either record a failed (or deliberately edited) migration as applied, or forget it so the
//! next `up` runs it again.

use crate::config::{MigrateConfig, Resolution};
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::history::{self, NewRow, Writer};
use crate::migrate::plan::ORIGIN_REPAIR;
use crate::migrate::run::with_session;
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    version: i64,
    resolution: Resolution,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    with_session(cfg, Mode::Write, shutdown, async |s| {
        let history = s.history().await?;
        let Some(row) = history.iter().find(|r| r.version == version) else {
            return Err(Error::input(format!(
                "{} has no history row for version {version}; nothing to repair",
                s.describe()
            ))
            .hint("`shipgate migrate status` lists the recorded versions"));
        };
        let table = s.table.clone();
        let action = match resolution {
            Resolution::MarkApplied => {
                let Some(m) = set.get(version) else {
                    return Err(Error::input(format!(
                        "version {version} has no file in {}, so there is no checksum to record",
                        cfg.source.display()
                    ))
                    .hint("restore the file first, or use --remove to forget the row"));
                };
                let applied_by = identity::applied_by().await;
                let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
                let new = NewRow {
                    version,
                    description: &m.description,
                    checksum: &m.up.checksum,
                    checksum_normalized: m.up.checksum_normalized(),
                    success: true,
                    execution_ms: row.execution_ms,
                    origin: ORIGIN_REPAIR,
                    applied_at: None,
                    statements_done: None,
                    phase: Some(m.phase().name()),
                };
                history::restamp(s.worker(), &table, &new, &by).await.map_err(|e| {
                    Error::failed(format!(
                        "could not update version {version}: {}",
                        crate::db::error_text(&e)
                    ))
                })?;
                "marked applied"
            }
            Resolution::Remove => {
                if row.success {
                    tracing::warn!(
                        "version {version} was recorded as applied; the next `up` will run it again"
                    );
                }
                history::delete(s.worker(), &table, version).await.map_err(|e| {
                    Error::failed(format!(
                        "could not delete version {version}: {}",
                        crate::db::error_text(&e)
                    ))
                })?;
                "removed; the next `up` runs it again"
            }
        };
        out.emit(&Event::Repaired { version, action });
        Ok(())
    })
    .await
}
