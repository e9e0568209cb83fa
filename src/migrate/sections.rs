//! Layouts with the up and the down script of a migration in one file, between marker
//! comments: dbmate's `-- migrate:up` / `-- migrate:down` and goose's `-- +goose Up` /
//! `-- +goose Down`. Only the up section runs on `up` and only the down section on `down`.
//!
//! The markers are line comments the tools look for line by line, so they are found the same
//! way here; the SQL between them is read by the parser like any other script, with positions
//! that stay the file's. The files are `<version>_<name>.sql` in both tools.
//!
//! Options the tools put on their markers are honoured: dbmate's `transaction:false` on a
//! section marker, goose's `-- +goose NO TRANSACTION` for the whole file. goose's
//! `StatementBegin`/`StatementEnd` need nothing (the parser knows where a function body ends)
//! and are comments to the server. goose's `ENVSUB ON` (environment substitution) is refused:
//! running the file without the substitution would run other SQL than goose would.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::migrate::script::{
    Format, Loaded, Migration, Problem, Script, is_dir, loaded, one_per_version, read_regular, text_of,
};

/// A file's sections: byte ranges of the text after each marker line, and whether each runs
/// without a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sections {
    pub up: Range<usize>,
    pub up_no_transaction: bool,
    pub down: Option<Range<usize>>,
    pub down_no_transaction: bool,
}

/// Which of the two layouts a file's markers belong to, if any. Pure.
pub fn format_of(text: &str) -> Option<Format> {
    text.lines().map(str::trim).find_map(|line| {
        if dbmate_marker(line).is_some() {
            Some(Format::Dbmate)
        } else if goose_annotation(line).is_some_and(|a| a.eq_ignore_ascii_case("up")) {
            Some(Format::Goose)
        } else {
            None
        }
    })
}

/// `-- migrate:up transaction:false` → ("up", "transaction:false").
fn dbmate_marker(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("--")?.trim_start().strip_prefix("migrate:")?;
    let (word, options) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    matches!(word, "up" | "down").then_some((word, options.trim()))
}

/// `-- +goose Up` → "Up".
fn goose_annotation(line: &str) -> Option<&str> {
    Some(line.strip_prefix("--")?.trim_start().strip_prefix("+goose")?.trim())
}

/// Lines of `text` with the byte offsets where each starts and where the next one starts.
fn lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut at = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = at;
        at += line.len();
        (start, at, line.trim())
    })
}

fn no_statements(text: &str, range: Range<usize>) -> bool {
    crate::migrate::sql::parse(&text[range]).is_ok_and(|p| p.statements.is_empty())
}

/// dbmate's sections. Pure; errors name the line.
pub fn split_dbmate(text: &str) -> Result<Sections, String> {
    let mut up: Option<(usize, bool)> = None;
    let mut down: Option<(usize, usize, bool)> = None;
    for (index, (start, next, line)) in lines(text).enumerate() {
        let Some((word, options)) = dbmate_marker(line) else { continue };
        let line_no = index + 1;
        let mut no_transaction = false;
        for option in options.split_whitespace() {
            match option {
                "transaction:false" => no_transaction = true,
                "transaction:true" => no_transaction = false,
                other => {
                    return Err(format!(
                        "line {line_no}: unknown dbmate option `{other}` (known: transaction:false)"
                    ));
                }
            }
        }
        match (word, up, down) {
            ("up", None, None) => {
                if !no_statements(text, 0..start) {
                    return Err(format!(
                        "line {line_no}: SQL before `-- migrate:up` belongs to no section (dbmate refuses it too); \
                         move it into the up section"
                    ));
                }
                up = Some((next, no_transaction));
            }
            ("down", Some(_), None) => down = Some((start, next, no_transaction)),
            ("up", ..) => return Err(format!("line {line_no}: a second `-- migrate:up` marker")),
            ("down", None, _) => {
                return Err(format!("line {line_no}: `-- migrate:down` comes before `-- migrate:up`"));
            }
            _ => return Err(format!("line {line_no}: a second `-- migrate:down` marker")),
        }
    }
    let Some((up_start, up_no_transaction)) = up else {
        return Err(
            "no `-- migrate:up` marker: dbmate migrations start their SQL with `-- migrate:up`".to_string()
        );
    };
    Ok(match down {
        None => {
            Sections { up: up_start..text.len(), up_no_transaction, down: None, down_no_transaction: false }
        }
        Some((marker, down_start, down_no_transaction)) => Sections {
            up: up_start..marker,
            up_no_transaction,
            down: Some(down_start..text.len()),
            down_no_transaction,
        },
    })
}

