//! `shipgate migrate adopt --from TOOL`: record what another tool (Knex, Drizzle, sqlx,
//! Prisma, diesel, dbmate, golang-migrate, goose, Flyway) already applied as shipgate history,
//! without running any migration.
//!
//! Everything happens in one transaction under our lock: their table is read inside it (and
//! Knex's lock row is held `FOR UPDATE`, so no Knex run can start meanwhile), the mapping is
//! printed, and the rows are written only if nothing blocks. A second run finds its own rows
//! and writes nothing. `--dry-run` takes no lock and writes nothing, not even our table.

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::{current_version, with_session};
use crate::config::{AdoptOptions, MigrateConfig};
use crate::db::{error_text, quote_ident};
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::adopt::{self, Mapping, Tool, Verdict};
use crate::migrate::history::{self, HistoryTable, NewRow, Writer};
use crate::migrate::plan::{ORIGIN_ADOPT, ORIGIN_ADOPT_NO_SOURCE};
use crate::migrate::session::{Mode, Session};
use crate::migrate::source::{self, Format, MigrationSet};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    opts: &AdoptOptions,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    check_inputs(cfg, opts, &set)?;
    let mode = if opts.dry_run { Mode::ReadOnly } else { Mode::Write };
    with_session(cfg, mode, shutdown, async |s| {
        let theirs = TheirTable::resolve(opts, &s.table.schema);
        if !table_exists(s.worker(), &theirs.qualified()).await? {
            return Err(Error::input(format!(
                "there is no {} history table {} in {}",
                opts.tool.name(),
                theirs.shown(),
                s.describe()
            ))
            .hint(table_hint(opts.tool)));
        }
        let table = s.table.clone();
        let conn = s.worker();
        sqlx::raw_sql("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(crate::db::failed("could not start a transaction"))?;
        let result = adopt_in_transaction(conn, cfg, opts, &set, &theirs, &table, out).await;
        let commit = !opts.dry_run && result.as_ref().is_ok_and(|count| *count > 0);
        let ended = sqlx::raw_sql(if commit { "COMMIT" } else { "ROLLBACK" }).execute(&mut *conn).await;
        let count = result?;
        ended.map_err(crate::db::failed("could not commit the adopted history; nothing was recorded"))?;
        summary(s, opts, &set, count, out).await
    })
    .await
}

/// Flag combinations that cannot work, before connecting.
fn check_inputs(cfg: &MigrateConfig, opts: &AdoptOptions, set: &MigrationSet) -> Result<()> {
    if opts.tool == Tool::Prisma && set.format != Format::Prisma {
        return Err(Error::input(format!(
            "--from prisma needs the Prisma migrations folder as the source, but {} is read as {}",
            cfg.source.display(),
            set.format.name()
        ))
        .hint("pass --source prisma/migrations (the folder with migration_lock.toml): Prisma's rows name its folders"));
    }
    if opts.tool == Tool::Drizzle && set.format != Format::Drizzle {
        return Err(Error::input(format!(
            "--from drizzle needs the drizzle-kit folder as the source, but {} holds plain .sql files",
            cfg.source.display()
        ))
        .hint("pass --source pointing at drizzle-kit's `out` folder (the one with meta/_journal.json): its journal says which row is which file"));
    }
    if let Some(base) = opts.baseline {
        if opts.tool != Tool::Knex {
            return Err(Error::input(format!(
                "--baseline is for Knex histories; {} rows always name a file",
                opts.tool.name()
            )));
        }
        if set.get(base).is_none() {
            return Err(Error::input(format!(
                "--baseline {base} is not the version of any migration in {}",
                cfg.source.display()
            ))
            .hint("run `shipgate migrate status` to list the versions"));
        }
    }
    Ok(())
}

/// Their history table, `[schema.]name`, with unqualified names in our schema.
struct TheirTable {
    schema: String,
    name: String,
}

