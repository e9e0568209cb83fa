//! Layouts with one folder per migration: Prisma Migrate's `<name>/migration.sql` and diesel's
//! `<version>_<name>/up.sql` + `down.sql`, read as their tools read them.
//!
//! Prisma orders migrations by folder name (a plain string sort) and has no down scripts; it
//! sends each file to the server as written, so a file's own `BEGIN`/`COMMIT` are honoured
//! (see `Format::wraps_in_transaction`). Our versions are numbers, so a Prisma folder name
//! must start with digits (`20240101120000_init`, `01_init`), and the numeric order must be
//! Prisma's string order: a folder where they differ is refused rather than run in another
//! order than Prisma would.
//!
//! diesel runs each `up.sql` in a transaction unless the folder's `metadata.toml` says
//! `run_in_transaction = false`. Its version is the folder name's part before the first `_`,
//! without dashes (`2024-01-01-120000_create_users` is 20240101120000), so diesel's own
//! `00000000000000_diesel_initial_setup` is version 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::migrate::script::{
    Format, Loaded, Migration, Problem, Script, is_dir, loaded, one_per_version, read_regular,
};

/// Prisma's lock file at the top of `prisma/migrations`.
pub const PRISMA_LOCK: &str = "migration_lock.toml";

/// The sub-folders of `dir`, by name.
fn sub_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::input(format!("cannot list {}: {e}", dir.display())))?;
    let mut folders: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(is_dir)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    folders.sort();
    Ok(folders)
}

/// Read one script; `no_transaction` is the layout's own "outside a transaction" flag.
fn read_script(
    path: PathBuf,
    format: Format,
    no_transaction: bool,
    problems: &mut Vec<Problem>,
) -> Option<Script> {
    let script = read_regular(&path).and_then(|bytes| Script::new(path.clone(), bytes)).and_then(|mut s| {
        s.directives.no_transaction |= no_transaction;
        s.settle(format)
    });
    match script {
        Ok(script) => Some(script),
        Err(message) => {
            problems.push(Problem { path, message });
            None
        }
    }
}

/// A small TOML file of the layout's own (Prisma's lock file, diesel's metadata.toml).
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> std::result::Result<T, String> {
    let text =
        read_regular(path).and_then(|b| String::from_utf8(b).map_err(|_| "not valid UTF-8".to_string()))?;
    toml::from_str(&text).map_err(|e| format!("not valid TOML: {e}"))
}

/// The leading digits of a folder name, as a version and the rest as a description. Pure.
pub fn numbered(name: &str) -> Option<(i64, String)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let version = name[..digits].parse().ok()?;
    let description = name[digits..].trim_start_matches(['_', '-']).replace('_', " ");
    Some((version, if description.is_empty() { name.to_string() } else { description }))
}

#[derive(Debug, Deserialize)]
struct PrismaLock {
    provider: Option<String>,
}

/// A Prisma Migrate folder (`prisma/migrations`).
pub fn load_prisma(dir: &Path) -> Result<Loaded> {
    let mut problems = Vec::new();
    let lock = dir.join(PRISMA_LOCK);
    if lock.is_file() {
        match read_toml::<PrismaLock>(&lock) {
            Ok(PrismaLock { provider: Some(p) }) if p == "postgresql" || p == "postgres" => {}
            Ok(PrismaLock { provider }) => problems.push(Problem {
                path: lock.clone(),
                message: format!(
                    "the provider is `{}`; shipgate migrates PostgreSQL (`provider = \"postgresql\"`)",
                    provider.unwrap_or_default()
                ),
            }),
            Err(message) => problems.push(Problem { path: lock.clone(), message }),
        }
    }
    let mut ordered: Vec<(String, i64, Migration)> = Vec::new();
    for (name, folder) in sub_folders(dir)? {
        let file = folder.join("migration.sql");
        if !file.exists() {
            continue;
        }
        let Some((version, description)) = numbered(&name) else {
            problems.push(Problem {
                path: folder,
                message:
                    "a Prisma migration folder's name must start with digits (e.g. 20240101120000_init) \
                          for shipgate to give it a version"
                        .to_string(),
            });
            continue;
        };
        if let Some(up) = read_script(file, Format::Prisma, false, &mut problems) {
            ordered.push((name, version, Migration { version, description, up, down: None, drizzle: None }));
        }
    }
    // Prisma's order is the folder names' string order; ours is the numbers'.
    for pair in ordered.windows(2) {
        let ((a, va, _), (b, vb, _)) = (&pair[0], &pair[1]);
        if va == vb {
            problems.push(Problem {
                path: dir.join(b),
                message: format!("version {vb} is also the version of {a}; give one of them another number"),
            });
        } else if va > vb {
            problems.push(Problem {
                path: dir.join(b),
                message: format!(
                    "Prisma runs {a} before {b} (name order), but their numbers say the opposite; \
                     rename them so both orders agree (e.g. pad the numbers to the same width)"
                ),
            });
        }
    }
    Ok(loaded(ordered.into_iter().map(|(_, _, m)| m).collect(), Vec::new(), problems))
}

