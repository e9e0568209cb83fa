//! Adopting another tool's history, on one connection: read their table inside one
//! transaction under the caller's lock, map it (`super::map`, pure), and write our rows only
//! when nothing blocks. Used by `migrate adopt` for one schema and by `tenants adopt` for
//! every tenant schema with the fleet workers.

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::{Line, Mapping, Tool, Verdict};
use crate::db::{error_text, quote_ident};
use crate::error::{Error, Result};
use crate::migrate::history::{self, HistoryTable, NewRow, Writer};
use crate::migrate::plan::{ORIGIN_ADOPT, ORIGIN_ADOPT_NO_SOURCE};
use crate::migrate::source::{Format, MigrationSet};

/// What to adopt: `migrate adopt` / `tenants adopt`, validated.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    pub tool: Tool,
    /// `[schema.]name` as given; the tool's default when `None`. Unqualified names are looked
    /// up in the schema adopted into.
    pub table: Option<String>,
    pub baseline: Option<i64>,
    pub dry_run: bool,
}

/// One adoption into one history table.
pub struct Request<'a> {
    pub options: &'a AdoptOptions,
    /// Where their table was looked for, for the refusal when it is missing.
    pub place: &'a str,
    pub set: &'a MigrationSet,
    pub table: &'a HistoryTable,
    pub by: &'a Writer<'a>,
}

/// Flag combinations that cannot work, before connecting.
pub fn check(options: &AdoptOptions, set: &MigrationSet) -> Result<()> {
    let (tool, baseline) = (options.tool, options.baseline);
    let dir = set.dir.display();
    if tool == Tool::Prisma && set.format != Format::Prisma {
        return Err(Error::input(format!(
            "--from prisma needs the Prisma migrations folder as the source, but {dir} is read as {}",
            set.format.name()
        ))
        .hint("pass --source prisma/migrations (the folder with migration_lock.toml): Prisma's rows name its folders"));
    }
    if tool == Tool::Drizzle && set.format != Format::Drizzle {
        return Err(Error::input(format!(
            "--from drizzle needs the drizzle-kit folder as the source, but {dir} holds plain .sql files"
        ))
        .hint("pass --source pointing at drizzle-kit's `out` folder (the one with meta/_journal.json): its journal says which row is which file"));
    }
    if let Some(base) = baseline {
        if tool != Tool::Knex {
            return Err(Error::input(format!(
                "--baseline is for Knex histories; {} rows always name a file",
                tool.name()
            )));
        }
        if set.get(base).is_none() {
            return Err(Error::input(format!(
                "--baseline {base} is not the version of any migration in {dir}"
            ))
            .hint("run `shipgate migrate status` to list the versions"));
        }
    }
    Ok(())
}

/// Read, map and (unless a dry run, or blocked) write, in one transaction. `on_line` sees
/// every line of the mapping before anything is decided. Returns the versions recorded (on a
/// dry run: the versions that would be).
pub async fn adopt(
    conn: &mut PgConnection,
    req: &Request<'_>,
    on_line: &mut dyn FnMut(&Line),
) -> Result<Vec<i64>> {
    let tool = req.options.tool;
    let theirs = TheirTable::resolve(tool, req.options.table.as_deref(), &req.table.schema);
    if !table_exists(conn, &theirs.qualified()).await? {
        return Err(Error::input(format!(
            "there is no {} history table {} in {}",
            tool.name(),
            theirs.shown(),
            req.place
        ))
        .hint(table_hint(tool)));
    }
    sqlx::raw_sql("BEGIN")
        .execute(&mut *conn)
        .await
        .map_err(crate::db::failed("could not start a transaction"))?;
    let result = in_transaction(conn, req, &theirs, on_line).await;
    let commit = !req.options.dry_run && result.as_ref().is_ok_and(|written| !written.is_empty());
    let ended = sqlx::raw_sql(if commit { "COMMIT" } else { "ROLLBACK" }).execute(&mut *conn).await;
    let written = result?;
    ended.map_err(crate::db::failed("could not commit the adopted history; nothing was recorded"))?;
    Ok(written)
}

/// Their history table, `[schema.]name`, with unqualified names in our schema.
struct TheirTable {
    schema: String,
    name: String,
}

impl TheirTable {
    /// `table` as given (`[schema.]name`), else the tool's default, in `our_schema` when unqualified.
    fn resolve(tool: Tool, table: Option<&str>, our_schema: &str) -> TheirTable {
        let text = table.unwrap_or(tool.default_table());
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

async fn in_transaction(
    conn: &mut PgConnection,
    req: &Request<'_>,
    theirs: &TheirTable,
    on_line: &mut dyn FnMut(&Line),
) -> Result<Vec<i64>> {
    let (tool, table, dry_run) = (req.options.tool, req.table, req.options.dry_run);
    if tool == Tool::Knex {
        check_knex_lock(conn, theirs, !dry_run).await?;
    }
    // Inside the transaction, so a refused adoption leaves not even an empty table behind.
    if !dry_run {
        history::ensure(&mut *conn, table)
            .await
            .map_err(crate::db::failed("could not create shipgate's history table"))?;
    }
    let sql =
        format!("SELECT to_jsonb(t)::text FROM {} t ORDER BY t.{}", theirs.qualified(), tool.order_by());
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::db::failed("could not read their history table"))?;
    let their_rows = rows
        .iter()
        .map(|r| serde_json::from_str(r).map_err(|e| e.to_string()).and_then(|v| super::their_row(tool, &v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::input(format!(
                "{} does not look like a {} history table: {e}",
                theirs.shown(),
                tool.name()
            ))
            .hint(table_hint(tool))
        })?;
    let ours = history::load(&mut *conn, table)
        .await
        .map_err(crate::db::failed("could not read shipgate's history"))?;
    let mapping =
        super::map(tool, req.set, &their_rows, &ours, super::Options { baseline: req.options.baseline });
    for line in &mapping.lines {
        on_line(line);
    }
    warn_skipped(&mapping);
    refuse_blocking(&mapping, tool, theirs)?;
    if dry_run {
        return Ok(mapping.to_write().filter_map(|l| l.version).collect());
    }
    let mut written = Vec::new();
    for line in mapping.to_write() {
        let version = line.version.expect("lines to write have a version");
        let (description, checksum, normalized, origin, phase) = match req.set.get(version) {
            Some(m) if line.verdict == Verdict::Match => (
                m.description.as_str(),
                m.up.checksum.as_slice(),
                m.up.checksum_normalized(),
                ORIGIN_ADOPT,
                Some(m.phase().name()),
            ),
            _ => (line.description.as_str(), &[][..], &[][..], ORIGIN_ADOPT_NO_SOURCE, None),
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
            phase,
        };
        history::insert(&mut *conn, table, &row, req.by).await.map_err(|e| {
            Error::failed(format!(
                "could not record version {version}: {}; nothing was recorded",
                error_text(&e)
            ))
        })?;
        written.push(version);
    }
    Ok(written)
}

fn warn_skipped(mapping: &Mapping) {
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
