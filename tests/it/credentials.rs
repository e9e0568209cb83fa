//! Finding the database from DATABASE_URL, DB_* or PG*, failing clearly (exit 3) when it is not
//! there, and never printing a password on the way.

use std::time::{Duration, Instant};

use crate::support::pg::TestDb;
use crate::support::{Dir, run, shipgate};

fn url_parts(db: &TestDb) -> url::Url {
    url::Url::parse(&db.url).unwrap()
}

#[tokio::test]
async fn db_vars_and_pg_vars_both_reach_the_database() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a ();")]);
    let u = url_parts(&db);
    let mut seed000 = shipgate(&["migrate", "up", "--source", dir.arg()]);
    seed000
        .env("DB_HOST", u.host_str().unwrap())
        .env("DB_PORT", u.port().unwrap().to_string())
        .env("DB_USER", u.username())
        .env("DB_PASSWORD", u.password().unwrap())
        .env("DB_NAME", &db.name)
        .env("DB_SSL", "false");
    run(seed000).await.expect(0);

    let mut seed001 = shipgate(&["migrate", "verify", "--source", dir.arg()]);
    seed001
        .env("PGHOST", u.host_str().unwrap())
        .env("PGPORT", u.port().unwrap().to_string())
        .env("PGUSER", u.username())
        .env("PGPASSWORD", u.password().unwrap())
        .env("PGDATABASE", &db.name);
    run(seed001).await.expect(0);

    // DB_* wins over PG* field by field: a wrong PGPASSWORD is overridden by DB_PASSWORD.
    let mut both = shipgate(&["migrate", "verify", "--source", dir.arg()]);
    both.env("PGHOST", u.host_str().unwrap())
        .env("PGPORT", u.port().unwrap().to_string())
        .env("PGUSER", u.username())
        .env("PGPASSWORD", "wrong-pg-password")
        .env("PGDATABASE", &db.name)
        .env("DB_PASSWORD", u.password().unwrap());
    run(both).await.expect(0);

    // DATABASE_URL wins over everything.
    let mut url_wins = shipgate(&["migrate", "verify", "--source", dir.arg()]);
    url_wins.env("DATABASE_URL", &db.url).env("DB_HOST", "nowhere.invalid").env("PGHOST", "nowhere.invalid");
    run(url_wins).await.expect(0);
}

#[tokio::test]
async fn unreachable_database_is_exit_3_naming_host_port_database_and_user() {
    let dir = Dir::new(&[("1_a.sql", "SELECT 1;")]);
    // A port nobody listens on: connection refused, retried until the timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut cmd = shipgate(&["migrate", "up", "--source", dir.arg(), "--connect-timeout", "2s"]);
    cmd.env("DATABASE_URL", format!("postgres://deployer:pw-not-shown-1@127.0.0.1:{port}/appdb"));
    let out = run(cmd).await.expect(3);
    assert!(started.elapsed() >= Duration::from_secs(2), "gave up before --connect-timeout");
    assert!(started.elapsed() < Duration::from_secs(15), "kept retrying far past --connect-timeout");
    let msg = out.stderr;
    for needle in ["database `appdb`", &format!("127.0.0.1:{port}"), "user `deployer`", "within 2s", "hint:"]
    {
        assert!(msg.contains(needle), "missing {needle}: {msg}");
    }
    assert!(msg.contains("retrying in"), "transient failures are retried: {msg}");
    assert!(!msg.contains("pw-not-shown-1"), "{msg}");
}

