//! The direction of imports, checked on the source: commands are thin adapters over the
//! engines, so nothing below `commands/` imports a command, and a command imports no other
//! command (what two commands share lives in an engine: `deploy`, `fleet`, `migrate`, `task`,
//! `taskdef`), and no command writes SQL (`sqlx` is the database edge's and the engines').
//! See the README's "Development" section for the layers.

use std::path::{Path, PathBuf};

use crate::support::repo_root;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The lines of `file` that break a rule, as `path:line: text`.
fn offending(file: &Path, root: &Path, bad: impl Fn(&str) -> bool) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    // A unit-test module may reach into its parent (`use super::*`): that is not a layer.
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//") && bad(line))
        .map(|(i, line)| format!("{}:{}: {}", file.strip_prefix(root).unwrap().display(), i + 1, line.trim()))
        .collect()
}

#[test]
fn imports_point_one_way() {
    let root = repo_root();
    let src = root.join("src");
    let commands = src.join("commands");
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let in_commands = file.starts_with(&commands);
        let entry = file == src.join("lib.rs") || file == src.join("main.rs");
        if !in_commands && !entry {
            broken.extend(offending(&file, root, |l| l.contains("crate::commands")));
        }
        if in_commands {
            // A command reaches a sibling through `crate::commands::…` or through its parent,
            // and SQL belongs to the database edge (`db`) or an engine, not to an adapter.
            broken.extend(offending(&file, root, |l| {
                l.contains("crate::commands") || l.contains("super::") || l.contains("sqlx::")
            }));
        }
    }
    assert!(broken.is_empty(), "imports against the layers:\n{}", broken.join("\n"));
}

/// The check itself sees what it is meant to: a planted sibling import is found.
#[test]
fn the_layer_check_finds_a_sibling_import() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up.rs");
    std::fs::write(
        &file,
        "use super::status::counts;\n// use super::x is a comment\n#[cfg(test)]\nuse super::*;\n",
    )
    .unwrap();
    let found = offending(&file, dir.path(), |l| l.contains("super::"));
    assert_eq!(found, ["up.rs:1: use super::status::counts;"]);
}
