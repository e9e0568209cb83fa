//! The test suite's PostgreSQL: `DATABASE_URL` when set, otherwise a throwaway server started
//! once per test run by `scripts/throwaway-pg` (the same script the demo and benchmarks use).
//!
//! The server is stopped by a watchdog process that outlives the tests, so it goes away when
//! the run ends however it ends: passing, failing, panicking, or killed with Ctrl-C.

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use super::repo_root;

struct Server {
    admin_url: String,
    /// The throwaway server's unix socket (where authentication is `trust`); none for a
    /// server named by `DATABASE_URL`.
    socket: Option<std::path::PathBuf>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL").map(|u| u.trim().to_string())
            && !url.is_empty()
        {
            return Server { admin_url: url, socket: None };
        }
        let (admin_url, dir) = start_server_in(&[]);
        let port = url::Url::parse(&admin_url).expect("admin url").port().expect("a port");
        Server { admin_url, socket: Some(dir.join(format!(".s.PGSQL.{port}"))) }
    })
}

/// Start a throwaway server with `scripts/throwaway-pg start DIR --fast EXTRA...` and return
/// its superuser URL.
pub(crate) fn start_server(extra: &[&str]) -> String {
    start_server_in(extra).0
}

/// [`start_server`], and the server's folder (where its unix socket is).
fn start_server_in(extra: &[&str]) -> (String, std::path::PathBuf) {
    let base = tempfile::Builder::new().prefix("shipgate-pg-").tempdir().expect("tempdir").keep();
    // The server may run as the `postgres` account (when we are root): let it in.
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let dir = base.join("pg");
    let script = repo_root().join("scripts/throwaway-pg");
    let out = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .arg("--fast")
        .args(extra)
        .output()
        .expect("run throwaway-pg");
    assert!(
        out.status.success(),
        "could not start a throwaway PostgreSQL: {}\n(set DATABASE_URL to use an existing server)",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin_url = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{script}' stop '{dir}'; rmdir '{base}'",
        pid = std::process::id(),
        script = script.display(),
        dir = dir.display(),
        base = base.display(),
    );
    // `setsid --fork` detaches the watchdog into its own session (Ctrl-C on the test run
    // does not reach it) and returns at once.
    let started = Command::new("setsid")
        .args(["--fork", "sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the server watchdog");
    assert!(started.success(), "could not start the server watchdog");
    eprintln!("test PostgreSQL started in {} (stopped when the tests end)", dir.display());
    (admin_url, dir)
}

/// The throwaway server's unix socket, where authentication is `trust`; `None` when the
/// suite runs against a server named by `DATABASE_URL`.
pub(crate) fn socket() -> Option<std::path::PathBuf> {
    server().socket.clone()
}

/// A fresh, empty database for one test; dropped when the test ends.
pub(crate) struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDb {
    pub(crate) async fn new() -> TestDb {
        let server = server();
        let name = format!(
            "shipgate_t{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            fastrand::u32(..)
        );
        let mut admin = connect_url(&server.admin_url).await;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&server.admin_url).expect("admin url");
        url.set_path(&name);
        TestDb { url: url.to_string(), name, admin_url: server.admin_url.clone() }
    }

    pub(crate) async fn connect(&self) -> PgConnection {
        connect_url(&self.url).await
    }

    /// This database's URL with the password replaced.
    pub(crate) fn url_with_password(&self, password: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("url");
        url.set_password(Some(password)).expect("set password");
        url.to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime we could borrow; a short-lived one does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            })
        })
        .join();
    }
}

pub(crate) async fn connect_url(url: &str) -> PgConnection {
    PgConnectOptions::from_str(url)
        .expect("url")
        .log_statements(log::LevelFilter::Off)
        .connect()
        .await
        .expect("test connection")
}

/// A single value from a query.
pub(crate) async fn scalar<T>(conn: &mut PgConnection, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `pg_dump --schema-only` of the public schema, without our history table and pg_dump's
/// per-run lines.
pub(crate) fn dump(db: &TestDb) -> String {
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--schema=public",
            "--exclude-table=public.shipgate_migrations",
        ])
        .arg(&db.url)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}
