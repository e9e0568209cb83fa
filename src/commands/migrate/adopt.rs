//! `shipgate migrate adopt --from TOOL`: record what another tool (Knex, Drizzle, sqlx,
//! Prisma, diesel, dbmate, golang-migrate, goose, Flyway) already applied as shipgate history,
//! without running any migration.
//!
//! Everything happens in one transaction under our lock: their table is read inside it (and
//! Knex's lock row is held `FOR UPDATE`, so no Knex run can start meanwhile), the mapping is
//! printed, and the rows are written only if nothing blocks. A second run finds its own rows
//! and writes nothing. `--dry-run` takes no lock and writes nothing, not even our table.

use crate::config::MigrateConfig;
use crate::error::Result;
use crate::identity;
use crate::migrate::adopt::apply::{self, AdoptOptions, Request};
use crate::migrate::history::Writer;
use crate::migrate::plan::current_version;
use crate::migrate::run::with_session;
use crate::migrate::session::{Mode, Session};
use crate::migrate::source::{self, MigrationSet};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    opts: &AdoptOptions,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    apply::check(opts, &set)?;
    let mode = if opts.dry_run { Mode::ReadOnly } else { Mode::Write };
    // A dry run records nothing, so it need not ask ECS who it is.
    let applied_by = if opts.dry_run { String::new() } else { identity::applied_by().await };
    let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
    with_session(cfg, mode, shutdown, async |s| {
        let (table, place) = (s.table.clone(), s.describe());
        let request = Request { options: opts, place: &place, set: &set, table: &table, by: &by };
        let written = apply::adopt(s.worker(), &request, &mut |line| {
            out.emit(&Event::Adopt { tool: opts.tool, line: line.clone() })
        })
        .await?;
        summary(s, opts, &set, written.len(), out).await
    })
    .await
}

async fn summary(
    s: &mut Session,
    opts: &AdoptOptions,
    set: &MigrationSet,
    count: usize,
    out: &Reporter,
) -> Result<()> {
    let history = s.history().await?;
    let pending = set.migrations.iter().filter(|m| !history.iter().any(|r| r.version == m.version)).count();
    let written = if opts.dry_run { 0 } else { count };
    let message = if opts.dry_run {
        format!(
            "dry run: would record {count} migration{} from {} in {} without running them; nothing was changed",
            if count == 1 { "" } else { "s" },
            opts.tool.name(),
            s.describe()
        )
    } else if written == 0 {
        format!("{} already records {}'s history; nothing to adopt", s.describe(), opts.tool.name())
    } else {
        format!(
            "recorded {written} migration{} from {} in {} without running them; {pending} pending for `shipgate migrate up`",
            if written == 1 { "" } else { "s" },
            opts.tool.name(),
            s.describe()
        )
    };
    out.emit(&Event::Summary {
        command: "adopt",
        schema: Some(s.table.schema.clone()),
        changed: written,
        duration_ms: 0,
        version: current_version(&history),
        message,
    });
    Ok(())
}
