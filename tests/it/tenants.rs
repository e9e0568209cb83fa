//! Multi-tenant databases against a real PostgreSQL: a master schema with a `tenants` table,
//! one schema per tenant, and the fleet commands over all of them.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::support::pg::{TestDb, exec, scalar};
use crate::support::{Dir, Run, finish, run, shipgate_on as cmd, signal, spawn};

const TENANTS_TABLE: &str =
    "CREATE TABLE tenants (schema_name text PRIMARY KEY, status text NOT NULL DEFAULT 'active');";

/// Ten tenant migrations, none idempotent: applying one twice fails on the duplicate table.
fn ten_migrations() -> Vec<(String, String)> {
    (1..=10)
        .map(|v| {
            (
                format!("{v}_t{v}.sql"),
                format!(
                    "CREATE TABLE t{v} (id int PRIMARY KEY, note text); INSERT INTO t{v} VALUES ({v}, 'x');"
                ),
            )
        })
        .collect()
}

fn project(tenant: &[(String, String)]) -> Dir {
    let tenant: Vec<(&str, &str)> = tenant.iter().map(|(n, b)| (n.as_str(), b.as_str())).collect();
    Dir::sets(&[("1_tenants.sql", TENANTS_TABLE)], &tenant)
}

/// The master migrated, and `n` tenants registered with their (empty) schemas.
async fn fleet(db: &TestDb, dir: &Dir, n: usize) -> PgConnection {
    run(cmd(db, dir, &["migrate", "up", "--set", "master"])).await.expect(0);
    let mut conn = db.connect().await;
    exec(
        &mut conn,
        &format!(
            "INSERT INTO tenants (schema_name) SELECT format('tenant_%s', lpad(g::text, 3, '0')) FROM generate_series(1, {n}) g;
             DO $$ DECLARE t text; BEGIN FOR t IN SELECT schema_name FROM tenants LOOP
               EXECUTE format('CREATE SCHEMA %I', t); END LOOP; END $$;"
        ),
    )
    .await;
    conn
}

/// History rows in every tenant schema, and the largest number any tenant has.
async fn rows_per_tenant(conn: &mut PgConnection) -> (i64, i64) {
    let counts: Vec<i64> = sqlx::query_scalar(
        "SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.shipgate_migrations WHERE success', n.nspname), false, true, '')))[1]::text::bigint
         FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'shipgate_migrations'
         WHERE n.nspname LIKE 'tenant%'",
    )
    .fetch_all(conn)
    .await
    .unwrap();
    (counts.iter().sum(), counts.iter().copied().max().unwrap_or(0))
}

