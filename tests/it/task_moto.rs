//! Whole flows over HTTP: the real `shipgate` binary, configured only by environment
//! variables (`AWS_ENDPOINT_URL`), against moto in server mode (see `support::moto`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::moto::{Moto, moto, template, unique};
use crate::support::{Run, finish, run, spawn};

struct Setup {
    moto: Moto,
    cluster: String,
    family: String,
    group: String,
    subnet: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(test: &str) -> Option<Setup> {
        let moto = moto(test).await?;
        let cluster = unique("it");
        moto.create_cluster(&cluster).await;
        let family = unique("migrate");
        let group = format!("/ecs/{family}");
        moto.create_log_group(&group).await;
        let subnet = moto.default_subnet().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("task.json"), template(&family, &group)).unwrap();
        Some(Setup { moto, cluster, family, group, subnet, dir })
    }

    fn template(&self) -> String {
        self.dir.path().join("task.json").to_str().unwrap().to_string()
    }

    /// `task run` of the template in this setup's cluster, plus `extra` arguments.
    fn run_task(&self, extra: &[&str]) -> std::process::Command {
        let template = self.template();
        let mut args = vec![
            "task",
            "run",
            "--template",
            &template,
            "--var",
            "IMAGE_TAG=1",
            "--cluster",
            &self.cluster,
            "--subnets",
            &self.subnet,
            "--security-groups",
            "sg-12345678",
            "--poll-interval",
            "300ms",
        ];
        args.extend_from_slice(extra);
        self.moto.shipgate(&args)
    }

    fn stream(&self, task_arn: &str) -> String {
        format!("db/migrate/{}", task_arn.rsplit('/').next().unwrap())
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn registering_an_unchanged_template_twice_gives_one_revision() {
    let Some(s) = Setup::new("registering_an_unchanged_template_twice_gives_one_revision").await else {
        return;
    };
    let template = s.template();
    let register = |tag: &str| {
        s.moto.shipgate(&[
            "taskdef",
            "register",
            &template,
            "--var",
            &format!("IMAGE_TAG={tag}"),
            "--output",
            "json",
        ])
    };
    let first = run(register("1")).await.expect(0);
    let second = run(register("1")).await.expect(0);
    let changed = run(register("2")).await.expect(0);
    let event = |r: &Run| serde_json::from_str::<serde_json::Value>(r.stdout.trim()).unwrap();
    assert_eq!(event(&first)["new"], true);
    assert_eq!(event(&second)["new"], false);
    assert_eq!(event(&second)["task_definition_arn"], event(&first)["task_definition_arn"]);
    assert_eq!(event(&changed)["new"], true);
    assert!(
        event(&changed)["diff"].as_str().unwrap().contains("+      \"image\": \"example.com/app:2\""),
        "{}",
        changed.stdout
    );
    let revisions = s.moto.ecs.list_task_definitions().family_prefix(&s.family).send().await.unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 2, "{:?}", revisions.task_definition_arns());
}

#[tokio::test]
async fn run_and_follow_prints_every_line_once_and_in_order() {
    let Some(s) = Setup::new("run_and_follow_prints_every_line_once_and_in_order").await else { return };
    let child = spawn(s.run_task(&[]));
    let task = s.moto.running_task(&s.cluster).await;
    let stream = s.stream(&task);
    let t0 = now_ms() - 60_000;
    // Half while the task runs, in batches, then the stop, then the rest (delivery lags the stop).
    s.moto.put_lines(&s.group, &stream, 0..5_000, t0).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.moto.stop(&task, json!({"exitCode": 0}));
    s.moto.put_lines(&s.group, &stream, 5_000..10_000, t0).await;
    let r = finish(child, Duration::from_secs(60)).await.expect(0);
    let expected: Vec<String> = (0..10_000).map(|i| format!("line {i:06}")).collect();
    let printed: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(printed.len(), expected.len(), "--- stderr\n{}", r.stderr);
    assert!(printed.iter().zip(&expected).all(|(a, b)| a == b), "lines out of order or changed");
    assert!(r.stderr.contains("logs: 10000 lines from 1 stream, drain complete"), "{}", r.stderr);

    // The same complete log, afterwards.
    let logs = run(s.moto.shipgate(&["task", "logs", &task])).await.expect(0);
    assert_eq!(logs.stdout, r.stdout);
    // And from the task definition alone, as after ECS forgot the task.
    let definition = format!("{}:1", s.family);
    let logs =
        run(s.moto.shipgate(&["task", "logs", &task, "--task-definition", &definition])).await.expect(0);
    assert_eq!(logs.stdout, r.stdout);
    let forgotten = task.replace(task.rsplit('/').next().unwrap(), "0123456789abcdef0123456789abcdef");
    let unknown = run(s.moto.shipgate(&["task", "logs", &forgotten])).await.expect(2);
    assert!(unknown.stderr.contains("pass --task-definition FAMILY:REV"), "{}", unknown.stderr);
}

