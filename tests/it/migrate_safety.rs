//! The guarantees that matter in production: concurrent deploys, kills, signals, lock queues,
//! and CREATE INDEX CONCURRENTLY next to a waiting runner.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::support::pg::{TestDb, exec, scalar};
use crate::support::{Dir, finish, run, signal, spawn};

use crate::support::shipgate_on as cmd;

/// Poll a boolean query until it is true (at most 30 s).
async fn wait_until(conn: &mut PgConnection, sql: &str) {
    let started = Instant::now();
    while !scalar::<bool>(conn, sql).await {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for: {sql}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// Tests run in parallel, each in its own database: every probe looks at its own database only.
const SLEEPING: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                        AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid())";
const ADVISORY_HELD: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

#[tokio::test]
async fn eight_runners_at_once_apply_each_migration_exactly_once() {
    let db = TestDb::new().await;
    let mut files = Vec::new();
    for v in 1..=12 {
        // A non-idempotent migration: a second application would fail on the duplicate table.
        files.push((
            format!("{v}_t{v}.sql"),
            format!("CREATE TABLE t{v} (id int); INSERT INTO t{v} VALUES ({v});"),
        ));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, b)| (n.as_str(), b.as_str())).collect();
    let dir = Dir::new(&refs);
    let children: Vec<_> = (0..8).map(|_| spawn(cmd(&db, &dir, &["migrate", "up"]))).collect();
    for child in children {
        finish(child, Duration::from_secs(60)).await.expect(0);
    }
    let mut conn = db.connect().await;
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations WHERE success").await, 12);
    let rows: i64 = scalar(&mut conn, "SELECT (SELECT count(*) FROM t1) + (SELECT count(*) FROM t12)").await;
    assert_eq!(rows, 2);
    assert!(!scalar::<bool>(&mut conn, ADVISORY_HELD).await, "a lock was left behind");
}

#[tokio::test]
async fn sigkill_mid_migration_leaves_nothing_and_the_next_run_applies_it() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_a.sql", "CREATE TABLE a (id int);"),
        ("2_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\nINSERT INTO slow VALUES (1);"),
    ]);
    let mut conn = db.connect().await;
    let child = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    signal(&child, "KILL");
    finish(child, Duration::from_secs(10)).await;
    // The orphaned backend is still sleeping in its open transaction; end it as PostgreSQL
    // eventually would when it notices the client is gone.
    exec(
        &mut conn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    )
    .await;
    wait_until(&mut conn, &SLEEPING.replace("SELECT EXISTS", "SELECT NOT EXISTS")).await;

    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM shipgate_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, vec![1], "no row for the interrupted attempt");
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('public.slow') IS NOT NULL").await);

    dir.write(
        "2_slow.sql",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(0.1);\nINSERT INTO slow VALUES (1);",
    );
    // The file changed, but it was never applied, so this is not a modification.
    run(cmd(&db, &dir, &["migrate", "up", "--lock-timeout", "5s"])).await.expect(0);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM slow").await, 1);
}

#[tokio::test]
async fn sigterm_cancels_rolls_back_releases_the_lock_and_exits_143() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_a.sql", "CREATE TABLE a (id int);"),
        ("2_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);"),
    ]);
    let mut conn = db.connect().await;
    let child = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    let sent = Instant::now();
    signal(&child, "TERM");
    let out = finish(child, Duration::from_secs(20)).await.expect(143);
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?} to stop", sent.elapsed());
    assert!(out.stderr.contains("cancelled and rolled back; nothing was recorded"), "{}", out.stderr);

    assert!(!scalar::<bool>(&mut conn, ADVISORY_HELD).await, "the lock is still held");
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('public.slow') IS NOT NULL").await);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM shipgate_migrations").fetch_all(&mut conn).await.unwrap();
    assert_eq!(versions, vec![1]);
    // A second runner gets the lock at once.
    let started = Instant::now();
    run(cmd(&db, &dir, &["migrate", "up", "--target", "1", "--lock-timeout", "1s"])).await.expect(0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn sigint_is_exit_130() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_slow.sql", "SELECT pg_sleep(30);")]);
    let mut conn = db.connect().await;
    let child = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    signal(&child, "INT");
    finish(child, Duration::from_secs(20)).await.expect(130);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 0);
}

