//! Reading another tool's history into ours: which of their rows is which of our migrations,
//! and whether the files still say what was applied. Pure; `apply` does the I/O.
//!
//! Each tool identifies a migration differently (research: migration-runner-anchors §4):
//! Knex by file name, with no checksum; Drizzle by the journal's `when` (0.x) or the folder
//! name (v1), with a SHA-256 of the file; sqlx by version, with the SHA-384 we use too;
//! Prisma by folder name, with a SHA-256 of `migration.sql`; diesel and dbmate by version
//! alone; goose by version, newest row per version deciding; golang-migrate by one row that
//! holds the current version (everything up to it is applied) and a dirty flag; Flyway by
//! version, replaying its undo, delete and baseline rows, with its CRC32 checksum. The result is
//! one table of lines, the same for all tools, that `--dry-run` prints and the real run
//! writes from. Anything that cannot be matched safely blocks the whole adoption: a
//! wrong history row would make a later `up` skip a migration that never ran, or re-run one
//! that did.

pub mod apply;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::migrate::checksum;
use crate::migrate::plan::AppliedRow;
use crate::migrate::source::{Migration, MigrationSet};

/// The tool whose history is adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    Knex,
    Drizzle,
    Sqlx,
    Prisma,
    Diesel,
    Dbmate,
    GolangMigrate,
    Goose,
    Flyway,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Knex => "knex",
            Tool::Drizzle => "drizzle",
            Tool::Sqlx => "sqlx",
            Tool::Prisma => "prisma",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
        }
    }

    /// Their history table when `--table` is not given; unqualified names are in our schema.
    pub fn default_table(self) -> &'static str {
        match self {
            Tool::Knex => "knex_migrations",
            Tool::Drizzle => "drizzle.__drizzle_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Prisma => "_prisma_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Dbmate | Tool::GolangMigrate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
        }
    }

    /// The column their rows are read in order of.
    pub fn order_by(self) -> &'static str {
        match self {
            Tool::Knex | Tool::Drizzle | Tool::Goose => "id",
            Tool::Sqlx | Tool::Diesel | Tool::Dbmate | Tool::GolangMigrate => "version",
            Tool::Prisma => "started_at",
            Tool::Flyway => "installed_rank",
        }
    }
}

/// One row of their history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TheirRow {
    Knex {
        id: i64,
        name: String,
        batch: Option<i64>,
        at: Option<DateTime<Utc>>,
    },
    Drizzle {
        id: i64,
        hash: String,
        created_at: Option<i64>,
        name: Option<String>,
        at: Option<DateTime<Utc>>,
    },
    Sqlx {
        version: i64,
        description: String,
        success: bool,
        checksum: Vec<u8>,
        at: Option<DateTime<Utc>>,
    },
    Prisma {
        name: String,
        /// Lowercase hex SHA-256 of `migration.sql`.
        checksum: String,
        finished: bool,
        rolled_back: bool,
        at: Option<DateTime<Utc>>,
    },
    Flyway {
        rank: i64,
        /// `None` for repeatable migrations; text, since Flyway versions may be dotted.
        version: Option<String>,
        /// `SQL`, `BASELINE`, `UNDO_SQL`, `DELETE`, `SCHEMA`, ...
        kind: String,
        checksum: Option<i32>,
        success: bool,
        at: Option<DateTime<Utc>>,
    },
    /// diesel, dbmate, goose and golang-migrate: a version, and whether it counts as applied.
    Version {
        version: i64,
        /// goose's `is_applied` (false: a row that records a rollback).
        applied: bool,
        /// golang-migrate's `dirty`: a run stopped half-way.
        dirty: bool,
        at: Option<DateTime<Utc>>,
    },
}

impl TheirRow {
    /// The row as a person finds it in their table.
    pub fn label(&self) -> String {
        match self {
            TheirRow::Knex { id, name, batch, .. } => match batch {
                Some(b) => format!("#{id} {name} (batch {b})"),
                None => format!("#{id} {name}"),
            },
            TheirRow::Drizzle { id, created_at, name, .. } => match (name, created_at) {
                (Some(name), _) => format!("#{id} {name}"),
                (None, Some(c)) => format!("#{id} created_at={c}"),
                (None, None) => format!("#{id} created_at=NULL"),
            },
            TheirRow::Sqlx { version, description, .. } => format!("{version} {description}"),
            TheirRow::Prisma { name, .. } => name.clone(),
            TheirRow::Version { version, dirty: true, .. } => format!("version {version} (dirty)"),
            TheirRow::Version { version, .. } => format!("version {version}"),
            TheirRow::Flyway { rank, version, kind, .. } => {
                format!("#{rank} {kind} {}", version.as_deref().unwrap_or("(repeatable)"))
            }
        }
    }

    fn applied_at(&self) -> Option<DateTime<Utc>> {
        match self {
            TheirRow::Knex { at, .. }
            | TheirRow::Drizzle { at, .. }
            | TheirRow::Sqlx { at, .. }
            | TheirRow::Prisma { at, .. }
            | TheirRow::Version { at, .. }
            | TheirRow::Flyway { at, .. } => *at,
        }
    }
}