#[tokio::test]
async fn a_container_exit_code_becomes_shipgates() {
    let Some(s) = Setup::new("a_container_exit_code_becomes_shipgates").await else { return };
    let r = run(s.run_task(&["--env", "MOTO_RUN_SECONDS=0", "--env", "MOTO_EXIT_CODE=5"])).await.expect(5);
    assert!(r.stderr.contains("failed: container `migrate` exited with code 5"), "{}", r.stderr);

    let classified = run(s.run_task(&[
        "--env",
        "MOTO_RUN_SECONDS=0",
        "--env",
        "MOTO_EXIT_CODE=5",
        "--exit-code",
        "classified",
        "--run-id",
        "second",
    ]))
    .await
    .expect(1);
    assert!(classified.stderr.contains("exited with code 5"), "{}", classified.stderr);
}

#[tokio::test]
async fn a_task_that_never_started_fails_with_its_reason() {
    let Some(s) = Setup::new("a_task_that_never_started_fails_with_its_reason").await else { return };
    let child = spawn(s.run_task(&["--start-retries", "0"]));
    let task = s.moto.running_task(&s.cluster).await;
    let reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref example.com/app:1: not found";
    s.moto.stop(&task, json!({"exitCode": null, "stopCode": "TaskFailedToStart", "stoppedReason": reason}));
    let r = finish(child, Duration::from_secs(60)).await.expect(1);
    assert!(
        r.stderr.contains(&format!("task failed to start (the image could not be pulled): {reason}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: check the image name"), "{}", r.stderr);
}

#[tokio::test]
async fn the_concurrency_guard_refuses_a_second_run_and_a_retried_step_follows_the_first() {
    let Some(s) =
        Setup::new("the_concurrency_guard_refuses_a_second_run_and_a_retried_step_follows_the_first").await
    else {
        return;
    };
    let first = spawn(s.run_task(&["--run-id", "gh-100-1"]));
    let task = s.moto.running_task(&s.cluster).await;

    let refused = run(s.run_task(&["--run-id", "gh-200-1"])).await.expect(3);
    assert!(
        refused.stderr.contains(&format!("task {task} of `{}` is already RUNNING", s.family)),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("run id gh-100-1") && refused.stderr.contains("shipgate task attach"),
        "{}",
        refused.stderr
    );

    // The same CI step retried: it follows the task the first attempt started.
    let retried = spawn(s.run_task(&["--run-id", "gh-100-1"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.moto.stop(&task, json!({"exitCode": 0}));
    finish(first, Duration::from_secs(60)).await.expect(0);
    let retried = finish(retried, Duration::from_secs(60)).await.expect(0);
    assert!(
        retried.stderr.contains(&format!("already started task {task}; following it")),
        "{}",
        retried.stderr
    );
    let tasks = s.moto.ecs.list_tasks().cluster(&s.cluster).send().await.unwrap();
    let in_cluster = tasks.task_arns().iter().filter(|a| a.contains(&format!("/{}/", s.cluster))).count();
    assert_eq!(in_cluster, 1);
}

#[tokio::test]
async fn wait_for_running_starts_after_the_other_run_stopped() {
    let Some(s) = Setup::new("wait_for_running_starts_after_the_other_run_stopped").await else { return };
    let first = spawn(s.run_task(&["--run-id", "gh-300-1"]));
    let task = s.moto.running_task(&s.cluster).await;
    let second = spawn(s.run_task(&["--run-id", "gh-301-1", "--wait-for-running"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Still only the first task: the second run waits instead of starting its own.
    let listed = s.moto.ecs.list_tasks().cluster(&s.cluster).send().await.unwrap();
    assert_eq!(listed.task_arns().iter().filter(|a| a.contains(&format!("/{}/", s.cluster))).count(), 1);
    s.moto.stop(&task, json!({"exitCode": 0}));
    finish(first, Duration::from_secs(60)).await.expect(0);
    let next = s.moto.new_task(&s.cluster, &[task.as_str()]).await;
    s.moto.stop(&next, json!({"exitCode": 0}));
    let second = finish(second, Duration::from_secs(60)).await.expect(0);
    assert!(
        second
            .stderr
            .contains(&format!("task {task} of `{}` is RUNNING; waiting for it to stop first", s.family)),
        "{}",
        second.stderr
    );
}

#[tokio::test]
async fn a_signal_stops_the_task_and_exits_130() {
    let Some(s) = Setup::new("a_signal_stops_the_task_and_exits_130").await else { return };
    let child = spawn(s.run_task(&[]));
    let task = s.moto.running_task(&s.cluster).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::support::signal(&child, "INT");
    let r = finish(child, Duration::from_secs(60)).await.expect(130);
    assert!(
        r.stderr.contains("cancelled: task") && r.stderr.contains("stopped by StopTask: cancelled by"),
        "{}",
        r.stderr
    );
    let described = s.moto.ecs.describe_tasks().cluster(&s.cluster).tasks(&task).send().await.unwrap();
    assert_eq!(described.tasks()[0].last_status(), Some("STOPPED"));
}
