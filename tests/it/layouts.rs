//! Every migration layout our users come from runs as its own tool runs it, or is refused
//! naming every file that could not be read: no green without work. And the SQL inside is
//! read by the parser: transaction control, statements that cannot run in a transaction,
//! psql-only input, and session state that must not carry into the next migration.

use std::path::Path;
use std::time::Duration;

use crate::support::node::node;
use crate::support::pg::{TestDb, dump, exec, scalar};
use crate::support::{Dir, copy, finish, fixture, run, shipgate, spawn};

fn sg(db: &TestDb, source: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = shipgate(args);
    cmd.env("DATABASE_URL", &db.url).env("SHIPGATE_SOURCE", source);
    cmd
}

async fn tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.connect().await;
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> 'shipgate_migrations' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn history_exists(db: &TestDb) -> bool {
    scalar(&mut db.connect().await, "SELECT to_regclass('public.shipgate_migrations') IS NOT NULL").await
}

#[tokio::test]
async fn a_dbmate_folder_makes_the_schema_dbmate_makes_and_goes_back_down() {
    let Some(node) = node("a_dbmate_folder_makes_the_schema_dbmate_makes_and_goes_back_down") else {
        return;
    };
    let (theirs, ours) = (TestDb::new().await, TestDb::new().await);
    let folder = fixture("dbmate");
    node.dbmate(&theirs.url, &folder, &["up"]).await;
    let up = run(sg(&ours, &folder, &["migrate", "up"])).await.expect(0);
    assert!(up.stderr.contains("dbmate layout (detected), 3 .sql files read, 3 migrations"), "{}", up.stderr);
    assert!(up.stdout.contains("applied 3 migrations"), "{}", up.stdout);
    exec(&mut theirs.connect().await, "DROP TABLE schema_migrations").await;
    let (a, b) = (dump(&theirs), dump(&ours));
    assert!(a.contains("CREATE INDEX posts_user_id"), "{a}");
    assert_eq!(a, b, "pg_dump --schema-only differs between dbmate and shipgate");

    // Only the down sections run on the way down, and they leave nothing behind.
    run(sg(&ours, &folder, &["migrate", "down", "--to", "0"])).await.expect(0);
    assert_eq!(tables(&ours).await, Vec::<String>::new());
    let types: i64 =
        scalar(&mut ours.connect().await, "SELECT count(*) FROM pg_type WHERE typname = 'user_role'").await;
    assert_eq!(types, 0, "the down section dropped the enum");
}