/// Their table, as `to_jsonb(row)` returns it: one reader for all three tools, which also
/// tolerates the columns each version of them added (Drizzle v1's `name`, `applied_at`).
pub fn their_row(tool: Tool, row: &serde_json::Value) -> Result<TheirRow, String> {
    let int = |key: &str| row.get(key).and_then(serde_json::Value::as_i64);
    let text = |key: &str| row.get(key).and_then(serde_json::Value::as_str).map(str::to_string);
    // timestamptz comes with its offset; diesel's and goose's `timestamp` without, as UTC.
    let time = |key: &str| {
        text(key).and_then(|t| {
            DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)).ok().or_else(|| {
                chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
            })
        })
    };
    let flag = |key: &str| row.get(key).and_then(serde_json::Value::as_bool);
    // diesel and dbmate keep the version as text.
    let version = |key: &str| -> Result<i64, String> {
        match row.get(key) {
            Some(serde_json::Value::Number(n)) => {
                n.as_i64().ok_or_else(|| format!("version {n} is not an integer"))
            }
            Some(serde_json::Value::String(s)) => {
                s.trim().parse().map_err(|_| format!("a row has version `{s}`, which is not a number"))
            }
            _ => Err(format!("a row has no `{key}` ({row})")),
        }
    };
    let need = |key: &str| format!("a row has no `{key}` ({row})");
    Ok(match tool {
        Tool::Knex => TheirRow::Knex {
            id: int("id").ok_or_else(|| need("id"))?,
            name: text("name").ok_or_else(|| need("name"))?,
            batch: int("batch"),
            at: time("migration_time"),
        },
        // drizzle-orm writes created_at as a bigint; a JSON number either way.
        Tool::Drizzle => TheirRow::Drizzle {
            id: int("id").ok_or_else(|| need("id"))?,
            hash: text("hash").ok_or_else(|| need("hash"))?,
            created_at: int("created_at").or_else(|| text("created_at").and_then(|t| t.parse().ok())),
            name: text("name"),
            at: time("applied_at"),
        },
        Tool::Sqlx => {
            let checksum = text("checksum").ok_or_else(|| need("checksum"))?;
            let checksum = hex::decode(checksum.strip_prefix("\\x").unwrap_or(&checksum))
                .map_err(|e| format!("checksum `{checksum}` is not hex bytea: {e}"))?;
            TheirRow::Sqlx {
                version: int("version").ok_or_else(|| need("version"))?,
                description: text("description").unwrap_or_default(),
                success: row.get("success").and_then(serde_json::Value::as_bool).unwrap_or(true),
                checksum,
                at: time("installed_on"),
            }
        }
        Tool::Prisma => TheirRow::Prisma {
            name: text("migration_name").ok_or_else(|| need("migration_name"))?,
            checksum: text("checksum").ok_or_else(|| need("checksum"))?,
            finished: row.get("finished_at").is_some_and(|v| !v.is_null()),
            rolled_back: row.get("rolled_back_at").is_some_and(|v| !v.is_null()),
            at: time("finished_at"),
        },
        Tool::Diesel => TheirRow::Version {
            version: version("version")?,
            applied: true,
            dirty: false,
            at: time("run_on"),
        },
        Tool::Dbmate => {
            TheirRow::Version { version: version("version")?, applied: true, dirty: false, at: None }
        }
        Tool::GolangMigrate => TheirRow::Version {
            version: version("version")?,
            applied: true,
            dirty: flag("dirty").unwrap_or(false),
            at: None,
        },
        Tool::Goose => TheirRow::Version {
            version: version("version_id")?,
            applied: flag("is_applied").unwrap_or(true),
            dirty: false,
            at: time("tstamp"),
        },
        Tool::Flyway => TheirRow::Flyway {
            rank: int("installed_rank").ok_or_else(|| need("installed_rank"))?,
            version: text("version"),
            kind: text("type").ok_or_else(|| need("type"))?,
            checksum: int("checksum").and_then(|c| i32::try_from(c).ok()),
            success: flag("success").unwrap_or(true),
            at: time("installed_on"),
        },
    })
}

/// Their rows as their tool reads them: goose's newest row per version decides (and version
/// 0 is its bookkeeping row), Prisma's rolled-back rows do not count, and golang-migrate's one
/// row stands for every migration up to its version. Pure.
fn effective(tool: Tool, set: &MigrationSet, theirs: &[TheirRow]) -> Vec<TheirRow> {
    match tool {
        Tool::Goose => {
            let mut newest: BTreeMap<i64, &TheirRow> = BTreeMap::new();
            for row in theirs {
                if let TheirRow::Version { version, .. } = row {
                    newest.insert(*version, row);
                }
            }
            newest
                .into_iter()
                .filter(|(v, row)| *v != 0 && matches!(row, TheirRow::Version { applied: true, .. }))
                .map(|(_, row)| row.clone())
                .collect()
        }
        Tool::Prisma => theirs
            .iter()
            .filter(|r| !matches!(r, TheirRow::Prisma { rolled_back: true, .. }))
            .cloned()
            .collect(),
        Tool::GolangMigrate => {
            let mut out = Vec::new();
            for row in theirs {
                let TheirRow::Version { version: current, dirty, .. } = row else { continue };
                if *dirty {
                    out.push(row.clone());
                    continue;
                }
                out.extend(set.migrations.iter().filter(|m| m.version <= *current).map(|m| {
                    TheirRow::Version { version: m.version, applied: true, dirty: false, at: None }
                }));
                if set.get(*current).is_none() && *current > 0 {
                    out.push(row.clone());
                }
            }
            out
        }
        Tool::Flyway => flyway_effective(set, theirs),
        _ => theirs.to_vec(),
    }
}

