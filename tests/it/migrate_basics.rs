//! The everyday commands end to end: up, status, verify, down, baseline, repair, new, dry run.

use crate::support::pg::{TestDb, exec, scalar};
use crate::support::{Dir, run};

fn reversible() -> Dir {
    Dir::new(&[
        ("1_create_a.up.sql", "CREATE TABLE a (id int);"),
        ("1_create_a.down.sql", "DROP TABLE a;"),
        ("2_create_b.up.sql", "CREATE TABLE b (id int);"),
        ("2_create_b.down.sql", "DROP TABLE b;"),
    ])
}

use crate::support::shipgate_on as cmd;

#[tokio::test]
async fn up_applies_in_order_records_history_and_is_idempotent() {
    let db = TestDb::new().await;
    let dir = reversible();
    let first = run(cmd(&db, &dir, &["migrate", "up", "--run-id", "run-1"])).await.expect(0);
    assert!(first.stdout.contains("applied 2 migrations"), "{}", first.stdout);
    let second = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert!(second.stdout.contains("up to date at version 2"), "{}", second.stdout);

    let mut conn = db.connect().await;
    let rows: Vec<(i64, String, bool, String, String, String, i32)> = sqlx::query_as(
        "SELECT version, description, success, run_id, applied_by, origin, length(checksum)
         FROM public.shipgate_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for (i, (version, description, success, run_id, applied_by, origin, checksum_len)) in
        rows.into_iter().enumerate()
    {
        assert_eq!(version, i as i64 + 1);
        assert_eq!(description, if i == 0 { "create a" } else { "create b" });
        assert!(success);
        assert_eq!(run_id, "run-1");
        assert!(applied_by.contains('@'), "{applied_by}");
        assert_eq!(origin, "apply");
        assert_eq!(checksum_len, 48, "SHA-384, as sqlx");
    }
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM a").await, 0);
}

#[tokio::test]
async fn status_and_verify_report_every_state() {
    let db = TestDb::new().await;
    let dir = reversible();
    run(cmd(&db, &dir, &["migrate", "up", "--target", "1"])).await.expect(0);
    // Pending: 2. Verify refuses; status lists it.
    let verify = run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(1);
    assert!(verify.stderr.contains("1 pending"), "{}", verify.stderr);
    let status = run(cmd(&db, &dir, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(doc["summary"]["applied"], 1);
    assert_eq!(doc["summary"]["pending"], 1);
    assert_eq!(doc["migrations"][0]["state"], "applied");
    assert!(doc["migrations"][0]["applied_at"].is_string());
    assert!(doc["migrations"][0]["run_id"].is_string());
    assert_eq!(doc["migrations"][1]["state"], "pending");

    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(0);

    // A missing file and a failed row show up too.
    dir.remove("2_create_b.up.sql");
    dir.remove("2_create_b.down.sql");
    let mut conn = db.connect().await;
    exec(&mut conn, "INSERT INTO shipgate_migrations (version, description, checksum, checksum_normalized, success, run_id, applied_by) VALUES (7, 'half done', '', '', false, 'r', 'x')").await;
    let status = run(cmd(&db, &dir, &["migrate", "status"])).await.expect(0);
    assert!(
        status.stdout.contains("1 applied, 0 pending, 0 modified, 1 missing, 1 failed"),
        "{}",
        status.stdout
    );
    let verify = run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(1);
    assert!(verify.stderr.contains("1 missing, 1 failed"), "{}", verify.stderr);
}

#[tokio::test]
async fn down_by_steps_to_version_and_last_run() {
    let db = TestDb::new().await;
    let dir = reversible();
    dir.write("3_create_c.up.sql", "CREATE TABLE c (id int);");
    dir.write("3_create_c.down.sql", "DROP TABLE c;");
    run(cmd(&db, &dir, &["migrate", "up", "--target", "1", "--run-id", "first"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "up", "--run-id", "second"])).await.expect(0);
    let mut conn = db.connect().await;
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a','b','c')";

    let last = run(cmd(&db, &dir, &["migrate", "down", "--last-run"])).await.expect(0);
    assert!(last.stdout.contains("reverted 2 migrations"), "{}", last.stdout);
    assert_eq!(scalar::<i64>(&mut conn, tables).await, 1);

    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "down", "--steps", "1"])).await.expect(0);
    assert_eq!(scalar::<i64>(&mut conn, tables).await, 2);
    run(cmd(&db, &dir, &["migrate", "down", "--to", "0"])).await.expect(0);
    assert_eq!(scalar::<i64>(&mut conn, tables).await, 0);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 0);

    // Irreversible migrations are refused before anything is reverted.
    dir.write("4_irreversible.sql", "CREATE TABLE d (id int);");
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    let refused = run(cmd(&db, &dir, &["migrate", "down", "--steps", "2"])).await.expect(2);
    assert!(refused.stderr.contains("no .down.sql next to"), "{}", refused.stderr);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 4);
}

