//! `shipgate deploy` on the local platform: the repository's own example project against a
//! real PostgreSQL, the verdicts of processes that fail in every way a task can, secrets from
//! `--secret` and from Secrets Manager (moto), and the inputs refused before anything runs.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::moto::moto;
use crate::support::pg::{TestDb, scalar};
use crate::support::{Run, finish, repo_root, run, shipgate, signal, spawn};

/// A project with one local environment whose migration container runs `command` (with
/// `secrets` and `environment` entries).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(container: serde_json::Value, env_extra: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let mut def = json!({ "name": "migrate", "image": "example/migrate:1", "essential": true });
        def.as_object_mut().unwrap().extend(container.as_object().unwrap().clone());
        let template = json!({ "family": "local-migrate", "containerDefinitions": [def] });
        std::fs::write(dir.path().join("migrate.json"), template.to_string()).unwrap();
        std::fs::write(
            dir.path().join("api.json"),
            json!({ "family": "local-api", "containerDefinitions": [
                { "name": "api", "image": "example/api:1", "essential": true }
            ]})
            .to_string(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        std::fs::write(
            dir.path().join("shipgate.toml"),
            format!(
                "[env.dev]\nplatform = \"local\"\ntenants = false\n\
                 migration_task = {{ template = \"migrate.json\" }}\n\
                 services = [ {{ name = \"api\", template = \"api.json\" }} ]\n{env_extra}"
            ),
        )
        .unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn deploy(&self, extra: &[&str]) -> std::process::Command {
        let config = self.path().join("shipgate.toml");
        let mut args = vec!["deploy", "--env", "dev", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        shipgate(&args)
    }
}

fn sh(script: &str) -> serde_json::Value {
    json!({ "entryPoint": ["sh", "-c"], "command": [script] })
}

#[tokio::test]
async fn the_example_project_deploys_locally_master_then_three_tenants() {
    let db = TestDb::new().await;
    let root = repo_root();
    let secret = format!("DATABASE_URL={}", db.url);
    let (config, vars) = (root.join("shipgate.toml"), root.join("aws/example.vars"));
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
    ];
    let r = run(shipgate(&args)).await.expect(0);
    let all = r.all();
    for expected in [
        "applied 4 migrations",
        "migrated acme: 2 migrations",
        "migrated globex: 2 migrations",
        "migrated initech: 2 migrations",
        "service api: skipped",
        "deploy local succeeded",
        "2 local migration processes succeeded; 1 service skipped",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in\n{all}");
    }
    let password = url::Url::parse(&db.url).unwrap().password().map(str::to_string);
    if let Some(password) = password.filter(|p| p.len() > 3) {
        assert!(!all.contains(&password), "the secret's password was printed");
    }
    let mut conn = db.connect().await;
    let current: i64 = scalar(&mut conn, "SELECT count(*) FROM initech.shipgate_migrations").await;
    assert_eq!(current, 2);

    // A second deploy changes nothing and says so, also when run from another directory
    // that has a `migrations/` folder of its own: the project's folders follow `--config`.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(elsewhere.path().join("migrations/master")).unwrap();
    std::fs::write(elsewhere.path().join("migrations/master/9_wrong.sql"), "CREATE TABLE wrong ();").unwrap();
    let mut from_elsewhere = shipgate(&args);
    from_elsewhere.current_dir(elsewhere.path());
    let again = run(from_elsewhere).await.expect(0);
    assert!(again.all().contains("3 already current"), "{}", again.all());
    let wrong: bool = scalar(&mut conn, "SELECT to_regclass('public.wrong') IS NOT NULL").await;
    assert!(!wrong, "the other directory's migrations were read: {}", again.all());
}

#[tokio::test]
async fn the_environment_is_the_task_definitions_and_the_secret_the_given_one() {
    let p = Project::new(
        json!({
            "entryPoint": ["sh", "-c"],
            "command": ["echo \"type=$MIGRATION_TYPE level=$LEVEL home=$${HOME:+set} db=$DB_PASSWORD cwd=$(pwd)\"; env | grep -c ^OPERATOR_ONLY= || true"],
            "environment": [{ "name": "LEVEL", "value": "${LEVEL}" }, { "name": "MIGRATION_TYPE", "value": "ignored" }],
            "secrets": [{ "name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::" }],
        }),
        "",
    );
    let mut cmd = p.deploy(&["--var", "LEVEL=debug", "--secret", "DB_PASSWORD=hunter2-xyz"]);
    cmd.env("OPERATOR_ONLY", "1");
    let r = run(cmd).await.expect(0);
    let cwd = p.path().canonicalize().unwrap();
    assert!(r.stdout.contains("type=master level=debug home=set db=***"), "{}", r.all());
    assert!(r.stdout.contains(&format!(" cwd={}\n", cwd.display())), "{}", r.all());
    assert!(r.stdout.lines().any(|l| l.trim() == "0"), "the operator's own variables leaked: {}", r.all());
    assert!(!r.all().contains("hunter2-xyz"));
}

/// Each way a process ends gets the verdict (and the exit code) an ECS task ending that way gets.
#[tokio::test]
async fn process_ends_become_task_verdicts_and_exit_codes() {
    let cases: [(serde_json::Value, &str, i32, &str); 5] = [
        (sh("echo working; exit 1"), "", 1, "the master migration failed: master: task pid-"),
        (sh("exit 2"), "", 2, "container `migrate` exited with code 2"),
        (sh("exit 3"), "", 3, "container `migrate` exited with code 3"),
        (json!({ "command": ["/nonexistent/migrate"] }), "", 1, "task failed to start (it never ran)"),
        (sh("sleep 30"), "timeout = \"1s\"", 1, "timed out after 1s"),
    ];
    for (container, extra, code, expected) in cases {
        let with_timeout = if extra.is_empty() {
            String::new()
        } else {
            format!("migration_task = {{ template = \"migrate.json\", {extra} }}\n")
        };
        let p = Project::new(container.clone(), "");
        if !with_timeout.is_empty() {
            let toml = std::fs::read_to_string(p.path().join("shipgate.toml")).unwrap();
            let toml = toml.replace("migration_task = { template = \"migrate.json\" }\n", &with_timeout);
            std::fs::write(p.path().join("shipgate.toml"), toml).unwrap();
        }
        let r = run(p.deploy(&[])).await;
        let all = r.all();
        assert_eq!(r.code, Some(code), "{container}: {all}");
        assert!(all.contains(expected), "{container}: missing {expected:?} in\n{all}");
        assert!(all.contains("no service was updated"), "{container}: {all}");
        assert!(!all.contains("service api: skipped"), "{container}: {all}");
    }
}

#[tokio::test]
async fn a_signal_stops_the_process_like_stop_task() {
    let p = Project::new(
        sh("trap 'echo got TERM; exit 143' TERM; echo ready; while true; do sleep 0.1; done"),
        "",
    );
    let child = spawn(p.deploy(&[]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "TERM");
    let r: Run = finish(child, Duration::from_secs(60)).await;
    let all = r.all();
    assert_eq!(r.code, Some(143), "{all}");
    assert!(all.contains("got TERM"), "the process did not get SIGTERM: {all}");
    assert!(all.contains("cancelled: task pid-"), "{all}");
}

#[tokio::test]
async fn bad_inputs_are_refused_before_anything_runs() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    let script = format!("touch {}", touched.display());
    let ssm = Project::new(
        json!({ "entryPoint": ["sh", "-c"], "command": [script], "secrets": [{ "name": "TOKEN", "valueFrom": "/prod/token" }] }),
        "",
    );
    let r = run(ssm.deploy(&[])).await.expect(2);
    assert!(r.stderr.contains("secret TOKEN (/prod/token): it is an SSM parameter"), "{}", r.stderr);
    assert!(r.stderr.contains("pass --secret TOKEN=VALUE"), "{}", r.stderr);

    let plain = Project::new(
        sh(&format!("touch {}", touched.display())),
        "[env.ecs]\ntenants = false\ncluster = \"c\"\nsubnets = [\"s\"]\nmigration_task = { template = \"migrate.json\" }\n",
    );
    let config = plain.path().join("shipgate.toml");
    let config = config.to_str().unwrap();
    let r = run(shipgate(&["deploy", "--env", "ecs", "--config", config, "--secret", "A=b"])).await.expect(2);
    assert!(r.stderr.contains("--secret is for the local platform"), "{}", r.stderr);
    let r = run(shipgate(&["deploy", "--env", "dev", "--config", config, "--secret", "=b"])).await.expect(2);
    assert!(r.stderr.contains("--secret (empty name): expected NAME=VALUE"), "{}", r.stderr);
    let r = run(shipgate(&[
        "rollback",
        "--env",
        "dev",
        "--config",
        config,
        "--previous",
        "--steps",
        "1",
        "--yes",
    ]))
    .await
    .expect(2);
    assert!(r.stderr.contains("rollback runs on ECS"), "{}", r.stderr);
    assert!(r.stderr.contains("shipgate migrate down"), "{}", r.stderr);

    // --local turns an ECS environment into a rehearsal; --dry-run only prints the plan.
    let r = run(shipgate(&["deploy", "--env", "ecs", "--config", config, "--local", "--dry-run"]))
        .await
        .expect(0);
    assert!(r.stderr.contains("would run (master): sh -c touch"), "{}", r.stderr);
    assert!(!touched.exists(), "a refused or dry deploy ran the command");
    run(shipgate(&["deploy", "--env", "ecs", "--config", config, "--local"])).await.expect(0);
    assert!(touched.exists(), "--local did not run the command");
}

#[tokio::test]
async fn secrets_are_read_from_secrets_manager_with_the_json_key() {
    let Some(moto) = moto("secrets_are_read_from_secrets_manager_with_the_json_key").await else { return };
    let (_, arn) = moto.create_secret(r#"{"password":"s3cr3t-from-sm","username":"app"}"#).await;
    let p = Project::new(
        json!({
            "entryPoint": ["sh", "-c"],
            "command": ["test \"$DB_PASSWORD\" = s3cr3t-from-sm && echo matched $DB_PASSWORD"],
            "secrets": [{ "name": "DB_PASSWORD", "valueFrom": format!("{arn}:password::") }],
        }),
        "",
    );
    let config = p.path().join("shipgate.toml");
    let r =
        run(moto.shipgate(&["deploy", "--env", "dev", "--config", config.to_str().unwrap()])).await.expect(0);
    assert!(r.stdout.contains("matched ***"), "{}", r.all());
    assert!(!r.all().contains("s3cr3t-from-sm"));

    let missing = Project::new(
        json!({ "command": ["true"], "secrets": [{ "name": "X", "valueFrom": format!("{arn}:nokey::") }] }),
        "",
    );
    let config = missing.path().join("shipgate.toml");
    let r =
        run(moto.shipgate(&["deploy", "--env", "dev", "--config", config.to_str().unwrap()])).await.expect(2);
    assert!(r.stderr.contains("the secret has no text key `nokey`"), "{}", r.stderr);
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_is_exit_2_before_anything_runs_naming_it_in_clear() {
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
    let p = Project::new(
        json!({ "command": ["sh", "-c", "touch ran"], "secrets": [{ "name": "DB_PASSWORD", "valueFrom": format!("{arn}:password::") }] }),
        "",
    );
    // Nothing answers for AWS here: on this machine that is input the rehearsal lacks.
    let mut cmd = p.deploy(&[]);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "example")
        .env("AWS_MAX_ATTEMPTS", "1")
        .current_dir(p.path());
    let r = run(cmd).await.expect(2);
    assert!(
        r.stderr.contains(&format!("secret DB_PASSWORD ({arn}:password::)")),
        "the ARN in clear: {}",
        r.stderr
    );
    assert!(r.stderr.contains("pass --secret DB_PASSWORD=VALUE"), "{}", r.stderr);
    assert!(!p.path().join("ran").exists(), "nothing ran");
}
