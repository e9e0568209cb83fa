//! `deploy` against a small fake of ECS built from `aws-smithy-mocks` rules: migrations that
//! fail, shards where one fails, a circuit breaker that rolls a service back, and a dry run.
//! Every call is answered from one shared state, so the tests can assert on what was asked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsError;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    Container, Deployment, DeploymentRolloutState, DesiredStatus, Service, ServiceEvent, Task,
    TaskDefinition, TaskStopCode,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use shipgate::aws::Aws;
use shipgate::cli::OutputFormat;
use shipgate::config::deploy::{
    CiConfig, DeployConfig, EnvConfig, MigrationTask, RunSettings, Service as EnvService,
};
use shipgate::config::{Network, TemplateSource};
use shipgate::deploy::ci::Ci;
use shipgate::deploy::pipeline::run_with;
use shipgate::deploy::{plan, prepare};
use shipgate::output::Reporter;
use shipgate::shutdown::Shutdown;
use shipgate::task::follow::FollowOptions;
use shipgate::task::spec::Placement;

const ACCOUNT: &str = "arn:aws:ecs:us-east-1:123456789012";

#[derive(Debug, Clone)]
struct Dep {
    id: String,
    status: &'static str,
    td: String,
    state: &'static str,
    running: i32,
    failed: i32,
    reason: String,
}

#[derive(Debug, Default)]
struct Fake {
    services: BTreeMap<String, Vec<Dep>>,
    /// Services whose new deployments trip the circuit breaker.
    breaks: BTreeSet<String>,
    /// `SHIPGATE_SHARD` (or MIGRATION_TYPE) values whose task exits 1.
    fails: BTreeSet<String>,
    /// Task id → exit code.
    tasks: BTreeMap<String, i32>,
    /// Task id → its environment, for the phase report its logs carry.
    task_env: BTreeMap<String, BTreeMap<String, String>>,
    /// MIGRATION_TYPE → the post migrations a pre task of that type reports waiting.
    waiting: BTreeMap<String, usize>,
    /// Pre tasks write no phase report (a runner that is not shipgate's).
    silent: bool,
    /// Service → its deployment controller, when not ECS.
    controllers: BTreeMap<String, &'static str>,
    /// Service → DescribeServices polls its rollout stays IN_PROGRESS for.
    slow: BTreeMap<String, u32>,
    run_env: Vec<BTreeMap<String, String>>,
    updates: Vec<(String, String)>,
    /// RunTask and UpdateService calls in the order they came: `run master pre`, `update api`.
    order: Vec<String>,
    registered: Vec<String>,
    seq: u32,
}

type State = Arc<Mutex<Fake>>;

fn td(family: &str, rev: u32) -> String {
    format!("{ACCOUNT}:task-definition/{family}:{rev}")
}

impl Fake {
    fn service(&mut self, name: &str) {
        let dep = Dep {
            id: format!("ecs-svc/{name}-old"),
            status: "PRIMARY",
            td: td(name, 1),
            state: "COMPLETED",
            running: 2,
            failed: 0,
            reason: String::new(),
        };
        self.services.insert(name.into(), vec![dep]);
    }

    /// One step of every rollout in progress, as ECS would show it at the next poll.
    fn advance(&mut self, name: &str) {
        let breaks = self.breaks.contains(name);
        let deps = self.services.get_mut(name).unwrap();
        let Some(i) = deps.iter().position(|d| d.status == "PRIMARY" && d.state == "IN_PROGRESS") else {
            return;
        };
        if let Some(polls) = self.slow.get_mut(name).filter(|p| **p > 0) {
            *polls -= 1;
            return;
        }
        let is_rollback = deps[i].id.ends_with("-rollback");
        if breaks && !is_rollback {
            let previous = deps.iter().find(|d| d.status == "ACTIVE").map(|d| d.td.clone()).unwrap();
            let ours = &mut deps[i];
            ours.status = "ACTIVE";
            ours.state = "FAILED";
            ours.failed = 3;
            ours.reason = "ECS deployment circuit breaker: tasks failed to start.".into();
            let id = format!("{}-rollback", ours.id);
            deps.retain(|d| d.state == "FAILED");
            deps.insert(
                0,
                Dep {
                    id,
                    status: "PRIMARY",
                    td: previous,
                    state: "IN_PROGRESS",
                    running: 0,
                    failed: 0,
                    reason: String::new(),
                },
            );
        } else {
            let mut done = deps[i].clone();
            done.state = "COMPLETED";
            done.running = 2;
            *deps = vec![done];
        }
    }

