//! drizzle-kit output folders, read as they are, so a Drizzle project switches without
//! converting a file.
//!
//! Two layouts exist. drizzle-kit 0.x writes `meta/_journal.json` (entries `{ idx, when, tag,
//! breakpoints }`) beside `<tag>.sql` files; the journal, not the directory listing, is the
//! list of migrations, and a migration's version here is its `idx`. drizzle-kit v1 writes one
//! folder per migration, `<YYYYMMDDHHMMSS>_<name>/migration.sql`, and the version is the
//! 14-digit timestamp. In both, statements are separated by `--> statement-breakpoint` lines
//! and are sent one by one, as drizzle-orm does, inside the migration's one transaction.
//!
//! Each migration also carries what drizzle-orm records for it in `__drizzle_migrations`
//! (`created_at` and the SHA-256 of the file), which is what `migrate adopt --from drizzle`
//! matches rows against.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::migrate::script::{Format, Loaded, Migration, Problem, Script, read_regular};

pub const JOURNAL: &str = "meta/_journal.json";
pub const BREAKPOINT: &str = "--> statement-breakpoint";

/// What drizzle-orm writes to `__drizzle_migrations` for one migration.
pub use crate::migrate::script::DrizzleEntry as Entry;

/// Which drizzle-kit layout a folder has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Journal,
    Folders,
}

/// The drizzle-kit layout of `dir`, if it has one.
pub fn layout(dir: &Path) -> Option<Layout> {
    if dir.join(JOURNAL).is_file() {
        return Some(Layout::Journal);
    }
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .any(|e| {
            folder_name(&e.file_name().to_string_lossy()).is_some()
                && e.path().join("migration.sql").is_file()
        })
        .then_some(Layout::Folders)
}

#[derive(Debug, Deserialize)]
struct Journal {
    dialect: Option<String>,
    entries: Vec<JournalEntry>,
}

#[derive(Debug, Deserialize)]
struct JournalEntry {
    idx: i64,
    when: i64,
    tag: String,
    #[serde(default = "yes")]
    breakpoints: bool,
}

fn yes() -> bool {
    true
}

/// The byte ranges of the statements between breakpoint markers; blank pieces are dropped.
/// Pure.
pub fn split(sql: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut push = |range: Range<usize>| {
        if !sql[range.clone()].trim().is_empty() {
            ranges.push(range);
        }
    };
    for (at, _) in sql.match_indices(BREAKPOINT) {
        push(start..at);
        start = at + BREAKPOINT.len();
    }
    push(start..sql.len());
    if ranges.is_empty() {
        ranges.push(0..sql.len());
    }
    ranges
}

