//! `shipgate deploy` end to end over HTTP: the real binary against moto (taught by
//! tests/moto/server.py how tasks stop and how service rollouts progress), with the GitHub
//! Actions step summary and outputs written to temp files.

use std::path::Path;

use aws_sdk_ecs::types::LaunchType;

use crate::support::moto::{Moto, moto, unique};
use crate::support::{finish, repo_root, run, signal, spawn};

const MIGRATION: &str = r#"{
  "family": "FAMILY",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [{
    "name": "migrate",
    "image": "example.com/app:${IMAGE_TAG}",
    "memory": 512,
    "essential": true,
    "environment": [{"name": "MOTO_RUN_SECONDS", "value": "${RUN_SECONDS:-0}"}, {"name": "MOTO_POST_WAITING", "value": "${POST_WAITING:-0}"}, {"name": "MOTO_LOG_PER_SECOND", "value": "${LOG_PER_SECOND:-0}"}],
    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "GROUP", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "db", "mode": "blocking"}}
  }]
}"#;

const SERVICE: &str = r#"{
  "family": "FAMILY",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [{"name": "app", "image": "example.com/app:${IMAGE_TAG}", "memory": 512, "essential": true}]
}"#;

struct Project {
    moto: Moto,
    dir: tempfile::TempDir,
    cluster: String,
    migration: String,
    api: String,
    worker: String,
}

impl Project {
    async fn new(test: &str) -> Option<Project> {
        let moto = moto(test).await?;
        let cluster = unique("deploy");
        moto.create_cluster(&cluster).await;
        let (migration, api, worker) = (unique("migrate"), unique("api"), unique("worker"));
        let group = format!("/ecs/{migration}");
        moto.create_log_group(&group).await;
        let subnet = moto.default_subnet().await;
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: String| std::fs::write(dir.path().join(file), text).unwrap();
        write("migration.json", MIGRATION.replace("FAMILY", &migration).replace("GROUP", &group));
        write("api.json", SERVICE.replace("FAMILY", &api));
        write("worker.json", SERVICE.replace("FAMILY", &worker));
        write(
            "shipgate.toml",
            format!(
                "[env.it]\nregion = \"us-east-1\"\ncluster = \"{cluster}\"\nsubnets = [\"{subnet}\"]\n\
                 security_groups = [\"sg-12345678\"]\n\
                 migration_task = {{ template = \"migration.json\", container = \"migrate\" }}\n\
                 services = [ {{ name = \"{api}\", template = \"api.json\" }}, {{ name = \"{worker}\", template = \"worker.json\" }} ]\n\
                 tenants = false\n"
            ),
        );
        // The services as they run before the deploy: revision 1, image tag 1.
        for family in [&api, &worker] {
            let td = crate::support::moto::register_json(
                &moto,
                &SERVICE.replace("FAMILY", family).replace("${IMAGE_TAG}", "1"),
            )
            .await;
            moto.ecs
                .create_service()
                .cluster(&cluster)
                .service_name(family.as_str())
                .task_definition(td)
                .desired_count(2)
                .launch_type(LaunchType::Fargate)
                .send()
                .await
                .expect("create service");
        }
        Some(Project { moto, dir, cluster, migration, api, worker })
    }

    fn deploy(&self, tag: &str, extra: &[&str]) -> std::process::Command {
        let config = self.dir.path().join("shipgate.toml");
        let mut args = vec![
            "deploy",
            "--env",
            "it",
            "--config",
            config.to_str().unwrap(),
            "--poll-interval",
            "300ms",
            "--run-id",
            tag,
        ];
        let var = format!("IMAGE_TAG={tag}");
        args.extend(["--var", &var]);
        args.extend_from_slice(extra);
        let mut cmd = self.moto.shipgate(&args);
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", self.file("summary.md"))
            .env("GITHUB_OUTPUT", self.file("outputs"));
        cmd
    }