/// Flyway's rows replayed in rank order: a versioned row applies, an undo or a `repair`
/// deletion takes it back, a baseline row stands for every version up to its own, and
/// repeatable and schema rows say nothing about versions.
fn flyway_effective(set: &MigrationSet, theirs: &[TheirRow]) -> Vec<TheirRow> {
    let mut applied: BTreeMap<String, TheirRow> = BTreeMap::new();
    let mut baseline: Option<(i64, TheirRow)> = None;
    for row in theirs {
        let TheirRow::Flyway { version: Some(v), kind, .. } = row else { continue };
        match kind.as_str() {
            "SQL" | "JDBC" | "SPRING_JDBC" | "SCRIPT" => {
                applied.insert(v.clone(), row.clone());
            }
            "UNDO_SQL" | "UNDO_JDBC" | "DELETE" => {
                applied.remove(v);
            }
            "BASELINE" => {
                if let Ok(version) = v.parse::<i64>() {
                    baseline = Some((version, row.clone()));
                } else {
                    applied.insert(v.clone(), row.clone());
                }
            }
            _ => {}
        }
    }
    let has_row: std::collections::BTreeSet<i64> = applied.keys().filter_map(|v| v.parse().ok()).collect();
    let mut out: Vec<TheirRow> = applied.into_values().collect();
    if let Some((version, row)) = baseline {
        let at = row.applied_at();
        for m in set.migrations.iter().filter(|m| m.version <= version && !has_row.contains(&m.version)) {
            out.push(TheirRow::Flyway {
                rank: 0,
                version: Some(m.version.to_string()),
                kind: "BASELINE".into(),
                checksum: None,
                success: true,
                at,
            });
        }
    }
    out
}

/// What became of one line of the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Their row is our migration, and the file is what they applied (or, for Knex, cannot
    /// be checked): recorded as applied.
    Match,
    /// Already in our history with the same checksum (a second run): nothing to do.
    Recorded,
    /// Their row is a migration whose file has changed since: blocks.
    Mismatch,
    /// Their row has no file here: blocks.
    Unmatched,
    /// Their row failed (sqlx `success = false`): blocks.
    Failed,
    /// A Knex migration folded into the `--baseline` file: recorded with no source file.
    NoSource,
    /// Our file with no row of theirs: left for `shipgate migrate up`.
    Pending,
    /// Our file older than their newest row, with no row of its own: Drizzle 0.x skipped it
    /// (a branch merged late); left pending, with a warning.
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Recorded => "recorded",
            Verdict::Mismatch => "mismatch",
            Verdict::Unmatched => "unmatched",
            Verdict::Failed => "failed",
            Verdict::NoSource => "no-source",
            Verdict::Pending => "pending",
            Verdict::Skipped => "skipped",
        }
    }

    pub fn blocks(self) -> bool {
        matches!(self, Verdict::Mismatch | Verdict::Unmatched | Verdict::Failed)
    }
}

/// One line of the mapping table: their row (if any) → our version (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub theirs: Option<String>,
    pub version: Option<i64>,
    pub description: String,
    pub verdict: Verdict,
    /// Why, when the verdict needs explaining.
    pub note: String,
    /// When they applied it, carried over into our history.
    #[serde(skip)]
    pub applied_at: Option<DateTime<Utc>>,
}

/// The whole mapping, in our version order (their unmatched rows last).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub lines: Vec<Line>,
}

impl Mapping {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.lines.iter().filter(|l| l.verdict == verdict).count()
    }

    pub fn blocking(&self) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.verdict.blocks()).collect()
    }

    /// The lines the real run writes.
    pub fn to_write(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(|l| matches!(l.verdict, Verdict::Match | Verdict::NoSource) && l.version.is_some())
    }
}

/// What the operator told us beyond the two histories.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The file that replaces Knex migrations with no SQL file of their own.
    pub baseline: Option<i64>,
}

