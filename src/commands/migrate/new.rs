//! `shipgate migrate new NAME`: create the next migration in the layout the folder has
//! (`<UTC timestamp>_<slug>.sql`, or `.up.sql` + `.down.sql`; a dbmate or goose file with its
//! two sections; a diesel or Prisma folder), never overwriting a file and never reusing a version.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::migrate::source::{self, Format, ReadOptions};
use crate::output::{Event, Reporter};

/// `Add Users-Table!` → `add_users_table`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The first free timestamp version at or after `now` (two files made in one second differ).
pub fn version_for(now: DateTime<Utc>, taken: &[i64]) -> i64 {
    let mut version: i64 = now.format("%Y%m%d%H%M%S").to_string().parse().expect("digits");
    while taken.contains(&version) {
        version += 1;
    }
    version
}

/// The files of a new migration in `format`: paths relative to the folder, and their text.
pub fn files_for(
    format: Format,
    version: i64,
    slug: &str,
    name: &str,
    reversible: bool,
) -> Vec<(String, String)> {
    let header = format!("-- {name}\n");
    let revert = format!("-- Revert: {name}\n\n");
    let tx = "-- Runs in one transaction; put `-- shipgate:no-transaction` first to opt out.\n\n";
    match format {
        Format::Dbmate => {
            vec![(format!("{version}_{slug}.sql"), format!("{header}-- migrate:up\n\n\n-- migrate:down\n\n"))]
        }
        Format::Goose => {
            vec![(format!("{version}_{slug}.sql"), format!("{header}-- +goose Up\n\n\n-- +goose Down\n\n"))]
        }
        Format::Diesel => {
            let digits = version.to_string();
            let folder = if digits.len() == 14 {
                format!("{}-{}-{}-{}_{slug}", &digits[..4], &digits[4..6], &digits[6..8], &digits[8..])
            } else {
                format!("{digits}_{slug}")
            };
            vec![(format!("{folder}/up.sql"), format!("{header}\n")), (format!("{folder}/down.sql"), revert)]
        }
        Format::Prisma => vec![(format!("{version}_{slug}/migration.sql"), format!("{header}\n"))],
        Format::Flyway if reversible => vec![
            (format!("V{version}__{slug}.sql"), format!("{header}\n")),
            (format!("U{version}__{slug}.sql"), revert),
        ],
        Format::Flyway => vec![(format!("V{version}__{slug}.sql"), format!("{header}\n"))],
        Format::GolangMigrate => {
            vec![
                (format!("{version}_{slug}.up.sql"), format!("{header}\n")),
                (format!("{version}_{slug}.down.sql"), revert),
            ]
        }
        Format::Sqlx | Format::Drizzle if reversible => vec![
            (format!("{version}_{slug}.up.sql"), format!("{header}{tx}")),
            (format!("{version}_{slug}.down.sql"), revert),
        ],
        Format::Sqlx | Format::Drizzle => vec![(format!("{version}_{slug}.sql"), format!("{header}{tx}"))],
    }
}

pub fn run(dir: &Path, name: &str, reversible: bool, out: &Reporter) -> Result<()> {
    let slug = slug(name);
    if slug.is_empty() {
        return Err(Error::input(format!("`{name}` has no letters or digits to name a migration after"))
            .hint("e.g. shipgate migrate new add_users_table"));
    }
    if dir.exists() && source::detect(dir) == Format::Drizzle {
        return Err(Error::input(format!(
            "{} is a drizzle-kit folder; its migrations are written by drizzle-kit, not by shipgate",
            dir.display()
        ))
        .hint("run `drizzle-kit generate` (shipgate runs the folder as it is), or move to plain .sql files in a new folder"));
    }
    let (format, taken): (Format, Vec<i64>) = if dir.exists() {
        let options = ReadOptions { allow_empty: true, ..ReadOptions::default() };
        let set = source::load(dir, &options)?;
        (set.format, set.migrations.iter().map(|m| m.version).collect())
    } else {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::input(format!("cannot create the migrations directory {}: {e}", dir.display()))
        })?;
        (Format::Sqlx, Vec::new())
    };
    let version = version_for(Utc::now(), &taken);
    for (file, body) in files_for(format, version, &slug, name, reversible) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::input(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, body.as_bytes()))
            .map_err(|e| Error::input(format!("cannot create {}: {e}", path.display())))?;
        out.emit(&Event::Created { path: path.display().to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let cases = [
            ("add_users_table", "add_users_table"),
            ("Add Users-Table!", "add_users_table"),
            ("  __x__  ", "x"),
            ("créer table", "cr_er_table"),
            ("!!!", ""),
        ];
        for (name, expected) in cases {
            assert_eq!(slug(name), expected, "{name}");
        }
    }

    #[test]
    fn versions_never_collide() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:05:09Z").unwrap().with_timezone(&Utc);
        let cases: [(&[i64], i64); 3] = [
            (&[], 20261121120509),
            (&[20261121120509], 20261121120510),
            (&[20261121120509, 20261121120510, 1], 20261121120511),
        ];
        for (taken, expected) in cases {
            assert_eq!(version_for(now, taken), expected);
        }
        let names = |format, reversible| -> Vec<String> {
            files_for(format, 20240101120000, "x", "x", reversible).into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(names(Format::Sqlx, true), vec!["20240101120000_x.up.sql", "20240101120000_x.down.sql"]);
        assert_eq!(names(Format::Sqlx, false), vec!["20240101120000_x.sql"]);
        assert_eq!(
            names(Format::Diesel, false),
            vec!["2024-01-01-120000_x/up.sql", "2024-01-01-120000_x/down.sql"]
        );
        assert_eq!(names(Format::Prisma, true), vec!["20240101120000_x/migration.sql"]);
        assert_eq!(names(Format::Dbmate, false), vec!["20240101120000_x.sql"]);
    }
}