#[tokio::test]
async fn baseline_records_without_running_and_refuses_a_second_time() {
    let db = TestDb::new().await;
    let dir = reversible();
    // The schema of migration 1 was created by hand, before any tracking.
    let mut conn = db.connect().await;
    exec(&mut conn, "CREATE TABLE a (id int)").await;
    let out = run(cmd(&db, &dir, &["migrate", "baseline", "--version", "1"])).await.expect(0);
    assert!(out.stdout.contains("baselined"), "{}", out.stdout);
    let origin: String = scalar(&mut conn, "SELECT origin FROM shipgate_migrations WHERE version = 1").await;
    assert_eq!(origin, "baseline");
    let again = run(cmd(&db, &dir, &["migrate", "baseline", "--version", "2"])).await.expect(1);
    assert!(again.stderr.contains("already has 1 history row"), "{}", again.stderr);
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 2);
    let unknown = run(cmd(&db, &dir, &["migrate", "baseline", "--version", "9"])).await.expect(2);
    assert!(unknown.stderr.contains("--version 9 is not"), "{}", unknown.stderr);
}

#[tokio::test]
async fn failed_no_transaction_migration_stops_later_runs_until_repaired() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[
        ("1_t.sql", "CREATE TABLE t (id int);"),
        ("2_idx.sql", "-- shipgate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON nosuchtable (id);"),
    ]);
    let first = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(first.stderr.contains("recorded as failed"), "{}", first.stderr);
    // The file is unchanged, so the rerun resumes at its first unfinished statement (here its
    // only one), which fails the same way.
    let second = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(second.stderr.contains("resuming migration 2 (idx) at statement 1 of 1"), "{}", second.stderr);
    assert!(second.stderr.contains("shipgate migrate repair --version 2"), "{}", second.stderr);
    // Edited, it is refused: where to resume is no longer known.
    dir.write("2_idx.sql", "-- shipgate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);");
    let third = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(third.stderr.contains("migration 2 (idx) is marked as failed"), "{}", third.stderr);
    assert!(third.stderr.contains("cannot tell where to resume"), "{}", third.stderr);

    // The operator forgets the failed attempt.
    run(cmd(&db, &dir, &["migrate", "repair", "--version", "2", "--remove"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(0);
    let mut conn = db.connect().await;
    let valid: bool =
        scalar(&mut conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass").await;
    assert!(valid);
}

#[tokio::test]
async fn repair_mark_applied_accepts_an_intentional_edit() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_t.sql", "CREATE TABLE t (id int);")]);
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    dir.write("1_t.sql", "CREATE TABLE t (id int); -- reviewed");
    run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(1);
    run(cmd(&db, &dir, &["migrate", "repair", "--version", "1", "--mark-applied"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "verify"])).await.expect(0);
    let missing = run(cmd(&db, &dir, &["migrate", "repair", "--version", "5", "--remove"])).await.expect(2);
    assert!(missing.stderr.contains("no history row for version 5"), "{}", missing.stderr);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let db = TestDb::new().await;
    let dir = reversible();
    dir.write(
        "3_ix.sql",
        "-- shipgate:no-transaction\n-- shipgate:lock-timeout=30s\nCREATE INDEX CONCURRENTLY ix ON b (id);",
    );
    let mut conn = db.connect().await;
    // Every schema, relation (table, index, sequence, view) and its kind.
    let catalog = "SELECT md5((SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace) || '|' ||
                   (SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY 1)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace))";
    let locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let before: String = scalar(&mut conn, catalog).await;

    let text = run(cmd(&db, &dir, &["migrate", "up", "--dry-run"])).await.expect(0);
    assert!(text.stdout.contains("dry run: 3 migrations to apply"), "{}", text.stdout);
    assert!(text.stdout.contains("no-transaction, lock_timeout=30s"), "{}", text.stdout);
    let json = run(cmd(&db, &dir, &["migrate", "up", "--dry-run", "--output", "json"])).await.expect(0);
    let mut lines = json.stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    assert_eq!(lines.next().unwrap()["event"], "source");
    let plan = lines.next().unwrap();
    assert_eq!(plan["event"], "plan");
    assert_eq!(plan["migrations"].as_array().unwrap().len(), 3);
    assert_eq!(plan["migrations"][2]["no_transaction"], true);

    assert_eq!(scalar::<String>(&mut conn, catalog).await, before, "the catalog changed");
    assert_eq!(scalar::<i64>(&mut conn, locks).await, 0);

    // And after a real run, a down dry run changes nothing either.
    run(cmd(&db, &dir, &["migrate", "up", "--target", "2"])).await.expect(0);
    let after_up: String = scalar(&mut conn, catalog).await;
    let down = run(cmd(&db, &dir, &["migrate", "down", "--steps", "2", "--dry-run"])).await.expect(0);
    assert!(down.stdout.contains("2 migrations to revert"), "{}", down.stdout);
    assert_eq!(scalar::<String>(&mut conn, catalog).await, after_up);
}

