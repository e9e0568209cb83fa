//! Switching from Knex, Drizzle, sqlx, dbmate, Prisma, diesel, goose and golang-migrate: histories
//! made by the real tools (or in their documented shapes), adopted without
//! running anything, then continued by `shipgate migrate up`; drizzle-kit folders run as they
//! are; and every refusal leaves the database as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::node::node;
use crate::support::pg::dump;
use crate::support::pg::{TestDb, exec, scalar};
use crate::support::{Dir, Run, copy, fixture, run, shipgate};

/// Keep only the journal entries (and files) whose idx is in `keep`: the folder as it was
/// on the branch drizzle-orm migrated from.
fn drizzle_with(keep: &[i64]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = copy(&fixture("drizzle"));
    let path = dir.join("meta/_journal.json");
    let mut journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entries = journal["entries"].as_array_mut().unwrap();
    for e in entries.iter().filter(|e| !keep.contains(&e["idx"].as_i64().unwrap())) {
        std::fs::remove_file(dir.join(format!("{}.sql", e["tag"].as_str().unwrap()))).unwrap();
    }
    entries.retain(|e| keep.contains(&e["idx"].as_i64().unwrap()));
    std::fs::write(&path, serde_json::to_string_pretty(&journal).unwrap()).unwrap();
    (tmp, dir)
}

fn sg(db: &TestDb, source: &Path, args: &[&str]) -> Command {
    let mut cmd = shipgate(args);
    cmd.env("DATABASE_URL", &db.url).env("SHIPGATE_SOURCE", source);
    cmd
}

async fn ours_exists(db: &TestDb) -> bool {
    scalar::<bool>(&mut db.connect().await, "SELECT to_regclass('public.shipgate_migrations') IS NOT NULL")
        .await
}

async fn status(db: &TestDb, source: &Path) -> serde_json::Value {
    let out = run(sg(db, source, &["migrate", "status", "--output", "json"])).await.expect(0);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

fn states(doc: &serde_json::Value) -> Vec<(i64, String, Option<String>)> {
    doc["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_i64().unwrap(),
                m["state"].as_str().unwrap().to_string(),
                m["origin"].as_str().map(String::from),
            )
        })
        .collect()
}