/// `20240101120000_create_users` → (version, description, created_at in epoch ms). Pure.
pub fn folder_name(name: &str) -> Option<(i64, String, i64)> {
    let (stamp, rest) = name.split_at_checked(14)?;
    let description = rest.strip_prefix('_')?;
    if !stamp.bytes().all(|b| b.is_ascii_digit()) || description.is_empty() {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").ok()?;
    Some((stamp.parse().ok()?, description.replace('_', " "), at.and_utc().timestamp_millis()))
}

/// The description of a 0.x tag: `0007_brave_hulk` → `brave hulk`. Pure.
fn tag_description(tag: &str) -> String {
    match tag.split_once('_') {
        Some((prefix, rest)) if prefix.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() => {
            rest.replace('_', " ")
        }
        _ => tag.replace('_', " "),
    }
}

fn migration(
    version: i64,
    description: String,
    path: PathBuf,
    bytes: Vec<u8>,
    name: String,
    created_at: i64,
    breakpoints: bool,
) -> Result<Migration, Problem> {
    let hash = hex::encode(Sha256::digest(&bytes));
    let mut up =
        Script::new(path.clone(), bytes).map_err(|message| Problem { path: path.clone(), message })?;
    if breakpoints {
        up.statements = split(&up.sql);
    }
    let up = up.settle(Format::Drizzle).map_err(|message| Problem { path, message })?;
    Ok(Migration { version, description, up, down: None, drizzle: Some(Entry { name, created_at, hash }) })
}

/// The migrations of a drizzle-kit folder, or every problem in it. The outer error is for a
/// folder that cannot be read at all; the second value lists files drizzle-orm would ignore.
pub fn load(dir: &Path) -> Result<Loaded> {
    match layout(dir) {
        Some(Layout::Journal) => load_journal(dir),
        Some(Layout::Folders) => load_folders(dir),
        None => Err(Error::input(format!(
            "{} is not a drizzle-kit folder: it has no {JOURNAL} and no <YYYYMMDDHHMMSS>_<name>/migration.sql folders",
            dir.display()
        ))
        .hint("point --source at drizzle-kit's `out` folder, or drop --format drizzle to read plain .sql files")),
    }
}

fn load_journal(dir: &Path) -> Result<Loaded> {
    let path = dir.join(JOURNAL);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
    let journal: Journal = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => {
            let message = format!("line {} column {}: {e}", e.line(), e.column());
            return Ok(Err(vec![Problem { path, message: format!("not a drizzle-kit journal: {message}") }]));
        }
    };
    // drizzle-kit before 0.21 wrote `pg` and never rewrites the field; drizzle-orm ignores it.
    if let Some(dialect) = journal.dialect.as_deref().filter(|d| !matches!(*d, "postgresql" | "pg")) {
        return Ok(Err(vec![Problem {
            path,
            message: format!(
                "the journal is for dialect `{dialect}`; shipgate migrates PostgreSQL (`postgresql`)"
            ),
        }]));
    }
    let mut problems = Vec::new();
    let mut migrations: BTreeMap<i64, Migration> = BTreeMap::new();
    for entry in journal.entries {
        let file = dir.join(format!("{}.sql", entry.tag));
        if migrations.contains_key(&entry.idx) {
            problems.push(Problem {
                path: path.clone(),
                message: format!("idx {} appears twice (second time for `{}`)", entry.idx, entry.tag),
            });
            continue;
        }
        let bytes = match read_regular(&file) {
            Ok(bytes) => bytes,
            Err(message) => {
                problems.push(Problem {
                    path: file,
                    message: format!("named by the journal (idx {}) but {message}", entry.idx),
                });
                continue;
            }
        };
        let description = tag_description(&entry.tag);
        match migration(entry.idx, description, file, bytes, entry.tag, entry.when, entry.breakpoints) {
            Ok(m) => {
                migrations.insert(m.version, m);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    // A stray .sql file the journal does not list is left to the unread-files check, which
    // refuses it: most likely it is a migration someone wrote by hand and expects to run.
    Ok(Ok((migrations.into_values().collect(), Vec::new())))
}

fn load_folders(dir: &Path) -> Result<Loaded> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::input(format!("cannot list {}: {e}", dir.display())))?;
    let mut problems = Vec::new();
    let mut by_version: BTreeMap<i64, Vec<Migration>> = BTreeMap::new();
    for entry in entries.flatten() {
        let file = entry.path().join("migration.sql");
        if !file.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, description, created_at)) = folder_name(&name) else {
            problems.push(Problem {
                path: entry.path(),
                message:
                    "a migration folder's name must be <YYYYMMDDHHMMSS>_<name> (a valid UTC date and time)"
                        .to_string(),
            });
            continue;
        };
        let bytes = match read_regular(&file) {
            Ok(bytes) => bytes,
            Err(message) => {
                problems.push(Problem { path: file, message });
                continue;
            }
        };
        match migration(version, description, file, bytes, name, created_at, true) {
            Ok(m) => by_version.entry(version).or_default().push(m),
            Err(problem) => problems.push(problem),
        }
    }
    let mut migrations = Vec::new();
    for (version, mut ms) in by_version {
        if ms.len() > 1 {
            let names: Vec<String> =
                ms.iter().filter_map(|m| m.drizzle.as_ref().map(|d| d.name.clone())).collect();
            for m in &ms {
                problems.push(Problem {
                    path: m.up.path.clone(),
                    message: format!(
                        "timestamp {version} is used by {} folders ({}); give one of them a new timestamp",
                        ms.len(),
                        names.join(", ")
                    ),
                });
            }
            continue;
        }
        migrations.push(ms.remove(0));
    }
    if problems.is_empty() {
        Ok(Ok((migrations, Vec::new())))
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Err(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_breakpoints() {
        let cases: [(&str, Vec<&str>); 5] = [
            ("SELECT 1;", vec!["SELECT 1;"]),
            (
                "CREATE TYPE r AS ENUM('a');--> statement-breakpoint\nCREATE TABLE t (x r);\n",
                vec!["CREATE TYPE r AS ENUM('a');", "\nCREATE TABLE t (x r);\n"],
            ),
            ("A;\n--> statement-breakpoint\nB;", vec!["A;\n", "\nB;"]),
            ("A;--> statement-breakpoint\n--> statement-breakpoint\n", vec!["A;"]),
            ("", vec![""]),
        ];
        for (sql, expected) in cases {
            let got: Vec<&str> = split(sql).into_iter().map(|r| &sql[r]).collect();
            assert_eq!(got, expected, "{sql:?}");
        }
    }

    #[test]
    fn v1_folder_names() {
        assert_eq!(
            folder_name("20261121145629_create_users"),
            Some((20261121145629, "create users".into(), 1_795_272_989_000))
        );
        for bad in [
            "2026112114562_x",
            "20261121145629",
            "20261121145629_",
            "20261321145629_x",
            "abcdefghijklmn_x",
            "meta",
        ] {
            assert_eq!(folder_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_become_descriptions() {
        assert_eq!(tag_description("0007_brave_hulk"), "brave hulk");
        assert_eq!(tag_description("custom"), "custom");
    }
}