/// Match their rows to our migrations. `ours` is our current history (a second run finds
/// its own rows there and does nothing).
pub fn map(
    tool: Tool,
    set: &MigrationSet,
    theirs: &[TheirRow],
    ours: &[AppliedRow],
    opts: Options,
) -> Mapping {
    let mut claimed: BTreeMap<i64, Line> = BTreeMap::new();
    let mut loose: Vec<Line> = Vec::new();
    let theirs = effective(tool, set, theirs);
    for row in &theirs {
        let line = match tool {
            Tool::Knex => knex_line(set, row, opts),
            Tool::Drizzle => drizzle_line(set, row),
            Tool::Sqlx => sqlx_line(set, row),
            Tool::Prisma => prisma_line(set, row),
            Tool::Diesel | Tool::Dbmate | Tool::GolangMigrate | Tool::Goose => version_line(tool, set, row),
            Tool::Flyway => flyway_line(set, row),
        };
        match line.version {
            Some(v) if line.verdict != Verdict::NoSource => {
                if let Some(first) = claimed.get(&v) {
                    loose.push(Line {
                        verdict: Verdict::Unmatched,
                        note: format!(
                            "a second row for version {v} (the first is {})",
                            first.theirs.clone().unwrap_or_default()
                        ),
                        version: None,
                        ..line
                    });
                } else {
                    claimed.insert(v, line);
                }
            }
            _ => loose.push(line),
        }
    }
    if let (Tool::Knex, Some(base)) = (tool, opts.baseline)
        && let Some(m) = set.get(base)
        && !claimed.contains_key(&base)
    {
        claimed.insert(
            base,
            Line {
                theirs: None,
                version: Some(base),
                description: m.description.clone(),
                verdict: Verdict::Match,
                note: "--baseline: stands for the Knex migrations marked no-source".into(),
                applied_at: None,
            },
        );
    }
    // Drizzle 0.x decides by a high-water mark, so a journal entry at or below it with no row
    // of its own never ran (drizzle-orm#5316).
    let high_water = match tool {
        Tool::Drizzle => theirs
            .iter()
            .filter_map(|r| match r {
                TheirRow::Drizzle { created_at: Some(c), name: None, .. } => Some(*c),
                _ => None,
            })
            .max(),
        _ => None,
    };
    let mut lines: Vec<Line> = Vec::new();
    for m in &set.migrations {
        match claimed.remove(&m.version) {
            Some(line) => lines.push(line),
            None => {
                let skipped =
                    high_water.zip(m.drizzle.as_ref()).is_some_and(|(hw, entry)| entry.created_at <= hw);
                lines.push(Line {
                    theirs: None,
                    version: Some(m.version),
                    description: m.description.clone(),
                    verdict: if skipped { Verdict::Skipped } else { Verdict::Pending },
                    note: if skipped {
                        "older than their newest row, yet never recorded: drizzle-orm skipped it after a late merge; \
                         `shipgate migrate up` will apply it"
                            .into()
                    } else {
                        String::new()
                    },
                    applied_at: None,
                });
            }
        }
    }
    lines.extend(claimed.into_values());
    lines.extend(loose);
    for line in &mut lines {
        if line.verdict == Verdict::Match
            && let Some(v) = line.version
            && let Some(row) = ours.iter().find(|r| r.version == v)
        {
            let same =
                set.get(v).is_some_and(|m| row.success && crate::migrate::plan::checksum_matches(m, row));
            if same {
                line.verdict = Verdict::Recorded;
            } else {
                line.verdict = Verdict::Mismatch;
                line.note = "shipgate's history already has a different row for this version".into();
            }
        }
    }
    Mapping { lines }
}

fn matched(row: &TheirRow, m: &Migration, verdict: Verdict, note: String) -> Line {
    Line {
        theirs: Some(row.label()),
        version: Some(m.version),
        description: m.description.clone(),
        verdict,
        note,
        applied_at: row.applied_at(),
    }
}

fn unmatched(row: &TheirRow, verdict: Verdict, note: String) -> Line {
    Line {
        theirs: Some(row.label()),
        version: None,
        description: String::new(),
        verdict,
        note,
        applied_at: row.applied_at(),
    }
}

/// The name without its extension: `20240101_create_users.ts` → `20240101_create_users`.
pub fn stem(name: &str) -> &str {
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.strip_suffix(".up.sql").unwrap_or(name);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

fn file_stem(m: &Migration) -> String {
    let name = m.up.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    stem(&name).to_string()
}

/// The leading digits of a Knex name, which Knex itself treats as the version.
fn leading_version(name: &str) -> Option<i64> {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|v| *v > 0)
}

fn knex_line(set: &MigrationSet, row: &TheirRow, opts: Options) -> Line {
    let TheirRow::Knex { name, .. } = row else { unreachable!("knex rows only") };
    let wanted = stem(name);
    if let Some(m) = set.migrations.iter().find(|m| file_stem(m) == wanted) {
        return matched(row, m, Verdict::Match, String::new());
    }
    match (opts.baseline, leading_version(name)) {
        (Some(base), Some(v)) if v == base => Line {
            theirs: Some(row.label()),
            version: None,
            description: format!("{wanted} (adopted from knex, no source file)"),
            verdict: Verdict::NoSource,
            note: format!("has the baseline's version, {base}: the baseline's row stands for it"),
            applied_at: row.applied_at(),
        },
        (Some(_), Some(v)) if let Some(other) = set.get(v) => unmatched(
            row,
            Verdict::Unmatched,
            format!("no {wanted}.sql here, and its version {v} belongs to {}", other.up.path.display()),
        ),
        (Some(base), Some(v)) if v < base => Line {
            theirs: Some(row.label()),
            version: Some(v),
            description: format!("{wanted} (adopted from knex, no source file)"),
            verdict: Verdict::NoSource,
            note: format!("folded into the baseline {base}"),
            applied_at: row.applied_at(),
        },
        (Some(base), Some(_)) => unmatched(
            row,
            Verdict::Unmatched,
            format!("no {wanted}.sql here, and it is newer than the baseline {base}"),
        ),
        (Some(_), None) => unmatched(
            row,
            Verdict::Unmatched,
            format!("no {wanted}.sql here, and its name starts with no version number"),
        ),
        (None, _) => unmatched(
            row,
            Verdict::Unmatched,
            format!("no {wanted}.sql (or .up.sql) in the migrations folder"),
        ),
    }
}

