//! Expand / contract against a real PostgreSQL: `--phase pre` leaves the post migrations for
//! after the rollout and says so in its phase report, `--phase post` applies them, an order
//! the pre phase cannot keep is refused with nothing applied, tenants in both phases, the
//! container's `MIGRATION_PHASE`, a folder marked post in shipgate.toml, and the local
//! platform running both phases of the repository's own example project.

use crate::support::pg::{TestDb, exec, scalar};
use crate::support::{Dir, repo_root, run, shipgate, shipgate_on as cmd};

const ADD: &str = "ALTER TABLE accounts ADD COLUMN email text;";
const DROP: &str = "-- shipgate:phase post\n-- the old version read `login`; gone once it is\nALTER TABLE accounts DROP COLUMN login;";

fn expand_contract() -> Dir {
    Dir::new(&[
        ("1_accounts.sql", "CREATE TABLE accounts (id int PRIMARY KEY, login text);"),
        ("2_add_email.sql", ADD),
        ("3_drop_login.sql", DROP),
    ])
}

async fn phases(db: &TestDb, schema: &str) -> Vec<(i64, Option<String>)> {
    let mut conn = db.connect().await;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, phase FROM {schema}.shipgate_migrations ORDER BY version"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn pre_leaves_the_post_migrations_and_post_applies_them() {
    let db = TestDb::new().await;
    let dir = expand_contract();
    let dry = run(cmd(&db, &dir, &["migrate", "up", "--phase", "pre", "--dry-run"])).await.expect(0);
    assert!(dry.stdout.contains("dry run: 2 migrations to apply"), "{}", dry.stdout);
    assert!(dry.stdout.contains("1 post migration waits for the post phase: 3"), "{}", dry.stdout);

    let pre = run(cmd(&db, &dir, &["migrate", "up", "--phase", "pre"])).await.expect(0);
    assert!(
        pre.stdout.contains("applied 2 migrations")
            && pre.stdout.contains("1 post migration waits for the post phase"),
        "{}",
        pre.stdout
    );
    let report =
        pre.stdout.lines().find(|l| l.starts_with("shipgate:phase-report ")).expect("a phase report");
    assert_eq!(report, r#"shipgate:phase-report {"phase":"pre","set":"public","applied":2,"waiting":1}"#);
    let mut conn = db.connect().await;
    let login: bool = scalar(
        &mut conn,
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'login')",
    )
    .await;
    assert!(login, "the post migration ran in the pre phase");
    assert_eq!(phases(&db, "public").await, [(1, Some("pre".into())), (2, Some("pre".into()))]);

    // Again: nothing to apply, the same one waits, and the report says so.
    let again = run(cmd(&db, &dir, &["migrate", "up", "--phase", "pre", "--output", "json"])).await.expect(0);
    let report: serde_json::Value = again
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "phase_report")
        .expect("a phase_report event");
    assert_eq!((report["applied"].as_u64(), report["waiting"].as_u64()), (Some(0), Some(1)));

    let status = run(cmd(&db, &dir, &["migrate", "status"])).await.expect(0);
    assert!(status.stdout.contains("drop login  [post]"), "{}", status.stdout);

    let post = run(cmd(&db, &dir, &["migrate", "up", "--phase", "post"])).await.expect(0);
    assert!(post.stdout.contains("applied 1 migration"), "{}", post.stdout);
    assert!(!post.stdout.contains("phase-report"), "only a pre run reports: {}", post.stdout);
    let login: bool = scalar(
        &mut conn,
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'login')",
    )
    .await;
    assert!(!login);
    assert_eq!(phases(&db, "public").await[2], (3, Some("post".into())));

    // The same drop in a pre migration is refused by the lint before anything runs.
    dir.write("4_drop_email.sql", "ALTER TABLE accounts DROP COLUMN email;");
    let refused = run(cmd(&db, &dir, &["migrate", "up"])).await.expect(1);
    assert!(refused.all().contains("move it to a post migration"), "{}", refused.all());
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 3);
}

