//! `shipgate migrate new NAME`: create `<UTC timestamp>_<slug>.sql` (or `.up.sql` +
//! `.down.sql`), never overwriting a file and never reusing a version.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::migrate::source::{self, Format};
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

/// File names for a new migration.
pub fn file_names(version: i64, slug: &str, reversible: bool) -> Vec<String> {
    if reversible {
        vec![format!("{version}_{slug}.up.sql"), format!("{version}_{slug}.down.sql")]
    } else {
        vec![format!("{version}_{slug}.sql")]
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
    let taken: Vec<i64> = if dir.exists() {
        source::load(dir, Some(Format::Sqlx))?.migrations.iter().map(|m| m.version).collect()
    } else {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::input(format!("cannot create the migrations directory {}: {e}", dir.display()))
        })?;
        Vec::new()
    };
    let version = version_for(Utc::now(), &taken);
    for (i, file) in file_names(version, &slug, reversible).iter().enumerate() {
        let path = dir.join(file);
        let body = if i == 0 {
            format!(
                "-- {name}\n-- Runs in one transaction; put `-- shipgate:no-transaction` first to opt out.\n\n"
            )
        } else {
            format!("-- Revert: {name}\n\n")
        };
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
        assert_eq!(file_names(7, "x", true), vec!["7_x.up.sql", "7_x.down.sql"]);
    }
}
