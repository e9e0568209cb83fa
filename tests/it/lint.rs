//! The migration lint as users meet it: `migrate lint` in each output format, the gate before
//! `migrate up` applies anything, the deploy refused before any AWS call, and the project's
//! own migrations and every fixture folder lint clean (or carry a reasoned allow).

use serde_json::{Value, json};

use crate::support::pg::{TestDb, scalar};
use crate::support::{Dir, fixture, repo_root, run, shipgate, shipgate_on};

const MADE: &str = "CREATE TABLE orders (id int, n int);\n";
const INDEX: &str = "-- speeds up the report\nCREATE INDEX orders_n ON orders (n);\n";

fn lint(dir: &Dir, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["migrate", "lint", "--source", dir.arg()];
    args.extend_from_slice(extra);
    shipgate(&args)
}

#[tokio::test]
async fn migrate_lint_reports_each_finding_where_it_is_and_fails_on_an_error() {
    let dir = Dir::new(&[
        ("1_init.sql", MADE),
        ("2_index.sql", INDEX),
        (
            "3_drop.sql",
            "-- shipgate:allow ban-drop-column: nothing reads it since v41\nALTER TABLE orders DROP COLUMN n;\n",
        ),
    ]);
    let out = run(lint(&dir, &[])).await.expect(1);
    let file = format!("{}/2_index.sql", dir.arg());
    assert!(
        out.stdout.contains(&format!("{file}:2:1: error require-concurrent-index-creation: ")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  lock: SHARE on orders (scans the table)"), "{}", out.stdout);
    assert!(out.stdout.contains("  help: Use `concurrently`"), "{}", out.stdout);
    assert!(out.stdout.contains("3_drop.sql:2:20: allowed ban-drop-column: "), "{}", out.stdout);
    assert!(out.stdout.contains("  allowed: nothing reads it since v41"), "{}", out.stdout);
    assert!(out.stdout.contains("lint: 1 error, 0 warnings, 1 allowed in 3 migrations"), "{}", out.stdout);
    assert!(
        out.stderr.contains("the migration lint found: 1 error finding (require-concurrent-index-creation)"),
        "{}",
        out.stderr
    );

    // Annotations on the lines of the pull request's files.
    let out = run(lint(&dir, &["--output", "github"])).await.expect(1);
    assert!(
        out.stdout.contains(&format!(
            "::error file={file},line=2,col=1,title=require-concurrent-index-creation::During normal index creation"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("::notice file="), "the allowed one is a notice: {}", out.stdout);
    assert!(!out.stdout.contains("  lock: "), "only annotations and the verdict: {}", out.stdout);

    // JSON: one object per finding with every field, then the summary.
    let out = run(lint(&dir, &["--output", "json"])).await.expect(1);
    let lines: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let finding =
        lines.iter().find(|l| l["event"] == "finding" && l["severity"] == "error").expect("a finding");
    for key in
        ["file", "line", "column", "rule", "severity", "message", "help", "statement", "lock", "allowed"]
    {
        assert!(finding.get(key).is_some(), "{key} in {finding}");
    }
    assert_eq!(finding["statement"], "CREATE INDEX orders_n ON orders (n);");
    let summary = lines.iter().find(|l| l["event"] == "lint_summary").expect("the summary");
    assert_eq!((summary["errors"].as_u64(), summary["allowed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(lines.last().unwrap()["event"], "error", "then the error object, as every command ends");

    // Under GitHub Actions: annotations by default, and a table in the step summary.
    let tmp = tempfile::tempdir().unwrap();
    let step_summary = tmp.path().join("summary.md");
    let mut cmd = lint(&dir, &[]);
    cmd.env("GITHUB_ACTIONS", "true").env("GITHUB_STEP_SUMMARY", &step_summary);
    let out = run(cmd).await.expect(1);
    assert!(out.stdout.contains("::error file="), "{}", out.stdout);
    let table = std::fs::read_to_string(&step_summary).unwrap();
    assert!(table.contains("| ❌ error | `"), "{table}");
    assert!(table.contains("`require-concurrent-index-creation`"), "{table}");
    assert!(table.contains("`ban-drop-column`: nothing reads it since v41"), "{table}");

    // --explain: every statement's lock, safe ones too.
    let out = run(lint(&dir, &["--explain"])).await.expect(1);
    assert!(
        out.stdout.contains("1_init.sql:1: no lock on an existing relation  CREATE TABLE orders"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("3_drop.sql:2: ACCESS EXCLUSIVE on orders  ALTER TABLE orders DROP COLUMN n;"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn the_safe_forms_lint_clean_and_bad_input_is_exit_2() {
    let dir = Dir::new(&[
        ("1_init.sql", MADE),
        ("2_index.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY orders_n ON orders (n);\n"),
        ("3_check.sql", "ALTER TABLE orders ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID;\n"),
        ("4_validate.sql", "ALTER TABLE orders VALIDATE CONSTRAINT n_positive;\n"),
    ]);
    let out = run(lint(&dir, &[])).await.expect(0);
    assert!(out.stdout.contains("lint: 0 errors, 0 warnings, 0 allowed in 4 migrations"), "{}", out.stdout);

    // An allow naming a rule that does not exist is a typo, not an allow.
    dir.write("5_typo.sql", "-- shipgate:allow ban-drop-colum: typo\nALTER TABLE orders DROP COLUMN n;\n");
    let out = run(lint(&dir, &[])).await.expect(2);
    assert!(
        out.stderr
            .contains("5_typo.sql:1: unknown lint rule `ban-drop-colum` (did you mean `ban-drop-column`?)"),
        "{}",
        out.stderr
    );
    dir.remove("5_typo.sql");

    // A file the runner cannot read is refused as it is everywhere, with the file named.
    dir.write_bytes("5_bad.sql", b"SELECT '\xff';");
    let out = run(lint(&dir, &[])).await.expect(2);
    assert!(out.stderr.contains("5_bad.sql: not valid UTF-8"), "{}", out.stderr);
    dir.remove("5_bad.sql");

    // [lint] of shipgate.toml is validated like every other key.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("shipgate.toml");
    std::fs::write(&config, "[lint]\nrules = { \"no-such-rule\" = \"error\" }\n").unwrap();
    let out = run(lint(&dir, &["--config", config.to_str().unwrap()])).await.expect(2);
    assert!(out.stderr.contains("[lint] unknown lint rule `no-such-rule`"), "{}", out.stderr);
    std::fs::write(&config, "[lint]\nrules = { \"require-concurrent-index-creation\" = \"loud\" }\n")
        .unwrap();
    run(lint(&dir, &["--config", config.to_str().unwrap()])).await.expect(2);
    // ... and changes severities: here the style rule for `int` is turned on.
    std::fs::write(&config, "[lint]\nrules = { \"prefer-bigint-over-int\" = \"error\" }\n").unwrap();
    let out = run(lint(&dir, &["--config", config.to_str().unwrap()])).await.expect(1);
    assert!(out.stdout.contains("1_init.sql:1:25: error prefer-bigint-over-int"), "{}", out.stdout);
    // baseline leaves out what was applied before the lint was adopted.
    std::fs::write(&config, "[lint]\nbaseline = 1\nrules = { \"prefer-bigint-over-int\" = \"error\" }\n")
        .unwrap();
    let out = run(lint(&dir, &["--config", config.to_str().unwrap()])).await.expect(0);
    assert!(
        out.stdout.contains("in 3 migrations (1 left out by [lint] baseline or exclude)"),
        "{}",
        out.stdout
    );
}

async fn version(db: &TestDb) -> Option<i64> {
    scalar(&mut db.connect().await, "SELECT max(version) FROM shipgate_migrations WHERE success").await
}

#[tokio::test]
async fn migrate_up_refuses_a_dangerous_pending_migration_and_applies_nothing() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_init.sql", MADE)]);
    run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(0);
    let mut conn = db.connect().await;
    sqlx::raw_sql("INSERT INTO orders SELECT g, g FROM generate_series(1, 5000) g; ANALYZE orders;")
        .execute(&mut conn)
        .await
        .unwrap();
    // A safe migration before the dangerous one: neither is applied.
    dir.write("2_note.sql", "ALTER TABLE orders ADD COLUMN note text;\n");
    dir.write("3_index.sql", INDEX);
    let out = run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(
        out.stdout.contains("3_index.sql:2:1: error require-concurrent-index-creation"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  size: orders: "), "the table's size: {}", out.stdout);
    assert!(out.stdout.contains("about 5000 rows"), "{}", out.stdout);
    assert!(out.stderr.contains("refused by the migration lint: 1 error finding (require-concurrent-index-creation) in the pending migrations; nothing was applied"), "{}", out.stderr);
    assert!(out.stderr.contains("--no-lint (SHIPGATE_LINT=off)"), "{}", out.stderr);
    assert_eq!(version(&db).await, Some(1));
    // The lock plan's size lookup comes from the database; `lint --pending` says the same.
    let out = run(shipgate_on(&db, &dir, &["migrate", "lint", "--pending"])).await.expect(1);
    assert!(out.stdout.contains("lint: 1 error, 0 warnings, 0 allowed in 2 migrations"), "{}", out.stdout);
    // A dry run shows the finding and changes nothing either way.
    let out = run(shipgate_on(&db, &dir, &["migrate", "up", "--dry-run"])).await.expect(0);
    assert!(out.stdout.contains("error require-concurrent-index-creation"), "{}", out.stdout);

    // SHIPGATE_LINT takes on and off only.
    let mut cmd = shipgate_on(&db, &dir, &["migrate", "up"]);
    cmd.env("SHIPGATE_LINT", "maybe");
    let out = run(cmd).await.expect(2);
    assert!(out.stderr.contains("SHIPGATE_LINT=`maybe`"), "{}", out.stderr);
    // In an emergency: applied, and the summary says it was not linted.
    let mut cmd = shipgate_on(&db, &dir, &["migrate", "up"]);
    cmd.env("SHIPGATE_LINT", "off");
    let out = run(cmd).await.expect(0);
    assert!(
        out.stdout.contains("applied 2 migrations") && out.stdout.contains("(not linted: --no-lint)"),
        "{}",
        out.stdout
    );
    assert_eq!(version(&db).await, Some(3));

    // --no-lint does the same; an allowed statement passes with the lint on.
    dir.write("4_index.sql", "CREATE INDEX orders_note ON orders (note);\n");
    run(shipgate_on(&db, &dir, &["migrate", "up", "--no-lint"])).await.expect(0);
    dir.write(
        "5_index.sql",
        "-- shipgate:allow require-concurrent-index-creation: orders has 5,000 rows; the build takes milliseconds\nCREATE INDEX orders_id ON orders (id);\n",
    );
    let out = run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert!(out.stdout.contains("allowed require-concurrent-index-creation"), "{}", out.stdout);
    assert_eq!(version(&db).await, Some(5));
}

#[tokio::test]
async fn a_table_made_earlier_in_the_same_run_is_not_an_existing_table() {
    // A fresh database: the index is on a table this very run creates.
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_init.sql", MADE), ("2_index.sql", INDEX)]);
    run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert_eq!(version(&db).await, Some(2));
}

#[tokio::test]
async fn the_project_migrations_and_every_fixture_lint_clean_or_carry_a_reason() {
    let root = repo_root();
    let mut folders: Vec<(std::path::PathBuf, Vec<&str>)> = vec![(root.join("migrations"), vec![])];
    for name in [
        "dbmate",
        "diesel",
        "drizzle",
        "drizzle-v1",
        "flyway",
        "goose",
        "prisma",
        "prisma-numbered",
        "knex/sql",
    ] {
        folders.push((fixture(name), vec![]));
    }
    folders.push((fixture("golang-migrate"), vec!["--format", "golang-migrate"]));
    for (folder, extra) in folders {
        let mut args = vec!["migrate", "lint", "--source", folder.to_str().unwrap()];
        args.extend(extra);
        let out = run(shipgate(&args)).await.expect(0);
        assert!(out.stdout.contains("lint: 0 errors, 0 warnings"), "{}: {}", folder.display(), out.stdout);
        // Every allow has its reason.
        assert!(!out.stdout.contains("has no reason"), "{}", out.stdout);
    }
}

/// A project whose one environment is on ECS, with `migration` as its only migration file.
fn ecs_project(migration: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let template = |family: &str, name: &str| {
        json!({ "family": family, "containerDefinitions": [
            { "name": name, "image": "example/app:1", "essential": true }
        ]})
        .to_string()
    };
    std::fs::write(dir.path().join("migrate.json"), template("app-migrate", "migrate")).unwrap();
    std::fs::write(dir.path().join("api.json"), template("app-api", "api")).unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(dir.path().join("migrations/20260101000000_orders_index.sql"), migration).unwrap();
    std::fs::write(
        dir.path().join("shipgate.toml"),
        "[env.production]\nregion = \"us-east-1\"\ncluster = \"prod\"\nsubnets = [\"subnet-1\"]\ntenants = false\n\
         migration_task = { template = \"migrate.json\" }\nservices = [ { name = \"api\", template = \"api.json\" } ]\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn a_deploy_with_a_dangerous_migration_fails_before_any_aws_call() {
    let project = ecs_project("CREATE INDEX orders_n ON orders (n);\n");
    // Any AWS call would connect here; none may.
    let aws = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    aws.set_nonblocking(true).unwrap();
    let config = project.path().join("shipgate.toml");
    let (summary, outputs) = (project.path().join("summary.md"), project.path().join("outputs"));
    let mut cmd = shipgate(&["deploy", "--env", "production", "--config", config.to_str().unwrap()]);
    cmd.env("AWS_ENDPOINT_URL", format!("http://{}", aws.local_addr().unwrap()))
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "example")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs);
    let out = run(cmd).await.expect(1);
    let file = project.path().join("migrations/20260101000000_orders_index.sql");
    assert!(
        out.stdout.contains(&format!(
            "::error file={},line=1,col=1,title=require-concurrent-index-creation::",
            file.display()
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("refused by the migration lint before any change: 1 error finding (require-concurrent-index-creation); no task definition was registered, no task was started, no service was updated"),
        "{}",
        out.stderr
    );
    assert!(aws.accept().is_err(), "no connection to AWS was made");
    let table = std::fs::read_to_string(&summary).unwrap();
    assert!(
        table.contains("shipgate deploy production: migration lint") && table.contains("| ❌ error |"),
        "{table}"
    );
}

#[tokio::test]
async fn the_same_index_built_concurrently_passes_the_deploys_lint() {
    let project = ecs_project("-- no-transaction\nCREATE INDEX CONCURRENTLY orders_n ON orders (n);\n");
    let config = project.path().join("shipgate.toml");
    // Past the lint the deploy goes on to AWS; here nothing answers there, which is a
    // different failure (exit 3) than the lint's.
    let mut cmd = shipgate(&["deploy", "--env", "production", "--config", config.to_str().unwrap()]);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "example")
        .env("AWS_MAX_ATTEMPTS", "1");
    let out = run(cmd).await;
    assert!(!out.all().contains("migration lint"), "{}", out.all());
    assert_ne!(out.code, Some(1), "{}", out.all());
}

#[tokio::test]
async fn a_deploy_dry_run_shows_the_lock_plan_and_no_lint_skips_the_lint() {
    let project = ecs_project("CREATE TABLE audit (id int);\nCREATE INDEX orders_n ON orders (n);\n");
    let config = project.path().join("shipgate.toml");
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "--env", "production", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut cmd = shipgate(&args);
        cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "example")
            .env("AWS_MAX_ATTEMPTS", "1");
        cmd
    };
    // The statements that block writes, beside the findings; the lint error still refuses.
    let plan = run(deploy(&["--dry-run"])).await.expect(1);
    assert!(plan.stdout.contains("SHARE on orders (scans the table)"), "{}", plan.all());
    assert!(!plan.stdout.contains("CREATE TABLE audit"), "a statement that blocks nothing: {}", plan.stdout);
    assert!(plan.stdout.contains("require-concurrent-index-creation"), "{}", plan.stdout);
    // --no-lint: past the lint, to AWS (which does not answer here: exit 3, not the lint's 1).
    let skipped = run(deploy(&["--no-lint"])).await;
    assert_eq!(skipped.code, Some(3), "{}", skipped.all());
    assert!(skipped.stderr.contains("the migrations are not linted (--no-lint"), "{}", skipped.stderr);
    assert!(!skipped.all().contains("require-concurrent-index-creation"), "{}", skipped.all());
}

#[tokio::test]
async fn sessions_that_would_block_the_run_are_listed_before_it_starts() {
    let db = TestDb::new().await;
    let dir = Dir::new(&[("1_init.sql", MADE)]);
    run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(0);
    // A report left open in a transaction: it holds ACCESS SHARE on orders.
    let mut reader = db.connect().await;
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM orders;").execute(&mut reader).await.unwrap();
    let pid: i32 = scalar(&mut reader, "SELECT pg_backend_pid()").await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    dir.write("2_note.sql", "ALTER TABLE orders ADD COLUMN note text;\n");

    // The plan shows the lock, and the blocker, before anything is run.
    let out =
        run(shipgate_on(&db, &dir, &["migrate", "up", "--dry-run", "--blocker-age", "1s"])).await.expect(0);
    assert!(
        out.stdout.contains("line 1: ACCESS EXCLUSIVE on orders  ALTER TABLE orders ADD COLUMN note text;"),
        "{}",
        out.stdout
    );
    let ours = format!("blocker: pid {pid} (postgres");
    let line = out.stdout.lines().find(|l| l.starts_with(&ours)).unwrap_or_else(|| panic!("{}", out.stdout));
    // Its age: at least the second it was left open (more on a slow machine).
    let age: u64 = line
        .split("transaction open ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(age >= 1, "{line}");
    assert!(line.contains("idle in transaction, transaction open "), "{line}");
    assert!(line.contains(" s, last SELECT) holds AccessShareLock on orders"), "{line}");
    assert!(line.contains("needs ACCESS EXCLUSIVE"), "{line}");
    assert!(!line.contains("count"), "never the query's text: {line}");

    // A real run lists it first, then waits as always (lock_timeout, retries) and fails cleanly.
    let out = run(shipgate_on(
        &db,
        &dir,
        &["migrate", "up", "--blocker-age", "1s", "--ddl-lock-timeout", "200ms", "--lock-retries", "0"],
    ))
    .await;
    assert!(out.stdout.contains(&format!("blocker: pid {pid} ")), "{}", out.all());
    assert_ne!(out.code, Some(0), "{}", out.all());
    // Younger than --blocker-age: not listed.
    let out =
        run(shipgate_on(&db, &dir, &["migrate", "up", "--dry-run", "--blocker-age", "1h"])).await.expect(0);
    assert!(!out.stdout.contains("blocker: "), "{}", out.stdout);
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    run(shipgate_on(&db, &dir, &["migrate", "up"])).await.expect(0);
}

#[tokio::test]
async fn tenants_up_lints_what_any_tenant_still_lacks_before_any_tenant_starts() {
    let db = TestDb::new().await;
    let dir = Dir::sets(
        &[("1_tenants.sql", "CREATE TABLE tenants (schema_name text PRIMARY KEY);")],
        &[("1_orders.sql", MADE)],
    );
    run(shipgate_on(&db, &dir, &["migrate", "up", "--set", "master"])).await.expect(0);
    let mut conn = db.connect().await;
    sqlx::raw_sql("INSERT INTO tenants VALUES ('tenant_a'), ('tenant_b'); CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b;")
        .execute(&mut conn)
        .await
        .unwrap();
    // A fresh fleet: the index is on a table the same run creates.
    run(shipgate_on(&db, &dir, &["tenants", "up"])).await.expect(0);
    // Later: an index on the (existing) orders of every tenant.
    dir.write("tenant/2_index.sql", INDEX);
    // tenant_b's orders is the bigger one: its size is the one named.
    sqlx::raw_sql(
        "INSERT INTO tenant_b.orders (n) SELECT g FROM generate_series(1, 5000) g; ANALYZE tenant_b.orders;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let out = run(shipgate_on(&db, &dir, &["tenants", "up"])).await.expect(1);
    assert!(
        out.stdout.contains("2_index.sql:2:1: error require-concurrent-index-creation"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("size: orders: ")
            && out.stdout.contains("about 5000 rows in tenant `tenant_b`, the largest"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("in the tenants' pending migrations; nothing was applied"), "{}", out.stderr);
    let applied: i64 =
        scalar(&mut conn, "SELECT count(*) FROM tenant_a.shipgate_migrations WHERE version = 2").await;
    assert_eq!(applied, 0);
    // Built concurrently, it passes and every tenant gets it.
    dir.write("tenant/2_index.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY orders_n ON orders (n);\n");
    run(shipgate_on(&db, &dir, &["tenants", "up"])).await.expect(0);
}
