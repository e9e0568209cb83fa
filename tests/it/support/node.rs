//! The real Knex and drizzle-orm migrators and dbmate, from the npm packages `scripts/test`
//! installs (pinned by tests/node/package-lock.json) into the folder named by
//! SHIPGATE_NODE_MODULES.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Run, repo_root, run};

pub(crate) struct Node {
    modules: PathBuf,
}

/// The installed packages, or `None` (and a note) when the test runs without them.
pub(crate) fn node(test: &str) -> Option<Node> {
    match std::env::var("SHIPGATE_NODE_MODULES") {
        Ok(dir) if Path::new(&dir).join("drizzle-orm").is_dir() => Some(Node { modules: PathBuf::from(dir) }),
        _ => {
            eprintln!(
                "skipped {test}: no Knex/drizzle-orm (SHIPGATE_NODE_MODULES unset; scripts/test installs them)"
            );
            None
        }
    }
}

impl Node {
    /// Run one of tests/node's scripts; it must succeed.
    pub(crate) async fn script(&self, script: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new("node");
        cmd.arg(repo_root().join("tests/node").join(script)).args(args).env("NODE_PATH", &self.modules);
        run(cmd).await.expect(0)
    }

    /// `drizzle-orm`'s migrate() on a drizzle-kit folder.
    pub(crate) async fn drizzle_migrate(&self, url: &str, folder: &Path) -> Run {
        self.script("drizzle-migrate.cjs", &[url, folder.to_str().expect("utf-8")]).await
    }

    /// `knex migrate:latest` on a folder of .js migrations.
    pub(crate) async fn knex_migrate(&self, url: &str, folder: &Path) -> Run {
        self.script("knex-migrate.cjs", &[url, folder.to_str().expect("utf-8")]).await
    }

    /// Knex's migrator with its tables named `table` in `schema` (a per-tenant Knex setup).
    pub(crate) async fn knex_migrate_in(&self, url: &str, folder: &Path, table: &str, schema: &str) -> Run {
        self.script("knex-migrate.cjs", &[url, folder.to_str().expect("utf-8"), table, schema]).await
    }

    /// The real dbmate (its linux-x64 binary package) on a folder; it must succeed.
    pub(crate) async fn dbmate(&self, url: &str, folder: &Path, args: &[&str]) -> Run {
        let mut url = url::Url::parse(url).expect("url");
        url.query_pairs_mut().append_pair("sslmode", "disable");
        let mut cmd = Command::new(self.modules.join("@dbmate/linux-x64/bin/dbmate"));
        cmd.arg("--url")
            .arg(url.as_str())
            .arg("--migrations-dir")
            .arg(folder)
            .arg("--no-dump-schema")
            .args(args);
        run(cmd).await.expect(0)
    }
}