#[derive(Debug, Default, Deserialize)]
struct DieselMetadata {
    #[serde(default = "yes")]
    run_in_transaction: bool,
}

fn yes() -> bool {
    true
}

/// diesel's version of a folder name: the part before the first `_`, dashes removed. Pure.
pub fn diesel_version(name: &str) -> Option<(i64, String)> {
    let (stamp, rest) = name.split_once('_')?;
    let digits: String = stamp.chars().filter(|c| *c != '-').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
        return None;
    }
    Some((digits.parse().ok()?, rest.replace('_', " ")))
}

/// A diesel migrations folder.
pub fn load_diesel(dir: &Path) -> Result<Loaded> {
    let mut problems = Vec::new();
    let mut by_version: BTreeMap<i64, Vec<(PathBuf, Migration)>> = BTreeMap::new();
    for (name, folder) in sub_folders(dir)? {
        let up_path = folder.join("up.sql");
        if !up_path.exists() {
            continue;
        }
        let Some((version, description)) = diesel_version(&name) else {
            problems.push(Problem {
                path: folder,
                message:
                    "a diesel migration folder is <version>_<name> (e.g. 2024-01-01-120000_create_users)"
                        .to_string(),
            });
            continue;
        };
        let metadata_path = folder.join("metadata.toml");
        let metadata = if metadata_path.exists() {
            match read_toml::<DieselMetadata>(&metadata_path) {
                Ok(m) => m,
                Err(message) => {
                    problems.push(Problem { path: metadata_path, message });
                    continue;
                }
            }
        } else {
            DieselMetadata { run_in_transaction: true }
        };
        let no_transaction = !metadata.run_in_transaction;
        let up = read_script(up_path, Format::Diesel, no_transaction, &mut problems);
        let down_path = folder.join("down.sql");
        let down = down_path
            .exists()
            .then(|| read_script(down_path, Format::Diesel, no_transaction, &mut problems))
            .flatten();
        if let Some(up) = up {
            by_version
                .entry(version)
                .or_default()
                .push((folder.clone(), Migration { version, description, up, down, drizzle: None }));
        }
    }
    let migrations = by_version
        .into_iter()
        .filter_map(|(version, found)| one_per_version(version, found, |(folder, _)| folder, &mut problems))
        .map(|(_, m)| m)
        .collect();
    Ok(loaded(migrations, Vec::new(), problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_become_versions() {
        assert_eq!(numbered("20240101120000_init"), Some((20240101120000, "init".into())));
        assert_eq!(numbered("01_add_users"), Some((1, "add users".into())));
        assert_eq!(numbered("7"), Some((7, "7".into())));
        assert_eq!(numbered("init"), None);
        let diesel = [
            ("2024-01-01-120000_create_users", Some((20240101120000, "create users".to_string()))),
            ("00000000000000_diesel_initial_setup", Some((0, "diesel initial setup".to_string()))),
            ("20240101120000_x", Some((20240101120000, "x".to_string()))),
            ("create_users", None),
            ("2024-01-01", None),
            ("2024-01-01_", None),
        ];
        for (name, expected) in diesel {
            assert_eq!(diesel_version(name), expected, "{name}");
        }
    }
}