#[tokio::test]
async fn wrong_password_is_exit_3_at_once_and_never_printed_at_any_log_level() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "SELECT 1;")]);
    let secret = "Sup3r-Secret/Pass word";
    let bad_url = db.url_with_password(secret);
    for level in [&[][..], &["-v"], &["-vv"], &["--quiet"]] {
        for args in [
            &["migrate", "up"][..],
            &["migrate", "status", "--output", "json"],
            &["migrate", "down", "--steps", "1"],
        ] {
            let mut cmd = shipgate(args);
            cmd.args(level).arg("--source").arg(dir.arg()).env("DATABASE_URL", &bad_url);
            let started = Instant::now();
            let out = run(cmd).await.expect(3);
            assert!(started.elapsed() < Duration::from_secs(10), "authentication failures are not retried");
            assert!(out.stderr.contains("password authentication failed"), "{}", out.stderr);
            for form in [secret, "Sup3r-Secret%2FPass%20word", "Sup3r-Secret"] {
                assert!(!out.all().contains(form), "{level:?} {args:?} printed the password:\n{}", out.all());
            }
        }
    }
    // The same through DB_PASSWORD and PGPASSWORD.
    let u = url::Url::parse(&db.url).unwrap();
    for var in ["DB_PASSWORD", "PGPASSWORD"] {
        let mut cmd = shipgate(&["-vv", "migrate", "up", "--source", dir.arg()]);
        cmd.env("PGHOST", u.host_str().unwrap())
            .env("PGPORT", u.port().unwrap().to_string())
            .env("PGUSER", u.username())
            .env("PGDATABASE", &db.name)
            .env(var, secret);
        let out = run(cmd).await.expect(3);
        assert!(!out.all().contains("Sup3r-Secret"), "{var}: {}", out.all());
    }
}

#[tokio::test]
async fn help_never_shows_the_database_url() {
    for args in
        [&["migrate", "up", "--help"][..], &["migrate", "--help"], &["--help"], &["migrate", "status", "-h"]]
    {
        let mut cmd = shipgate(args);
        cmd.env("DATABASE_URL", "postgres://u:help-secret-9@h/db");
        let out = run(cmd).await.expect(0);
        assert!(!out.all().contains("help-secret-9"), "{args:?}: {}", out.all());
    }
    let top = run(shipgate(&["--help"])).await.expect(0);
    for code in ["130", "143", "could not reach the database or AWS"] {
        assert!(top.stdout.contains(code), "exit codes in --help: {}", top.stdout);
    }
    let up = run(shipgate(&["migrate", "up", "--help"])).await.expect(0);
    assert!(up.stdout.contains("Examples:"), "{}", up.stdout);
}

#[tokio::test]
async fn ecs_task_arn_is_recorded_as_applied_by() {
    // A stand-in for the ECS task metadata endpoint v4.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let arn = "arn:aws:ecs:us-east-1:123456789012:task/app/0123456789abcdef";
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let n = stream.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        let body = format!(r#"{{"Cluster":"app","TaskARN":"{arn}"}}"#);
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        request
    });
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a ();")]);
    let mut cmd = shipgate(&["migrate", "up", "--source", dir.arg()]);
    cmd.env("DATABASE_URL", &db.url).env("ECS_CONTAINER_METADATA_URI_V4", format!("http://{addr}/v4/abc"));
    run(cmd).await.expect(0);
    assert!(server.join().unwrap().starts_with("GET /v4/abc/task "));
    let mut conn = db.connect().await;
    let by: String =
        crate::support::pg::scalar(&mut conn, "SELECT applied_by FROM shipgate_migrations").await;
    assert_eq!(by, arn);
}

#[tokio::test]
async fn a_role_without_create_on_the_database_can_migrate_its_own_schema() {
    let db = TestDb::new().await;
    let mut admin = db.connect().await;
    let role = format!("app_{}", fastrand::u32(..));
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'app-pw-1'"),
        format!("REVOKE CREATE ON DATABASE \"{}\" FROM PUBLIC", db.name),
        format!("CREATE SCHEMA app AUTHORIZATION {role}"),
    ] {
        crate::support::pg::exec(&mut admin, &sql).await;
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some("app-pw-1")).unwrap();
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a (id int);")]);
    let mut cmd = shipgate(&["migrate", "up", "--schema", "app", "--source", dir.arg()]);
    cmd.env("DATABASE_URL", url.as_str());
    run(cmd).await.expect(0);
    let owner: String = crate::support::pg::scalar(
        &mut admin,
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'a'",
    )
    .await;
    assert_eq!(owner, role);
    crate::support::pg::exec(&mut admin, &format!("DROP SCHEMA app CASCADE; DROP ROLE {role}")).await;
}
