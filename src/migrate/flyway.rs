//! Flyway folders, read as Flyway reads them: `V<version>__<description>.sql` versioned
//! migrations, found at any depth of the location, with `U<version>__<description>.sql` undo
//! scripts as their downs and `V...sql.conf` files whose `executeInTransaction=false` runs a
//! migration outside a transaction (Flyway also does that by itself for a file of statements
//! PostgreSQL refuses in one, which `Script::settle` mirrors).
//!
//! Refused, with every file named: repeatable `R__` scripts (Flyway re-runs them whenever
//! their checksum changes, which a versioned history cannot express), SQL callbacks
//! (`beforeMigrate.sql` and the like, which Flyway runs around other migrations), and dotted
//! versions (`V1.2.3__`): shipgate's versions are integers, and no integer mapping of dotted
//! versions keeps both their order and the versions of files added later.
//!
//! Flyway's checksum is the CRC32 of the file's lines without their line breaks (and without
//! a leading BOM), stored as a signed 32-bit integer; `migrate adopt --from flyway` checks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::migrate::script::{
    Format, Loaded, Migration, Problem, Script, files_under, loaded, one_per_version, read_regular, text_of,
};

/// What a Flyway file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Versioned {
        version: i64,
        description: String,
    },
    Undo {
        version: i64,
        description: String,
    },
    /// Refused: why, in words for the user.
    Unsupported(String),
    /// Not a migration of Flyway's (no `V`/`U`/`R` prefix and `__`).
    Other,
}

/// The SQL callbacks Flyway runs around migrations (its documented event names).
const CALLBACKS: [&str; 8] = [
    "beforeMigrate",
    "afterMigrate",
    "beforeEachMigrate",
    "afterEachMigrate",
    "beforeEachMigrateStatement",
    "afterEachMigrateStatement",
    "afterMigrateError",
    "beforeValidate",
];

/// Classify a file name. Pure.
pub fn parse_name(name: &str) -> Name {
    let Some(stem) = name.strip_suffix(".sql") else { return Name::Other };
    if CALLBACKS.iter().any(|c| stem == *c || stem.starts_with(&format!("{c}__"))) {
        return Name::Unsupported(
            "a Flyway SQL callback: Flyway runs it around other migrations, which shipgate does not; move its \
             SQL into a migration"
                .into(),
        );
    }
    let Some((head, description)) = stem.split_once("__") else { return Name::Other };
    let (kind, version) = head.split_at_checked(1).unwrap_or(("", ""));
    if kind == "R" && version.is_empty() {
        return Name::Unsupported(
            "a repeatable Flyway migration (R__): Flyway re-runs it whenever it changes, which shipgate does \
             not; make each change a versioned migration (V<version>__...)"
                .into(),
        );
    }
    if !matches!(kind, "V" | "U") || version.is_empty() {
        return Name::Other;
    }
    if !version.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'_') {
        return Name::Other;
    }
    if version.contains(['.', '_']) {
        // Padding every part to one width keeps Flyway's numeric order (1.2.10 after 1.3.0
        // would not survive plain concatenation).
        let padded: String = version
            .split(['.', '_'])
            .enumerate()
            .map(|(i, part)| {
                let n = part.trim_start_matches('0');
                if i == 0 { n.to_string() } else { format!("{n:0>3}") }
            })
            .collect();
        return Name::Unsupported(format!(
            "Flyway version `{}` has parts; shipgate's versions are integers, so a dotted version has no \
             order-keeping number (rename every dotted file with its parts padded to one width, e.g. \
             V{padded}__{description}.sql, before the folder's first shipgate run)",
            version.replace('_', ".")
        ));
    }
    let Ok(version) = version.parse::<i64>() else {
        return Name::Unsupported(format!("version `{version}` is too large for a 64-bit integer"));
    };
    let description = description.replace('_', " ");
    if kind == "V" { Name::Versioned { version, description } } else { Name::Undo { version, description } }
}

/// Flyway's checksum of a file's text: CRC32 over its lines without line breaks. Pure.
pub fn checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    for line in text.lines() {
        crc.update(line.as_bytes());
    }
    crc.finalize() as i32
}

/// `executeInTransaction=false` in a script's `.conf` file. Pure.
fn conf_says_no_transaction(conf: &str) -> Result<bool, String> {
    let mut no_transaction = false;
    for (i, line) in conf.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("executeInTransaction", "false")) => no_transaction = true,
            Some(("executeInTransaction", "true")) => no_transaction = false,
            Some((key, _)) => {
                return Err(format!(
                    "line {}: `{key}` is not a setting shipgate knows (known: executeInTransaction)",
                    i + 1
                ));
            }
            None => return Err(format!("line {}: expected key=value", i + 1)),
        }
    }
    Ok(no_transaction)
}