impl TheirTable {
    fn resolve(opts: &AdoptOptions, our_schema: &str) -> TheirTable {
        let text = opts.table.as_deref().unwrap_or(opts.tool.default_table());
        match text.split_once('.') {
            Some((schema, name)) => TheirTable { schema: schema.to_string(), name: name.to_string() },
            None => TheirTable { schema: our_schema.to_string(), name: text.to_string() },
        }
    }

    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    fn lock_table(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&format!("{}_lock", self.name)))
    }

    fn shown(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

fn table_hint(tool: Tool) -> &'static str {
    match tool {
        Tool::Knex => {
            "pass --table [SCHEMA.]NAME: your knexfile's migrations.tableName (default knex_migrations), in its \
             schemaName (default: --schema, or the connection's first schema)"
        }
        Tool::Drizzle => {
            "pass --table SCHEMA.NAME: drizzle's migrationsSchema.migrationsTable (default drizzle.__drizzle_migrations)"
        }
        Tool::Sqlx => {
            "pass --table [SCHEMA.]NAME: where `sqlx migrate run` kept its history (default _sqlx_migrations)"
        }
        Tool::Prisma => {
            "pass --table [SCHEMA.]NAME: where Prisma Migrate kept its history (default _prisma_migrations)"
        }
        Tool::Diesel => {
            "pass --table [SCHEMA.]NAME: where diesel kept its history (default __diesel_schema_migrations)"
        }
        Tool::Dbmate => "pass --table [SCHEMA.]NAME: dbmate's --migrations-table (default schema_migrations)",
        Tool::GolangMigrate => {
            "pass --table [SCHEMA.]NAME: golang-migrate's x-migrations-table (default schema_migrations)"
        }
        Tool::Goose => "pass --table [SCHEMA.]NAME: goose's -table (default goose_db_version)",
        Tool::Flyway => {
            "pass --table [SCHEMA.]NAME: Flyway's `table` setting (default flyway_schema_history)"
        }
    }
}

async fn table_exists(conn: &mut PgConnection, qualified: &str) -> Result<bool> {
    crate::db::relation_exists(conn, qualified)
        .await
        .map_err(crate::db::failed("could not look up the history table"))
}