    /// Give the project tenants, split over `shards` tasks.
    fn with_tenant_shards(&self, shards: u32) {
        let config = self.file("shipgate.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let sharded =
            text.replace("tenants = false\n", &format!("tenants = true\ntenant_shards = {shards}\n"));
        std::fs::write(config, sharded).unwrap();
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn take(&self, name: &str) -> String {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text
    }

    async fn revisions(&self, family: &str) -> usize {
        let out = self.moto.ecs.list_task_definitions().family_prefix(family).send().await.unwrap();
        out.task_definition_arns().len()
    }
}

fn td(family: &str, rev: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{rev}")
}

fn output(lines: &[&str], key: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
        .to_string()
}

#[tokio::test]
async fn a_full_deploy_of_two_services_then_an_unchanged_one() {
    let Some(p) = Project::new("a_full_deploy_of_two_services_then_an_unchanged_one").await else { return };
    let first = run(p.deploy("2", &[])).await.expect(0);
    assert!(first.stderr.contains(&format!("service {}: completed", p.api)), "{}", first.stderr);
    assert!(first.stdout.contains("::group::migrations: master"), "{}", first.stdout);
    assert!(first.stdout.contains("::endgroup::"), "{}", first.stdout);

    let outputs = p.take("outputs");
    let lines: Vec<&str> = outputs.lines().collect();
    let task = output(&lines, "migration-task-arn");
    assert!(task.starts_with(&format!("arn:aws:ecs:us-east-1:123456789012:task/{}/", p.cluster)), "{task}");
    let ids: serde_json::Value = serde_json::from_str(&output(&lines, "deployment-ids")).unwrap();
    assert!(ids[&p.api].as_str().unwrap().starts_with("ecs-svc/"), "{ids}");
    assert!(ids[&p.worker].as_str().unwrap().starts_with("ecs-svc/"), "{ids}");
    assert_eq!(
        lines,
        [
            format!("migration-task-arn={task}"),
            "migration-exit-code=0".to_string(),
            format!("migration-task-arns={task}"),
            format!("migration-task-definition-arn={}", td(&p.migration, 1)),
            format!("task-definition-arn-{}={}", p.api, td(&p.api, 2)),
            format!("task-definition-arn-{}={}", p.worker, td(&p.worker, 2)),
            format!(
                "task-definition-arns={}",
                serde_json::to_string(&std::collections::BTreeMap::from([
                    ("migration".to_string(), td(&p.migration, 1)),
                    (p.api.clone(), td(&p.api, 2)),
                    (p.worker.clone(), td(&p.worker, 2)),
                ]))
                .unwrap()
            ),
            format!("deployment-ids={ids}"),
            "post-phase=not-needed".to_string(),
            "result=success".to_string(),
        ]
    );

    let summary = p.take("summary.md");
    let summary: Vec<&str> = summary.lines().collect();
    assert_eq!(summary[0], "## shipgate deploy `it` ✅");
    assert_eq!(summary[2], "1 migration task succeeded, 2 services rolled out");
    assert!(
        summary.contains(&format!("| migration | `{}:1` | registered |", p.migration).as_str()),
        "{summary:#?}"
    );
    assert!(
        summary.contains(&format!("| {} | `{}:2` | registered |", p.api, p.api).as_str()),
        "{summary:#?}"
    );
    let task_id = task.rsplit('/').next().unwrap();
    let task_row = summary.iter().find(|l| l.starts_with("| master |")).expect("a master row");
    assert!(task_row.contains(&format!("[{task_id}](https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/{}/tasks/{task_id}?region=us-east-1)", p.cluster)), "{task_row}");
    assert!(task_row.contains("| 0 | ✅ succeeded (exit code 0) |"), "{task_row}");
    assert!(task_row.contains("log-events/db$252Fmigrate$252F"), "{task_row}");
    let api_row = summary
        .iter()
        .find(|l| l.starts_with(&format!("| {} |", p.api)) && l.contains("→"))
        .expect("an api rollout row");
    assert!(
        api_row.contains(&format!("`{0}:1` → `{0}:2` | `{1}` |", p.api, ids[&p.api].as_str().unwrap())),
        "{api_row}"
    );
    assert!(api_row.ends_with("| ✅ completed |"), "{api_row}");
    // The stages as a timeline GitHub draws: the master task, then the two rollouts.
    let chart = summary.iter().position(|l| *l == "```mermaid").expect("a timeline");
    assert_eq!(summary[chart + 1], "gantt", "{summary:#?}");
    assert!(summary[chart..].iter().any(|l| l.starts_with("    master :done, ")), "{summary:#?}");
    assert!(
        summary[chart..].iter().any(|l| l.starts_with(&format!("    {} :done, ", p.api))),
        "{summary:#?}"
    );

    // The services really moved, and the new deployment is the only one.
    let svc = p.moto.ecs.describe_services().cluster(&p.cluster).services(&p.api).send().await.unwrap();
    let service = &svc.services()[0];
    assert_eq!(service.task_definition(), Some(td(&p.api, 2).as_str()));
    assert_eq!(service.deployments().len(), 1);

    // Again with the same image: nothing is registered or rolled out; the migration task runs.
    let second = run(p.deploy("2", &[])).await.expect(0);
    assert!(
        second.stderr.contains(&format!("service {}: already on {}:2", p.api, p.api)),
        "{}",
        second.stderr
    );
    assert_eq!((p.revisions(&p.api).await, p.revisions(&p.migration).await), (2, 1));
    let outputs = p.take("outputs");
    assert!(outputs.contains(&format!("deployment-ids={ids}\n")), "{outputs}");
    let summary = p.take("summary.md");
    assert!(summary.contains(&format!("| {} | `{}:2` | unchanged, reused |", p.api, p.api)), "{summary}");
    // The image is named by a tag: "already on it" may hide a new image behind the same tag.
    assert!(
        second.stderr.contains(&format!(
            "service {}: not redeployed, and its task definition names `example.com/app:2` by tag, not by digest",
            p.api
        )),
        "{}",
        second.stderr
    );

    // Forced: the same task definition, a new deployment of each service, followed to its end.
    let forced = run(p.deploy("2", &["--force-new-deployment"])).await.expect(0);
    assert!(
        forced.stderr.contains(&format!("service {0}: {0}:2 -> {0}:2 (deployment ecs-svc/", p.api)),
        "{}",
        forced.stderr
    );
    assert!(forced.stderr.contains(&format!("service {}: completed", p.worker)), "{}", forced.stderr);
    assert_eq!(p.revisions(&p.api).await, 2, "forcing registers nothing");
    let outputs = p.take("outputs");
    assert!(!outputs.contains(&format!("deployment-ids={ids}\n")), "new deployments: {outputs}");
    p.take("summary.md");
    let plan = run(p.deploy("2", &["--dry-run", "--force-new-deployment"])).await.expect(0);
    assert!(
        plan.stdout.contains(&format!("service {0}: new deployment on {0}:2 (forced)", p.api)),
        "{}",
        plan.stdout
    );

    // A dry run with a new image shows the diff and changes nothing.
    let plan = run(p.deploy("3", &["--dry-run"])).await.expect(0);
    assert!(plan.stdout.contains(&format!("register   {}:3 ({})", p.api, p.api)), "{}", plan.stdout);
    assert!(plan.stdout.contains("+      \"image\": \"example.com/app:3\""), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!("update     service {}: {}:2 -> {}:3", p.worker, p.worker, p.worker)),
        "{}",
        plan.stdout
    );
    assert_eq!(p.revisions(&p.api).await, 2);
    assert!(!Path::new(&p.file("outputs")).exists(), "a dry run wrote step outputs");
}

#[tokio::test]
async fn a_circuit_breaker_rollback_over_http_is_a_failed_deploy() {
    let Some(p) = Project::new("a_circuit_breaker_rollback_over_http_is_a_failed_deploy").await else {
        return;
    };
    let control = std::env::var("SHIPGATE_MOTO_CONTROL").unwrap();
    std::fs::write(Path::new(&control).join(format!("service-{}.json", p.api)), r#"{"rollout": "FAILED"}"#)
        .unwrap();
    // Its migration task reports a post migration waiting: the failed rollout must keep it waiting.
    let r = run(p.deploy("2", &["--rollback-on-failure", "--var", "POST_WAITING=1"])).await.expect(1);
    assert!(
        r.stderr.contains(&format!("{}: rolled back: ECS deployment circuit breaker", p.api)),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("::error title=shipgate deploy it::the rollout failed"), "{}", r.stdout);
    // The worker completed, then went back to revision 1.
    let svc = p.moto.ecs.describe_services().cluster(&p.cluster).services(&p.worker).send().await.unwrap();
    assert_eq!(svc.services()[0].task_definition(), Some(td(&p.worker, 1).as_str()));
    let outputs = p.take("outputs");
    assert!(outputs.ends_with("post-phase=not-run\nresult=failure\n"), "{outputs}");
    let tasks = output(&outputs.lines().collect::<Vec<_>>(), "migration-task-arns");
    assert_eq!(tasks.split(',').count(), 1, "a post task ran after a failed rollout: {tasks}");
}

#[tokio::test]
async fn a_reported_post_migration_runs_in_a_second_task_after_the_rollout() {
    let Some(p) = Project::new("a_reported_post_migration_runs_in_a_second_task_after_the_rollout").await
    else {
        return;
    };
    let r = run(p.deploy("2", &["--var", "POST_WAITING=2"])).await.expect(0);
    let stderr = &r.stderr;
    let rolled = stderr.find(&format!("service {}: completed", p.api)).expect("the api rollout completed");
    let post = stderr.find("post phase: 2 post migrations wait").expect("the post phase started");
    assert!(rolled < post, "the post phase started before the rollout completed:\n{stderr}");
    assert!(r.stdout.contains("::group::migrations: master post"), "{}", r.stdout);
    let outputs = p.take("outputs");
    let lines: Vec<&str> = outputs.lines().collect();
    assert_eq!(output(&lines, "migration-task-arns").split(',').count(), 2, "{outputs}");
    assert_eq!(output(&lines, "post-phase"), "ran");
    let summary = p.take("summary.md");
    assert!(summary.contains("### 3. Migrations after the rollout (post)\n"), "{summary}");
    assert!(summary.lines().any(|l| l.starts_with("| master post |") && l.contains("✅")), "{summary}");
}

/// Four shards that log ten lines a second: one `DescribeTasks` call asks for all four at
/// once, and every line of every task (master and shards) is printed exactly once.
#[tokio::test]
async fn four_shards_share_their_describe_calls_and_lose_no_line() {
    let Some(p) = Project::new("four_shards_share_their_describe_calls_and_lose_no_line").await else {
        return;
    };
    p.with_tenant_shards(4);
    let r = run(p.deploy("2", &["--var", "RUN_SECONDS=3", "--var", "LOG_PER_SECOND=10"])).await.expect(0);
    let mut per_task: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    let mut printed = 0;
    for line in r.stdout.lines() {
        let Some(at) = line.find("line ") else { continue };
        let mut words = line[at + 5..].split_whitespace();
        let (Some(task), Some(n)) = (words.next(), words.next()) else { continue };
        printed += 1;
        per_task.entry(task.to_string()).or_default().insert(n.to_string());
    }
    assert_eq!(per_task.len(), 5, "the master task and four shards:\n{}", r.stdout);
    for (task, lines) in &per_task {
        assert_eq!(lines.len(), 30, "task {task} wrote 30 lines; printed {lines:?}");
    }
    assert_eq!(printed, 150, "a line printed twice:\n{}", r.stdout);
    let batches: Vec<usize> =
        p.moto.control_file("describe-tasks.log").lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(batches.iter().max(), Some(&4), "the shards were described together: {batches:?}");
}

/// `keep_revisions = 1`: after each deploy every family keeps its newest revision and the one
/// its service ran before (what `shipgate rollback` goes back to); the rest are deregistered,
/// and the summary says how many.
#[tokio::test]
async fn old_revisions_are_deregistered_keeping_the_newest_and_those_in_use() {
    let Some(p) = Project::new("old_revisions_are_deregistered_keeping_the_newest_and_those_in_use").await
    else {
        return;
    };
    let config = p.file("shipgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("tenants = false\n", "tenants = false\nkeep_revisions = 1\n"))
        .unwrap();
    for tag in ["2", "3"] {
        run(p.deploy(tag, &[])).await.expect(0);
    }
    let last = run(p.deploy("4", &[])).await.expect(0);
    assert!(last.stderr.contains(&format!("deregistered 1 old revision of `{}`", p.api)), "{}", last.stderr);
    let active = |family: String| {
        let ecs = p.moto.ecs.clone();
        async move {
            let out = ecs
                .list_task_definitions()
                .family_prefix(&family)
                .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                .send()
                .await
                .unwrap();
            let mut revisions: Vec<String> = out.task_definition_arns().to_vec();
            revisions.sort();
            revisions
        }
    };
    assert_eq!(active(p.api.clone()).await, [td(&p.api, 3), td(&p.api, 4)]);
    assert_eq!(active(p.worker.clone()).await, [td(&p.worker, 3), td(&p.worker, 4)]);
    assert_eq!(active(p.migration.clone()).await, [td(&p.migration, 3)]);
    let summary = p.take("summary.md");
    assert!(summary.contains("; 3 old task definition revisions deregistered"), "{summary}");
}

#[tokio::test]
async fn rollback_stops_the_services_reverts_and_puts_them_back() {
    let Some(p) = Project::new("rollback_stops_the_services_reverts_and_puts_them_back").await else {
        return;
    };
    run(p.deploy("2", &[])).await.expect(0);
    let config = p.file("shipgate.toml");
    let rollback = |extra: &[&str]| {
        let mut args = vec![
            "rollback",
            "--env",
            "it",
            "--config",
            config.to_str().unwrap(),
            "--previous",
            "--steps",
            "1",
        ];
        args.extend_from_slice(extra);
        args.extend(["--poll-interval", "300ms"]);
        p.moto.shipgate(&args)
    };
    // Without a terminal to ask on, --yes is required; nothing changes.
    let refused = run(rollback(&[])).await.expect(2);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    let tasks_before = p.moto.ecs.list_tasks().cluster(&p.cluster).send().await.unwrap().task_arns().len();
    assert_eq!(tasks_before, 1);

    let r = run(rollback(&["--yes", "--stop-services"])).await.expect(0);
    assert!(r.stdout.contains(&format!("stop service {} (2 running → 0)", p.api)), "{}", r.stdout);
    assert!(r.stdout.contains("MIGRATION_TYPE=rollback-master SHIPGATE_ROLLBACK_STEPS=1"), "{}", r.stdout);
    let svc = p.moto.ecs.describe_services().cluster(&p.cluster).services(&p.api).send().await.unwrap();
    assert_eq!(svc.services()[0].task_definition(), Some(td(&p.api, 1).as_str()));
    assert_eq!(svc.services()[0].desired_count(), 2);
    // The rollback task ran with the rollback mode in its environment.
    let arns = p.moto.ecs.list_tasks().cluster(&p.cluster).send().await.unwrap().task_arns().to_vec();
    let tasks = p.moto.ecs.describe_tasks().cluster(&p.cluster).set_tasks(Some(arns)).send().await.unwrap();
    let modes: Vec<String> = tasks
        .tasks()
        .iter()
        .flat_map(|t| t.overrides().map(|o| o.container_overrides().to_vec()).unwrap_or_default())
        .flat_map(|c| c.environment().to_vec())
        .filter(|kv| kv.name() == Some("MIGRATION_TYPE"))
        .map(|kv| kv.value().unwrap_or_default().to_string())
        .collect();
    assert!(modes.contains(&"rollback-master".to_string()), "{modes:?}");
}

#[tokio::test]
async fn config_check_validates_offline_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    write("migration.json", &MIGRATION.replace("FAMILY", "migrate").replace("GROUP", "/ecs/migrate"));
    write("api.json", &SERVICE.replace("FAMILY", "api"));
    write(
        "shipgate.toml",
        "[env.prod]\ncluster = \"prod\"\nnetwork_from_service = \"api\"\ntenant_shards = 3\ntenants = true\n\
         migration_task = { template = \"migration.json\" }\nservices = [ { name = \"api\", template = \"api.json\" } ]\n",
    );
    let config = dir.path().join("shipgate.toml");
    let check = |extra: &[&str]| {
        let mut args = vec!["config", "check", "--env", "prod", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        // No AWS settings at all: the check must not need them.
        let mut cmd = crate::support::shipgate(&args);
        cmd.env_remove("AWS_REGION").env("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        cmd
    };
    let ok = run(check(&["--var", "IMAGE_TAG=7"])).await.expect(0);
    assert!(ok.stdout.contains("migration task: family migrate (container `migrate`)"), "{}", ok.stdout);
    assert!(ok.stdout.contains("tenants: 3 tasks"), "{}", ok.stdout);
    assert!(ok.stdout.contains("ok: 2 templates rendered and valid"), "{}", ok.stdout);

    let missing = run(check(&[])).await.expect(2);
    assert!(
        missing.stderr.contains(&format!("{}: env.prod.migration_task.template: ", config.display())),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("IMAGE_TAG"), "{}", missing.stderr);
    let typo = run(crate::support::shipgate(&[
        "config",
        "check",
        "--env",
        "prd",
        "--config",
        config.to_str().unwrap(),
    ]))
    .await
    .expect(2);
    assert!(typo.stderr.contains("did you mean `--env prod`?"), "{}", typo.stderr);
}

/// The deploy step of action.yml as the runner runs it: its `run:` script, by bash.
fn action_deploy_script() -> String {
    let action = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    let step = action.split("      id: deploy\n").nth(1).expect("the deploy step");
    let body = step.split("      run: |\n").nth(1).expect("its run script");
    body.lines()
        .take_while(|l| l.starts_with("        ") || l.is_empty())
        .map(|l| format!("{}\n", l.trim_start_matches("        ")))
        .collect()
}

#[tokio::test]
async fn cancelling_the_action_s_deploy_step_stops_the_task_and_writes_the_summary() {
    let Some(p) =
        Project::new("cancelling_the_action_s_deploy_step_stops_the_task_and_writes_the_summary").await
    else {
        return;
    };
    let script = p.file("deploy-step.sh");
    std::fs::write(&script, action_deploy_script()).unwrap();
    assert!(std::fs::read_to_string(&script).unwrap().contains("exec shipgate deploy"));
    // The runner's shell for a `shell: bash` step, with the same environment shipgate gets.
    let template = p.moto.shipgate(&[]);
    let mut bash = std::process::Command::new("bash");
    bash.args(["--noprofile", "--norc", "-eo", "pipefail"]).arg(&script);
    for (key, value) in template.get_envs() {
        match value {
            Some(v) => bash.env(key, v),
            None => bash.env_remove(key),
        };
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_shipgate")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    bash.current_dir(p.dir.path())
        .env("PATH", path)
        .env("SHIPGATE_ENV", "it")
        .env("SHIPGATE_CONFIG", p.file("shipgate.toml"))
        .env("INPUT_VARS", "IMAGE_TAG=2\n# a comment\nRUN_SECONDS=600\n")
        .env("INPUT_ARGS", "--poll-interval 300ms")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", p.file("summary.md"))
        .env("GITHUB_OUTPUT", p.file("outputs"));
    let child = spawn(bash);
    // Wait for the migration task to be running, then cancel the job as the runner does.
    let started = std::time::Instant::now();
    let task = loop {
        let listed = p.moto.ecs.list_tasks().cluster(&p.cluster).send().await.unwrap();
        if let Some(arn) = listed.task_arns().first() {
            break arn.clone();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the migration task never started");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    signal(&child, "INT");
    // The runner sends SIGTERM 7.5 s after SIGINT: everything must be done by then.
    let cancelled = std::time::Instant::now();
    let r = finish(child, std::time::Duration::from_secs(30)).await;
    assert!(cancelled.elapsed() < std::time::Duration::from_millis(7500), "took {:?}", cancelled.elapsed());
    assert_eq!(r.code, Some(130), "{}", r.all());
    let described = p.moto.ecs.describe_tasks().cluster(&p.cluster).tasks(&task).send().await.unwrap();
    let t = &described.tasks()[0];
    assert_eq!(t.last_status(), Some("STOPPED"), "{}", r.all());
    assert!(t.stopped_reason().unwrap_or_default().contains("cancelled by"), "{:?}", t.stopped_reason());
    let outputs = p.take("outputs");
    assert!(outputs.contains(&format!("migration-task-arn={task}\n")), "{outputs}");
    assert!(outputs.ends_with("result=cancelled\n"), "{outputs}");
    let summary = p.take("summary.md");
    assert!(summary.starts_with("## shipgate deploy `it` ⏹️ cancelled"), "{summary}");
    // No service was touched.
    let svc = p.moto.ecs.describe_services().cluster(&p.cluster).services(&p.api).send().await.unwrap();
    assert_eq!(svc.services()[0].task_definition(), Some(td(&p.api, 1).as_str()));
}
