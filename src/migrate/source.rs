//! Reading a migrations directory into a validated, ordered set.
//!
//! The format is sqlx's, so sqlx projects switch without renaming anything:
//! `<version>_<description>.sql`, or `<version>_<description>.up.sql` with an optional
//! matching `.down.sql`. Every problem in the directory is collected and reported at once,
//! before any connection is opened: a deploy should fail on the first run with the whole
//! list, not once per typo.
//!
//! A drizzle-kit output folder is read as it is (see `migrate::drizzle`); which format a
//! folder is in is detected from its layout, or forced with `--format`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::migrate::checksum;
use crate::migrate::directives::{self, Directives};
use crate::migrate::drizzle;

/// How a migrations folder is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<version>_<description>.sql` files (sqlx's layout, and shipgate's own).
    Sqlx,
    /// A drizzle-kit output folder: `meta/_journal.json` with `NNNN_tag.sql` files (0.x),
    /// or `<timestamp>_<name>/migration.sql` folders (v1).
    Drizzle,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Sqlx => "sqlx",
            Format::Drizzle => "drizzle",
        }
    }
}

/// One SQL script (an up or a down).
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub sql: String,
    /// Byte ranges of `sql` sent to the server one after the other: the whole file, or the
    /// pieces between drizzle-kit's `--> statement-breakpoint` markers.
    pub statements: Vec<Range<usize>>,
    pub directives: Directives,
    pub checksum: Vec<u8>,
    pub checksum_normalized: Vec<u8>,
}

impl Script {
    /// Parse a file's text into a script run as one statement batch. Errors are for the file.
    pub fn new(path: PathBuf, bytes: Vec<u8>) -> Result<Script, String> {
        let sql = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            format!("not valid UTF-8 (first bad byte at offset {at}); save the file as UTF-8")
        })?;
        let directives = directives::parse(&sql)?;
        Ok(Script {
            path,
            checksum: checksum::raw(sql.as_bytes()),
            checksum_normalized: checksum::normalized(&sql),
            statements: std::iter::once(0..sql.len()).collect(),
            sql,
            directives,
        })
    }

    /// The statements as text, in order.
    pub fn statement_texts(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(|r| &self.sql[r.clone()])
    }
}

/// One versioned migration, with its optional down script.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    pub up: Script,
    pub down: Option<Script>,
    /// What drizzle-orm records for this migration, when it comes from a drizzle-kit folder.
    pub drizzle: Option<drizzle::Entry>,
}

/// A directory's migrations in version order.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub dir: PathBuf,
    pub format: Format,
    pub migrations: Vec<Migration>,
}

impl MigrationSet {
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.binary_search_by_key(&version, |m| m.version).ok().map(|i| &self.migrations[i])
    }
}

/// Which role a file plays, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `V_desc.sql`: up only.
    Simple,
    /// `V_desc.up.sql`.
    Up,
    /// `V_desc.down.sql`.
    Down,
}

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub version: i64,
    pub description: String,
    pub role: Role,
}

/// What a directory entry's name says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A migration file.
    Migration(FileName),
    /// Not a `.sql` file: ignored with a warning.
    NotSql,
    /// Hidden files (`.gitkeep`): ignored silently.
    Hidden,
}

