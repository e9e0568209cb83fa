//! Shared test machinery: a throwaway PostgreSQL server for the whole run, a fresh database
//! per test, and a builder for running the real `shipgate` binary.

pub(crate) mod moto;
pub(crate) mod node;
pub(crate) mod pg;
pub(crate) mod pooler;
pub(crate) mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Variables that would leak the developer's own database settings into a test.
const HOST_DB_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_SECRET_ID",
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SSL",
    "DB_SSL_CERT_PATH",
    "DB_SSL_REJECT_UNAUTHORIZED",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSERVICE",
    "SHIPGATE_LOG",
    "SHIPGATE_SOURCE",
    "SHIPGATE_SCHEMA",
    "SHIPGATE_OUTPUT",
    "SHIPGATE_RUN_ID",
    "SHIPGATE_CONFIG",
    "SHIPGATE_SET",
    "SHIPGATE_TENANT_SOURCE",
    "SHIPGATE_TENANTS_QUERY",
    "SHIPGATE_PROVISION_SQL",
    "SHIPGATE_CONCURRENCY",
    "SHIPGATE_MAX_CONNECTIONS",
    "SHIPGATE_CANARY",
    "SHIPGATE_ONLY_TENANTS",
    "SHIPGATE_FAIL_FAST",
    "SHIPGATE_SHARD",
    "SHIPGATE_ROLLBACK_STEPS",
    "SHIPGATE_ROLLBACK_TO",
    "MIGRATION_TYPE",
    "TENANT_ID",
    "CLERK_ORG_ID",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "ECS_CONTAINER_METADATA_URI_V4",
];

/// `shipgate` with a clean environment and the given arguments.
pub(crate) fn shipgate(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipgate"));
    for var in HOST_DB_VARS {
        cmd.env_remove(var);
    }
    // Away from the repository's own shipgate.toml; a test that wants one passes --config.
    cmd.args(args).stdin(Stdio::null()).current_dir(std::env::temp_dir());
    cmd
}

/// `shipgate` pointed at a test database and a migrations folder.
pub(crate) fn shipgate_on(db: &pg::TestDb, dir: &Dir, args: &[&str]) -> Command {
    let mut cmd = shipgate(args);
    cmd.env("DATABASE_URL", &db.url).env("SHIPGATE_SOURCE", dir.arg());
    cmd
}

/// A finished run, with its streams as text.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Assert the exit code, showing both streams when it differs.
    #[track_caller]
    pub(crate) fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub(crate) fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run to completion on a blocking thread (tests are async; the binary is not ours to await).
pub(crate) async fn run(mut cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || Run::from(cmd.output().expect("shipgate runs"))).await.expect("join")
}

/// Start without waiting.
pub(crate) fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("shipgate starts")
}

/// Wait for a spawned child, with a limit so a hung runner fails the test instead of CI. Its
/// output is read while it runs, so a chatty child never blocks on a full pipe.
pub(crate) async fn finish(mut child: Child, limit: Duration) -> Run {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        if status.is_none() {
            let tail = &run.stdout[run.stdout.len().saturating_sub(2000)..];
            panic!(
                "shipgate still running after {limit:?}\n--- stdout (end)\n{tail}\n--- stderr\n{}",
                run.stderr
            );
        }
        run
    })
    .await
    .expect("join")
}

pub(crate) fn signal(child: &Child, name: &str) {
    let status =
        Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
}

/// A temporary migrations folder.
pub(crate) struct Dir {
    _tmp: tempfile::TempDir,
    pub path: PathBuf,
}

impl Dir {
    pub(crate) fn new(files: &[(&str, &str)]) -> Dir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("migrations");
        std::fs::create_dir(&path).expect("mkdir");
        let dir = Dir { _tmp: tmp, path };
        for (name, body) in files {
            dir.write(name, body);
        }
        dir
    }

    /// A `migrations/` folder holding a `master/` and a `tenant/` set.
    pub(crate) fn sets(master: &[(&str, &str)], tenant: &[(&str, &str)]) -> Dir {
        let dir = Dir::new(&[]);
        for (sub, files) in [("master", master), ("tenant", tenant)] {
            std::fs::create_dir(dir.path.join(sub)).expect("mkdir");
            for (name, body) in files {
                dir.write(&format!("{sub}/{name}"), body);
            }
        }
        dir
    }

    pub(crate) fn write(&self, name: &str, body: &str) {
        self.write_bytes(name, body.as_bytes());
    }

    pub(crate) fn write_bytes(&self, name: &str, body: &[u8]) {
        let path = self.path.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, body).expect("write migration");
    }

    pub(crate) fn remove(&self, name: &str) {
        std::fs::remove_file(self.path.join(name)).expect("remove migration");
    }

    pub(crate) fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A folder of tests/fixtures.
pub(crate) fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// A copy of a fixture folder to change freely.
pub(crate) fn copy(from: &Path) -> (tempfile::TempDir, PathBuf) {
    fn walk(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                walk(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(from.file_name().unwrap());
    walk(from, &dir);
    (tmp, dir)
}