    fn view(&self, name: &str) -> Service {
        let deps = &self.services[name];
        let primary = deps.iter().find(|d| d.status == "PRIMARY").unwrap();
        let mut b = Service::builder()
            .service_name(name)
            .service_arn(format!("{ACCOUNT}:service/prod/{name}"))
            .status("ACTIVE")
            .task_definition(&primary.td)
            .desired_count(2)
            .set_deployment_controller(self.controllers.get(name).map(|c| {
                aws_sdk_ecs::types::DeploymentController::builder()
                    .r#type(aws_sdk_ecs::types::DeploymentControllerType::from(*c))
                    .build()
                    .unwrap()
            }))
            .running_count(deps.iter().map(|d| d.running).sum())
            .events(
                ServiceEvent::builder()
                    .id(format!("{name}-ev-{}", deps.len()))
                    .message(format!("(service {name}) has {} deployments", deps.len()))
                    .created_at(DateTime::from_secs(1))
                    .build(),
            );
        for d in deps {
            b = b.deployments(
                Deployment::builder()
                    .id(&d.id)
                    .status(d.status)
                    .task_definition(&d.td)
                    .rollout_state(DeploymentRolloutState::from(d.state))
                    .rollout_state_reason(&d.reason)
                    .desired_count(2)
                    .running_count(d.running)
                    .failed_tasks(d.failed)
                    .build(),
            );
        }
        b.build()
    }
}

fn stopped_task(arn: &str, code: Option<i32>, reason: &str) -> Task {
    Task::builder()
        .task_arn(arn)
        .cluster_arn(format!("{ACCOUNT}:cluster/prod"))
        .task_definition_arn(td("migrate", 2))
        .last_status("STOPPED")
        .desired_status("STOPPED")
        .stop_code(if code.is_some() {
            TaskStopCode::EssentialContainerExited
        } else {
            TaskStopCode::TaskFailedToStart
        })
        .stopped_reason(reason)
        .started_at(DateTime::from_secs(100))
        .stopped_at(DateTime::from_secs(160))
        .containers(Container::builder().name("migrate").last_status("STOPPED").set_exit_code(code).build())
        .build()
}

struct Rules {
    ecs: Vec<Rule>,
    update: Rule,
    register: Rule,
    run: Rule,
    logs: Rule,
}