fn drizzle_line(set: &MigrationSet, row: &TheirRow) -> Line {
    let TheirRow::Drizzle { hash, created_at, name, .. } = row else { unreachable!("drizzle rows only") };
    // v1 rows carry the folder name; 0.x rows only the journal's `when`.
    let found = set.migrations.iter().find(|m| {
        m.drizzle.as_ref().is_some_and(|d| match name {
            Some(n) => &d.name == n,
            None => Some(d.created_at) == *created_at,
        })
    });
    let Some(m) = found else {
        let note = match (name, created_at) {
            (Some(n), _) => format!("no migration folder named {n}"),
            (None, Some(c)) => format!("no journal entry with when = {c}"),
            (None, None) => "created_at is NULL, so it names no journal entry".into(),
        };
        return unmatched(row, Verdict::Unmatched, note);
    };
    let ours = &m.drizzle.as_ref().expect("found by its drizzle entry").hash;
    sha256_line(row, m, hash, ours)
}

/// A row whose tool keeps the file's SHA-256 (hex): a match, or a mismatch naming both.
fn sha256_line(row: &TheirRow, m: &Migration, theirs: &str, ours: &str) -> Line {
    if ours == theirs {
        matched(row, m, Verdict::Match, String::new())
    } else {
        matched(
            row,
            m,
            Verdict::Mismatch,
            format!(
                "{} changed since it was applied: sha256 {} in the table, {} now",
                m.up.path.display(),
                short(theirs),
                short(ours)
            ),
        )
    }
}

fn sqlx_line(set: &MigrationSet, row: &TheirRow) -> Line {
    let TheirRow::Sqlx { version, success, checksum: theirs, .. } = row else {
        unreachable!("sqlx rows only")
    };
    let Some(m) = set.get(*version) else {
        return unmatched(
            row,
            Verdict::Unmatched,
            format!("no file with version {version} in the migrations folder"),
        );
    };
    if !success {
        return matched(
            row,
            m,
            Verdict::Failed,
            "sqlx recorded it as failed (dirty); fix it with sqlx first".into(),
        );
    }
    if *theirs == m.up.checksum {
        matched(row, m, Verdict::Match, String::new())
    } else {
        matched(
            row,
            m,
            Verdict::Mismatch,
            format!(
                "{} changed since it was applied: sha384 {} in the table, {} now",
                m.up.path.display(),
                checksum::short(theirs),
                checksum::short(&m.up.checksum)
            ),
        )
    }
}

fn prisma_line(set: &MigrationSet, row: &TheirRow) -> Line {
    let TheirRow::Prisma { name, checksum: theirs, finished, .. } = row else {
        unreachable!("prisma rows only")
    };
    let folder = |m: &&Migration| {
        m.up.path.parent().and_then(|p| p.file_name()).is_some_and(|f| f.to_string_lossy() == name.as_str())
    };
    let Some(m) = set.migrations.iter().find(folder) else {
        return unmatched(row, Verdict::Unmatched, format!("no migration folder named {name}"));
    };
    if !finished {
        return matched(
            row,
            m,
            Verdict::Failed,
            "Prisma started it and never finished it (a failed migration); settle it with              `prisma migrate resolve --applied` or `--rolled-back` first"
                .into(),
        );
    }
    sha256_line(row, m, theirs, &hex::encode(Sha256::digest(m.up.sql.as_bytes())))
}

/// diesel, dbmate, goose and golang-migrate rows: by version; none of them keeps a checksum.
fn version_line(tool: Tool, set: &MigrationSet, row: &TheirRow) -> Line {
    let TheirRow::Version { version, dirty, .. } = row else { unreachable!("version rows only") };
    if *dirty {
        return unmatched(
            row,
            Verdict::Failed,
            format!(
                "golang-migrate stopped half-way through version {version} (dirty); check the schema and settle it                  with `migrate force VERSION` first"
            ),
        );
    }
    match set.get(*version) {
        Some(m) => matched(row, m, Verdict::Match, String::new()),
        None => unmatched(
            row,
            Verdict::Unmatched,
            format!("no migration with version {version} in the folder {} migrated from", tool.name()),
        ),
    }
}