/// `tenants up` with one worker, in name order, returned once a tenant's migration sleeps.
async fn run_until_asleep(
    db: &TestDb,
    dir: &Dir,
    conn: &mut PgConnection,
    tenant: &str,
) -> std::process::Child {
    let query = "SELECT schema_name FROM tenants ORDER BY schema_name";
    let child = spawn(cmd(db, dir, &["tenants", "up", "--concurrency", "1", "--tenants-query", query]));
    let started = Instant::now();
    let sleeping = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                    AND wait_event = 'PgSleep')";
    while !scalar::<bool>(conn, sleeping).await {
        assert!(started.elapsed() < Duration::from_secs(30), "{tenant} never reached its slow migration");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[tokio::test]
async fn two_hundred_tenants_reach_the_latest_version_and_a_second_run_does_nothing() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations());
    let mut conn = fleet(&db, &dir, 200).await;

    // Both sets exist, so plain `migrate up` is master, then every tenant.
    let first = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert!(
        first.stdout.contains("200 tenants: 200 migrated (2000 migrations), 0 already current"),
        "{}",
        first.stdout
    );
    assert_eq!(rows_per_tenant(&mut conn).await, (2000, 10));
    let t10: i64 = scalar(&mut conn, "SELECT count(*) FROM tenant_200.t10").await;
    assert_eq!(t10, 1);
    // Unqualified names landed in the tenant schemas, never in the master schema.
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('public.t1') IS NOT NULL").await);

    let second = run(cmd(&db, &dir, &["tenants", "up", "--output", "json"])).await.expect(0);
    let lines = json_lines(&second);
    let summary = lines.last().unwrap();
    assert_eq!((summary["event"].as_str(), summary["current"].as_u64()), (Some("fleet_summary"), Some(200)));
    assert_eq!(summary["migrations"], 0);
    assert_eq!(rows_per_tenant(&mut conn).await, (2000, 10));

    let verified = run(cmd(&db, &dir, &["tenants", "verify", "--at-least", "10"])).await.expect(0);
    assert!(verified.stdout.contains("all 200 tenants are at version 10 or later"), "{}", verified.stdout);
    let status = run(cmd(&db, &dir, &["tenants", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["summary"]["current"], 200);
    assert_eq!(doc["versions"], serde_json::json!([{"version": 10, "tenants": 200}]));
}

#[tokio::test]
async fn one_failing_tenant_does_not_stop_the_others_and_status_remembers_it() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations());
    let mut conn = fleet(&db, &dir, 20).await;
    // Someone created t4 by hand in one tenant: migration 4 fails there.
    exec(&mut conn, "CREATE TABLE tenant_007.t4 (id int)").await;

    let failed = run(cmd(&db, &dir, &["tenants", "up"])).await.expect(1);
    assert!(failed.stderr.contains("1 of 20 tenants failed: tenant_007"), "{}", failed.stderr);
    assert!(
        failed.stdout.contains("19 migrated (190 migrations), 0 already current, 1 failed"),
        "{}",
        failed.stdout
    );
    assert!(failed.stdout.contains("FAILED tenant_007: migration 4 (t4) failed at"), "{}", failed.stdout);
    assert!(failed.stdout.contains("relation \"t4\" already exists"), "{}", failed.stdout);
    // The failing tenant kept migrations 1-3; the others are complete.
    assert_eq!(rows_per_tenant(&mut conn).await, (19 * 10 + 3, 10));

    let status = run(cmd(&db, &dir, &["tenants", "status"])).await.expect(0);
    assert!(status.stdout.contains("1 failed in their last run:"), "{}", status.stdout);
    assert!(status.stdout.contains("tenant_007 at migration 4 ("), "{}", status.stdout);
    assert!(status.stdout.contains("tenant_007: at 3, 7 pending"), "{}", status.stdout);
    assert!(status.stdout.contains("version 10 (latest)"), "{}", status.stdout);
    let json = run(cmd(&db, &dir, &["tenants", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!((doc["summary"]["failed"].as_u64(), doc["summary"]["behind"].as_u64()), (Some(1), Some(1)));
    let t7 = doc["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "tenant_007").unwrap();
    assert_eq!((t7["state"].as_str(), t7["version"].as_i64()), (Some("failed"), Some(3)));
    assert!(t7["last_failure"]["reason"].as_str().unwrap().contains("already exists"));
    run(cmd(&db, &dir, &["tenants", "verify", "--at-least", "10"])).await.expect(1);
    run(cmd(&db, &dir, &["tenants", "verify", "--at-least", "3"])).await.expect(0);

    // Fixed by hand, the next run applies only what is pending and forgets the failure.
    exec(&mut conn, "DROP TABLE tenant_007.t4").await;
    let fixed = run(cmd(&db, &dir, &["tenants", "up"])).await.expect(0);
    assert!(fixed.stdout.contains("1 migrated (7 migrations), 19 already current"), "{}", fixed.stdout);
    let status = run(cmd(&db, &dir, &["tenants", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!((doc["summary"]["failed"].as_u64(), doc["summary"]["current"].as_u64()), (Some(0), Some(20)));
}

#[tokio::test]
async fn fail_fast_and_canaries_stop_the_fleet_early() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations());
    let mut conn = fleet(&db, &dir, 12).await;
    exec(&mut conn, "CREATE TABLE tenant_002.t1 (id int)").await;
    let ordered = "SELECT schema_name FROM tenants ORDER BY schema_name";

    // Canaries tenant_001..003 include the broken one: nobody else is touched.
    let canary =
        run(cmd(&db, &dir, &["tenants", "up", "--canary", "3", "--tenants-query", ordered])).await.expect(1);
    assert!(
        canary
            .stdout
            .contains("12 tenants: 2 migrated (20 migrations), 0 already current, 1 failed, 9 not attempted"),
        "{}",
        canary.stdout
    );
    assert_eq!(rows_per_tenant(&mut conn).await, (20, 10));

    let fast = run(cmd(
        &db,
        &dir,
        &["tenants", "up", "--fail-fast", "--concurrency", "1", "--tenants-query", ordered],
    ))
    .await
    .expect(1);
    assert!(
        fast.stdout
            .contains("12 tenants: 0 migrated (0 migrations), 1 already current, 1 failed, 10 not attempted"),
        "{}",
        fast.stdout
    );

    // --only reaches just the named tenants, and refuses a name that is not a tenant.
    let only = run(cmd(&db, &dir, &["tenants", "up", "--only", "tenant_009,tenant_010"])).await.expect(0);
    assert!(only.stdout.contains("2 tenants: 2 migrated"), "{}", only.stdout);
    let unknown = run(cmd(&db, &dir, &["tenants", "up", "--only", "tenant_009,nobody"])).await.expect(2);
    assert!(
        unknown.stderr.contains("--only names a tenant that tenants_query does not return: nobody"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn two_fleet_runs_at_once_never_apply_a_migration_twice() {
    let db = TestDb::new().await;
    let mut migrations = ten_migrations();
    migrations[4].1.push_str(" SELECT pg_sleep(0.05);");
    let dir = project(&migrations);
    let mut conn = fleet(&db, &dir, 40).await;

    let a = spawn(cmd(&db, &dir, &["tenants", "up", "--concurrency", "2"]));
    // Wait until the first run holds the fleet lock and is working.
    let started = Instant::now();
    while rows_per_tenant(&mut conn).await.0 == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the first run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = run(cmd(&db, &dir, &["tenants", "up", "--lock-timeout", "0s"])).await.expect(3);
    assert!(
        refused.stderr.contains("could not take the migration lock for the tenant fleet"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("it is held by pid"), "{}", refused.stderr);
    // A second run that is allowed to wait does, then finds nothing left to do.
    let b = spawn(cmd(&db, &dir, &["tenants", "up"]));
    let a = finish(a, Duration::from_secs(120)).await.expect(0);
    let b = finish(b, Duration::from_secs(120)).await.expect(0);
    assert!(a.stdout.contains("40 migrated (400 migrations)"), "{}", a.stdout);
    assert!(b.stdout.contains("0 migrated (0 migrations), 40 already current"), "{}", b.stdout);
    assert_eq!(rows_per_tenant(&mut conn).await, (400, 10));
}

#[tokio::test]
async fn a_fleet_run_killed_half_way_is_finished_by_the_next() {
    let db = TestDb::new().await;
    let mut migrations = ten_migrations();
    migrations[9].1.push_str(" SELECT pg_sleep(0.02);");
    let dir = project(&migrations);
    let mut conn = fleet(&db, &dir, 60).await;

    let child = spawn(cmd(&db, &dir, &["tenants", "up", "--concurrency", "4"]));
    let started = Instant::now();
    while rows_per_tenant(&mut conn).await.0 < 100 {
        assert!(started.elapsed() < Duration::from_secs(60), "the run made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "KILL");
    let killed = finish(child, Duration::from_secs(30)).await;
    assert_eq!(killed.code, None, "SIGKILL ends the process");
    // Its sessions end (rolling back whatever was in flight) and their locks go with them.
    let started = Instant::now();
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    while scalar::<i64>(&mut conn, others).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the killed run's sessions lived on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    assert_eq!(scalar::<i64>(&mut conn, locks).await, 0);
    let (applied, _) = rows_per_tenant(&mut conn).await;
    assert!(applied < 600, "the run finished before the kill ({applied} rows)");

    let rerun = run(cmd(&db, &dir, &["tenants", "up"])).await.expect(0);
    assert!(rerun.stdout.contains(&format!("({} migrations)", 600 - applied)), "{}", rerun.stdout);
    assert_eq!(rows_per_tenant(&mut conn).await, (600, 10));
    // Consistent: every tenant has each table exactly as its migration made it.
    let rows: i64 = scalar(
        &mut conn,
        "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.t10', schema_name), false, true, '')))[1]::text::bigint)::bigint FROM tenants",
    )
    .await;
    assert_eq!(rows, 60);
}

#[tokio::test]
async fn provision_is_idempotent_and_resumes_after_each_step() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations());
    let mut conn = fleet(&db, &dir, 0).await;

    let fresh = run(cmd(&db, &dir, &["tenants", "provision", "acme"])).await.expect(0);
    assert!(
        fresh.stdout.contains("provisioned tenant `acme`: created its schema, registered it, applied 10 migrations; now at version 10"),
        "{}",
        fresh.stdout
    );
    let again = run(cmd(&db, &dir, &["tenants", "provision", "acme"])).await.expect(0);
    assert!(
        again.stdout.contains("its schema already existed, it was already registered, applied 0 migrations"),
        "{}",
        again.stdout
    );

    // A crash after each step: schema only; schema and row; schema, row and three migrations.
    exec(&mut conn, "CREATE SCHEMA step1").await;
    exec(&mut conn, "CREATE SCHEMA step2; INSERT INTO tenants (schema_name) VALUES ('step2')").await;
    exec(&mut conn, "CREATE SCHEMA step3; INSERT INTO tenants (schema_name) VALUES ('step3')").await;
    run(cmd(&db, &dir, &["migrate", "up", "--set", "tenant", "--schema", "step3", "--target", "3"]))
        .await
        .expect(0);
    for name in ["step1", "step2", "step3"] {
        let done = run(cmd(&db, &dir, &["tenants", "provision", name])).await.expect(0);
        assert!(done.stdout.contains("now at version 10"), "{name}: {}", done.stdout);
    }
    let registered: i64 = scalar(&mut conn, "SELECT count(*) FROM tenants").await;
    assert_eq!(registered, 4);
    for name in ["acme", "step1", "step2", "step3"] {
        let applied: i64 =
            scalar(&mut conn, &format!("SELECT count(*) FROM {name}.shipgate_migrations")).await;
        assert_eq!(applied, 10, "{name}");
    }

    // Provisioning before the master is migrated says what to do, and keeps the schema.
    let empty = TestDb::new().await;
    let early = run(cmd(&empty, &dir, &["tenants", "provision", "acme"])).await.expect(1);
    assert!(
        early.stderr.contains("provision_sql failed for tenant `acme`: relation \"tenants\" does not exist"),
        "{}",
        early.stderr
    );
    assert!(early.stderr.contains("shipgate migrate up --set master"), "{}", early.stderr);
    let bad = run(cmd(&db, &dir, &["tenants", "provision", "no good"])).await.expect(2);
    assert!(bad.stderr.contains("`no good` contains ' '"), "{}", bad.stderr);
}

#[tokio::test]
async fn hostile_tenant_names_are_reported_and_skipped_never_injected() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations()[..2]);
    let mut conn = fleet(&db, &dir, 2).await;
    let long = "x".repeat(100);
    sqlx::query("INSERT INTO tenants (schema_name) VALUES ($1), ($2), ($3), ($4)")
        .bind("o'brien")
        .bind("acme corp")
        .bind(&long)
        .bind("x\"; DROP TABLE tenants; --")
        .execute(&mut conn)
        .await
        .unwrap();

    let up = run(cmd(&db, &dir, &["tenants", "up"])).await.expect(0);
    assert!(
        up.stdout.contains("6 tenants: 2 migrated (4 migrations), 0 already current, 4 skipped"),
        "{}",
        up.stdout
    );
    for shown in [
        "skipped `o'brien`",
        "skipped `acme corp`",
        "100 bytes; PostgreSQL names are at most 63",
        "skipped `x\"; DROP TABLE tenants; --`",
    ] {
        assert!(up.stdout.contains(shown), "{shown}: {}", up.stdout);
    }
    let tenants: i64 = scalar(&mut conn, "SELECT count(*) FROM tenants").await;
    assert_eq!(tenants, 6, "the tenants table is intact");
    let schemas: i64 =
        scalar(&mut conn, "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema')")
            .await;
    assert_eq!(schemas, 2);
    let status = run(cmd(&db, &dir, &["tenants", "status"])).await.expect(0);
    assert!(
        status.stdout.contains("4 rows of tenants_query are not valid schema names"),
        "{}",
        status.stdout
    );
    run(cmd(&db, &dir, &["tenants", "verify", "--at-least", "2"])).await.expect(1);
}

#[tokio::test]
async fn migration_type_drives_the_seed_entrypoint_modes() {
    let db = TestDb::new().await;
    let tenant: Vec<(String, String)> = (1..=2)
        .map(|v| (format!("{v}_t{v}.up.sql"), format!("CREATE TABLE t{v} (id int);")))
        .chain((1..=2).map(|v| (format!("{v}_t{v}.down.sql"), format!("DROP TABLE t{v};"))))
        .collect();
    let dir = project(&tenant);
    let mut conn = fleet(&db, &dir, 3).await;
    let mode = |kind: &str, extra: &[(&str, &str)]| {
        let mut c = cmd(&db, &dir, &["migrate"]);
        c.env("MIGRATION_TYPE", kind);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    };

    run(mode("master", &[])).await.expect(0);
    let tenants = run(mode("tenants", &[])).await.expect(0);
    assert!(tenants.stdout.contains("3 tenants: 3 migrated (6 migrations)"), "{}", tenants.stdout);
    let provision = run(mode("provision", &[("CLERK_ORG_ID", "org_2abc")])).await.expect(0);
    assert!(provision.stdout.contains("provisioned tenant `org_2abc`"), "{}", provision.stdout);
    let rollback = run(mode("rollback-tenants", &[("SHIPGATE_ROLLBACK_STEPS", "1")])).await.expect(0);
    assert!(rollback.stdout.contains("4 tenants: 4 reverted (4 migrations)"), "{}", rollback.stdout);
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('tenant_001.t2') IS NOT NULL").await);

    let missing = run(mode("provision", &[])).await.expect(2);
    assert!(
        missing.stderr.contains("MIGRATION_TYPE=provision needs the tenant: set TENANT_ID (or CLERK_ORG_ID)"),
        "{}",
        missing.stderr
    );
    let unknown = run(mode("tenant", &[])).await.expect(2);
    assert!(
        unknown.stderr.contains("MIGRATION_TYPE=`tenant` is not a mode shipgate knows; use one of: master, tenants, provision, rollback-master, rollback-tenants"),
        "{}",
        unknown.stderr
    );
    // Typed on a terminal (a pty here) without MIGRATION_TYPE: the help, exit 2, nothing applied.
    let on_tty = std::process::Command::new("script")
        .args(["-qec", &format!("{} migrate", env!("CARGO_BIN_EXE_shipgate")), "/dev/null"])
        .env("DATABASE_URL", &db.url)
        .env("SHIPGATE_SOURCE", dir.arg())
        .env_remove("MIGRATION_TYPE")
        .output()
        .expect("script(1) runs");
    let shown = String::from_utf8_lossy(&on_tty.stdout);
    assert_eq!(on_tty.status.code(), Some(2), "{shown}");
    assert!(shown.contains("on a terminal it does nothing"), "{shown}");
    assert!(shown.contains("to apply pending migrations: shipgate migrate up"), "{shown}");
    assert!(shown.contains("Usage: shipgate migrate"), "{shown}");
    // Unset: everything pending, master first.
    let all = run(cmd(&db, &dir, &["migrate"])).await.expect(0);
    assert!(all.stdout.contains("4 migrated (4 migrations)"), "{}", all.stdout);
}

#[tokio::test]
async fn the_project_file_configures_sets_and_queries_and_typos_are_refused() {
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, body: &str| {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    write("db/core/1_tenants.sql", TENANTS_TABLE);
    write("db/each/1_a.sql", "CREATE TABLE a (id int);");
    write(
        "shipgate.toml",
        "[migrations]\nmaster = \"db/core\"\ntenant = \"db/each\"\n\
         tenants_query = \"SELECT schema_name FROM tenants WHERE status = 'active'\"\n",
    );
    let in_root = |args: &[&str]| {
        let mut c = crate::support::shipgate(args);
        c.env("DATABASE_URL", &db.url).current_dir(root.path());
        c
    };
    run(in_root(&["migrate", "up", "--set", "master"])).await.expect(0);
    let mut conn = db.connect().await;
    exec(&mut conn, "INSERT INTO tenants VALUES ('live', 'active'), ('gone', 'suspended'); CREATE SCHEMA live; CREATE SCHEMA gone;").await;
    let up = run(in_root(&["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("1 tenant: 1 migrated (1 migrations)"), "{}", up.stdout);
    assert!(!scalar::<bool>(&mut conn, "SELECT to_regclass('gone.a') IS NOT NULL").await);

    write("shipgate.toml", "[migrations]\nmaster = \"db/core\"\ntenants_querry = \"SELECT 1\"\n");
    let typo = run(in_root(&["tenants", "status"])).await.expect(2);
    assert!(typo.stderr.contains("shipgate.toml:3:1: unknown field `tenants_querry`"), "{}", typo.stderr);
    let elsewhere = run(in_root(&["migrate", "status", "--config", "nope.toml"])).await.expect(2);
    assert!(elsewhere.stderr.contains("cannot read the project file nope.toml"), "{}", elsewhere.stderr);
}

#[tokio::test]
async fn sigterm_cancels_the_tenants_in_flight_and_reports_the_fleet() {
    let db = TestDb::new().await;
    let mut migrations = ten_migrations()[..3].to_vec();
    migrations[1].1.push_str(
        " DO $$ BEGIN IF current_schema() = 'tenant_003' THEN PERFORM pg_sleep(30); END IF; END $$;",
    );
    let dir = project(&migrations);
    let mut conn = fleet(&db, &dir, 8).await;
    let child = run_until_asleep(&db, &dir, &mut conn, "tenant_003").await;
    let signalled = Instant::now();
    signal(&child, "TERM");
    let stopped = finish(child, Duration::from_secs(30)).await.expect(143);
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?}", signalled.elapsed());
    assert!(
        stopped
            .stdout
            .contains("8 tenants: 2 migrated (6 migrations), 0 already current, 1 failed, 5 not attempted"),
        "{}",
        stopped.stdout
    );
    assert!(stopped.stdout.contains("migration 2 (t2) was cancelled and rolled back"), "{}", stopped.stdout);
    let t3: i64 = scalar(&mut conn, "SELECT count(*) FROM tenant_003.shipgate_migrations").await;
    assert_eq!(t3, 1, "tenant_003 keeps migration 1; migration 2 was rolled back");
}

#[tokio::test]
async fn a_tenant_migration_that_sets_session_state_does_not_reach_the_next_tenant() {
    let db = TestDb::new().await;
    let role = format!("{}_role", db.name);
    // Tenant migration 1 leaves the session as another role, replicating, in another schema;
    // migration 2 records who and where it ran. With one worker, tenant 2 follows tenant 1 on
    // the same connection.
    let tenant = vec![
        (
            "1_set.sql".to_string(),
            format!(
                "DO $$ BEGIN EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %I TO %I', current_schema(), '{role}'); \
                 EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), '{role}'); END $$;\n\
                 SET search_path TO public;\nSET session_replication_role = replica;\nSET ROLE \"{role}\";\n"
            ),
        ),
        (
            "2_check.sql".to_string(),
            "CREATE TABLE checks (who text DEFAULT current_user, srr text DEFAULT \
             current_setting('session_replication_role'), at text DEFAULT current_schema());\n\
             INSERT INTO checks DEFAULT VALUES;\n"
                .to_string(),
        ),
    ];
    let dir = project(&tenant);
    let mut conn = fleet(&db, &dir, 2).await;
    exec(&mut conn, &format!("CREATE ROLE \"{role}\"")).await;
    let login: String = scalar(&mut conn, "SELECT current_user::text").await;
    run(cmd(&db, &dir, &["tenants", "up", "--concurrency", "1"])).await.expect(0);
    for t in ["tenant_001", "tenant_002"] {
        let (who, srr, at): (String, String, String) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT who, srr, at FROM {t}.checks")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!((who.as_str(), srr.as_str(), at.as_str()), (login.as_str(), "origin", t), "{t}");
    }
    let public: bool = scalar(&mut conn, "SELECT to_regclass('public.checks') IS NULL").await;
    assert!(public, "a tenant's migration ran in public");
    exec(&mut conn, &format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\"")).await;
}

#[tokio::test]
async fn tenants_query_runs_read_only() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations());
    let mut conn = fleet(&db, &dir, 2).await;
    let writing = "INSERT INTO tenants (schema_name) VALUES ('tenant_999') RETURNING schema_name";
    let out = run(cmd(&db, &dir, &["tenants", "up", "--tenants-query", writing])).await.expect(2);
    assert!(out.stderr.contains("read-only transaction"), "{}", out.stderr);
    let n: i64 = scalar(&mut conn, "SELECT count(*) FROM tenants").await;
    assert_eq!(n, 2, "the query wrote nothing");
}

/// The control session holds the fleet lock and idles while workers migrate. When it ends
/// (an operator's pg_terminate_backend, an idle cut), the fleet notices within seconds, starts
/// no further tenant, and exits 3: two fleet runs must never overlap unnoticed.
#[tokio::test]
async fn a_fleet_that_loses_its_fleet_lock_starts_no_further_tenant_and_exits_3() {
    let db = TestDb::new().await;
    let mut migrations = ten_migrations()[..2].to_vec();
    migrations[1].1.push_str(
        " DO $$ BEGIN IF current_schema() = 'tenant_002' THEN PERFORM pg_sleep(8); END IF; END $$;",
    );
    let dir = project(&migrations);
    let mut conn = fleet(&db, &dir, 5).await;
    let child = run_until_asleep(&db, &dir, &mut conn, "tenant_002").await;
    // The idle session with an advisory lock is the control session; the worker is busy.
    exec(
        &mut conn,
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
         WHERE a.datname = current_database() AND a.state = 'idle' AND l.locktype = 'advisory' AND l.granted",
    )
    .await;
    let lost = finish(child, Duration::from_secs(60)).await.expect(3);
    assert!(lost.stderr.contains("lost the fleet lock (session ended"), "{}", lost.stderr);
    assert!(lost.stdout.contains("3 not attempted"), "{}", lost.stdout);
    // The tenant in flight finished under its own lock; the next run does the rest once.
    let t2: i64 = scalar(&mut conn, "SELECT count(*) FROM tenant_002.shipgate_migrations").await;
    assert_eq!(t2, 2);
    let again = run(cmd(&db, &dir, &["tenants", "up"])).await.expect(0);
    assert!(
        again.stdout.contains("5 tenants: 3 migrated (6 migrations), 2 already current"),
        "{}",
        again.stdout
    );
}

/// The small messages: a tenants_query whose first column is not text names the column and
/// its type (not a Rust type), and `--lock-timeout 0s` says "at once", not "within off".
#[tokio::test]
async fn a_non_text_tenants_query_and_a_zero_lock_timeout_are_said_plainly() {
    let db = TestDb::new().await;
    let dir = project(&ten_migrations()[..1]);
    let _conn = fleet(&db, &dir, 2).await;
    let typed =
        run(cmd(&db, &dir, &["tenants", "status", "--tenants-query", "SELECT 42 AS id"])).await.expect(2);
    assert!(typed.stderr.contains("`id` is of type int4"), "{}", typed.stderr);
    assert!(!typed.stderr.contains("Rust") && !typed.stderr.contains("String"), "{}", typed.stderr);

    let mut holder = db.connect().await;
    // Hold the fleet lock as another fleet run would: a running `tenants up` stuck on a lock.
    let mut blocker = db.connect().await;
    exec(&mut blocker, "BEGIN; LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE").await;
    let first = spawn(cmd(&db, &dir, &["tenants", "up"]));
    let started = Instant::now();
    let waiting = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND pid <> pg_backend_pid())";
    while !scalar::<bool>(&mut holder, waiting).await {
        assert!(started.elapsed() < Duration::from_secs(30), "the first run never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = run(cmd(&db, &dir, &["tenants", "up", "--lock-timeout", "0s"])).await.expect(3);
    assert!(second.stderr.contains("at once (--lock-timeout 0s)"), "{}", second.stderr);
    assert!(!second.stderr.contains("within off"), "{}", second.stderr);
    exec(&mut blocker, "ROLLBACK").await;
    finish(first, Duration::from_secs(30)).await.expect(0);
}