fn rules(state: &State) -> Rules {
    let s = state.clone();
    let describe_services = mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(move |req| {
        let mut fake = s.lock().unwrap();
        let name = req.services()[0].clone();
        fake.advance(&name);
        DescribeServicesOutput::builder().services(fake.view(&name)).build()
    });
    let s = state.clone();
    let update = mock!(aws_sdk_ecs::Client::update_service).then_compute_output(move |req| {
        let mut fake = s.lock().unwrap();
        let name = req.service().unwrap().to_string();
        let target = req.task_definition().unwrap().to_string();
        fake.updates.push((name.clone(), target.clone()));
        fake.order.push(format!("update {name}"));
        fake.seq += 1;
        let id = format!("ecs-svc/{name}-{}", fake.seq);
        let deps = fake.services.get_mut(&name).unwrap();
        for d in deps.iter_mut() {
            d.status = "ACTIVE";
        }
        deps.insert(
            0,
            Dep {
                id,
                status: "PRIMARY",
                td: target,
                state: "IN_PROGRESS",
                running: 0,
                failed: 0,
                reason: String::new(),
            },
        );
        UpdateServiceOutput::builder().service(fake.view(&name)).build()
    });
    let describe_td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_error(|| {
        DescribeTaskDefinitionError::ClientException(
            aws_sdk_ecs::types::error::ClientException::builder()
                .message("Unable to describe task definition.")
                .build(),
        )
    });
    let s = state.clone();
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_compute_output(move |req| {
        let family = req.family().unwrap().to_string();
        s.lock().unwrap().registered.push(family.clone());
        RegisterTaskDefinitionOutput::builder()
            .task_definition(TaskDefinition::builder().task_definition_arn(td(&family, 2)).build())
            .build()
    });
    let s = state.clone();
    let run = mock!(aws_sdk_ecs::Client::run_task).then_compute_output(move |req| {
        let mut fake = s.lock().unwrap();
        let env: BTreeMap<String, String> = req.overrides().unwrap().container_overrides()[0]
            .environment()
            .iter()
            .map(|kv| (kv.name().unwrap().to_string(), kv.value().unwrap().to_string()))
            .collect();
        fake.seq += 1;
        let id = format!("task{}", fake.seq);
        let failing = env.values().any(|v| fake.fails.contains(v));
        fake.tasks.insert(id.clone(), if failing { 1 } else { 0 });
        fake.task_env.insert(id.clone(), env.clone());
        let phase = env.get("MIGRATION_PHASE").cloned().unwrap_or_default();
        fake.order.push(format!("run {} {phase}", env["MIGRATION_TYPE"]));
        fake.run_env.push(env);
        let task = Task::builder()
            .task_arn(format!("{ACCOUNT}:task/prod/{id}"))
            .task_definition_arn(td("migrate", 2))
            .last_status("PROVISIONING")
            .build();
        RunTaskOutput::builder().tasks(task).build()
    });
    let s = state.clone();
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |req| {
        let fake = s.lock().unwrap();
        let tasks = req
            .tasks()
            .iter()
            .map(|arn| {
                let id = arn.rsplit('/').next().unwrap();
                match fake.tasks.get(id) {
                    Some(code) => stopped_task(arn, Some(*code), "Essential container in task exited"),
                    None => stopped_task(
                        arn,
                        None,
                        "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found",
                    ),
                }
            })
            .collect();
        DescribeTasksOutput::builder().set_tasks(Some(tasks)).build()
    });
    let list_tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_compute_output(|req| {
        // A service deployment's tasks carry its id as startedBy; migration tasks are never in flight.
        match (req.started_by(), req.desired_status()) {
            (Some(by), Some(DesiredStatus::Stopped)) if by.starts_with("ecs-svc/") => {
                ListTasksOutput::builder()
                    .task_arns(format!("{ACCOUNT}:task/prod/svc-{}", by.trim_start_matches("ecs-svc/")))
                    .build()
            }
            _ => ListTasksOutput::builder().build(),
        }
    });
    let deployments_api = mock!(aws_sdk_ecs::Client::list_service_deployments).then_error(|| {
        ListServiceDeploymentsError::UnsupportedFeatureException(
            aws_sdk_ecs::types::error::UnsupportedFeatureException::builder()
                .message("not in this region")
                .build(),
        )
    });
    let stop = mock!(aws_sdk_ecs::Client::stop_task).then_output(|| StopTaskOutput::builder().build());
    Rules {
        ecs: vec![describe_services, describe_td, describe_tasks, list_tasks, deployments_api, stop],
        update,
        register,
        run,
        logs: log_rule(state),
    }
}

const SERVICE_TEMPLATE: &str = r#"{"family": "FAMILY", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
 "containerDefinitions": [{"name": "app", "image": "example.com/app:${IMAGE_TAG}", "essential": true}]}"#;

fn env_config(dir: &Path, services: &[&str], tenants: bool, shards: u32) -> EnvConfig {
    let source = |file: &str| TemplateSource {
        path: dir.join(file),
        vars: BTreeMap::from([("IMAGE_TAG".to_string(), "2".to_string())]),
        defaults: BTreeMap::new(),
    };
    std::fs::write(dir.join("migrate.json"), crate::support::moto::template("migrate", "/ecs/migrate"))
        .unwrap();
    for name in services {
        std::fs::write(dir.join(format!("{name}.json")), SERVICE_TEMPLATE.replace("FAMILY", name)).unwrap();
    }
    EnvConfig {
        name: "production".into(),
        file: dir.join("shipgate.toml"),
        platform: Default::default(),
        region: None,
        cluster: "prod".into(),
        network: Network::Explicit(Placement { subnets: vec!["subnet-1".into()], ..Placement::default() }),
        migration: Some(MigrationTask { template: source("migrate.json"), container: None, timeout: None }),
        services: services
            .iter()
            .map(|n| EnvService {
                name: n.to_string(),
                template: source(&format!("{n}.json")),
                force_new_deployment: false,
            })
            .collect(),
        tenants,
        tenant_shards: shards,
        keep_revisions: None,
        lint: None,
    }
}