#[tokio::test]
async fn a_pre_migration_behind_a_pending_post_one_is_refused_not_reordered() {
    let db = TestDb::new().await;
    let dir = expand_contract();
    dir.write("4_index.sql", "CREATE TABLE audit (id int);");
    for phase in [&["migrate", "up", "--phase", "pre"][..], &["migrate"][..]] {
        let mut c = cmd(&db, &dir, phase);
        c.env("MIGRATION_TYPE", "master").env("MIGRATION_PHASE", "pre");
        let r = run(c).await.expect(1);
        let all = r.all();
        assert!(
            all.contains("pre migration 4 (index) comes after post migration 3 (drop login)")
                && all.contains("nothing was run")
                && all.contains("deploy them separately")
                && all.contains("mark 4 post"),
            "{all}"
        );
    }
    let mut conn = db.connect().await;
    let history: bool =
        scalar(&mut conn, "SELECT to_regclass('public.shipgate_migrations') IS NOT NULL").await;
    let applied: i64 =
        if history { scalar(&mut conn, "SELECT count(*) FROM shipgate_migrations").await } else { 0 };
    assert_eq!(applied, 0, "something was applied");
    let all = run(cmd(&db, &dir, &["migrate", "up", "--phase", "all"])).await.expect(0);
    assert!(all.stdout.contains("applied 4 migrations"), "{}", all.stdout);
}

#[tokio::test]
async fn the_entrypoint_reads_migration_phase_and_refuses_what_it_cannot_mean() {
    let db = TestDb::new().await;
    let dir = expand_contract();
    let mut c = cmd(&db, &dir, &["migrate"]);
    c.env("MIGRATION_TYPE", "master").env("MIGRATION_PHASE", "pre");
    let r = run(c).await.expect(0);
    assert!(r.stdout.contains(r#""waiting":1"#), "{}", r.all());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("MIGRATION_TYPE", "master"), ("MIGRATION_PHASE", "later")],
            "MIGRATION_PHASE=`later` is not a phase",
        ),
        (
            &[("MIGRATION_TYPE", "rollback-master"), ("MIGRATION_PHASE", "pre")],
            "does not apply migrations by phase",
        ),
        (
            &[("MIGRATION_TYPE", "provision"), ("TENANT_ID", "t1"), ("MIGRATION_PHASE", "post")],
            "does not apply",
        ),
    ];
    for (vars, needle) in cases {
        let mut c = cmd(&db, &dir, &["migrate"]);
        c.envs(vars.iter().copied());
        let r = run(c).await.expect(2);
        assert!(r.stderr.contains(needle), "{vars:?}: {}", r.stderr);
    }
    let mut conn = db.connect().await;
    assert_eq!(scalar::<i64>(&mut conn, "SELECT count(*) FROM shipgate_migrations").await, 2);
}

#[tokio::test]
async fn tenants_in_both_phases() {
    let db = TestDb::new().await;
    let dir = Dir::sets(
        &[("1_tenants.sql", "CREATE TABLE tenants (schema_name text PRIMARY KEY);")],
        &[
            ("1_projects.sql", "CREATE TABLE projects (id int, legacy text);"),
            ("2_drop_legacy.sql", "-- shipgate:phase post\nALTER TABLE projects DROP COLUMN legacy;"),
        ],
    );
    run(cmd(&db, &dir, &["migrate", "up", "--set", "master"])).await.expect(0);
    let mut conn = db.connect().await;
    exec(
        &mut conn,
        "INSERT INTO tenants VALUES ('acme'), ('globex'), ('initech');
         CREATE SCHEMA acme; CREATE SCHEMA globex; CREATE SCHEMA initech;",
    )
    .await;
    let pre = run(cmd(&db, &dir, &["tenants", "up", "--phase", "pre", "--output", "json"])).await.expect(0);
    let events: Vec<serde_json::Value> =
        pre.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let report = events.iter().find(|e| e["event"] == "phase_report").expect("a phase report");
    assert_eq!(
        (&report["set"], report["applied"].as_u64(), report["waiting"].as_u64()),
        (&"tenants".into(), Some(3), Some(3))
    );
    let summary = events.iter().find(|e| e["event"] == "fleet_summary").unwrap();
    assert!(summary["message"].as_str().unwrap().contains("3 post migrations wait"), "{summary}");
    for t in ["acme", "globex", "initech"] {
        assert_eq!(phases(&db, t).await, [(1, Some("pre".into()))], "{t}");
    }
    let post = run(cmd(&db, &dir, &["tenants", "up", "--phase", "post"])).await.expect(0);
    assert!(post.all().contains("3 migrated"), "{}", post.all());
    for t in ["acme", "globex", "initech"] {
        assert_eq!(phases(&db, t).await[1], (2, Some("post".into())), "{t}");
    }
}

