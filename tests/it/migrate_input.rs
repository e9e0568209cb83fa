//! Bad input is found before the database is touched, and edits are told apart from checkout noise.

use crate::support::pg::{TestDb, scalar};
use crate::support::{Dir, run, shipgate, shipgate_on};

async fn history_exists(db: &TestDb) -> bool {
    let mut conn = db.connect().await;
    scalar(&mut conn, "SELECT to_regclass('public.shipgate_migrations') IS NOT NULL").await
}

#[tokio::test]
async fn each_bad_input_is_exit_2_names_the_file_and_touches_nothing() {
    let db = TestDb::new().await;
    type Files = Vec<(&'static str, &'static [u8])>;
    let cases: Vec<(&str, Files, &str)> = vec![
        (
            "duplicate",
            vec![("1_a.sql", b"SELECT 1;"), ("1_b.sql", b"SELECT 1;")],
            "1_a.sql: duplicate version 1",
        ),
        (
            "orphan down",
            vec![("1_a.sql", b"SELECT 1;"), ("2_b.down.sql", b"SELECT 1;")],
            "2_b.down.sql: a .down.sql without its .up.sql",
        ),
        ("unparseable", vec![("init.sql", b"SELECT 1;")], "init.sql: unparseable name"),
        ("not utf-8", vec![("1_a.sql", b"SELECT '\xff';")], "1_a.sql: not valid UTF-8"),
        ("bad directive", vec![("1_a.sql", b"-- shipgate:lock-timeout=soon\nSELECT 1;")], "1_a.sql: line 1:"),
    ];
    for (what, files, needle) in cases {
        let dir = Dir::new(&[]);
        for (name, body) in files {
            dir.write_bytes(name, body);
        }
        for args in [
            &["migrate", "up"][..],
            &["migrate", "up", "--dry-run"],
            &["migrate", "status"],
            &["migrate", "down", "--steps", "1"],
        ] {
            let mut cmd = shipgate(args);
            cmd.env("DATABASE_URL", &db.url).arg("--source").arg(dir.arg());
            let out = run(cmd).await.expect(2);
            assert!(out.stderr.contains(needle), "{what} / {args:?}: {}", out.stderr);
            assert!(out.stderr.contains("nothing was run"), "{what}: {}", out.stderr);
        }
        assert!(!history_exists(&db).await, "{what}: the history table was created");
    }
}

#[tokio::test]
async fn all_problems_are_reported_at_once() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_a.sql", "SELECT 1;"),
        ("1_b.sql", "SELECT 1;"),
        ("x.sql", "SELECT 1;"),
        ("notes.txt", "hello"),
    ]);
    let mut cmd = shipgate(&["migrate", "up", "--source", dir.arg()]);
    cmd.env("DATABASE_URL", &db.url);
    let out = run(cmd).await.expect(2);
    assert!(out.stderr.contains("3 problems in the sqlx migrations folder"), "{}", out.stderr);
    for file in ["1_a.sql", "1_b.sql", "x.sql"] {
        assert!(out.stderr.contains(file), "{file}: {}", out.stderr);
    }
    assert!(!history_exists(&db).await);
}

#[tokio::test]
async fn missing_source_directory_and_bad_flags_are_exit_2() {
    let mut cmd = shipgate(&["migrate", "up", "--source", "/nonexistent/migrations"]);
    cmd.env("DATABASE_URL", "postgres://u@127.0.0.1:1/db");
    let out = run(cmd).await.expect(2);
    assert!(
        out.stderr.contains("cannot read the migrations directory /nonexistent/migrations"),
        "{}",
        out.stderr
    );
    for args in [
        &["migrate", "up", "--lock-timeout", "soon"][..],
        &["migrate", "down"],
        &["migrate", "down", "--steps", "0"],
        &["migrate", "repair", "--version", "1"],
        &["migrate", "frobnicate"],
    ] {
        let out = run(shipgate(args)).await.expect(2);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
}

#[tokio::test]
async fn crlf_copies_are_not_modified_but_real_edits_are() {
    let db = TestDb::new().await;
    let body = "CREATE TABLE t (\n    id int\n);\nCREATE INDEX t_id ON t (id);\n";
    let dir = Dir::new(&[("1_t.sql", body), ("2_u.sql", "CREATE TABLE u (id int);\n")]);
    let cmd = |args: &[&str]| shipgate_on(&db, &dir, args);
    run(cmd(&["migrate", "up"])).await.expect(0);

    dir.write("1_t.sql", &body.replace('\n', "\r\n"));
    run(cmd(&["migrate", "verify"])).await.expect(0);
    let status = run(cmd(&["migrate", "status"])).await.expect(0);
    assert!(status.stdout.contains("2 applied, 0 pending, 0 modified"), "{}", status.stdout);

    dir.write("1_t.sql", &body.replace("id int", "id bigint"));
    dir.write("3_v.sql", "CREATE TABLE v (id int);");
    let out = run(cmd(&["migrate", "up"])).await.expect(1);
    assert!(out.stderr.contains("1_t.sql (1): checksum in database"), "{}", out.stderr);
    assert!(out.stderr.contains(", file now "), "{}", out.stderr);
    let mut conn = db.connect().await;
    assert!(
        !scalar::<bool>(&mut conn, "SELECT to_regclass('public.v') IS NOT NULL").await,
        "applied despite the edit"
    );
}

#[tokio::test]
async fn late_migrations_are_applied_and_reported_or_refused_with_strict_order() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a ();"), ("3_c.sql", "CREATE TABLE c ();")]);
    let cmd = |args: &[&str]| shipgate_on(&db, &dir, args);
    run(cmd(&["migrate", "up"])).await.expect(0);
    dir.write("2_b.sql", "CREATE TABLE b ();");
    let strict = run(cmd(&["migrate", "up", "--strict-order"])).await.expect(1);
    assert!(strict.stderr.contains("2 (b)"), "{}", strict.stderr);
    let out = run(cmd(&["migrate", "up"])).await.expect(0);
    assert!(out.stdout.contains("[late: older than the newest applied migration]"), "{}", out.stdout);
}

#[tokio::test]
async fn no_database_given_is_exit_2_at_once_and_a_retry_is_one_line_per_attempt() {
    let dir = Dir::new(&[("1_a.sql", "SELECT 1;")]);
    let started = std::time::Instant::now();
    let mut cmd = shipgate(&["migrate", "up"]);
    cmd.env("SHIPGATE_SOURCE", dir.arg());
    let out = run(cmd).await.expect(2);
    assert!(out.stderr.contains("error: no database given: set DATABASE_URL"), "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no connect retries");

    // A source that is given but unreachable: one warning per attempt (two connections are
    // opened together; only one speaks), and the error names where the target came from.
    let mut cmd = shipgate(&["migrate", "up", "--connect-timeout", "2s"]);
    cmd.env("SHIPGATE_SOURCE", dir.arg())
        .env("DATABASE_URL", "postgres://app@127.0.0.1:9/app?sslmode=disable");
    let out = run(cmd).await.expect(3);
    let warnings = out.stderr.lines().filter(|l| l.contains("database not reachable yet")).count();
    let attempts: usize = out
        .stderr
        .split(" attempts)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert_eq!(warnings, attempts - 1, "{}", out.stderr);
    assert!(out.stderr.contains("(from DATABASE_URL)"), "{}", out.stderr);
}