fn deploy_config(env: EnvConfig, rollback_on_failure: bool, dry_run: bool, ci: CiConfig) -> DeployConfig {
    DeployConfig {
        env,
        secrets: Default::default(),
        dry_run,
        rollback_on_failure,
        skip_post: false,
        force_new_deployment: false,
        lint: true,
        max_parallel: 4,
        run: RunSettings {
            follow: FollowOptions {
                tick: Duration::from_millis(5),
                drain_tick: Duration::from_millis(2),
                drain_grace: Duration::ZERO,
                missing_grace: Duration::from_millis(50),
                ..FollowOptions::default()
            },
            service_timeout: Duration::from_secs(30),
            run_id: "gh-7-1".into(),
            started_by: "shipgate".into(),
            ci,
        },
    }
}

/// The migration task's log stream: a pre task ends with its phase report, as shipgate's
/// runner writes it; every other stream is empty.
fn log_rule(state: &State) -> Rule {
    let s = state.clone();
    mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_compute_output(move |req| {
        let fake = s.lock().unwrap();
        let id = req.log_stream_name().unwrap_or_default().rsplit('/').next().unwrap_or_default();
        let env = fake.task_env.get(id).cloned().unwrap_or_default();
        let out = aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput::builder()
            .next_forward_token("f/1");
        if req.next_token().is_some()
            || fake.silent
            || env.get("MIGRATION_PHASE").map(String::as_str) != Some("pre")
        {
            return out.build();
        }
        let kind = env.get("MIGRATION_TYPE").cloned().unwrap_or_default();
        let waiting = fake.waiting.get(&kind).copied().unwrap_or(0);
        let line = format!(
            r#"shipgate:phase-report {{"phase":"pre","set":"{kind}","applied":1,"waiting":{waiting}}}"#
        );
        out.events(
            aws_sdk_cloudwatchlogs::types::OutputLogEvent::builder().timestamp(1).message(line).build(),
        )
        .build()
    })
}

struct Outcome {
    code: u8,
    message: String,
    events: Vec<serde_json::Value>,
    lines: Vec<String>,
}

async fn deploy(cfg: &DeployConfig, rules: &Rules) -> Outcome {
    let retry =
        || RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(1));
    let mut all: Vec<&Rule> = rules.ecs.iter().collect();
    all.extend([&rules.update, &rules.register, &rules.run]);
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &all, |c| c.retry_config(retry()));
    let logs =
        mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&rules.logs], |c| c.retry_config(retry()));
    let aws = Aws::from_clients(ecs, logs);
    let (out, lines) = Reporter::capturing(OutputFormat::Json);
    let prepared = prepare::prepare(&cfg.env).unwrap();
    let result = if cfg.dry_run {
        plan::run(&aws, cfg, &prepared, &out).await
    } else {
        let ci = Ci::new(&cfg.run.ci, &out);
        run_with(&aws, cfg, &prepared, &ci, &Shutdown::never(), &out).await
    };
    let lines = lines.lock().unwrap().clone();
    let events = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    match result {
        Ok(()) => Outcome { code: 0, message: String::new(), events, lines },
        Err(e) => Outcome { code: e.exit_code(), message: e.to_string(), events, lines },
    }
}