fn script(path: &Path, problems: &mut Vec<Problem>) -> Option<Script> {
    let conf = PathBuf::from(format!("{}.conf", path.display()));
    let no_transaction = if conf.exists() {
        match read_regular(&conf).and_then(text_of).and_then(|t| conf_says_no_transaction(&t)) {
            Ok(flag) => flag,
            Err(message) => {
                problems.push(Problem { path: conf, message });
                return None;
            }
        }
    } else {
        false
    };
    let built =
        read_regular(path).and_then(|bytes| Script::new(path.to_path_buf(), bytes)).and_then(|mut s| {
            s.directives.no_transaction |= no_transaction;
            s.settle(Format::Flyway)
        });
    match built {
        Ok(s) => Some(s),
        Err(message) => {
            problems.push(Problem { path: path.to_path_buf(), message });
            None
        }
    }
}

/// The migrations of a Flyway location.
pub fn load(dir: &Path) -> Result<Loaded> {
    let mut problems = Vec::new();
    let mut ups: BTreeMap<i64, Vec<(String, Script)>> = BTreeMap::new();
    let mut downs: BTreeMap<i64, Vec<Script>> = BTreeMap::new();
    let mut ignored = Vec::new();
    for path in files_under(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match parse_name(&name) {
            Name::Versioned { version, description } => {
                if let Some(s) = script(&path, &mut problems) {
                    ups.entry(version).or_default().push((description, s));
                }
            }
            Name::Undo { version, .. } => {
                if let Some(s) = script(&path, &mut problems) {
                    downs.entry(version).or_default().push(s);
                }
            }
            Name::Unsupported(message) => problems.push(Problem { path, message }),
            Name::Other if name.ends_with(".sql.conf") => {}
            Name::Other if name.ends_with(".sql") => problems.push(Problem {
                path,
                message: "not a Flyway migration name: V<version>__<description>.sql (or U... for its undo)"
                    .into(),
            }),
            Name::Other => ignored.push(path),
        }
    }
    let mut migrations = Vec::new();
    for (version, found) in ups {
        let Some((description, up)) = one_per_version(version, found, |(_, s)| &s.path, &mut problems) else {
            continue;
        };
        let down = match downs.remove(&version) {
            Some(mut d) if d.len() == 1 => Some(d.remove(0)),
            Some(d) => {
                problems.push(Problem {
                    path: d[1].path.clone(),
                    message: format!("version {version} has {} undo scripts", d.len()),
                });
                continue;
            }
            None => None,
        };
        migrations.push(Migration { version, description, up, down, drizzle: None });
    }
    for (version, d) in downs {
        problems.push(Problem {
            path: d[0].path.clone(),
            message: format!("an undo script without its versioned migration (no V{version}__...sql)"),
        });
    }
    Ok(loaded(migrations, ignored, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let v = |version, description: &str| Name::Versioned { version, description: description.into() };
        let cases = [
            ("V1__init.sql", v(1, "init")),
            ("V20240101120000__create_users.sql", v(20240101120000, "create users")),
            ("U3__drop_x.sql", Name::Undo { version: 3, description: "drop x".into() }),
            ("README.md", Name::Other),
            ("1_init.sql", Name::Other),
            ("V1__init.sql.conf", Name::Other),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_name(name), expected, "{name}");
        }
        for (name, needle) in [
            ("R__views.sql", "repeatable"),
            ("V1.2.3__x.sql", "`1.2.3` has parts"),
            ("V1.2.10__x.sql", "e.g. V1002010__x.sql"),
            ("V1_1__x.sql", "`1.1` has parts"),
            ("afterMigrate.sql", "SQL callback"),
            ("beforeEachMigrate__log.sql", "SQL callback"),
        ] {
            match parse_name(name) {
                Name::Unsupported(message) => assert!(message.contains(needle), "{name}: {message}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn checksums_are_flyways() {
        // CRC32 of "CREATE TABLE t (a int);" with no line break, as Flyway computes it.
        let one = crc32fast::hash(b"CREATE TABLE t (a int);") as i32;
        assert_eq!(checksum("CREATE TABLE t (a int);\n"), one);
        assert_eq!(checksum("\u{feff}CREATE TABLE t (a int);\r\n"), one);
        let two = {
            let mut h = crc32fast::Hasher::new();
            h.update(b"SELECT 1;");
            h.update(b"SELECT 2;");
            h.finalize() as i32
        };
        assert_eq!(checksum("SELECT 1;\nSELECT 2;\n"), two);
    }

    #[test]
    fn conf_files() {
        assert_eq!(conf_says_no_transaction("executeInTransaction=false\n"), Ok(true));
        assert_eq!(conf_says_no_transaction("# comment\nexecuteInTransaction = true"), Ok(false));
        assert!(conf_says_no_transaction("encoding=UTF-8").unwrap_err().contains("`encoding`"));
    }
}