/// A problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Classify a file name. Pure.
pub fn parse_name(name: &str) -> Result<NameKind, String> {
    if name.starts_with('.') {
        return Ok(NameKind::Hidden);
    }
    let (stem, role) = if let Some(s) = name.strip_suffix(".up.sql") {
        (s, Role::Up)
    } else if let Some(s) = name.strip_suffix(".down.sql") {
        (s, Role::Down)
    } else if let Some(s) = name.strip_suffix(".sql") {
        (s, Role::Simple)
    } else {
        return Ok(NameKind::NotSql);
    };
    let expected = "expected <version>_<description>.sql, .up.sql or .down.sql, \
                    with a positive integer version (e.g. 20240101120000_create_users.sql)";
    let Some((version, description)) = stem.split_once('_') else {
        return Err(format!("unparseable name: {expected}"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unparseable name: version `{version}` is not a number; {expected}"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| format!("unparseable name: version `{version}` is too large for a 64-bit integer"))?;
    if version == 0 {
        return Err(format!("unparseable name: version must be positive; {expected}"));
    }
    if description.is_empty() {
        return Err(format!("unparseable name: the description is empty; {expected}"));
    }
    Ok(NameKind::Migration(FileName { version, description: description.replace('_', " "), role }))
}

/// A folder's migrations in version order, and the files ignored in it; or every problem.
pub type Loaded = std::result::Result<(Vec<Migration>, Vec<PathBuf>), Vec<Problem>>;

/// A file as read from disk, before validation.
#[derive(Debug, Clone)]
pub struct RawFile {
    pub path: PathBuf,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Validate and assemble files into migrations. Pure; all problems are returned together.
/// The second value lists files ignored because they are not `.sql`.
pub fn assemble(files: Vec<RawFile>) -> Loaded {
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let mut ups: BTreeMap<i64, Vec<(FileName, Script)>> = BTreeMap::new();
    let mut downs: BTreeMap<i64, Vec<(FileName, Script)>> = BTreeMap::new();

    for file in files {
        let problem = |message: String| Problem { path: file.path.clone(), message };
        let name = match parse_name(&file.name) {
            Ok(NameKind::Migration(name)) => name,
            Ok(NameKind::NotSql) => {
                ignored.push(file.path.clone());
                continue;
            }
            Ok(NameKind::Hidden) => continue,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        let script = match Script::new(file.path.clone(), file.bytes) {
            Ok(script) => script,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        let bucket = if name.role == Role::Down { &mut downs } else { &mut ups };
        bucket.entry(name.version).or_default().push((name, script));
    }

    for (version, files) in ups.iter().chain(downs.iter()) {
        if files.len() > 1 {
            for (_, script) in files {
                let others: Vec<String> = files
                    .iter()
                    .filter(|(_, s)| s.path != script.path)
                    .map(|(_, s)| file_name(&s.path))
                    .collect();
                problems.push(Problem {
                    path: script.path.clone(),
                    message: format!(
                        "duplicate version {version} (also used by {}); give one of them a new version",
                        others.join(", ")
                    ),
                });
            }
        }
    }

    let mut migrations = Vec::new();
    for (version, mut up_files) in ups {
        if up_files.len() > 1 {
            continue;
        }
        let (name, up) = up_files.remove(0);
        let down = match downs.remove(&version) {
            None => None,
            Some(d) if d.len() > 1 => continue,
            Some(mut d) => {
                let (down_name, down) = d.remove(0);
                if name.role == Role::Simple {
                    problems.push(Problem {
                        path: down.path.clone(),
                        message: format!(
                            "a .down.sql needs its up script named .up.sql, but version {version} is {}; rename it to {}",
                            file_name(&up.path),
                            file_name(&up.path).replace(".sql", ".up.sql")
                        ),
                    });
                    continue;
                }
                if down_name.description != name.description {
                    problems.push(Problem {
                        path: down.path.clone(),
                        message: format!(
                            "description `{}` does not match its up script {}",
                            down_name.description,
                            file_name(&up.path)
                        ),
                    });
                    continue;
                }
                Some(down)
            }
        };
        migrations.push(Migration { version, description: name.description, up, down, drizzle: None });
    }
    for (version, files) in downs {
        if files.len() == 1 {
            problems.push(Problem {
                path: files[0].1.path.clone(),
                message: format!("a .down.sql without its .up.sql (no up script has version {version})"),
            });
        }
    }

    if problems.is_empty() {
        Ok((migrations, ignored))
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        problems.dedup();
        Err(problems)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Which format `dir` is in: drizzle when it has drizzle-kit's layout, else sqlx.
pub fn detect(dir: &Path) -> Format {
    if drizzle::layout(dir).is_some() { Format::Drizzle } else { Format::Sqlx }
}

/// Read and validate a directory, in the given format or the detected one. Any problem is an
/// input error (exit 2) listing them all.
pub fn load(dir: &Path, format: Option<Format>) -> Result<MigrationSet> {
    let format = format.unwrap_or_else(|| detect(dir));
    let (migrations, ignored) = match format {
        Format::Sqlx => assemble(read_files(dir)?),
        Format::Drizzle => drizzle::load(dir)?,
    }
    .map_err(|problems| problems_error(dir, format, &problems))?;
    for path in ignored {
        tracing::warn!("ignoring {}: not a .sql migration file", path.display());
    }
    Ok(MigrationSet { dir: dir.to_path_buf(), format, migrations })
}

/// The top-level files of `dir`.
fn read_files(dir: &Path) -> Result<Vec<RawFile>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::input(format!("cannot read the migrations directory {}: {e}", dir.display()))
            .hint("pass --source DIR (or SHIPGATE_SOURCE) pointing at the folder of .sql files")
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(format!("cannot list {}: {e}", dir.display())))?;
        let path = entry.path();
        // Sub-folders are other migration sets (master/, tenant/) or unrelated; never ours.
        if path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes =
            std::fs::read(&path).map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
        files.push(RawFile { path, name, bytes });
    }
    Ok(files)
}

fn problems_error(dir: &Path, format: Format, problems: &[Problem]) -> Error {
    let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    let (what, hint) = match format {
        Format::Sqlx => (
            "migrations directory",
            "fix the files listed above; names are <version>_<description>.sql (or .up.sql/.down.sql)",
        ),
        Format::Drizzle => (
            "drizzle-kit migrations folder",
            "fix the folder listed above (regenerate it with drizzle-kit, or restore the files its journal names); \
             --format sqlx reads the folder as plain <version>_<description>.sql files instead",
        ),
    };
    Error::input(format!(
        "{} problem{} in {what} {}; nothing was run:\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        dir.display(),
        list.join("\n")
    ))
    .hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, sql: &str) -> RawFile {
        RawFile { path: PathBuf::from(name), name: name.to_string(), bytes: sql.as_bytes().to_vec() }
    }

    #[test]
    fn names() {
        let m = |version, description: &str, role| {
            Ok(NameKind::Migration(FileName { version, description: description.into(), role }))
        };
        let cases = [
            ("1_init.sql", m(1, "init", Role::Simple)),
            ("20240101120000_create_users.up.sql", m(20240101120000, "create users", Role::Up)),
            ("0002_drop_x.down.sql", m(2, "drop x", Role::Down)),
            ("README.md", Ok(NameKind::NotSql)),
            (".gitkeep", Ok(NameKind::Hidden)),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_name(name), expected, "{name}");
        }
        for bad in [
            "init.sql",
            "v1_init.sql",
            "0_init.sql",
            "12.sql",
            "1_.sql",
            "99999999999999999999_x.sql",
            "-1_x.sql",
        ] {
            assert!(parse_name(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn assembles_in_version_order_with_downs() {
        let (set, ignored) = assemble(vec![
            raw("10_b.up.sql", "SELECT 2;"),
            raw("2_a.sql", "-- shipgate:no-transaction\nSELECT 1;"),
            raw("10_b.down.sql", "SELECT 3;"),
            raw("notes.txt", "x"),
        ])
        .unwrap();
        assert_eq!(set.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2, 10]);
        assert!(set[0].up.directives.no_transaction);
        assert!(set[0].down.is_none());
        assert_eq!(set[1].down.as_ref().unwrap().sql, "SELECT 3;");
        assert_eq!(ignored, vec![PathBuf::from("notes.txt")]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut bad_utf8 = raw("5_latin1.sql", "");
        bad_utf8.bytes = vec![b'S', 0xff, b'X'];
        let problems = assemble(vec![
            raw("1_a.sql", "SELECT 1;"),
            raw("1_b.sql", "SELECT 1;"),
            raw("2_orphan.down.sql", "SELECT 1;"),
            raw("three.sql", "SELECT 1;"),
            raw("4_typo.sql", "-- shipgate:no-transacton\nSELECT 1;"),
            bad_utf8,
            raw("6_c.sql", "SELECT 1;"),
            raw("6_c.down.sql", "SELECT 1;"),
            raw("7_d.up.sql", "SELECT 1;"),
            raw("7_e.down.sql", "SELECT 1;"),
        ])
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            ("1_a.sql", "duplicate version 1 (also used by 1_b.sql)"),
            ("1_b.sql", "duplicate version 1 (also used by 1_a.sql)"),
            ("2_orphan.down.sql", "without its .up.sql"),
            ("three.sql", "unparseable name"),
            ("4_typo.sql", "line 1: unknown directive"),
            ("5_latin1.sql", "not valid UTF-8 (first bad byte at offset 1)"),
            ("6_c.down.sql", "rename it to 6_c.up.sql"),
            ("7_e.down.sql", "does not match its up script 7_d.up.sql"),
        ];
        assert_eq!(text.len(), expect.len(), "{text:#?}");
        for (file, needle) in expect {
            assert!(
                text.iter().any(|t| t.starts_with(file) && t.contains(needle)),
                "no problem `{needle}` for {file} in {text:#?}"
            );
        }
    }
}