fn of<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[tokio::test]
async fn a_failed_migration_updates_no_service() {
    let dir = tempfile::tempdir().unwrap();
    let state: State = Arc::default();
    {
        let mut fake = state.lock().unwrap();
        fake.service("api");
        fake.service("worker");
        fake.fails.insert("master".into());
    }
    let rules = rules(&state);
    let cfg =
        deploy_config(env_config(dir.path(), &["api", "worker"], true, 1), true, false, CiConfig::default());
    let r = deploy(&cfg, &rules).await;
    assert_eq!(r.code, 1, "{}", r.message);
    assert!(r.message.contains("the master migration failed"), "{}", r.message);
    assert!(r.message.contains("no service was updated"), "{}", r.message);
    assert_eq!(rules.update.num_calls(), 0, "UpdateService was called");
    // The tenant step never ran: one task only.
    assert_eq!(rules.run.num_calls(), 1);
    let summary = &of(&r.events, "deploy_summary")[0];
    assert_eq!(summary["succeeded"], false);
    assert_eq!(summary["tasks"][0]["exit_code"], 1);
    assert_eq!(summary["services"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn one_shard_of_four_failing_fails_the_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let state: State = Arc::default();
    {
        let mut fake = state.lock().unwrap();
        fake.service("api");
        fake.fails.insert("3/4".into());
    }
    let rules = rules(&state);
    let cfg = deploy_config(env_config(dir.path(), &["api"], true, 4), false, false, CiConfig::default());
    let r = deploy(&cfg, &rules).await;
    assert_eq!(r.code, 1, "{}", r.message);
    assert!(r.message.contains("tenants 3/4: task"), "{}", r.message);
    assert_eq!(rules.update.num_calls(), 0);
    let fake = state.lock().unwrap();
    let shards: BTreeSet<String> =
        fake.run_env.iter().filter_map(|e| e.get("SHIPGATE_SHARD").cloned()).collect();
    assert_eq!(shards, BTreeSet::from(["1/4", "2/4", "3/4", "4/4"].map(String::from)));
    assert!(fake.run_env.iter().skip(1).all(|e| e["MIGRATION_TYPE"] == "tenants"), "{:?}", fake.run_env);
    let summary = &of(&r.events, "deploy_summary")[0];
    let phases: Vec<String> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}={}", t["phase"], t["succeeded"]))
        .collect();
    assert_eq!(
        phases,
        [
            "\"master\"=true",
            "\"tenants 1/4\"=true",
            "\"tenants 2/4\"=true",
            "\"tenants 3/4\"=false",
            "\"tenants 4/4\"=true"
        ]
    );
}

#[tokio::test]
async fn a_circuit_breaker_rollback_fails_the_deploy_and_puts_the_other_service_back() {
    for rollback_on_failure in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state: State = Arc::default();
        {
            let mut fake = state.lock().unwrap();
            fake.service("api");
            fake.service("worker");
            fake.breaks.insert("api".into());
            fake.waiting.insert("master".into(), 2);
        }
        let rules = rules(&state);
        let summary_file = dir.path().join("summary.md");
        let outputs_file = dir.path().join("outputs");
        let ci = CiConfig {
            github: true,
            step_summary: Some(summary_file.clone()),
            outputs: Some(outputs_file.clone()),
            progress: false,
        };
        let cfg = deploy_config(
            env_config(dir.path(), &["api", "worker"], false, 1),
            rollback_on_failure,
            false,
            ci,
        );
        let r = deploy(&cfg, &rules).await;
        assert_eq!(r.code, 1, "{}", r.message);
        assert!(
            r.message.contains("api: rolled back: ECS deployment circuit breaker: tasks failed to start."),
            "{}",
            r.message
        );
        assert!(!r.message.contains("worker"), "{}", r.message);
        // The failed tasks' reasons were shown while it happened.
        let said: Vec<String> = of(&r.events, "service_message")
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        assert!(said.iter().any(|m| m.contains("stopped: CannotPullContainerError")), "{said:?}");
        assert!(
            r.lines.iter().any(|l| l.starts_with("::error title=shipgate deploy production::")),
            "{:?}",
            r.lines
        );

        let fake = state.lock().unwrap();
        // Services roll out in parallel: the order between them is not fixed.
        let mut updates: Vec<String> =
            fake.updates.iter().map(|(s, t)| format!("{s}->{}", t.rsplit('/').next().unwrap())).collect();
        updates.sort();
        if rollback_on_failure {
            // api was already rolled back by ECS; worker completed and is put back.
            assert_eq!(updates, ["api->api:2", "worker->worker:1", "worker->worker:2"]);
            assert_eq!(fake.services["worker"][0].td, td("worker", 1));
            let summary = &of(&r.events, "deploy_summary")[0];
            let back: Vec<String> = summary["rollbacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("{} {}", s["service"].as_str().unwrap(), s["result"].as_str().unwrap()))
                .collect();
            assert_eq!(back, ["api unchanged: already on this task definition", "worker completed"]);
        } else {
            assert_eq!(updates, ["api->api:2", "worker->worker:2"]);
            assert_eq!(fake.services["worker"][0].td, td("worker", 2));
        }
        // A failed rollout never runs the post phase: the old version keeps what it needs.
        assert_eq!(rules.run.num_calls(), 1, "{:?}", fake.order);
        let outputs = std::fs::read_to_string(&outputs_file).unwrap();
        assert!(outputs.contains("deployment-ids={\"api\":\"ecs-svc/api-"), "{outputs}");
        assert!(outputs.contains("post-phase=not-run\n"), "{outputs}");
        assert!(outputs.ends_with("result=failure\n"), "{outputs}");
        let summary = std::fs::read_to_string(&summary_file).unwrap();
        assert!(summary.contains("| api | `api:1` → `api:2` |"), "{summary}");
        assert!(
            summary.contains(
                "### 3. Migrations after the rollout (post)\n\nnot-run: the rollout did not complete"
            ),
            "{summary}"
        );
    }
}

/// A deploy whose master pre task reports `waiting` post migrations (or, with `silent`, no
/// report at all), with one service, two tenant shards, and `--skip-post` as given.
async fn phased_deploy(
    waiting: usize,
    silent: bool,
    skip_post: bool,
) -> (Outcome, Vec<String>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let state: State = Arc::default();
    {
        let mut fake = state.lock().unwrap();
        fake.service("api");
        fake.waiting.insert("master".into(), waiting);
        fake.silent = silent;
    }
    let rules = rules(&state);
    let ci = CiConfig {
        github: true,
        step_summary: Some(dir.path().join("summary.md")),
        outputs: Some(dir.path().join("outputs")),
        progress: false,
    };
    let mut cfg = deploy_config(env_config(dir.path(), &["api"], true, 2), false, false, ci);
    cfg.skip_post = skip_post;
    let r = deploy(&cfg, &rules).await;
    let order = state.lock().unwrap().order.clone();
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let outputs = std::fs::read_to_string(dir.path().join("outputs")).unwrap();
    (r, order, summary, outputs)
}

#[tokio::test]
async fn post_migrations_run_after_the_rollout_only_where_the_pre_task_reported_them() {
    let (r, order, summary, outputs) = phased_deploy(2, false, false).await;
    assert_eq!(r.code, 0, "{}", r.message);
    // Only the master reported post migrations: its post task runs, after the rollout.
    assert_eq!(
        order,
        ["run master pre", "run tenants pre", "run tenants pre", "update api", "run master post"],
        "{}",
        r.message
    );
    let deployed = &of(&r.events, "deploy_summary")[0];
    assert_eq!(deployed["post"]["state"], "ran");
    assert_eq!(deployed["tasks"][3]["phase"], "master post");
    assert_eq!(deployed["tasks"][3]["stage"], "post");
    assert!(deployed["message"].as_str().unwrap().ends_with("post migrations applied after the rollout"));
    assert!(outputs.contains("post-phase=ran\n"), "{outputs}");
    let stages: Vec<&str> = summary.lines().filter(|l| l.starts_with("### ")).collect();
    assert_eq!(
        stages,
        [
            "### Task definitions",
            "### 1. Migrations before the rollout (pre)",
            "### 2. Service rollouts",
            "### 3. Migrations after the rollout (post)",
            "### Timeline",
        ]
    );
    assert!(summary.contains("| master post |"), "{summary}");
    assert!(
        summary.contains("    section migrations after the rollout\n    master post :done, "),
        "{summary}"
    );

    // Nothing waits: no post task.
    let (r, order, summary, outputs) = phased_deploy(0, false, false).await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!(order, ["run master pre", "run tenants pre", "run tenants pre", "update api"]);
    assert!(outputs.contains("post-phase=not-needed\n"), "{outputs}");
    assert!(summary.contains("not-needed: no post migration waits"), "{summary}");

    // `--skip-post` defers them and says how many.
    let (r, order, _, outputs) = phased_deploy(3, false, true).await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!(order.last().unwrap(), "update api");
    assert!(outputs.contains("post-phase=deferred\n"), "{outputs}");
    let deployed = &of(&r.events, "deploy_summary")[0];
    assert_eq!(deployed["post"]["detail"], "--skip-post: 3 post migrations wait, for a later deploy");

    // A pre task that said nothing (its runner is not shipgate's): each post step runs, to be sure.
    let (r, order, _, outputs) = phased_deploy(0, true, false).await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!(&order[3..], ["update api", "run master post", "run tenants post", "run tenants post"]);
    assert!(outputs.contains("post-phase=ran\n"), "{outputs}");
}

#[tokio::test]
async fn a_dry_run_makes_no_mutating_call() {
    let dir = tempfile::tempdir().unwrap();
    let state: State = Arc::default();
    {
        let mut fake = state.lock().unwrap();
        fake.service("api");
        fake.service("worker");
    }
    let rules = rules(&state);
    let cfg =
        deploy_config(env_config(dir.path(), &["api", "worker"], true, 2), false, true, CiConfig::default());
    let r = deploy(&cfg, &rules).await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!((rules.update.num_calls(), rules.register.num_calls(), rules.run.num_calls()), (0, 0, 0));
    let planned: Vec<String> = of(&r.events, "planned")
        .iter()
        .map(|e| format!("{} {}", e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(planned[0], "register migrate:1 (migration)");
    assert!(planned[3].starts_with("run master: migrate:1 in cluster prod"), "{planned:?}");
    assert!(
        planned[5].ends_with("MIGRATION_TYPE=tenants MIGRATION_PHASE=pre SHIPGATE_SHARD=2/2)"),
        "{planned:?}"
    );
    assert_eq!(planned[6], "unchanged service api stays on api:1");
    // The third stage: a post task each, run after the rollout when the pre task reports one is needed.
    assert_eq!(planned.len(), 11, "{planned:?}");
    assert!(
        planned[8].starts_with(
            "run after the rollout, if the pre task reports post migrations waiting: master post:"
        ) && planned[8].ends_with("MIGRATION_TYPE=master MIGRATION_PHASE=post)"),
        "{planned:?}"
    );
}

#[tokio::test]
async fn a_service_another_controller_deploys_is_refused_before_any_migration() {
    for controller in ["CODE_DEPLOY", "EXTERNAL"] {
        let dir = tempfile::tempdir().unwrap();
        let state: State = Arc::default();
        {
            let mut fake = state.lock().unwrap();
            fake.service("api");
            fake.service("worker");
            fake.controllers.insert("worker".into(), controller);
        }
        let rules = rules(&state);
        let cfg = deploy_config(
            env_config(dir.path(), &["api", "worker"], true, 1),
            false,
            false,
            CiConfig::default(),
        );
        let r = deploy(&cfg, &rules).await;
        assert_eq!(r.code, 2, "{}", r.message);
        assert!(
            r.message.contains(&format!(
                "service `worker` in cluster `prod` uses the {controller} deployment controller"
            )),
            "{}",
            r.message
        );
        // Nothing changed: no task definition, no migration task, no service update.
        assert_eq!((rules.register.num_calls(), rules.run.num_calls(), rules.update.num_calls()), (0, 0, 0));
    }
}

#[tokio::test]
async fn a_throttled_deployments_api_is_asked_again_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let state: State = Arc::default();
    state.lock().unwrap().service("api");
    state.lock().unwrap().slow.insert("api".into(), 3);
    let mut rules = rules(&state);
    let throttled = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .sequence()
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .times(4)
        .error(|| {
            ListServiceDeploymentsError::UnsupportedFeatureException(
                aws_sdk_ecs::types::error::UnsupportedFeatureException::builder().message("not here").build(),
            )
        })
        .repeatedly()
        .build();
    rules.ecs[4] = throttled.clone();
    let cfg = deploy_config(env_config(dir.path(), &["api"], false, 1), false, false, CiConfig::default());
    let r = deploy(&cfg, &rules).await;
    assert_eq!(r.code, 0, "{}", r.message);
    // Two attempts a tick (the client's retries): a later tick asked again.
    assert!(throttled.num_calls() > 2, "dropped after {} calls", throttled.num_calls());
}