#[tokio::test]
async fn json_output_is_one_event_per_line_with_a_final_summary() {
    let db = TestDb::new().await;
    let dir = reversible();
    let out = run(cmd(&db, &dir, &["migrate", "up", "--output", "json"])).await.expect(0);
    let events: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["source", "applied", "applied", "summary"]);
    assert_eq!(events[0]["layout"], "sqlx");
    assert_eq!(events[0]["files_read"], 4);
    assert_eq!(events[3]["version"], 2);
    assert_eq!(events[3]["changed"], 2);

    dir.write("1_create_a.up.sql", "CREATE TABLE a (id bigint);");
    let failed = run(cmd(&db, &dir, &["migrate", "up", "--output", "json"])).await.expect(1);
    let last: serde_json::Value = serde_json::from_str(failed.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit_code"], 1);
    assert!(last["hint"].is_string());
}

#[tokio::test]
async fn schema_flag_isolates_history_and_objects() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_t.sql", "CREATE TABLE t (id int);")]);
    run(cmd(&db, &dir, &["migrate", "up", "--schema", "tenant one"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    let mut conn = db.connect().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename IN ('t', 'shipgate_migrations') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec!["public.shipgate_migrations", "public.t", "tenant one.shipgate_migrations", "tenant one.t"]
    );
}

#[tokio::test]
async fn new_creates_timestamped_files_that_the_runner_accepts() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[]);
    let made = run(cmd(&db, &dir, &["migrate", "new", "Add Users table", "--reversible"])).await.expect(0);
    assert_eq!(made.stdout.lines().count(), 2, "{}", made.stdout);
    run(cmd(&db, &dir, &["migrate", "new", "second"])).await.expect(0);
    let mut names: Vec<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    assert!(
        names[0].ends_with("_add_users_table.down.sql")
            && names[0].len() == "20261121120000_add_users_table.down.sql".len()
    );
    assert!(names[2].ends_with("_second.sql"));
    run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    run(cmd(&db, &dir, &["migrate", "new", "!!!"])).await.expect(2);
}

#[tokio::test]
async fn up_then_execs_the_application_in_place_and_never_starts_it_after_a_failure() {
    let db = TestDb::new().await;
    let dir = reversible();
    let app = ["sh", "-c", "echo \"pid $$\"; echo started; exit 7"];
    let mut args = vec!["migrate", "up", "--then", "--"];
    args.extend(app);
    let child = crate::support::spawn(cmd(&db, &dir, &args));
    let pid = child.id();
    let done = crate::support::finish(child, std::time::Duration::from_secs(60)).await.expect(7);
    assert!(done.stdout.contains("applied 2 migrations"), "{}", done.stdout);
    assert!(
        done.stdout.contains(&format!("pid {pid}\nstarted")),
        "same PID, so signals reach it: {}",
        done.stdout
    );

    dir.write("3_broken.sql", "CREATE TABLE nosuchtype_here (x nosuchtype);");
    let failed = run(cmd(&db, &dir, &args)).await.expect(1);
    assert!(!failed.stdout.contains("started"), "{}", failed.stdout);
    let missing =
        run(cmd(&db, &reversible(), &["migrate", "up", "--then", "--", "/nonexistent/app"])).await.expect(1);
    assert!(missing.stderr.contains("`/nonexistent/app` could not be started"), "{}", missing.stderr);
}