fn flyway_line(set: &MigrationSet, row: &TheirRow) -> Line {
    let TheirRow::Flyway { version: Some(version), kind, checksum, success, .. } = row else {
        unreachable!("versioned flyway rows only")
    };
    let Ok(number) = version.parse::<i64>() else {
        return unmatched(
            row,
            Verdict::Unmatched,
            format!("version {version} has parts; shipgate's versions are integers (see `--format flyway`)"),
        );
    };
    let Some(m) = set.get(number) else {
        return unmatched(row, Verdict::Unmatched, format!("no V{number}__ file in the Flyway location"));
    };
    if !success {
        return matched(
            row,
            m,
            Verdict::Failed,
            "Flyway recorded it as failed; settle it with `flyway repair` first".into(),
        );
    }
    let ours = crate::migrate::flyway::checksum(&m.up.sql);
    match checksum {
        Some(theirs) if *theirs != ours => matched(
            row,
            m,
            Verdict::Mismatch,
            format!(
                "{} changed since it was applied: Flyway checksum {theirs} in the table, {ours} now",
                m.up.path.display()
            ),
        ),
        _ if kind == "BASELINE" => matched(row, m, Verdict::Match, "covered by Flyway's baseline".into()),
        _ => matched(row, m, Verdict::Match, String::new()),
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::drizzle::Entry;
    use crate::migrate::source::{Format, Script};
    use std::path::PathBuf;

    fn script(name: &str, sql: &str) -> Script {
        Script::new(PathBuf::from(name), sql.as_bytes().to_vec()).unwrap()
    }

    fn set(files: &[(i64, &str)]) -> MigrationSet {
        let migrations = files
            .iter()
            .map(|(v, name)| Migration {
                version: *v,
                description: stem(name).to_string(),
                up: script(name, &format!("SELECT {v};")),
                down: None,
                drizzle: None,
            })
            .collect();
        MigrationSet {
            dir: PathBuf::from("m"),
            format: Format::Sqlx,
            detected: true,
            files_read: 0,
            migrations,
        }
    }

    fn drizzle_set(entries: &[(i64, i64)]) -> MigrationSet {
        let migrations = entries
            .iter()
            .map(|(idx, when)| {
                let up = script(&format!("{idx:04}_m.sql"), &format!("SELECT {idx};"));
                let hash = format!("hash{idx}");
                Migration {
                    version: *idx,
                    description: "m".into(),
                    up,
                    down: None,
                    drizzle: Some(Entry { name: format!("{idx:04}_m"), created_at: *when, hash }),
                }
            })
            .collect();
        MigrationSet {
            dir: PathBuf::from("drizzle"),
            format: Format::Drizzle,
            detected: true,
            files_read: 0,
            migrations,
        }
    }

    fn knex(id: i64, name: &str) -> TheirRow {
        TheirRow::Knex { id, name: name.into(), batch: Some(1), at: None }
    }

    fn drizzle(id: i64, hash: &str, created_at: i64) -> TheirRow {
        TheirRow::Drizzle { id, hash: hash.into(), created_at: Some(created_at), name: None, at: None }
    }

    fn sqlx(s: &MigrationSet, version: i64, edited: bool, success: bool) -> TheirRow {
        let checksum = if edited { vec![1, 2, 3] } else { s.get(version).unwrap().up.checksum.clone() };
        TheirRow::Sqlx { version, description: "m".into(), success, checksum, at: None }
    }

    /// Each line's version and verdict, in order.
    type Expected = Vec<(Option<i64>, &'static str)>;

    fn verdicts(m: &Mapping) -> Expected {
        m.lines.iter().map(|l| (l.version, l.verdict.as_str())).collect()
    }

    #[test]
    fn knex_rows_match_by_name_without_extension() {
        let s = set(&[(1, "1_users.sql"), (2, "2_posts.up.sql"), (3, "3_tags.sql")]);
        let none = Options::default();
        let base = Options { baseline: Some(5) };
        let s_base = set(&[(5, "5_baseline.sql"), (6, "6_new.sql")]);
        let cases: Vec<(&MigrationSet, Vec<TheirRow>, Options, Expected)> = vec![
            (
                &s,
                vec![knex(1, "1_users.js"), knex(2, "2_posts.ts")],
                none,
                vec![(Some(1), "match"), (Some(2), "match"), (Some(3), "pending")],
            ),
            (
                &s,
                vec![knex(1, "1_users.js"), knex(2, "9_gone.js")],
                none,
                vec![(Some(1), "match"), (Some(2), "pending"), (Some(3), "pending"), (None, "unmatched")],
            ),
            (
                &s_base,
                vec![knex(1, "1_users.js"), knex(2, "4_posts.js")],
                base,
                vec![
                    (Some(5), "match"),
                    (Some(6), "pending"),
                    (Some(1), "no-source"),
                    (Some(4), "no-source"),
                ],
            ),
            (
                &s_base,
                vec![knex(1, "5_last.js")],
                base,
                vec![(Some(5), "match"), (Some(6), "pending"), (None, "no-source")],
            ),
            (
                &s_base,
                vec![knex(1, "6_other.js")],
                base,
                vec![(Some(5), "match"), (Some(6), "pending"), (None, "unmatched")],
            ),
            (
                &s_base,
                vec![knex(1, "7_later.js")],
                base,
                vec![(Some(5), "match"), (Some(6), "pending"), (None, "unmatched")],
            ),
            (
                &s_base,
                vec![knex(1, "init.js")],
                base,
                vec![(Some(5), "match"), (Some(6), "pending"), (None, "unmatched")],
            ),
            (
                &s,
                vec![knex(1, "1_users.js"), knex(2, "1_users.ts")],
                none,
                vec![(Some(1), "match"), (Some(2), "pending"), (Some(3), "pending"), (None, "unmatched")],
            ),
        ];
        for (s, rows, opts, expected) in cases {
            let got = map(Tool::Knex, s, &rows, &[], opts);
            assert_eq!(verdicts(&got), expected, "{rows:?}");
        }
    }

    #[test]
    fn drizzle_rows_match_by_when_and_hash_and_gaps_are_flagged() {
        let s = drizzle_set(&[(0, 100), (1, 300), (2, 200), (3, 400)]);
        let cases: Vec<(Vec<TheirRow>, Expected)> = vec![
            (
                vec![drizzle(1, "hash0", 100), drizzle(2, "hash1", 300)],
                vec![(Some(0), "match"), (Some(1), "match"), (Some(2), "skipped"), (Some(3), "pending")],
            ),
            (
                vec![drizzle(1, "hash0", 100), drizzle(2, "edited", 300)],
                vec![(Some(0), "match"), (Some(1), "mismatch"), (Some(2), "skipped"), (Some(3), "pending")],
            ),
            (
                vec![drizzle(1, "hash0", 100), drizzle(2, "x", 999)],
                vec![
                    (Some(0), "match"),
                    (Some(1), "skipped"),
                    (Some(2), "skipped"),
                    (Some(3), "skipped"),
                    (None, "unmatched"),
                ],
            ),
            (
                vec![],
                vec![(Some(0), "pending"), (Some(1), "pending"), (Some(2), "pending"), (Some(3), "pending")],
            ),
        ];
        for (rows, expected) in cases {
            let got = map(Tool::Drizzle, &s, &rows, &[], Options::default());
            assert_eq!(verdicts(&got), expected, "{rows:?}");
        }
        // v1 rows carry a name and run out of order: no high-water mark.
        let v1 = TheirRow::Drizzle {
            id: 1,
            hash: "hash3".into(),
            created_at: Some(400),
            name: Some("0003_m".into()),
            at: None,
        };
        let got = map(Tool::Drizzle, &s, &[v1], &[], Options::default());
        assert_eq!(
            verdicts(&got),
            vec![(Some(0), "pending"), (Some(1), "pending"), (Some(2), "pending"), (Some(3), "match")]
        );
    }

    #[test]
    fn sqlx_rows_match_by_version_and_checksum() {
        let s = set(&[(1, "1_a.sql"), (2, "2_b.sql"), (3, "3_c.sql")]);
        let cases: Vec<(Vec<TheirRow>, Expected)> = vec![
            (
                vec![sqlx(&s, 1, false, true), sqlx(&s, 2, false, true)],
                vec![(Some(1), "match"), (Some(2), "match"), (Some(3), "pending")],
            ),
            (
                vec![sqlx(&s, 1, false, true), sqlx(&s, 2, true, true)],
                vec![(Some(1), "match"), (Some(2), "mismatch"), (Some(3), "pending")],
            ),
            (
                vec![sqlx(&s, 1, false, false)],
                vec![(Some(1), "failed"), (Some(2), "pending"), (Some(3), "pending")],
            ),
            (
                vec![TheirRow::Sqlx {
                    version: 9,
                    description: "gone".into(),
                    success: true,
                    checksum: vec![],
                    at: None,
                }],
                vec![(Some(1), "pending"), (Some(2), "pending"), (Some(3), "pending"), (None, "unmatched")],
            ),
        ];
        for (rows, expected) in cases {
            let got = map(Tool::Sqlx, &s, &rows, &[], Options::default());
            assert_eq!(verdicts(&got), expected, "{rows:?}");
            assert_eq!(
                got.blocking().is_empty(),
                !expected.iter().any(|(_, v)| ["mismatch", "unmatched", "failed"].contains(v))
            );
        }
    }

    #[test]
    fn a_second_run_finds_its_own_rows() {
        let s = set(&[(1, "1_a.sql"), (2, "2_b.sql")]);
        let row = |v: i64, checksum: Vec<u8>| AppliedRow {
            version: v,
            description: "a".into(),
            checksum_normalized: checksum.clone(),
            checksum,
            success: true,
            applied_at: Utc::now(),
            execution_ms: 0,
            run_id: "r".into(),
            applied_by: "t".into(),
            origin: "adopt".into(),
            statements_done: None,
            phase: None,
        };
        let theirs = vec![sqlx(&s, 1, false, true), sqlx(&s, 2, false, true)];
        let ours = vec![row(1, s.get(1).unwrap().up.checksum.clone()), row(2, vec![9])];
        let got = map(Tool::Sqlx, &s, &theirs, &ours, Options::default());
        assert_eq!(verdicts(&got), vec![(Some(1), "recorded"), (Some(2), "mismatch")]);
        assert_eq!(got.to_write().count(), 0);
    }

    #[test]
    fn rows_read_from_jsonb() {
        let knex_row = serde_json::json!({"id": 3, "name": "20240101_users.js", "batch": 2, "migration_time": "2024-01-01T12:00:00.5+00:00"});
        let TheirRow::Knex { id, name, batch, at } = their_row(Tool::Knex, &knex_row).unwrap() else {
            panic!()
        };
        assert_eq!((id, name.as_str(), batch), (3, "20240101_users.js", Some(2)));
        assert_eq!(at.unwrap().to_rfc3339(), "2024-01-01T12:00:00.500+00:00");
        let v0 = serde_json::json!({"id": 1, "hash": "ab", "created_at": 1700000000000_i64});
        assert_eq!(
            their_row(Tool::Drizzle, &v0).unwrap(),
            TheirRow::Drizzle {
                id: 1,
                hash: "ab".into(),
                created_at: Some(1700000000000),
                name: None,
                at: None
            }
        );
        let sqlx_row = serde_json::json!({"version": 7, "description": "x", "success": true, "checksum": "\\x0aff", "installed_on": null});
        let TheirRow::Sqlx { checksum, .. } = their_row(Tool::Sqlx, &sqlx_row).unwrap() else { panic!() };
        assert_eq!(checksum, vec![0x0a, 0xff]);
        assert!(their_row(Tool::Knex, &serde_json::json!({"id": 1})).unwrap_err().contains("no `name`"));
    }

    #[test]
    fn stems() {
        for (name, expected) in [
            ("20240101_create_users.js", "20240101_create_users"),
            ("20240101_create_users.ts", "20240101_create_users"),
            ("1_a.up.sql", "1_a"),
            ("1_a.sql", "1_a"),
            ("noext", "noext"),
        ] {
            assert_eq!(stem(name), expected);
        }
    }

    fn version_row(version: i64, applied: bool, dirty: bool) -> TheirRow {
        TheirRow::Version { version, applied, dirty, at: None }
    }

    #[test]
    fn version_tools_match_by_version_as_their_tool_reads_its_table() {
        let s = set(&[(1, "1_a.sql"), (2, "2_b.sql"), (3, "3_c.sql")]);
        let cases: Vec<(Tool, Vec<TheirRow>, Expected)> = vec![
            (
                Tool::Diesel,
                vec![version_row(1, true, false), version_row(2, true, false)],
                vec![(Some(1), "match"), (Some(2), "match"), (Some(3), "pending")],
            ),
            (
                Tool::Dbmate,
                vec![version_row(1, true, false), version_row(9, true, false)],
                vec![(Some(1), "match"), (Some(2), "pending"), (Some(3), "pending"), (None, "unmatched")],
            ),
            // goose: version 0 is its own bookkeeping row; the newest row per version decides.
            (
                Tool::Goose,
                vec![
                    version_row(0, true, false),
                    version_row(1, true, false),
                    version_row(2, true, false),
                    version_row(2, false, false),
                ],
                vec![(Some(1), "match"), (Some(2), "pending"), (Some(3), "pending")],
            ),
            // golang-migrate: one row, the current version; everything up to it is applied.
            (
                Tool::GolangMigrate,
                vec![version_row(2, true, false)],
                vec![(Some(1), "match"), (Some(2), "match"), (Some(3), "pending")],
            ),
            (
                Tool::GolangMigrate,
                vec![version_row(2, true, true)],
                vec![(Some(1), "pending"), (Some(2), "pending"), (Some(3), "pending"), (None, "failed")],
            ),
            (
                Tool::GolangMigrate,
                vec![version_row(7, true, false)],
                vec![(Some(1), "match"), (Some(2), "match"), (Some(3), "match"), (None, "unmatched")],
            ),
        ];
        for (tool, rows, expected) in cases {
            let got = map(tool, &s, &rows, &[], Options::default());
            assert_eq!(verdicts(&got), expected, "{tool:?} {rows:?}");
        }
    }

    #[test]
    fn prisma_rows_match_by_folder_and_checksum() {
        let migration = |version: i64, folder: &str| Migration {
            version,
            description: folder.into(),
            up: script(&format!("{folder}/migration.sql"), &format!("SELECT {version};")),
            down: None,
            drizzle: None,
        };
        let mut s = set(&[]);
        s.format = Format::Prisma;
        s.migrations = vec![migration(1, "01_init"), migration(2, "02_more"), migration(3, "03_last")];
        let sum = |v: i64| hex::encode(Sha256::digest(format!("SELECT {v};").as_bytes()));
        let row = |name: &str, checksum: String, finished: bool, rolled_back: bool| TheirRow::Prisma {
            name: name.into(),
            checksum,
            finished,
            rolled_back,
            at: None,
        };
        let rows = vec![
            row("01_init", sum(1), true, false),
            // Rolled back, then applied again: only the second row counts.
            row("02_more", sum(2), false, true),
            row("02_more", "00".repeat(32), true, false),
            row("03_last", sum(3), false, false),
            row("04_gone", sum(4), true, false),
        ];
        let got = map(Tool::Prisma, &s, &rows, &[], Options::default());
        assert_eq!(
            verdicts(&got),
            vec![(Some(1), "match"), (Some(2), "mismatch"), (Some(3), "failed"), (None, "unmatched")]
        );
        let parsed = their_row(
            Tool::Prisma,
            &serde_json::json!({"migration_name": "01_init", "checksum": "ab", "finished_at": "2024-01-01T12:00:00+00:00",
                                "rolled_back_at": null}),
        )
        .unwrap();
        assert!(matches!(parsed, TheirRow::Prisma { finished: true, rolled_back: false, at: Some(_), .. }));
        let diesel = their_row(
            Tool::Diesel,
            &serde_json::json!({"version": "20240101120000", "run_on": "2024-01-01T12:00:00.5"}),
        )
        .unwrap();
        assert!(matches!(diesel, TheirRow::Version { version: 20240101120000, at: Some(_), .. }));
        assert!(
            their_row(Tool::Dbmate, &serde_json::json!({"version": "x1"}))
                .unwrap_err()
                .contains("not a number")
        );
    }
}