/// Read, map, report and (unless a dry run or blocked) write. Returns the rows to record.
async fn adopt_in_transaction(
    conn: &mut PgConnection,
    cfg: &MigrateConfig,
    opts: &AdoptOptions,
    set: &MigrationSet,
    theirs: &TheirTable,
    table: &HistoryTable,
    out: &Reporter,
) -> Result<usize> {
    if opts.tool == Tool::Knex {
        check_knex_lock(conn, theirs, !opts.dry_run).await?;
    }
    // Inside the transaction, so a refused adoption leaves not even an empty table behind.
    if !opts.dry_run {
        history::ensure(&mut *conn, table)
            .await
            .map_err(crate::db::failed("could not create shipgate's history table"))?;
    }
    let sql =
        format!("SELECT to_jsonb(t)::text FROM {} t ORDER BY t.{}", theirs.qualified(), opts.tool.order_by());
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::db::failed("could not read their history table"))?;
    let their_rows = rows
        .iter()
        .map(|r| {
            serde_json::from_str(r).map_err(|e| e.to_string()).and_then(|v| adopt::their_row(opts.tool, &v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::input(format!(
                "{} does not look like a {} history table: {e}",
                theirs.shown(),
                opts.tool.name()
            ))
            .hint(table_hint(opts.tool))
        })?;
    let ours = history::load(&mut *conn, table)
        .await
        .map_err(crate::db::failed("could not read shipgate's history"))?;
    let mapping = adopt::map(opts.tool, set, &their_rows, &ours, adopt::Options { baseline: opts.baseline });
    for line in &mapping.lines {
        out.emit(&Event::Adopt { tool: opts.tool, line: line.clone() });
    }
    let skipped: Vec<String> = mapping
        .lines
        .iter()
        .filter(|l| l.verdict == Verdict::Skipped)
        .map(|l| format!("{} ({})", l.version.unwrap_or_default(), l.description))
        .collect();
    if !skipped.is_empty() {
        tracing::warn!(
            "{} migration{} older than drizzle's newest row never ran (drizzle-orm skips a late-merged migration): {}; \
             they stay pending and the next `shipgate migrate up` applies them. If one was applied by hand, record it \
             with `shipgate migrate baseline --version V --force` first",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            skipped.join(", ")
        );
    }
    refuse_blocking(&mapping, opts.tool, theirs)?;
    if opts.dry_run {
        return Ok(mapping.to_write().count());
    }
    let applied_by = identity::applied_by().await;
    let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
    let mut written = 0;
    for line in mapping.to_write() {
        let version = line.version.expect("lines to write have a version");
        let (description, checksum, normalized, origin) = match set.get(version) {
            Some(m) if line.verdict == Verdict::Match => (
                m.description.as_str(),
                m.up.checksum.as_slice(),
                m.up.checksum_normalized.as_slice(),
                ORIGIN_ADOPT,
            ),
            _ => (line.description.as_str(), &[][..], &[][..], ORIGIN_ADOPT_NO_SOURCE),
        };
        let row = NewRow {
            version,
            description,
            checksum,
            checksum_normalized: normalized,
            success: true,
            execution_ms: 0,
            origin,
            applied_at: line.applied_at,
            statements_done: None,
        };
        history::insert(&mut *conn, table, &row, &by).await.map_err(|e| {
            Error::failed(format!(
                "could not record version {version}: {}; nothing was recorded",
                error_text(&e)
            ))
        })?;
        written += 1;
    }
    Ok(written)
}

/// Knex's own lock: refuse while a Knex run holds it, and hold its row until we commit.
async fn check_knex_lock(conn: &mut PgConnection, theirs: &TheirTable, hold: bool) -> Result<()> {
    let lock = theirs.lock_table();
    if !table_exists(&mut *conn, &lock).await? {
        return Ok(());
    }
    let sql = format!("SELECT is_locked FROM {lock}{}", if hold { " FOR UPDATE" } else { "" });
    let states: Vec<Option<i32>> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::db::failed("could not read Knex's lock table"))?;
    if states.contains(&Some(1)) {
        return Err(Error::unavailable(format!(
            "{}_lock says a Knex migration is running (is_locked = 1); nothing was recorded",
            theirs.shown()
        ))
        .hint(format!(
            "wait for it to finish and adopt again. If no Knex run is active (one crashed), release it with \
             `UPDATE {lock} SET is_locked = 0` (what `knex migrate:unlock` does), then adopt"
        )));
    }
    Ok(())
}

fn refuse_blocking(mapping: &Mapping, tool: Tool, theirs: &TheirTable) -> Result<()> {
    let blocking = mapping.blocking();
    if blocking.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = blocking
        .iter()
        .map(|l| {
            let who = l.theirs.clone().or(l.version.map(|v| v.to_string())).unwrap_or_default();
            format!("  - {} {who}: {}", l.verdict.as_str(), l.note)
        })
        .collect();
    let hint = match tool {
        Tool::Knex => {
            "convert each Knex migration to a SQL file with the same name stem (20240101_x.js -> 20240101_x.sql); \
             if you folded old ones into one baseline file, pass --baseline VERSION"
        }
        Tool::Drizzle => {
            "restore the files as they were applied (`git log -p` on the folder), and point --source at the folder \
             drizzle-orm migrated from"
        }
        Tool::Sqlx => {
            "restore the files as they were applied (sqlx compares the same SHA-384), and point --source at the \
             folder `sqlx migrate run` used"
        }
        Tool::Prisma => {
            "restore the files as they were applied (Prisma keeps their SHA-256), settle failed migrations with \
             `prisma migrate resolve`, and point --source at the prisma/migrations folder Prisma used"
        }
        Tool::Flyway => {
            "restore the files as they were applied (Flyway keeps their CRC32), settle failed rows with `flyway \
             repair`, and point --source at the Flyway location"
        }
        Tool::Diesel | Tool::Dbmate | Tool::GolangMigrate | Tool::Goose => {
            "point --source at the folder the tool migrated from: every version in its table must have a file there"
        }
    };
    Err(Error::failed(format!(
        "{} row{} of {} cannot be adopted; nothing was recorded:\n{}",
        blocking.len(),
        if blocking.len() == 1 { "" } else { "s" },
        theirs.shown(),
        list.join("\n")
    ))
    .hint(hint))
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