#[tokio::test]
async fn each_layout_is_detected_applied_verified_and_reverted_where_it_has_downs() {
    // (fixture, forced --format, the line that names the layout, tables after up, downs)
    type Case = (&'static str, Option<&'static str>, &'static str, &'static [&'static str], bool);
    let cases: [Case; 7] = [
        (
            "flyway",
            None,
            "flyway layout (detected), 8 .sql files read, 4 migrations",
            &["accounts", "audit"],
            true,
        ),
        ("diesel", None, "diesel layout (detected), 6 .sql files read, 3 migrations", &["users"], true),
        ("prisma", None, "prisma layout (detected), 2 .sql files read, 2 migrations", &["User"], false),
        (
            "prisma-numbered",
            None,
            "prisma layout (detected), 2 .sql files read, 2 migrations",
            &["Account", "Post"],
            false,
        ),
        ("goose", None, "goose layout (detected), 2 .sql files read, 2 migrations", &["accounts"], true),
        (
            "golang-migrate",
            Some("golang-migrate"),
            "golang-migrate layout (--format), 4 .sql files read, 2 migrations",
            &["items"],
            true,
        ),
        (
            "drizzle-v1",
            None,
            "drizzle layout (detected), 2 .sql files read, 2 migrations",
            &["posts", "users"],
            false,
        ),
    ];
    for (name, format, line, want, downs) in cases {
        let db = TestDb::new().await;
        let folder = fixture(name);
        let with = |args: &[&str]| {
            let mut all: Vec<&str> = args.to_vec();
            if let Some(f) = format {
                all.extend(["--format", f]);
            }
            sg(&db, &folder, &all)
        };
        let up = run(with(&["migrate", "up"])).await.expect(0);
        assert!(up.stderr.contains(line), "{name}: {}", up.stderr);
        let got = tables(&db).await;
        for table in want {
            assert!(got.iter().any(|t| t == table), "{name}: no table {table} in {got:?}");
        }
        let verify = run(with(&["migrate", "verify"])).await.expect(0);
        assert!(verify.all().contains("files and history agree"), "{name}: {}", verify.all());
        let down = run(with(&["migrate", "down", "--steps", "10"])).await;
        if downs {
            down.expect(0);
            assert_eq!(tables(&db).await, Vec::<String>::new(), "{name}: the down scripts left tables");
        } else {
            let down = down.expect(2);
            assert!(down.stderr.contains("migrations have no down scripts"), "{name}: {}", down.stderr);
        }
    }
}

#[tokio::test]
async fn diesel_runs_its_initial_setup_as_version_0_and_a_no_transaction_folder_outside_one() {
    let db = TestDb::new().await;
    let folder = fixture("diesel");
    let empty = dump(&db);
    run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    // The folder and the schema were made by the real diesel_cli (the fixture's README).
    let by_diesel = std::fs::read_to_string(fixture("diesel-schema-by-diesel-cli.txt")).unwrap();
    assert_eq!(
        dump(&db).trim(),
        by_diesel.trim(),
        "pg_dump --schema-only differs between diesel_cli and shipgate"
    );
    let status = run(sg(&db, &folder, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let rows = doc["migrations"].as_array().unwrap();
    assert_eq!(rows[0]["version"], 0);
    assert_eq!(rows[0]["description"], "diesel initial setup");
    assert_eq!(rows[1]["version"], 202612011355520000_i64, "diesel 2.3's `-0000` names: all digits");
    assert_eq!(rows[2]["version"], 202612011355530000_i64);
    assert_eq!(rows[2]["no_transaction"], true);
    let mut conn = db.connect().await;
    let trigger: i64 =
        scalar(&mut conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'set_updated_at'").await;
    assert_eq!(trigger, 1, "diesel_manage_updated_at ran");
    let index: i64 =
        scalar(&mut conn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'").await;
    assert_eq!(index, 1);
    // `--to 0` reverts the version-0 setup too, as `diesel migration revert --all` does.
    run(sg(&db, &folder, &["migrate", "down", "--to", "0"])).await.expect(0);
    assert_eq!(dump(&db), empty);
}

#[tokio::test]
async fn a_prisma_file_with_its_own_transaction_runs_as_written() {
    let db = TestDb::new().await;
    let folder = fixture("prisma");
    run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    let mut conn = db.connect().await;
    let labels: String = scalar(
        &mut conn,
        "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
         WHERE t.typname = 'Status'",
    )
    .await;
    assert_eq!(labels, "ACTIVE,SUSPENDED");
    let status = run(sg(&db, &folder, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["migrations"][0]["no_transaction"], false, "a plain Prisma file runs in our transaction");
    assert_eq!(doc["migrations"][1]["no_transaction"], true, "its own BEGIN/COMMIT run as written");
}

#[tokio::test]
async fn folders_read_in_the_wrong_layout_or_partly_are_refused_naming_every_unread_file() {
    let db = TestDb::new().await;
    let (_keep, drizzle) = copy(&fixture("drizzle"));
    std::fs::write(drizzle.join("0009_by_hand.sql"), "CREATE TABLE by_hand ();").unwrap();
    let (_keep2, seeded) = copy(&fixture("golang-migrate"));
    std::fs::create_dir_all(seeded.join("seeds")).unwrap();
    std::fs::write(seeded.join("seeds/users.sql"), "INSERT INTO items (name) VALUES ('x');").unwrap();
    // (folder, forced format, how many unread, a file that must be named)
    let cases = [
        (fixture("diesel"), Some("sqlx"), "6 .sql files", "00000000000000_diesel_initial_setup/up.sql"),
        (fixture("prisma"), Some("sqlx"), "2 .sql files", "20240102120000_add_status/migration.sql"),
        (fixture("prisma-numbered"), Some("diesel"), "2 .sql files", "01_init/migration.sql"),
        (drizzle.clone(), None, "1 .sql file", "0009_by_hand.sql"),
        (seeded.clone(), Some("golang-migrate"), "1 .sql file", "seeds/users.sql"),
    ];
    for (folder, format, count, named) in &cases {
        for command in ["up", "verify", "status"] {
            let mut args = vec!["migrate", command];
            if let Some(f) = format {
                args.extend(["--format", f]);
            }
            let out = run(sg(&db, folder, &args)).await.expect(2);
            assert!(out.stderr.contains(&format!("{count} in ")), "{folder:?} {command}: {}", out.stderr);
            assert!(out.stderr.contains(named), "{folder:?} {command}: {}", out.stderr);
            assert!(out.stderr.contains("nothing was run"), "{}", out.stderr);
        }
    }
    assert!(!history_exists(&db).await, "a refused folder created the history table");
    let allowed =
        sg(&db, &seeded, &["migrate", "up", "--format", "golang-migrate", "--allow-unread", "seeds/**"]);
    run(allowed).await.expect(0);

    // An empty folder (or one with only notes) is not "up to date".
    let empty = Dir::new(&[("README.md", "migrations go here")]);
    for command in ["up", "verify"] {
        let out = run(sg(&db, Path::new(empty.arg()), &["migrate", command])).await.expect(2);
        assert!(out.stderr.contains("no migrations found in"), "{}", out.stderr);
    }
    let fresh = TestDb::new().await;
    run(sg(&fresh, Path::new(empty.arg()), &["migrate", "up", "--allow-empty"])).await.expect(0);
}

#[tokio::test]
async fn a_drizzle_journal_of_dialect_pg_is_read_as_postgresql() {
    let db = TestDb::new().await;
    let (_keep, folder) = copy(&fixture("drizzle"));
    let path = folder.join("meta/_journal.json");
    let journal = std::fs::read_to_string(&path).unwrap().replace("\"postgresql\"", "\"pg\"");
    assert!(journal.contains("\"pg\""));
    std::fs::write(&path, journal).unwrap();
    let up = run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 4 migrations"), "{}", up.stdout);
}

#[tokio::test]
async fn transaction_control_and_psql_input_are_refused_before_anything_runs() {
    let db = TestDb::new().await;
    let cases: [(&str, &str, &str); 8] = [
        (
            "1_a.sql",
            "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);\nCOMMIT;\nSELECT 1/0;\n",
            "1_a.sql: line 3:1: `COMMIT / END`",
        ),
        ("1_a.sql", "CREATE TABLE a (x int);\nROLLBACK;\n", "1_a.sql: line 2:1: `ROLLBACK / ABORT`"),
        ("1_a.sql", "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n", "line 1:1: `BEGIN / START TRANSACTION`"),
        (
            "1_a.sql",
            "CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY a_x ON a (x);\n",
            "line 2:1: `CREATE INDEX CONCURRENTLY` cannot run inside a transaction block; put `-- no-transaction`",
        ),
        (
            "1_a.sql",
            "-- migrate:up\nCREATE INDEX CONCURRENTLY a_x ON a (x);\n-- migrate:down\nDROP INDEX a_x;\n",
            "line 2:1: `CREATE INDEX CONCURRENTLY` cannot run inside a transaction block; write the section marker as \
             `-- migrate:up transaction:false`",
        ),
        (
            "1_a.sql",
            "CREATE TABLE a (x int);\n\\connect other\n",
            "line 2:1: `\\connect` is a psql meta-command",
        ),
        (
            "1_a.sql",
            "CREATE TABLE a (x int);\nCOPY a (x) FROM stdin;\n1\n\\.\n",
            "line 2:1: `COPY ... FROM STDIN`",
        ),
        ("1_a.sql", "CREATE TABLE a (x int);\0\n", "NUL byte"),
    ];
    for (file, body, needle) in cases {
        let dir = Dir::new(&[]);
        dir.write_bytes(file, body.as_bytes());
        for command in ["up", "status"] {
            let out = run(sg(&db, Path::new(dir.arg()), &["migrate", command])).await.expect(2);
            assert!(out.stderr.contains(needle), "{body:?}: {}", out.stderr);
        }
    }
    assert!(!history_exists(&db).await);
    assert_eq!(tables(&db).await, Vec::<String>::new());
}

#[tokio::test]
async fn syntax_the_parser_does_not_know_goes_to_the_server() {
    let db = TestDb::new().await;
    // PL/pgSQL bodies, dollar tags, E'' strings and nested comments parse; a statement the
    // parser does not know (a made-up command) is sent as written and refused by the server.
    let dir = Dir::new(&[
        (
            "1_ok.sql",
            "/* outer /* inner; */ still; */\nCREATE TABLE t (a text);\nINSERT INTO t VALUES (E'it\\'s; fine');\n\
             CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql;\n\
             DO $$ BEGIN PERFORM f(); END $$;\nCREATE TABLE u (a int UNIQUE NULLS NOT DISTINCT);\n",
        ),
        ("2_unknown.sql", "FROBNICATE t;\n"),
    ]);
    // The lint reads every statement first: one it cannot read stops the run before anything
    // is applied.
    let out = run(sg(&db, Path::new(dir.arg()), &["migrate", "up"])).await.expect(1);
    assert!(
        out.stdout.contains("2_unknown.sql:1:1: error unparsed: the linter cannot read"),
        "{}",
        out.stdout
    );
    assert!(!history_exists(&db).await, "nothing is applied");
    // Without the lint, the runner sends it as written and the server refuses it.
    let out = run(sg(&db, Path::new(dir.arg()), &["migrate", "up", "--no-lint"])).await.expect(1);
    assert!(out.stderr.contains("migration 2 (unknown) failed at"), "{}", out.stderr);
    assert!(out.stderr.contains("syntax error at or near \"FROBNICATE\""), "{}", out.stderr);
    let value: String = scalar(&mut db.connect().await, "SELECT a FROM t").await;
    assert_eq!(value, "it's; fine");
}

#[tokio::test]
async fn a_prisma_file_failing_after_its_own_commit_is_recorded_failed_and_never_applied_twice() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("migration_lock.toml", "provider = \"postgresql\"\n")]);
    dir.write(
        "01_init/migration.sql",
        "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE log (m mood, n int);\n",
    );
    dir.write(
        "02_enum/migration.sql",
        "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nINSERT INTO log VALUES ('ok', 1);\nCOMMIT;\nSELECT 1/0;\n",
    );
    let source = Path::new(dir.arg());
    let failed = run(sg(&db, source, &["migrate", "up"])).await.expect(1);
    assert!(
        failed.stderr.contains("02_enum/migration.sql (statement 5 of 5): division by zero"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("statements 1-4 of 5 had completed"), "{}", failed.stderr);
    assert!(!failed.stderr.contains("nothing from this migration was committed"), "{}", failed.stderr);
    let status = run(sg(&db, source, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["migrations"][1]["state"], "partial");
    assert_eq!(doc["migrations"][1]["statements_done"], 4);
    // The rerun resumes after the committed part instead of applying it again.
    let rerun = run(sg(&db, source, &["migrate", "up"])).await.expect(1);
    assert!(rerun.stderr.contains("resuming migration 2 (enum) at statement 5 of 5"), "{}", rerun.stderr);
    let rows: i64 = scalar(&mut db.connect().await, "SELECT count(*) FROM log").await;
    assert_eq!(rows, 1, "the INSERT before the COMMIT ran exactly once");

    // A failure inside the file's own transaction rolls that transaction back.
    let db = TestDb::new().await;
    dir.write(
        "02_enum/migration.sql",
        "INSERT INTO log VALUES ('ok', 1);\nBEGIN;\nINSERT INTO log VALUES ('ok', 2);\nSELECT 1/0;\nCOMMIT;\n",
    );
    let failed = run(sg(&db, source, &["migrate", "up"])).await.expect(1);
    assert!(
        failed.stderr.contains("the transaction the file had opened was rolled back"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("statements 1-3 of 5 had completed"), "{}", failed.stderr);
    let rows: Vec<i32> =
        sqlx::query_scalar("SELECT n FROM log ORDER BY n").fetch_all(&mut db.connect().await).await.unwrap();
    assert_eq!(rows, vec![1]);
}

#[tokio::test]
async fn session_state_set_by_one_migration_does_not_reach_the_next() {
    let db = TestDb::new().await;
    let role = format!("{}_role", db.name);
    let mut conn = db.connect().await;
    exec(&mut conn, &format!("CREATE ROLE \"{role}\"")).await;
    let login: String = scalar(&mut conn, "SELECT current_user::text").await;
    let dir = Dir::new(&[
        (
            "1_set.sql",
            &format!(
                "CREATE SCHEMA elsewhere;\nGRANT ALL ON ALL TABLES IN SCHEMA public TO \"{role}\";\n\
                 SET search_path TO elsewhere, public;\nSET session_replication_role = replica;\nSET ROLE \"{role}\";\n"
            ),
        ),
        (
            "2_check.sql",
            "CREATE TABLE checks (who text DEFAULT current_user, srr text DEFAULT \
             current_setting('session_replication_role'));\nINSERT INTO checks DEFAULT VALUES;\n",
        ),
    ]);
    run(sg(&db, Path::new(dir.arg()), &["migrate", "up"])).await.expect(0);
    let (who, srr): (String, String) =
        sqlx::query_as("SELECT who, srr FROM public.checks").fetch_one(&mut conn).await.unwrap();
    assert_eq!((who.as_str(), srr.as_str()), (login.as_str(), "origin"));
    let elsewhere: bool = scalar(&mut conn, "SELECT to_regclass('elsewhere.checks') IS NULL").await;
    assert!(elsewhere, "migration 2 ran with migration 1's search_path");
    exec(&mut conn, &format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\"")).await;
}

#[tokio::test]
async fn a_no_transaction_file_runs_statement_by_statement() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[(
        "1_idx.sql",
        "-- no-transaction\nCREATE TABLE t (a int, b int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n\
         CREATE INDEX CONCURRENTLY t_b ON t (b);\n",
    )]);
    run(sg(&db, Path::new(dir.arg()), &["migrate", "up"])).await.expect(0);
    let n: i64 =
        scalar(&mut db.connect().await, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'").await;
    assert_eq!(n, 2);

    // A failing statement is named, with how many ran before it.
    let db = TestDb::new().await;
    let dir = Dir::new(&[(
        "1_idx.sql",
        "-- no-transaction\nCREATE TABLE t2 (a int);\nCREATE INDEX CONCURRENTLY t2_a ON t2 (a);\n\
         CREATE INDEX CONCURRENTLY t2_b ON t2 (nosuch);\n",
    )]);
    let out = run(sg(&db, Path::new(dir.arg()), &["migrate", "up"])).await.expect(1);
    assert!(
        out.stderr.contains("1_idx.sql (statement 3 of 3): column \"nosuch\" does not exist"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("statements 1-2 of 3 had completed"), "{}", out.stderr);
}

#[tokio::test]
async fn a_fifo_among_the_migrations_is_refused_without_blocking() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_a.sql", "SELECT 1;")]);
    let fifo = Path::new(dir.arg()).join("2_fifo.sql");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let child = spawn(sg(&db, Path::new(dir.arg()), &["migrate", "up"]));
    let out = finish(child, Duration::from_secs(30)).await.expect(2);
    assert!(out.stderr.contains("2_fifo.sql: not a regular file"), "{}", out.stderr);
}

#[tokio::test]
async fn two_folders_sharing_one_history_verify_with_ignore_missing() {
    let db = TestDb::new().await;
    let first = Dir::new(&[("1_a.sql", "CREATE TABLE a ();")]);
    let second = Dir::new(&[("2_b.sql", "CREATE TABLE b ();")]);
    let (a, b) = (Path::new(first.arg()), Path::new(second.arg()));
    run(sg(&db, a, &["migrate", "up"])).await.expect(0);
    run(sg(&db, b, &["migrate", "up", "--ignore-missing"])).await.expect(0);
    let strict = run(sg(&db, a, &["migrate", "verify"])).await.expect(1);
    assert!(strict.stderr.contains("1 missing"), "{}", strict.stderr);
    let out = run(sg(&db, a, &["migrate", "verify", "--ignore-missing"])).await.expect(0);
    assert!(out.all().contains("files and history agree (1 .sql file read as sqlx)"), "{}", out.all());
}

#[tokio::test]
async fn a_no_transaction_file_killed_during_statement_3_resumes_at_statement_3() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    exec(&mut conn, "CREATE TABLE gate (n int); CREATE TABLE counter (n int);").await;
    // Statements 1 and 2 are not idempotent; statement 3 waits on a lock the test holds.
    let dir = Dir::new(&[(
        "1_steps.sql",
        "-- no-transaction\nCREATE TABLE made_once (n int);\nINSERT INTO counter VALUES (1);\n\
         INSERT INTO gate VALUES (3);\nCREATE INDEX CONCURRENTLY made_once_n ON made_once (n);\n",
    )]);
    let source = Path::new(dir.arg());
    let mut holder = db.connect().await;
    exec(&mut holder, "BEGIN; LOCK TABLE gate IN ACCESS EXCLUSIVE MODE").await;
    let child = spawn(sg(&db, source, &["migrate", "up", "--ddl-lock-timeout", "60s"]));
    let waiting =
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'INSERT INTO gate%' AND wait_event_type = 'Lock'";
    let mut pid: Option<i32> = None;
    for _ in 0..200 {
        pid = sqlx::query_scalar(waiting).fetch_optional(&mut conn).await.unwrap();
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = pid.expect("statement 3 never started waiting");
    // A crash: the runner dies, and so does its connection, before statement 3 completes.
    crate::support::signal(&child, "KILL");
    let _ = finish(child, Duration::from_secs(10)).await;
    exec(&mut conn, &format!("SELECT pg_terminate_backend({pid})")).await;
    exec(&mut holder, "ROLLBACK").await;

    let status = run(sg(&db, source, &["migrate", "status"])).await.expect(0);
    assert!(status.stdout.contains("[2 of 4 statements done; `up` resumes]"), "{}", status.stdout);
    let resumed = run(sg(&db, source, &["migrate", "up"])).await.expect(0);
    assert!(
        resumed.stderr.contains("resuming migration 1 (steps) at statement 3 of 4"),
        "{}",
        resumed.stderr
    );
    let counted: i64 = scalar(&mut conn, "SELECT count(*) FROM counter").await;
    let gated: i64 = scalar(&mut conn, "SELECT count(*) FROM gate").await;
    assert_eq!((counted, gated), (1, 1), "statements 1-2 ran once, statement 3 once");
    run(sg(&db, source, &["migrate", "verify"])).await.expect(0);
}

#[tokio::test]
async fn a_history_table_from_before_progress_was_recorded_is_read_and_upgraded() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    // The table as shipgate created it before statements_done existed, with one applied row.
    exec(
        &mut conn,
        "CREATE TABLE shipgate_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, checksum BYTEA NOT NULL,
             checksum_normalized BYTEA NOT NULL, success BOOLEAN NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
             execution_ms BIGINT NOT NULL DEFAULT 0, run_id TEXT NOT NULL, applied_by TEXT NOT NULL, origin TEXT NOT NULL DEFAULT 'apply');",
    )
    .await;
    let dir =
        Dir::new(&[("1_a.sql", "CREATE TABLE a ();"), ("2_b.sql", "-- no-transaction\nCREATE TABLE b ();")]);
    let source = Path::new(dir.arg());
    run(sg(&db, source, &["migrate", "baseline", "--version", "1"])).await.expect(0);
    run(sg(&db, source, &["migrate", "status"])).await.expect(0);
    run(sg(&db, source, &["migrate", "up"])).await.expect(0);
    let column: bool = scalar(
        &mut conn,
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'shipgate_migrations' \
         AND column_name = 'statements_done')",
    )
    .await;
    assert!(column);
    run(sg(&db, source, &["migrate", "verify"])).await.expect(0);
}

#[tokio::test]
async fn flyway_runs_a_concurrent_index_outside_a_transaction_and_refuses_what_it_cannot_run() {
    let db = TestDb::new().await;
    let folder = fixture("flyway");
    run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    let status = run(sg(&db, &folder, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let no_tx: Vec<bool> = doc["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["no_transaction"].as_bool().unwrap())
        .collect();
    // V3 (CONCURRENTLY, detected as Flyway does) and V4 (its .conf) ran outside a transaction.
    assert_eq!(no_tx, vec![false, false, true, true]);

    let (_keep, bad) = copy(&folder);
    std::fs::write(bad.join("R__views.sql"), "CREATE OR REPLACE VIEW v AS SELECT 1;").unwrap();
    std::fs::write(bad.join("V5.1__dotted.sql"), "SELECT 1;").unwrap();
    std::fs::write(bad.join("afterMigrate.sql"), "SELECT 1;").unwrap();
    let out = run(sg(&TestDb::new().await, &bad, &["migrate", "up"])).await.expect(2);
    for needle in [
        "R__views.sql: a repeatable Flyway migration",
        "V5.1__dotted.sql: Flyway version `5.1` has parts",
        "afterMigrate.sql: a Flyway SQL callback",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

#[tokio::test]
async fn several_source_folders_are_one_set_with_one_history() {
    let db = TestDb::new().await;
    let app = Dir::new(&[("1_a.sql", "CREATE TABLE a ();"), ("3_c.sql", "CREATE TABLE c ();")]);
    let jobs = Dir::new(&[("2_b.sql", "CREATE TABLE b ();")]);
    let both = |args: &[&str]| {
        let mut cmd = shipgate(args);
        cmd.env("DATABASE_URL", &db.url).args(["--source", app.arg(), "--source", jobs.arg()]);
        cmd
    };
    let up = run(both(&["migrate", "up"])).await.expect(0);
    let order: Vec<&str> = up.stdout.lines().filter(|l| l.starts_with("applied  ")).collect();
    assert_eq!(order.len(), 3, "{}", up.stdout);
    assert!(
        order[0].contains(" 1  a") && order[1].contains(" 2  b") && order[2].contains(" 3  c"),
        "{order:?}"
    );
    run(both(&["migrate", "verify"])).await.expect(0);
    // The same through the environment, comma-separated.
    let mut env = shipgate(&["migrate", "verify"]);
    env.env("DATABASE_URL", &db.url).env("SHIPGATE_SOURCE", format!("{},{}", app.arg(), jobs.arg()));
    run(env).await.expect(0);
    // One folder alone is missing the other's migration.
    run(sg(&db, Path::new(app.arg()), &["migrate", "verify"])).await.expect(1);

    jobs.write("3_clash.sql", "CREATE TABLE clash ();");
    let clash = run(both(&["migrate", "up"])).await.expect(2);
    assert!(clash.stderr.contains("version 3:"), "{}", clash.stderr);
    assert!(
        clash.stderr.contains("3_c.sql and ") && clash.stderr.contains("3_clash.sql"),
        "{}",
        clash.stderr
    );
}

/// The project file names the folders (`sources`) and the `.sql` files that are not
/// migrations (`allow_unread`), and `--config` from another directory reads the folders
/// beside the file, not the ones in the current directory.
#[tokio::test]
async fn the_project_file_names_several_sources_and_what_may_stay_unread() {
    let db = TestDb::new().await;
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    for (file, body) in [
        ("db/app/1_a.sql", "CREATE TABLE a ();"),
        ("db/app/seeds/demo.sql", "INSERT INTO a DEFAULT VALUES;"),
        ("db/jobs/2_b.sql", "CREATE TABLE b ();"),
    ] {
        std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
        std::fs::write(root.join(file), body).unwrap();
    }
    let config = root.join("shipgate.toml");
    std::fs::write(&config, "[migrations]\nsources = [\"db/app\", \"db/jobs\"]\n").unwrap();
    // Run from a directory with a `migrations/` folder of its own, which must not be read.
    let elsewhere = Dir::new(&[("9_wrong.sql", "CREATE TABLE wrong ();")]);
    let cwd = Path::new(elsewhere.arg()).parent().unwrap();
    let sg = |args: &[&str]| {
        let mut cmd = shipgate(args);
        cmd.env("DATABASE_URL", &db.url).arg("--config").arg(&config).current_dir(cwd);
        cmd
    };
    let unread = run(sg(&["migrate", "up"])).await.expect(2);
    assert!(unread.stderr.contains("seeds/demo.sql"), "{}", unread.stderr);
    std::fs::write(
        &config,
        "[migrations]\nsources = [\"db/app\", \"db/jobs\"]\nallow_unread = [\"seeds/**\"]\n",
    )
    .unwrap();
    let up = run(sg(&["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 2 migrations"), "{}", up.stdout);
    assert_eq!(tables(&db).await, ["a", "b"]);
    run(sg(&["migrate", "verify"])).await.expect(0);

    std::fs::write(&config, "[migrations]\nmaster = \"db/app\"\nsources = [\"db/jobs\"]\n").unwrap();
    let both = run(sg(&["migrate", "status"])).await.expect(2);
    assert!(both.stderr.contains("has both `master` and `sources`"), "{}", both.stderr);

    // No folder named: the default `migrations/` beside the file, for migrate and tenants.
    std::fs::write(&config, "[migrations]\ntenants_query = \"SELECT 'x' WHERE false\"\n").unwrap();
    std::fs::create_dir_all(root.join("migrations/tenant")).unwrap();
    std::fs::write(root.join("migrations/tenant/1_t.sql"), "CREATE TABLE t ();").unwrap();
    let status = run(sg(&["tenants", "status"])).await.expect(0);
    assert!(!status.stderr.contains("wrong") && !status.stdout.contains("wrong"), "{}", status.stderr);
    let master = run(sg(&["migrate", "status", "--set", "tenant", "--schema", "public"])).await.expect(0);
    assert!(master.stdout.lines().any(|l| l.trim_end().ends_with(" t")), "{}", master.stdout);
}