#[tokio::test]
async fn a_folder_marked_post_in_shipgate_toml_and_a_header_above_a_section_marker() {
    let db = TestDb::new().await;
    let project = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = project.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("db/migrate/1_accounts.sql", "CREATE TABLE accounts (id int, login text);");
    write("db/migrate/3_audit.sql", "-- shipgate:phase post\nCREATE TABLE audit (id int);");
    write("db/post_migrate/2_drop_login.sql", "ALTER TABLE accounts DROP COLUMN login;");
    write(
        "shipgate.toml",
        "[migrations]\nsources = [\"db/migrate\", \"db/post_migrate\"]\nphase = { \"db/post_migrate\" = \"post\" }\n",
    );
    let on = |args: &[&str]| {
        let mut c = shipgate(args);
        c.current_dir(project.path()).env("DATABASE_URL", &db.url);
        c
    };
    let pre = run(on(&["migrate", "up", "--phase", "pre"])).await.expect(0);
    assert!(
        pre.stdout.contains("applied 1 migration") && pre.stdout.contains("2 post migrations wait"),
        "{}",
        pre.all()
    );
    run(on(&["migrate", "up", "--phase", "post"])).await.expect(0);
    assert_eq!(
        phases(&db, "public").await,
        [(1, Some("pre".into())), (2, Some("post".into())), (3, Some("post".into()))]
    );

    // A key that names no folder of the project marks nothing: refused.
    write("shipgate.toml", "[migrations]\nsources = [\"db/migrate\"]\nphase = { \"db/post\" = \"post\" }\n");
    let r = run(on(&["migrate", "status"])).await.expect(2);
    assert!(r.stderr.contains("[migrations] phase names `db/post`"), "{}", r.stderr);

    // dbmate: a header above `-- migrate:up` is the file's, not skipped.
    let db2 = TestDb::new().await;
    let dir = Dir::new(&[
        (
            "20240101000000_accounts.sql",
            "-- migrate:up\nCREATE TABLE accounts (id int, login text);\n-- migrate:down\nDROP TABLE accounts;\n",
        ),
        (
            "20240102000000_drop_login.sql",
            "-- shipgate:phase post\n-- migrate:up\nALTER TABLE accounts DROP COLUMN login;\n-- migrate:down\nALTER TABLE accounts ADD COLUMN login text;\n",
        ),
    ]);
    let pre = run(cmd(&db2, &dir, &["migrate", "up", "--phase", "pre"])).await.expect(0);
    assert!(pre.stdout.contains("1 post migration waits"), "{}", pre.all());
}

#[tokio::test]
async fn the_local_platform_runs_the_post_phase_after_the_pre_phase_for_master_and_tenants() {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().to_path_buf();
    for part in ["shipgate.toml", "aws", "migrations"] {
        let ok =
            std::process::Command::new("cp").arg("-R").arg(repo_root().join(part)).arg(&project).status();
        assert!(ok.unwrap().success());
    }
    std::fs::write(
        project.join("migrations/master/20240105000000_drop_accounts_legacy.up.sql"),
        "-- shipgate:phase post\nALTER TABLE accounts DROP COLUMN IF EXISTS legacy_note;\n",
    )
    .unwrap();
    std::fs::write(
        project.join("migrations/tenant/20240203000000_drop_projects_legacy.up.sql"),
        "-- shipgate:phase post\nALTER TABLE projects DROP COLUMN IF EXISTS legacy_note;\n",
    )
    .unwrap();
    let secret = format!("DATABASE_URL={}", db.url);
    let (config, vars) = (project.join("shipgate.toml"), project.join("aws/example.vars"));
    let args = [
        "deploy",
        "--env",
        "local",
        "--config",
        config.to_str().unwrap(),
        "--vars-file",
        vars.to_str().unwrap(),
        "--secret",
        &secret,
        "--output",
        "json",
    ];
    let r = run(shipgate(&args)).await.expect(0);
    let events: Vec<serde_json::Value> =
        r.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let summary = events.iter().find(|e| e["event"] == "deploy_summary").expect("a deploy summary");
    let tasks: Vec<String> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", t["phase"].as_str().unwrap(), t["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(tasks, ["master:pre", "tenants:pre", "master post:post", "tenants post:post"], "{}", r.all());
    assert_eq!(summary["post"]["state"], "ran");
    let mut conn = db.connect().await;
    assert_eq!(
        scalar::<String>(
            &mut conn,
            "SELECT phase FROM public.shipgate_migrations WHERE version = 20240105000000"
        )
        .await,
        "post"
    );
    for t in ["acme", "globex", "initech"] {
        let phase: String = scalar(
            &mut conn,
            &format!("SELECT phase FROM {t}.shipgate_migrations WHERE version = 20240203000000"),
        )
        .await;
        assert_eq!(phase, "post", "{t}");
    }
    // Nothing waits now: one process per step, no post stage.
    let again = run(shipgate(&args)).await.expect(0);
    assert!(again.stdout.contains(r#""state":"not-needed""#), "{}", again.all());
}