#[tokio::test]
async fn create_index_concurrently_does_not_deadlock_with_a_waiting_runner() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_t.sql", "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20000) g;"),
        ("2_hold.sql", "SELECT pg_sleep(1.5);"),
        ("3_idx.sql", "-- shipgate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);"),
    ]);
    let mut conn = db.connect().await;
    let first = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, ADVISORY_HELD).await;
    // The second runner polls for the lock while the first runs CREATE INDEX CONCURRENTLY.
    let second = spawn(cmd(&db, &dir, &["migrate", "up", "--lock-timeout", "60s"]));
    let first = finish(first, Duration::from_secs(40)).await.expect(0);
    assert!(first.stdout.contains("applied 3 migrations"), "{}", first.stdout);
    let second = finish(second, Duration::from_secs(40)).await.expect(0);
    assert!(second.stdout.contains("nothing to apply"), "{}", second.stdout);
    assert!(
        scalar::<bool>(&mut conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass")
            .await
    );
}

#[tokio::test]
async fn a_runner_that_cannot_get_the_lock_exits_3_naming_the_holder() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_slow.sql", "SELECT pg_sleep(30);")]);
    let mut conn = db.connect().await;
    let holder = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    let started = Instant::now();
    let out = run(cmd(&db, &dir, &["migrate", "up", "--lock-timeout", "1500ms"])).await.expect(3);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(out.stderr.contains("could not take the migration lock for schema `public`"), "{}", out.stderr);
    assert!(out.stderr.contains("application_name `shipgate "), "{}", out.stderr);
    signal(&holder, "TERM");
    finish(holder, Duration::from_secs(20)).await.expect(143);
}

#[tokio::test]
async fn a_migration_blocked_by_an_access_exclusive_lock_fails_after_retries() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_t.sql", "CREATE TABLE t (id int);"),
        ("2_alter.sql", "ALTER TABLE t ADD COLUMN name text;"),
    ]);
    run(cmd(&db, &dir, &["migrate", "up", "--target", "1"])).await.expect(0);

    let mut blocker = db.connect().await;
    exec(&mut blocker, "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await;
    let started = Instant::now();
    let out = run(cmd(&db, &dir, &["migrate", "up", "--ddl-lock-timeout", "200ms", "--lock-retries", "2"]))
        .await
        .expect(1);
    assert!(out.stderr.contains("after 3 attempts"), "{}", out.stderr);
    assert!(out.stderr.contains("lock timeout"), "{}", out.stderr);
    assert!(out.stderr.contains("lock_timeout (200ms)"), "{}", out.stderr);
    assert!(out.stderr.matches("hit lock_timeout").count() == 2, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(15));

    // Released while the runner is backing off: a retry succeeds.
    let child =
        spawn(cmd(&db, &dir, &["migrate", "up", "--ddl-lock-timeout", "200ms", "--lock-retries", "5"]));
    // Release only once the migration is queued behind the blocker, and after its first
    // lock_timeout has fired, however slowly the machine starts the process.
    let mut probe = db.connect().await;
    wait_until(
        &mut probe,
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                        AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE t%')",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    exec(&mut blocker, "COMMIT").await;
    let out = finish(child, Duration::from_secs(30)).await.expect(0);
    assert!(out.stderr.contains("hit lock_timeout"), "it should have retried: {}", out.stderr);
    let mut conn = db.connect().await;
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 2);
}

#[tokio::test]
async fn per_file_timeouts_override_the_flags() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_slow.sql", "-- shipgate:statement-timeout=300ms\nSELECT pg_sleep(2);")]);
    let out = run(cmd(&db, &dir, &["migrate", "up", "--statement-timeout", "1min"])).await.expect(1);
    assert!(out.stderr.contains("statement timeout"), "{}", out.stderr);
    assert!(out.stderr.contains("statement_timeout (300ms)"), "{}", out.stderr);
    assert!(out.stderr.contains("1_slow.sql"), "{}", out.stderr);
}