/// goose's sections. Pure; errors name the line.
pub fn split_goose(text: &str) -> Result<Sections, String> {
    let mut up: Option<usize> = None;
    let mut down: Option<(usize, usize)> = None;
    let mut no_transaction = false;
    for (index, (start, next, line)) in lines(text).enumerate() {
        let Some(annotation) = goose_annotation(line) else { continue };
        let line_no = index + 1;
        match annotation.to_ascii_lowercase().as_str() {
            "up" if up.is_none() => {
                if !no_statements(text, 0..start) {
                    return Err(format!(
                        "line {line_no}: SQL before `-- +goose Up` belongs to no section; move it into the up section"
                    ));
                }
                up = Some(next);
            }
            "down" if up.is_some() && down.is_none() => down = Some((start, next)),
            "up" | "down" => return Err(format!("line {line_no}: `-- +goose {annotation}` is out of place")),
            "no transaction" => no_transaction = true,
            "statementbegin" | "statementend" | "envsub off" => {}
            "envsub on" => {
                return Err(format!(
                    "line {line_no}: `-- +goose ENVSUB ON` asks goose to substitute environment variables into \
                     the SQL, which shipgate does not do; write the values into the file"
                ));
            }
            _ => return Err(format!("line {line_no}: unknown goose annotation `-- +goose {annotation}`")),
        }
    }
    let Some(up_start) = up else {
        return Err(
            "no `-- +goose Up` annotation: goose migrations start their SQL with `-- +goose Up`".to_string()
        );
    };
    Ok(match down {
        None => Sections {
            up: up_start..text.len(),
            up_no_transaction: no_transaction,
            down: None,
            down_no_transaction: no_transaction,
        },
        Some((marker, down_start)) => Sections {
            up: up_start..marker,
            up_no_transaction: no_transaction,
            down: Some(down_start..text.len()),
            down_no_transaction: no_transaction,
        },
    })
}

/// `20240101120000_create_users.sql` → (version, description). Pure.
fn file_name(name: &str) -> Option<(i64, String)> {
    let stem = name.strip_suffix(".sql")?;
    let (version, description) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || description.is_empty() {
        return None;
    }
    Some((version.parse().ok()?, description.replace('_', " ")))
}

fn section_script(
    path: &Path,
    text: &str,
    range: Range<usize>,
    no_transaction: bool,
    format: Format,
) -> Result<Script, String> {
    let mut script = Script::part(path.to_path_buf(), text.to_string(), range)?;
    script.directives.no_transaction |= no_transaction;
    script.settle(format)
}