fn verdicts(out: &Run) -> Vec<String> {
    out.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

#[tokio::test]
async fn drizzle_history_is_adopted_and_only_new_migrations_run() {
    let Some(node) = node("drizzle_history_is_adopted_and_only_new_migrations_run") else { return };
    let db = TestDb::new().await;
    let (_old, branch) = drizzle_with(&[0, 1, 2]);
    node.drizzle_migrate(&db.url, &branch).await;
    let folder = fixture("drizzle");

    let dry = run(sg(&db, &folder, &["migrate", "adopt", "--from", "drizzle", "--dry-run"])).await.expect(0);
    assert_eq!(verdicts(&dry)[..4], ["match", "match", "match", "pending"], "{}", dry.stdout);
    assert!(dry.stdout.contains("would record 3 migrations"), "{}", dry.stdout);
    assert!(!ours_exists(&db).await, "a dry run creates nothing");

    let adopted = run(sg(&db, &folder, &["migrate", "adopt", "--from", "drizzle"])).await.expect(0);
    assert!(adopted.stdout.contains("recorded 3 migrations from drizzle"), "{}", adopted.stdout);
    let again = run(sg(&db, &folder, &["migrate", "adopt", "--from", "drizzle"])).await.expect(0);
    assert!(again.stdout.contains("already records drizzle's history"), "{}", again.stdout);

    let up = run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration"), "{}", up.stdout);
    assert!(up.stdout.contains("add published at"), "{}", up.stdout);
    let doc = status(&db, &folder).await;
    let adopt = Some("adopt".to_string());
    assert_eq!(
        states(&doc),
        vec![
            (0, "applied".into(), adopt.clone()),
            (1, "applied".into(), adopt.clone()),
            (2, "applied".into(), adopt),
            (3, "applied".into(), Some("apply".into())),
        ]
    );
    let mut conn = db.connect().await;
    let column: i64 = scalar(
        &mut conn,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'published_at'",
    )
    .await;
    assert_eq!(column, 1);
}

#[tokio::test]
async fn a_drizzle_folder_run_by_shipgate_makes_the_schema_drizzle_orm_makes() {
    let Some(node) = node("a_drizzle_folder_run_by_shipgate_makes_the_schema_drizzle_orm_makes") else {
        return;
    };
    let (theirs, ours) = (TestDb::new().await, TestDb::new().await);
    node.drizzle_migrate(&theirs.url, &fixture("drizzle")).await;
    let up = run(sg(&ours, &fixture("drizzle"), &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 4 migrations"), "{}", up.stdout);
    let (a, b) = (dump(&theirs), dump(&ours));
    assert!(a.contains("CREATE TABLE public.comments"), "{a}");
    assert_eq!(a, b, "pg_dump --schema-only differs");
}

#[tokio::test]
async fn drizzle_v1_folders_run_in_timestamp_order_one_statement_at_a_time() {
    let db = TestDb::new().await;
    let folder = fixture("drizzle-v1");
    let up = run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 2 migrations"), "{}", up.stdout);
    let doc = status(&db, &folder).await;
    let versions: Vec<i64> = states(&doc).iter().map(|s| s.0).collect();
    assert_eq!(versions, vec![20261121145629, 20261121145631]);

    // The failing statement is named by its place in the file, not just the file.
    let (_tmp, broken) = copy(&fixture("drizzle"));
    std::fs::write(
        broken.join("0003_add_published_at.sql"),
        "ALTER TABLE \"posts\" ADD COLUMN \"a\" text;--> statement-breakpoint\nALTER TABLE \"posts\" ADD COLUMN \"b\" nosuchtype;",
    )
    .unwrap();
    let fresh = TestDb::new().await;
    let failed = run(sg(&fresh, &broken, &["migrate", "up"])).await.expect(1);
    assert!(failed.stderr.contains("0003_add_published_at.sql:2:36 (statement 2 of 2)"), "{}", failed.stderr);
    assert!(failed.stderr.contains("type \"nosuchtype\" does not exist"), "{}", failed.stderr);
    let mut conn = fresh.connect().await;
    let a: i64 =
        scalar(&mut conn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'a'").await;
    assert_eq!(a, 0, "the first statement was rolled back with the second");

    // Forced the other way, the same folder is plain files, versions 0 to 3 (sqlx allows 0).
    let forced =
        run(sg(&fresh, &fixture("drizzle"), &["migrate", "status", "--format", "sqlx"])).await.expect(0);
    assert!(
        forced.stderr.contains("sqlx layout (--format), 4 .sql files read, 4 migrations"),
        "{}",
        forced.stderr
    );
}

#[tokio::test]
async fn drizzle_refusals_write_nothing_and_a_skipped_migration_stays_pending() {
    let Some(node) = node("drizzle_refusals_write_nothing_and_a_skipped_migration_stays_pending") else {
        return;
    };

    // A file edited after drizzle-orm applied it.
    let db = TestDb::new().await;
    node.drizzle_migrate(&db.url, &fixture("drizzle")).await;
    let (_tmp, edited) = copy(&fixture("drizzle"));
    let file = edited.join("0001_add_roles_and_posts.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n-- reviewed")).unwrap();
    let out = run(sg(&db, &edited, &["migrate", "adopt", "--from", "drizzle"])).await.expect(1);
    assert!(
        out.stderr.contains("1 row of drizzle.__drizzle_migrations cannot be adopted; nothing was recorded"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("mismatch #2") && out.stderr.contains("0001_add_roles_and_posts.sql changed"),
        "{}",
        out.stderr
    );
    assert!(!ours_exists(&db).await);

    // A row whose journal entry is gone (a file deleted from the folder).
    let (_tmp2, missing) = drizzle_with(&[0, 1, 3]);
    let out = run(sg(&db, &missing, &["migrate", "adopt", "--from", "drizzle"])).await.expect(1);
    assert!(
        out.stderr.contains("unmatched #3") && out.stderr.contains("no journal entry with when = "),
        "{}",
        out.stderr
    );
    assert!(!ours_exists(&db).await);

    // A branch merged late: drizzle-orm ran 0, 1 and 3, and will never run 2 (its `when` is
    // older than 3's). Adopt records 0, 1, 3, warns, and leaves 2 for `up`.
    let gap = TestDb::new().await;
    let (_tmp3, without_2) = drizzle_with(&[0, 1, 3]);
    node.drizzle_migrate(&gap.url, &without_2).await;
    node.drizzle_migrate(&gap.url, &fixture("drizzle")).await;
    let tables: i64 =
        scalar(&mut gap.connect().await, "SELECT count(*) FROM pg_tables WHERE tablename = 'comments'").await;
    assert_eq!(tables, 0, "drizzle-orm skipped 0002 after the merge");
    let out = run(sg(&gap, &fixture("drizzle"), &["migrate", "adopt", "--from", "drizzle"])).await.expect(0);
    assert_eq!(verdicts(&out)[..4], ["match", "match", "skipped", "match"], "{}", out.stdout);
    assert!(out.stderr.contains("1 migration older than drizzle's newest row never ran"), "{}", out.stderr);
    assert!(out.stderr.contains("2 (add comments)"), "{}", out.stderr);
    let doc = status(&gap, &fixture("drizzle")).await;
    assert_eq!(states(&doc)[2].1, "pending");
    let up = run(sg(&gap, &fixture("drizzle"), &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration"), "{}", up.stdout);
}

#[tokio::test]
async fn knex_history_is_adopted_by_name_and_refused_while_knex_holds_its_lock() {
    let Some(node) = node("knex_history_is_adopted_by_name_and_refused_while_knex_holds_its_lock") else {
        return;
    };
    let db = TestDb::new().await;
    node.knex_migrate(&db.url, &fixture("knex/js")).await;
    let sql = fixture("knex/sql");

    let mut conn = db.connect().await;
    exec(&mut conn, "UPDATE knex_migrations_lock SET is_locked = 1").await;
    let locked = run(sg(&db, &sql, &["migrate", "adopt", "--from", "knex"])).await.expect(3);
    assert!(
        locked.stderr.contains("says a Knex migration is running (is_locked = 1); nothing was recorded"),
        "{}",
        locked.stderr
    );
    assert!(!ours_exists(&db).await, "not even our table");
    exec(&mut conn, "UPDATE knex_migrations_lock SET is_locked = 0").await;

    let (_tmp, partial) = copy(&sql);
    std::fs::remove_file(partial.join("20240102000000_create_posts.sql")).unwrap();
    let missing = run(sg(&db, &partial, &["migrate", "adopt", "--from", "knex"])).await.expect(1);
    assert!(
        missing.stderr.contains("unmatched #2 20240102000000_create_posts.js (batch 1)"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("--baseline VERSION"), "{}", missing.stderr);
    assert!(!ours_exists(&db).await);

    run(sg(&db, &sql, &["migrate", "adopt", "--from", "knex"])).await.expect(0);
    let up = run(sg(&db, &sql, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration") && up.stdout.contains("add tags"), "{}", up.stdout);
    // Knex's migration_time is kept as the time it was applied.
    let kept: bool = scalar(
        &mut conn,
        "SELECT s.applied_at = k.migration_time FROM shipgate_migrations s
           JOIN knex_migrations k ON k.name = '20240101000000_create_users.js' WHERE s.version = 20240101000000",
    )
    .await;
    assert!(kept);
}

#[tokio::test]
async fn knex_migrations_folded_into_a_baseline_are_retired() {
    let Some(node) = node("knex_migrations_folded_into_a_baseline_are_retired") else { return };
    let db = TestDb::new().await;
    node.knex_migrate(&db.url, &fixture("knex/js")).await;
    let (_tmp, dir) = copy(&fixture("knex/sql"));
    std::fs::remove_file(dir.join("20240101000000_create_users.sql")).unwrap();
    std::fs::rename(dir.join("20240102000000_create_posts.sql"), dir.join("20240102000000_baseline.sql"))
        .unwrap();

    let out = run(sg(&db, &dir, &["migrate", "adopt", "--from", "knex", "--baseline", "20240102000000"]))
        .await
        .expect(0);
    assert_eq!(verdicts(&out)[..4], ["match", "pending", "no-source", "no-source"], "{}", out.stdout);
    let doc = status(&db, &dir).await;
    assert_eq!(
        states(&doc),
        vec![
            (20240101000000, "retired".into(), Some("adopt-no-source".into())),
            (20240102000000, "applied".into(), Some("adopt".into())),
            (20240103000000, "pending".into(), None),
        ]
    );
    run(sg(&db, &dir, &["migrate", "up"])).await.expect(0);
    run(sg(&db, &dir, &["migrate", "verify"])).await.expect(0);
}

/// The first two of the knex fixture's SQL files, migrated by sqlx's own `Migrator`.
async fn sqlx_migrated(db: &TestDb) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = copy(&fixture("knex/sql"));
    let (_early, early) = copy(&fixture("knex/sql"));
    std::fs::remove_file(early.join("20240103000000_add_tags.sql")).unwrap();
    let migrator = sqlx::migrate::Migrator::new(early.as_path()).await.unwrap();
    migrator.run(&mut db.connect().await).await.unwrap();
    (tmp, dir)
}

#[tokio::test]
async fn sqlx_history_is_adopted_by_version_and_checksum() {
    let db = TestDb::new().await;
    let (_tmp, dir) = sqlx_migrated(&db).await;
    let out = run(sg(&db, &dir, &["migrate", "adopt", "--from", "sqlx"])).await.expect(0);
    assert_eq!(verdicts(&out)[..3], ["match", "match", "pending"], "{}", out.stdout);
    let up = run(sg(&db, &dir, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration"), "{}", up.stdout);
    let doc = status(&db, &dir).await;
    assert_eq!(doc["summary"]["applied"], 3);
}

#[tokio::test]
async fn sqlx_refusals_name_each_file_and_write_nothing() {
    let db = TestDb::new().await;
    let (_tmp, dir) = sqlx_migrated(&db).await;
    std::fs::write(
        dir.join("20240101000000_create_users.sql"),
        "CREATE TABLE users (id bigserial PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::remove_file(dir.join("20240102000000_create_posts.sql")).unwrap();
    let out = run(sg(&db, &dir, &["migrate", "adopt", "--from", "sqlx"])).await.expect(1);
    assert!(
        out.stderr.contains("2 rows of public._sqlx_migrations cannot be adopted; nothing was recorded"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("mismatch 20240101000000 create users: ")
            && out.stderr.contains("20240101000000_create_users.sql changed since it was applied: sha384 "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unmatched 20240102000000 create posts: no file with version 20240102000000"),
        "{}",
        out.stderr
    );
    assert!(!ours_exists(&db).await);

    let wrong = run(sg(&db, &dir, &["migrate", "adopt", "--from", "knex"])).await.expect(2);
    assert!(
        wrong.stderr.contains("there is no knex history table public.knex_migrations"),
        "{}",
        wrong.stderr
    );
    let not_drizzle = run(sg(&db, &dir, &["migrate", "adopt", "--from", "drizzle"])).await.expect(2);
    assert!(
        not_drizzle.stderr.contains("--from drizzle needs the drizzle-kit folder"),
        "{}",
        not_drizzle.stderr
    );
}

#[tokio::test]
async fn baseline_from_schema_proposes_the_version_the_catalog_matches() {
    let db = TestDb::new().await;
    let (_tmp, three) = drizzle_with(&[0, 1, 2]);
    // Migrated "by hand": the SQL ran, no history was kept anywhere.
    run(sg(&db, &three, &["migrate", "up"])).await.expect(0);
    exec(&mut db.connect().await, "DROP TABLE shipgate_migrations").await;

    let folder = fixture("drizzle");
    let out = run(sg(&db, &folder, &["migrate", "baseline", "--from-schema"])).await.expect(0);
    assert!(
        out.stdout.contains(
            "what the migrations make at version 2; record it with `shipgate migrate baseline --version 2`"
        ),
        "{}",
        out.stdout
    );
    assert!(!ours_exists(&db).await, "a proposal records nothing, and the scratch schema is gone");
    let scratch: i64 = scalar(
        &mut db.connect().await,
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'shipgate_scratch%'",
    )
    .await;
    assert_eq!(scratch, 0);

    run(sg(&db, &folder, &["migrate", "baseline", "--version", "2"])).await.expect(0);
    let up = run(sg(&db, &folder, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration"), "{}", up.stdout);

    // Drift: a hand-made index no migration has.
    let drifted = TestDb::new().await;
    run(sg(&drifted, &three, &["migrate", "up"])).await.expect(0);
    exec(&mut drifted.connect().await, "DROP TABLE shipgate_migrations; DROP INDEX comments_post_idx").await;
    let out = run(sg(&drifted, &folder, &["migrate", "baseline", "--from-schema"])).await.expect(1);
    assert!(
        out.stderr.contains("matches no point of the migration history; the closest is after version 2"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("missing: index comments_post_idx"), "{}", out.stderr);
}

#[tokio::test]
async fn baseline_from_schema_resolves_types_of_extensions_in_public() {
    let db = TestDb::new().await;
    exec(&mut db.connect().await, "CREATE EXTENSION citext").await;
    let dir = crate::support::Dir::new(&[
        ("1_users.sql", "CREATE TABLE users (id int PRIMARY KEY, email citext NOT NULL);"),
        ("2_index.sql", "CREATE INDEX users_email ON users (email);"),
    ]);
    let source = Path::new(dir.arg());
    run(sg(&db, source, &["migrate", "up"])).await.expect(0);
    exec(&mut db.connect().await, "DROP TABLE shipgate_migrations").await;
    let out = run(sg(&db, source, &["migrate", "baseline", "--from-schema"])).await.expect(0);
    assert!(out.stdout.contains("record it with `shipgate migrate baseline --version 2`"), "{}", out.stdout);
}

#[tokio::test]
async fn dbmate_applied_half_is_adopted_and_shipgate_applies_the_rest_to_dbmate_s_schema() {
    let Some(node) = node("dbmate_applied_half_is_adopted_and_shipgate_applies_the_rest_to_dbmate_s_schema")
    else {
        return;
    };
    let (theirs, ours) = (TestDb::new().await, TestDb::new().await);
    let full = fixture("dbmate");
    node.dbmate(&theirs.url, &full, &["up"]).await;
    // The other database: dbmate applied the first two, then the team switched.
    let (_tmp, half) = copy(&full);
    std::fs::remove_file(half.join("20261201111941_index_posts_concurrently.sql")).unwrap();
    node.dbmate(&ours.url, &half, &["up"]).await;
    let dry = run(sg(&ours, &full, &["migrate", "adopt", "--from", "dbmate", "--dry-run"])).await.expect(0);
    assert!(dry.stdout.contains("would record 2 migrations from dbmate"), "{}", dry.stdout);
    assert!(!ours_exists(&ours).await, "a dry run creates nothing");
    let adopted = run(sg(&ours, &full, &["migrate", "adopt", "--from", "dbmate"])).await.expect(0);
    assert!(adopted.stdout.contains("recorded 2 migrations from dbmate"), "{}", adopted.stdout);
    let up = run(sg(&ours, &full, &["migrate", "up"])).await.expect(0);
    assert!(up.stdout.contains("applied 1 migration"), "{}", up.stdout);
    for db in [&theirs, &ours] {
        exec(&mut db.connect().await, "DROP TABLE schema_migrations").await;
    }
    assert_eq!(dump(&theirs), dump(&ours), "pg_dump --schema-only differs");
}

#[tokio::test]
async fn histories_of_prisma_diesel_goose_and_golang_migrate_are_adopted_or_refused() {
    let sha = |path: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    };
    let prisma = fixture("prisma");
    let init = sha(&prisma.join("20240101120000_init/migration.sql"));
    // (fixture, --from, their table as the tool makes it, --format, how many recorded, or the refusal)
    type Case = (PathBuf, &'static str, String, Option<&'static str>, Result<usize, &'static str>);
    let cases: Vec<Case> = vec![
        (
            prisma.clone(),
            "prisma",
            format!(
                "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, \
                 finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, \
                 started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0);
                 INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
                 VALUES ('a', '{init}', now(), '20240101120000_init', 1);"
            ),
            None,
            Ok(1),
        ),
        (
            prisma.clone(),
            "prisma",
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, \
             finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, \
             started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name)
             VALUES ('a', 'deadbeef', now(), '20240101120000_init');"
                .to_string(),
            None,
            Err("mismatch 20240101120000_init"),
        ),
        (
            fixture("diesel"),
            "diesel",
            "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000'), ('202612011355520000');"
                .to_string(),
            None,
            Ok(2),
        ),
        (
            fixture("goose"),
            "goose",
            "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, \
             tstamp timestamp DEFAULT now());
             INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (20240101120000, true), \
             (20240102120000, true), (20240102120000, false);"
                .to_string(),
            None,
            Ok(1),
        ),
        (
            fixture("golang-migrate"),
            "golang-migrate",
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, false);"
                .to_string(),
            Some("golang-migrate"),
            Ok(2),
        ),
        (
            fixture("golang-migrate"),
            "golang-migrate",
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, true);"
                .to_string(),
            Some("golang-migrate"),
            Err("failed version 2 (dirty)"),
        ),
    ];
    for (folder, tool, table, format, expected) in cases {
        let db = TestDb::new().await;
        exec(&mut db.connect().await, &table).await;
        let mut args = vec!["migrate", "adopt", "--from", tool];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        let out = run(sg(&db, &folder, &args)).await;
        match expected {
            Ok(n) => {
                let out = out.expect(0);
                let word = if n == 1 { "migration" } else { "migrations" };
                assert!(
                    out.stdout.contains(&format!("recorded {n} {word} from {tool}")),
                    "{tool}: {}",
                    out.stdout
                );
            }
            Err(needle) => {
                let out = out.expect(1);
                assert!(out.stderr.contains(needle), "{tool}: {}", out.stderr);
                assert!(!ours_exists(&db).await, "{tool}: a refused adoption wrote our table");
            }
        }
    }
}

#[tokio::test]
async fn a_flyway_history_is_adopted_with_its_checksums_undo_and_baseline_rows() {
    let folder = fixture("flyway");
    let crc = |name: &str| {
        let text = std::fs::read_to_string(folder.join(name)).unwrap();
        let mut h = crc32fast::Hasher::new();
        for line in text.lines() {
            h.update(line.as_bytes());
        }
        h.finalize() as i32
    };
    let table = "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), \
                 description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL, \
                 checksum int, installed_by varchar(100) NOT NULL DEFAULT 'flyway', installed_on timestamp NOT NULL \
                 DEFAULT now(), execution_time int NOT NULL DEFAULT 0, success boolean NOT NULL);";
    // Baseline at 1; V2 applied; V3 applied then undone; nothing of V4.
    let rows = format!(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, success) VALUES
           (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, true),
           (2, '2', 'add email', 'SQL', 'V2__add_email.sql', {}, true),
           (3, '3', 'index email', 'SQL', 'indexes/V3__index_email.sql', {}, true),
           (4, '3', 'index email', 'UNDO_SQL', 'indexes/U3__index_email.sql', NULL, true),
           (5, NULL, 'views', 'SQL', 'R__views.sql', 1, true);",
        crc("V2__add_email.sql"),
        crc("indexes/V3__index_email.sql")
    );
    let db = TestDb::new().await;
    exec(&mut db.connect().await, &format!("{table}\n{rows}")).await;
    let adopted = run(sg(&db, &folder, &["migrate", "adopt", "--from", "flyway"])).await.expect(0);
    assert!(adopted.stdout.contains("recorded 2 migrations from flyway"), "{}", adopted.stdout);
    let status = run(sg(&db, &folder, &["migrate", "status", "--output", "json"])).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let states: Vec<&str> =
        doc["migrations"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["applied", "applied", "pending", "pending"]);

    // An edited V2 is a mismatch, and nothing is written.
    let db = TestDb::new().await;
    exec(
        &mut db.connect().await,
        &format!("{table}\n{}", rows.replace(&crc("V2__add_email.sql").to_string(), "42")),
    )
    .await;
    let refused = run(sg(&db, &folder, &["migrate", "adopt", "--from", "flyway"])).await.expect(1);
    assert!(refused.stderr.contains("Flyway checksum 42 in the table"), "{}", refused.stderr);
    assert!(!ours_exists(&db).await);
}

/// Seed 000's fleet: Knex migrated each tenant schema with its own `knex_migrations_tenant`.
/// `tenants adopt` maps every tenant with the fleet workers; a tenant whose table is missing
/// or whose rows do not match is that tenant's failure, and nothing is written for it.
#[tokio::test]
async fn tenants_adopt_maps_each_tenant_s_knex_history_and_refuses_per_tenant() {
    let Some(node) = node("tenants_adopt_maps_each_tenant_s_knex_history_and_refuses_per_tenant") else {
        return;
    };
    let db = TestDb::new().await;
    let sql: Vec<(String, String)> = std::fs::read_dir(fixture("knex/sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    let tenant: Vec<(&str, &str)> = sql.iter().map(|(n, b)| (n.as_str(), b.as_str())).collect();
    let dir =
        Dir::sets(&[("1_tenants.sql", "CREATE TABLE tenants (schema_name text PRIMARY KEY);")], &tenant);
    let sg = |args: &[&str]| {
        let mut cmd = shipgate(args);
        cmd.env("DATABASE_URL", &db.url).env("SHIPGATE_SOURCE", dir.arg());
        cmd
    };
    run(sg(&["migrate", "up", "--set", "master"])).await.expect(0);
    let mut conn = db.connect().await;
    exec(
        &mut conn,
        "INSERT INTO tenants VALUES ('t1'), ('t2'), ('t3'), ('t4');
         CREATE SCHEMA t1; CREATE SCHEMA t2; CREATE SCHEMA t3; CREATE SCHEMA t4;",
    )
    .await;
    let (_one, first_only) = copy(&fixture("knex/js"));
    std::fs::remove_file(first_only.join("20240102000000_create_posts.js")).unwrap();
    for (schema, folder) in [("t1", fixture("knex/js")), ("t2", fixture("knex/js")), ("t3", first_only)] {
        node.knex_migrate_in(&db.url, &folder, "knex_migrations_tenant", schema).await;
    }
    let ours = "SELECT count(*) FROM pg_class WHERE relname = 'shipgate_migrations' \
                AND relnamespace::regnamespace::text LIKE 't_'";

    let adopt = ["tenants", "adopt", "--from", "knex", "--table", "knex_migrations_tenant"];
    let dry = run(sg(&[&adopt[..], &["--dry-run"]].concat())).await.expect(1);
    assert!(
        dry.stdout
            .contains("dry run: 4 tenants: 3 to adopt (5 migrations), 0 with nothing to adopt, 1 failed"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("there is no knex history table t4.knex_migrations_tenant in tenant schema `t4`"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("would adopt t3: 1 migration, up to 20240101000000"), "{}", dry.stdout);
    assert_eq!(scalar::<i64>(&mut conn, ours).await, 0, "a dry run writes nothing");

    // t2's Knex ran a migration whose file is gone: t2 is refused, the others are adopted.
    exec(&mut conn, "UPDATE t2.knex_migrations_tenant SET name = '20240102000000_renamed.js' WHERE id = 2")
        .await;
    let real = run(sg(&[&adopt[..], &["--only", "t1,t2,t3"]].concat())).await.expect(1);
    assert!(
        real.stdout.contains("3 tenants: 2 adopted (3 migrations), 0 with nothing to adopt, 1 failed"),
        "{}",
        real.stdout
    );
    assert!(real.stdout.contains("unmatched #2 20240102000000_renamed.js"), "{}", real.stdout);
    assert_eq!(scalar::<i64>(&mut conn, ours).await, 2, "nothing for t2");

    exec(
        &mut conn,
        "UPDATE t2.knex_migrations_tenant SET name = '20240102000000_create_posts.js' WHERE id = 2",
    )
    .await;
    let again = run(sg(&[&adopt[..], &["--only", "t1,t2,t3"]].concat())).await.expect(0);
    assert!(
        again.stdout.contains("3 tenants: 1 adopted (2 migrations), 2 with nothing to adopt"),
        "{}",
        again.stdout
    );
    // Every tenant continues where Knex left it: nothing Knex ran runs twice.
    let up = run(sg(&["tenants", "up", "--only", "t1,t2,t3"])).await.expect(0);
    assert!(up.stdout.contains("3 tenants: 3 migrated (4 migrations)"), "{}", up.stdout);
    for t in ["t1", "t2", "t3"] {
        let tables: i64 = scalar(
            &mut conn,
            &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{t}' AND tablename IN ('users', 'posts', 'tags')"),
        )
        .await;
        assert_eq!(tables, 3, "{t}");
    }
}