#[tokio::test]
async fn sql_errors_name_the_file_line_and_column() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_bad.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (\n  x nosuchtype\n);")]);
    let out = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(out.stderr.contains("1_bad.sql:3:5"), "{}", out.stderr);
    assert!(out.stderr.contains("type \"nosuchtype\" does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing from this migration was committed"), "{}", out.stderr);
    let mut conn = db.connect().await;
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('public.a') IS NOT NULL").await);
}

/// Ends the session holding this database's migration lock, as an operator's
/// `pg_terminate_backend`, a failover or a pooler's idle cut would.
const KILL_LOCK_HOLDER: &str = "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Non-idempotent migrations that log each application: applying one twice fails (duplicate
/// table), and `applied` counts how often each ran.
fn logged(slow: u32) -> Dir {
    let dir = Dir::new(&[("1_log.sql", "CREATE TABLE applied (version int);")]);
    for v in 2..=4 {
        let pause = if v == slow { "SELECT pg_sleep(30);\n" } else { "" };
        dir.write(
            &format!("{v}_t{v}.sql"),
            &format!("CREATE TABLE t{v} (id int);\n{pause}INSERT INTO applied VALUES ({v});"),
        );
    }
    dir
}

#[tokio::test]
async fn a_runner_whose_lock_session_ends_exits_3_and_the_next_run_applies_everything_once() {
    let db = TestDb::new().await;
    let dir = logged(3);
    let mut conn = db.connect().await;
    let first = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    exec(&mut conn, KILL_LOCK_HOLDER).await;
    let lost = finish(first, Duration::from_secs(30)).await.expect(3);
    assert!(
        lost.stderr.contains("lost the connection to the database during migration 3 (t3)")
            && lost.stderr.contains("its transaction was rolled back with the session"),
        "{}",
        lost.stderr
    );
    assert!(!lost.stderr.contains("fix the SQL"), "{}", lost.stderr);
    assert!(!lost.stdout.contains("applied 4 migrations"), "{}", lost.stdout);

    dir.write("3_t3.sql", "CREATE TABLE t3 (id int);\nINSERT INTO applied VALUES (3);");
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    let counts: Vec<(i32, i64)> =
        sqlx::query_as("SELECT version, count(*) FROM applied GROUP BY 1 ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(counts, [(2, 1), (3, 1), (4, 1)], "each migration applied exactly once");
}

/// `idle_session_timeout` on the database ends any session idle for 1 s. The runner keeps
/// its sessions from idling (the lock waits on the migrating session, which never idles),
/// so a 4 s migration and a lock wait both survive it.
#[tokio::test]
async fn an_idle_session_timeout_on_the_database_does_not_end_the_lock() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(4);"),
        ("2_next.sql", "CREATE TABLE next (id int);"),
    ]);
    let mut conn = db.connect().await;
    exec(&mut conn, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = ''1s''', current_database()); END $$").await;
    let first = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(
        &mut conn,
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
         AND query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid())",
    )
    .await;
    // Two seconds in, past the 1 s idle cut, the lock is still held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(scalar::<bool>(&mut conn, ADVISORY_HELD).await, "the idle cut ended the lock session");
    // A second runner waits (polling) for the lock across the rest of the migration.
    let second = spawn(cmd(&db, &dir, &["migrate", "up", "--lock-timeout", "60s"]));
    let a = finish(first, Duration::from_secs(60)).await.expect(0);
    assert!(a.stdout.contains("applied 2 migrations"), "{}", a.stdout);
    let b = finish(second, Duration::from_secs(60)).await.expect(0);
    assert!(b.stdout.contains("nothing to apply"), "{}", b.stdout);
}

/// A migration that releases our lock itself: the run stops (exit 3) at the next check, which
/// comes before the next migration once a second has passed since the last one.
#[tokio::test]
async fn a_migration_that_releases_the_lock_stops_the_run_before_the_next() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_a.sql", "CREATE TABLE a (id int);\nSELECT pg_advisory_unlock_all();\nSELECT pg_sleep(1.2);"),
        ("2_b.sql", "CREATE TABLE b (id int);"),
    ]);
    let lost = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(3);
    assert!(
        lost.stderr.contains("lost the migration lock for schema `public`")
            && lost.stderr.contains("a migration released it")
            && lost.stderr.contains("nothing after 1 was applied"),
        "{}",
        lost.stderr
    );
    let mut conn = db.connect().await;
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('public.b') IS NOT NULL").await);
}

/// `up` and `down` racing after a lock kill: whatever interleaving happens, the history is
/// one a serial order makes, and each table exists exactly when its row says applied.
#[tokio::test]
async fn up_racing_down_after_a_lock_kill_leaves_a_serial_history() {
    let db = TestDb::new().await;
    let dir = logged(3);
    for v in 2..=4 {
        dir.write(
            &format!("{v}_t{v}.down.sql"),
            &format!("DROP TABLE t{v}; DELETE FROM applied WHERE version = {v};"),
        );
        let up = std::fs::read_to_string(dir.path.join(format!("{v}_t{v}.sql"))).unwrap();
        dir.remove(&format!("{v}_t{v}.sql"));
        dir.write(&format!("{v}_t{v}.up.sql"), &up);
    }
    let mut conn = db.connect().await;
    dir.write("3_t3.up.sql", "CREATE TABLE t3 (id int);\nINSERT INTO applied VALUES (3);");
    run(cmd(&db, &dir, &["migrate", "up", "--target", "3"])).await.expect(0);
    dir.write(
        "4_t4.up.sql",
        "CREATE TABLE t4 (id int);\nSELECT pg_sleep(30);\nINSERT INTO applied VALUES (4);",
    );
    let up = spawn(cmd(&db, &dir, &["migrate", "up"]));
    wait_until(&mut conn, SLEEPING).await;
    let down = spawn(cmd(&db, &dir, &["migrate", "down", "--steps", "1", "--lock-timeout", "60s"]));
    exec(&mut conn, KILL_LOCK_HOLDER).await;
    finish(up, Duration::from_secs(30)).await.expect(3);
    finish(down, Duration::from_secs(30)).await.expect(0);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM shipgate_migrations WHERE success ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2], "4 never committed, 3 was reverted");
    let applied: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM applied ORDER BY 1").fetch_all(&mut conn).await.unwrap();
    assert_eq!(applied, [2]);
    for (table, exists) in [("t2", true), ("t3", false), ("t4", false)] {
        let found: bool =
            scalar(&mut conn, &format!("SELECT to_regclass('public.{table}') IS NOT NULL")).await;
        assert_eq!(found, exists, "{table}");
    }
}

/// Through a pooler in transaction mode, which hands the statement after the lock to another
/// server session, no lock can be held: the run refuses (exit 3) before the history table is
/// even made. Through the same pooler with one session (session mode), it migrates.
#[tokio::test]
async fn a_transaction_mode_pooler_is_refused_and_a_session_mode_one_works() {
    let Some(socket) = crate::support::pg::socket() else {
        eprintln!("skipped: needs the throwaway server's unix socket (DATABASE_URL is set)");
        return;
    };
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a (id int);")]);
    let via = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/{}", db.name);

    let pooled = crate::support::pooler::start(socket.clone(), 2);
    let mut up = crate::support::shipgate(&["migrate", "up", "--source", dir.arg()]);
    up.env("DATABASE_URL", via(pooled));
    let refused = run(up).await.expect(3);
    assert!(refused.stderr.contains("pooler in transaction mode"), "{}", refused.stderr);
    assert!(refused.stderr.contains("pool_mode = session"), "{}", refused.stderr);
    let mut conn = db.connect().await;
    let made: bool = scalar(&mut conn, "SELECT to_regclass('public.shipgate_migrations') IS NOT NULL").await;
    assert!(!made, "the refused run changed the database");

    let session = crate::support::pooler::start(socket, 1);
    let mut up = crate::support::shipgate(&["migrate", "up", "--source", dir.arg()]);
    up.env("DATABASE_URL", via(session));
    let done = run(up).await.expect(0);
    assert!(done.stdout.contains("applied 1 migration"), "{}", done.stdout);
}