/// The migrations of a dbmate or goose folder.
pub fn load(dir: &Path, format: Format) -> Result<Loaded> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::input(format!("cannot list {}: {e}", dir.display())))?;
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let mut by_version: BTreeMap<i64, Vec<Migration>> = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || is_dir(&entry) {
            continue;
        }
        let problem = |message: String| Problem { path: path.clone(), message };
        if !name.ends_with(".sql") {
            if format == Format::Goose && name.ends_with(".go") && !name.ends_with("_test.go") {
                problems.push(problem(
                    "a goose Go migration: shipgate runs SQL migrations only; rewrite it as SQL, or keep running \
                     this folder with goose"
                        .to_string(),
                ));
            } else {
                ignored.push(path.clone());
            }
            continue;
        }
        let Some((version, description)) = file_name(&name) else {
            problems
                .push(problem("expected <version>_<name>.sql (e.g. 20240101120000_create_users.sql)".into()));
            continue;
        };
        let text = match read_regular(&path).and_then(text_of) {
            Ok(text) => text,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        let sections = match format {
            Format::Goose => split_goose(&text),
            _ => split_dbmate(&text),
        };
        let built = sections.and_then(|s| {
            let up = section_script(&path, &text, s.up.clone(), s.up_no_transaction, format)?;
            let down = match s.down.clone().filter(|d| !no_statements(&text, d.clone())) {
                Some(range) => Some(section_script(&path, &text, range, s.down_no_transaction, format)?),
                None => None,
            };
            Ok((up, down))
        });
        match built {
            Ok((up, down)) => by_version.entry(version).or_default().push(Migration {
                version,
                description,
                up,
                down,
                drizzle: None,
            }),
            Err(message) => problems.push(problem(message)),
        }
    }
    let migrations = by_version
        .into_iter()
        .filter_map(|(version, ms)| one_per_version(version, ms, |m| &m.up.path, &mut problems))
        .collect();
    Ok(loaded(migrations, ignored, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(text: &'a str, s: &Sections) -> (&'a str, Option<&'a str>) {
        (&text[s.up.clone()], s.down.clone().map(|d| &text[d]))
    }

    #[test]
    fn dbmate_sections() {
        let text = "-- migrate:up\nCREATE TABLE t ();\n\n-- migrate:down\nDROP TABLE t;\n";
        let s = split_dbmate(text).unwrap();
        assert_eq!(parts(text, &s), ("CREATE TABLE t ();\n\n", Some("DROP TABLE t;\n")));
        assert!(!s.up_no_transaction);

        let text =
            "-- a comment first\n-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        let s = split_dbmate(text).unwrap();
        assert_eq!(parts(text, &s), ("CREATE INDEX CONCURRENTLY i ON t (a);\n", None));
        assert!(s.up_no_transaction);

        let bad = [
            ("CREATE TABLE t ();\n", "no `-- migrate:up` marker"),
            ("SELECT 1;\n-- migrate:up\nSELECT 2;\n", "line 2: SQL before `-- migrate:up`"),
            ("-- migrate:down\nSELECT 1;\n-- migrate:up\n", "line 1: `-- migrate:down` comes before"),
            ("-- migrate:up\n-- migrate:up\n", "line 2: a second `-- migrate:up`"),
            ("-- migrate:up transaction:maybe\n", "unknown dbmate option `transaction:maybe`"),
        ];
        for (text, needle) in bad {
            let err = split_dbmate(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn goose_sections() {
        let text = "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ \
                    LANGUAGE sql;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP FUNCTION f;\n";
        let s = split_goose(text).unwrap();
        let (up, down) = parts(text, &s);
        assert!(up.starts_with("-- +goose StatementBegin\nCREATE FUNCTION"), "{up}");
        assert_eq!(down, Some("DROP FUNCTION f;\n"));

        let text = "-- +goose NO TRANSACTION\n-- +goose up\nCREATE INDEX CONCURRENTLY i ON t (a);\n";
        let s = split_goose(text).unwrap();
        assert!(s.up_no_transaction);

        let bad = [
            ("SELECT 1;\n", "no `-- +goose Up`"),
            ("-- +goose Up\n-- +goose ENVSUB ON\n", "line 2: `-- +goose ENVSUB ON`"),
            ("-- +goose Down\nSELECT 1;\n", "out of place"),
            ("-- +goose Up\n-- +goose Sideways\n", "unknown goose annotation"),
        ];
        for (text, needle) in bad {
            let err = split_goose(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn markers_tell_the_layout() {
        assert_eq!(format_of("-- migrate:up\nSELECT 1;"), Some(Format::Dbmate));
        assert_eq!(format_of("-- +goose Up\nSELECT 1;"), Some(Format::Goose));
        assert_eq!(format_of("-- +goose NO TRANSACTION\n-- +goose UP\n"), Some(Format::Goose));
        assert_eq!(format_of("SELECT 1; -- migrate:up"), None);
        assert_eq!(format_of("CREATE TABLE t ();"), None);
    }
}
