//! `task run` against ECS and CloudWatch Logs answers made with `aws-smithy-mocks`: every
//! edge case the APIs can return, without a server, in milliseconds (the follower's ticks are
//! shortened to a few milliseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::operation::get_log_events::{GetLogEventsError, GetLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{Container, Failure, Task, TaskStopCode};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use shipgate::aws::Aws;
use shipgate::cli::{ExitCodeMode, OutputFormat};
use shipgate::config::{FollowConfig, Network, RunConfig, TaskDefinitionRef};
use shipgate::output::Reporter;
use shipgate::shutdown::{Shutdown, Signal};
use shipgate::task::follow::FollowOptions;
use shipgate::task::run::run_followed;
use shipgate::task::spec::{Overrides, Placement};
use shipgate::taskdef::{ContainerInfo, LogDriver};

const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd";
const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/migrate:4";
const STREAM: &str = "db/app/0123abcd";

fn config() -> RunConfig {
    RunConfig {
        region: None,
        cluster: "prod".into(),
        task_definition: TaskDefinitionRef::Registered("migrate:4".into()),
        network: Network::Explicit(Placement { subnets: vec!["subnet-1".into()], ..Placement::default() }),
        overrides: Overrides::default(),
        started_by: "shipgate".into(),
        tags: vec![],
        detach: false,
        start_retries: 0,
        wait_for_running: false,
        execute_command: false,
        run_id: "test-run".into(),
        group: None,
        follow: FollowConfig {
            container: None,
            options: FollowOptions {
                tick: Duration::from_millis(5),
                drain_tick: Duration::from_millis(2),
                drain_grace: Duration::ZERO,
                missing_grace: Duration::from_millis(50),
                ..FollowOptions::default()
            },
            exit_code: ExitCodeMode::Container,
        },
    }
}

fn containers(names: &[(&str, bool)]) -> Vec<ContainerInfo> {
    names
        .iter()
        .map(|(name, essential)| ContainerInfo {
            name: name.to_string(),
            essential: *essential,
            log: LogDriver::AwsLogs {
                group: "/ecs/migrate".into(),
                region: None,
                prefix: Some("db".into()),
                non_blocking: false,
            },
        })
        .collect()
}

fn task(status: &str) -> Task {
    Task::builder()
        .task_arn(TASK)
        .cluster_arn("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
        .task_definition_arn(TD)
        .last_status(status)
        .containers(Container::builder().name("app").last_status(status).build())
        .build()
}

/// A STOPPED task; `containers` are (name, exit code, reason).
fn stopped(stop_code: &str, reason: &str, started: bool, containers: &[(&str, Option<i32>, &str)]) -> Task {
    let mut b = Task::builder()
        .task_arn(TASK)
        .cluster_arn("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
        .task_definition_arn(TD)
        .last_status("STOPPED")
        .desired_status("STOPPED")
        .stop_code(TaskStopCode::from(stop_code))
        .stopped_reason(reason)
        .stopped_at(DateTime::from(SystemTime::now() - Duration::from_secs(10)));
    if started {
        b = b.started_at(DateTime::from(SystemTime::now() - Duration::from_secs(60)));
    }
    for (name, exit_code, why) in containers {
        let mut c = Container::builder().name(*name).last_status("STOPPED").set_exit_code(*exit_code);
        if !why.is_empty() {
            c = c.reason(*why);
        }
        b = b.containers(c.build());
    }
    b.build()
}

fn describes(tasks: Vec<Task>) -> Rule {
    let mut seq = mock!(aws_sdk_ecs::Client::describe_tasks).sequence();
    let last = tasks.len() - 1;
    for (i, t) in tasks.into_iter().enumerate() {
        let out = DescribeTasksOutput::builder().tasks(t).build();
        seq = seq.output(move || out.clone());
        if i == last {
            return seq.repeatedly().build();
        }
    }
    unreachable!()
}

fn no_tasks_in_flight() -> Rule {
    mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build())
}

fn started() -> Rule {
    mock!(aws_sdk_ecs::Client::run_task)
        .then_output(|| RunTaskOutput::builder().tasks(task("PROVISIONING")).build())
}

fn quiet_logs() -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_error(|| {
        GetLogEventsError::ResourceNotFoundException(
            aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException::builder()
                .message("The specified log stream does not exist.")
                .build(),
        )
    })
}

/// Clients answered by `ecs_rules` and `logs_rules`, retrying three times at once.
fn mocked_aws(ecs_rules: &[&Rule], logs_rules: &[&Rule]) -> Aws {
    let retry =
        || RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, |c| c.retry_config(retry()));
    let logs =
        mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, logs_rules, |c| c.retry_config(retry()));
    Aws::from_clients(ecs, logs)
}

struct Run {
    code: u8,
    message: String,
    lines: Vec<String>,
}

async fn run(ecs_rules: &[&Rule], logs_rules: &[&Rule], cfg: RunConfig, containers: &[ContainerInfo]) -> Run {
    run_with_shutdown(ecs_rules, logs_rules, cfg, containers, Shutdown::never()).await
}

async fn run_with_shutdown(
    ecs_rules: &[&Rule],
    logs_rules: &[&Rule],
    cfg: RunConfig,
    containers: &[ContainerInfo],
    shutdown: Shutdown,
) -> Run {
    let aws = mocked_aws(ecs_rules, logs_rules);
    let (out, lines) = Reporter::capturing(OutputFormat::Text);
    let result = run_followed(&aws, &cfg, TD, containers, &shutdown, &out).await.result;
    let lines = lines.lock().unwrap().clone();
    match result {
        Ok(()) => Run { code: 0, message: String::new(), lines },
        Err(e) => Run { code: e.exit_code(), message: e.to_string(), lines },
    }
}

#[tokio::test]
async fn a_task_that_stops_between_two_polls_is_followed_to_its_verdict() {
    let describe = describes(vec![
        task("PENDING"),
        stopped(
            "EssentialContainerExited",
            "Essential container in task exited",
            true,
            &[("app", Some(0), "")],
        ),
    ]);
    let r = run(
        &[&no_tasks_in_flight(), &started(), &describe],
        &[&quiet_logs()],
        config(),
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.message);
}

#[tokio::test]
async fn outcomes_become_exit_codes() {
    let oom = "OutOfMemoryError: Container killed due to memory usage";
    let pull = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref 1.dkr.ecr.us-east-1.amazonaws.com/app:nope: not found";
    let init = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: AccessDeniedException";
    let cases: Vec<(Task, u8, &str)> = vec![
        (
            stopped(
                "EssentialContainerExited",
                "Essential container in task exited",
                true,
                &[("app", Some(1), "")],
            ),
            1,
            "container `app` exited with code 1",
        ),
        (
            stopped(
                "EssentialContainerExited",
                "Essential container in task exited",
                true,
                &[("app", Some(42), "")],
            ),
            42,
            "exited with code 42",
        ),
        (
            stopped("TaskFailedToStart", pull, false, &[("app", None, "")]),
            1,
            "task failed to start (the image could not be pulled): CannotPullContainerError",
        ),
        (
            stopped("TaskFailedToStart", init, false, &[("app", None, "")]),
            1,
            "secrets or registry credentials could not be fetched): ResourceInitializationError",
        ),
        (
            stopped(
                "EssentialContainerExited",
                "Essential container in task exited",
                true,
                &[("app", Some(137), oom)],
            ),
            137,
            "ran out of memory",
        ),
        // The sidecar is stopped by ECS after the watched container succeeded: not a failure.
        (
            stopped(
                "EssentialContainerExited",
                "Essential container in task exited",
                true,
                &[("proxy", Some(137), ""), ("app", Some(0), "")],
            ),
            0,
            "",
        ),
    ];
    for (final_state, code, fragment) in cases {
        let describe = describes(vec![task("RUNNING"), final_state]);
        let mut cfg = config();
        cfg.follow.container = Some("app".into());
        let r = run(
            &[&no_tasks_in_flight(), &started(), &describe],
            &[&quiet_logs()],
            cfg,
            &containers(&[("app", true), ("proxy", false)]),
        )
        .await;
        assert_eq!(r.code, code, "{}", r.message);
        assert!(r.message.contains(fragment), "{fragment:?} not in {:?}", r.message);
    }
}

#[tokio::test]
async fn classified_exit_codes_keep_the_contract() {
    let describe = describes(vec![stopped("EssentialContainerExited", "x", true, &[("app", Some(42), "")])]);
    let mut cfg = config();
    cfg.follow.exit_code = ExitCodeMode::Classified;
    let r = run(
        &[&no_tasks_in_flight(), &started(), &describe],
        &[&quiet_logs()],
        cfg,
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.message);
}

#[tokio::test]
async fn run_task_failures_are_failures_even_when_the_call_succeeded() {
    let refused = mock!(aws_sdk_ecs::Client::run_task).then_output(|| {
        RunTaskOutput::builder()
            .failures(Failure::builder().arn(TD).reason("MISSING").detail("no container instance").build())
            .build()
    });
    let r =
        run(&[&no_tasks_in_flight(), &refused], &[&quiet_logs()], config(), &containers(&[("app", true)]))
            .await;
    assert_eq!(r.code, 1);
    assert!(r.message.contains("RunTask started no task: MISSING (no container instance)"), "{}", r.message);
    assert_eq!(refused.num_calls(), 1);
}

#[tokio::test]
async fn capacity_failures_are_started_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let flaky = mock!(aws_sdk_ecs::Client::run_task).then_compute_output(move |req| {
        assert!(req.client_token().is_some_and(|t| t.len() == 64));
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            RunTaskOutput::builder()
                .failures(Failure::builder().reason("Capacity is unavailable at this time.").build())
                .build()
        } else {
            RunTaskOutput::builder().tasks(task("PROVISIONING")).build()
        }
    });
    let describe = describes(vec![stopped("EssentialContainerExited", "x", true, &[("app", Some(0), "")])]);
    let mut cfg = config();
    cfg.start_retries = 2;
    let r = run(
        &[&no_tasks_in_flight(), &flaky, &describe],
        &[&quiet_logs()],
        cfg,
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_container_that_ran_and_failed_is_never_started_again() {
    let describe = describes(vec![stopped("EssentialContainerExited", "x", true, &[("app", Some(1), "")])]);
    let start = started();
    let mut cfg = config();
    cfg.start_retries = 2;
    let r = run(
        &[&no_tasks_in_flight(), &start, &describe],
        &[&quiet_logs()],
        cfg,
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(start.num_calls(), 1);
}

#[tokio::test]
async fn throttling_is_retried_without_failing_the_run() {
    let throttled = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .times(2)
        .output(|| {
            DescribeTasksOutput::builder()
                .tasks(stopped("EssentialContainerExited", "x", true, &[("app", Some(0), "")]))
                .build()
        })
        .repeatedly()
        .build();
    let r = run(
        &[&no_tasks_in_flight(), &started(), &throttled],
        &[&quiet_logs()],
        config(),
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert!(throttled.num_calls() >= 3);
}

fn page(lines: std::ops::Range<usize>, token: &str) -> GetLogEventsOutput {
    let mut b = GetLogEventsOutput::builder().next_forward_token(token).next_backward_token("b/0");
    for i in lines {
        b = b.events(
            OutputLogEvent::builder()
                .timestamp(1_700_000_000_000 + i as i64)
                .message(format!("line {i}"))
                .build(),
        );
    }
    b.build()
}

#[tokio::test]
async fn logs_from_a_stream_created_late_and_pages_that_arrive_after_stopped_are_all_printed_once() {
    // The stream does not exist while the task runs; three pages land after it stopped.
    let is_stopped = Arc::new(AtomicBool::new(false));
    let seen = is_stopped.clone();
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |_| {
        let calls = seen.load(Ordering::SeqCst);
        let t = if calls {
            stopped("EssentialContainerExited", "x", true, &[("app", Some(0), "")])
        } else {
            seen.store(true, Ordering::SeqCst);
            task("RUNNING")
        };
        DescribeTasksOutput::builder().tasks(t).build()
    });
    let missing_reads = Arc::new(AtomicUsize::new(0));
    let missing = missing_reads.clone();
    let logs = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_compute_response(move |req| {
        use aws_smithy_mocks::MockResponse;
        assert_eq!(req.start_from_head(), Some(true));
        assert_eq!(req.log_stream_name(), Some(STREAM));
        if missing.fetch_add(1, Ordering::SeqCst) < 2 {
            return MockResponse::Error(GetLogEventsError::ResourceNotFoundException(
                aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException::builder()
                    .message("nope")
                    .build(),
            ));
        }
        MockResponse::Output(match req.next_token() {
            None => page(0..3, "f/1"),
            Some("f/1") => page(3..5, "f/2"),
            Some("f/2") => page(5..9, "f/3"),
            Some(_) => page(0..0, "f/3"),
        })
    });
    let r = run(
        &[&no_tasks_in_flight(), &started(), &describe],
        &[&logs],
        config(),
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.message);
    let expected: Vec<String> = (0..9).map(|i| format!("line {i}")).collect();
    assert_eq!(r.lines, expected);
}

#[tokio::test]
async fn cancellation_stops_the_task_and_waits_for_it() {
    let stop_sent = Arc::new(AtomicBool::new(false));
    let flag = stop_sent.clone();
    let stop = mock!(aws_sdk_ecs::Client::stop_task).then_compute_output(move |req| {
        assert!(
            req.reason().is_some_and(|r| r.starts_with("cancelled by ") && r.ends_with("(SIGINT)")),
            "{:?}",
            req.reason()
        );
        flag.store(true, Ordering::SeqCst);
        StopTaskOutput::builder().task(task("RUNNING")).build()
    });
    let seen = stop_sent.clone();
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |_| {
        let t = if seen.load(Ordering::SeqCst) {
            stopped("UserInitiated", "cancelled by ci (SIGINT)", true, &[("app", Some(143), "")])
        } else {
            task("RUNNING")
        };
        DescribeTasksOutput::builder().tasks(t).build()
    });
    let (shutdown, trigger) = Shutdown::manual();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        trigger.fire(Signal::Int);
    });
    let r = run_with_shutdown(
        &[&no_tasks_in_flight(), &started(), &describe, &stop],
        &[&quiet_logs()],
        config(),
        &containers(&[("app", true)]),
        shutdown,
    )
    .await;
    assert_eq!(r.code, 130, "{}", r.message);
    assert!(r.message.contains("cancelled: task 0123abcd was stopped (stopped by StopTask"), "{}", r.message);
    assert_eq!(stop.num_calls(), 1);
}

#[tokio::test]
async fn credentials_that_expire_while_following_are_not_a_failed_migration() {
    let expired = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(|| DescribeTasksOutput::builder().tasks(task("RUNNING")).build())
        .times(2)
        .http_status(
            400,
            Some(r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#.into()),
        )
        .repeatedly()
        .build();
    let r = run(
        &[&no_tasks_in_flight(), &started(), &expired],
        &[&quiet_logs()],
        config(),
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.message);
    assert!(
        r.message.starts_with(&format!("lost the AWS credentials while task {TASK} was still running")),
        "{}",
        r.message
    );
    assert!(r.message.contains("it continues on ECS"), "{}", r.message);
    assert!(r.message.contains(&format!("shipgate task attach {TASK} --cluster prod")), "{}", r.message);
}

#[tokio::test]
async fn the_concurrency_guard_refuses_a_second_run_of_the_family() {
    let listed = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_output(|| ListTasksOutput::builder().task_arns(TASK).build());
    let running = describes(vec![task("RUNNING")]);
    let start = started();
    let r =
        run(&[&listed, &running, &start], &[&quiet_logs()], config(), &containers(&[("app", true)])).await;
    assert_eq!(r.code, 3, "{}", r.message);
    assert!(
        r.message.contains("is already RUNNING") && r.message.contains("shipgate task attach"),
        "{}",
        r.message
    );
    assert_eq!(start.num_calls(), 0);
}

#[tokio::test]
async fn an_unknown_cluster_is_named_with_the_region_it_was_looked_for_in() {
    let no_cluster = mock!(aws_sdk_ecs::Client::list_tasks)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"ClusterNotFoundException","message":"Cluster not found."}"#.into()),
        )
        .repeatedly()
        .build();
    let r = run(&[&no_cluster], &[&quiet_logs()], config(), &containers(&[("app", true)])).await;
    assert_eq!(r.code, 2, "{}", r.message);
    assert!(
        r.message.contains("ClusterNotFoundException: Cluster not found. (cluster `prod` in region "),
        "{}",
        r.message
    );
}

/// Sixteen tasks followed at once by one process (the shards of a tenant step) share one
/// `DescribeTasks` call per tick: the calls are those of one follower, not sixteen times that.
#[tokio::test]
async fn many_tasks_followed_at_once_share_one_describe_call_per_tick() {
    const N: usize = 16;
    let arn = |i: usize| format!("arn:aws:ecs:us-east-1:123456789012:task/prod/shard{i:02}");
    let widest = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let (w, n) = (widest.clone(), rounds.clone());
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(move |req| {
        let asked = req.tasks();
        w.fetch_max(asked.len(), Ordering::SeqCst);
        let round = n.fetch_add(1, Ordering::SeqCst);
        let tasks = asked.iter().map(|a| {
            let mut t = if round < 3 {
                task("RUNNING")
            } else {
                stopped("EssentialContainerExited", "done", true, &[("app", Some(0), "")])
            };
            t.task_arn = Some(a.clone());
            t
        });
        DescribeTasksOutput::builder().set_tasks(Some(tasks.collect())).build()
    });
    let aws = mocked_aws(&[&describe], &[&quiet_logs()]).with_log_reads(1000.0);
    let opts = FollowOptions { tick: Duration::from_millis(20), ..config().follow.options };
    let (out, _) = Reporter::capturing(OutputFormat::Text);
    let shutdown = Shutdown::never();
    let arns: Vec<String> = (0..N).map(arn).collect();
    let containers = containers(&[("app", true)]);
    let followers = arns
        .iter()
        .map(|a| shipgate::task::follow::follow(&aws, "prod", a, &containers, &opts, &shutdown, &out));
    let followed = futures_util::future::join_all(followers).await;
    for (a, f) in arns.iter().zip(followed) {
        let f = f.unwrap_or_else(|e| panic!("{a}: {e}"));
        assert_eq!(&f.task.arn, a, "each follower gets its own task's answer");
        assert!(f.task.stopped());
    }
    assert_eq!(widest.load(Ordering::SeqCst), N, "one call asked for every task");
    let calls = describe.num_calls();
    assert!(calls <= 6, "{calls} DescribeTasks calls for {N} tasks over 4 rounds");
}

/// A writer for a tracing subscriber that keeps what it was given.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An HTTP 500 that the SDK retries is a line per attempt, naming the answer and the call,
/// not a silent wait that ends in "cannot reach AWS".
#[tokio::test]
async fn each_retried_server_error_is_a_progress_line() {
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .http_status(500, None)
        .times(2)
        .output(|| DescribeTasksOutput::builder().tasks(task("RUNNING")).build())
        .build();
    let retry =
        || RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe], |c| c
        .retry_config(retry())
        .interceptor(shipgate::aws::attempts::Attempts));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let found =
        shipgate::aws::ecs::describe_task(&ecs, "prod", TASK).await.expect("the third attempt answers");
    assert!(found.is_some());
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("AWS answered HTTP 500 to ecs:DescribeTasks (attempt 1 of 3); trying again"),
        "{text}"
    );
    assert!(
        text.contains("AWS answered HTTP 500 to ecs:DescribeTasks (attempt 2 of 3); trying again"),
        "{text}"
    );
    assert_eq!(describe.num_calls(), 3);
}

/// The migration task copies ECS Exec and tag propagation from the service whose network it
/// copies, so `shipgate task exec` works on a stuck migration.
#[tokio::test]
async fn the_task_copies_ecs_exec_and_tag_propagation_from_the_service() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::types::{AwsVpcConfiguration, NetworkConfiguration, PropagateTags, Service};
    let service = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        let vpc = AwsVpcConfiguration::builder().subnets("subnet-9").build().unwrap();
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("api")
                    .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
                    .enable_execute_command(true)
                    .enable_ecs_managed_tags(true)
                    .propagate_tags(PropagateTags::TaskDefinition)
                    .build(),
            )
            .build()
    });
    let start = mock!(aws_sdk_ecs::Client::run_task).then_compute_output(|req| {
        assert_eq!(req.enable_execute_command(), Some(true));
        assert_eq!(req.enable_ecs_managed_tags(), Some(true));
        assert_eq!(req.propagate_tags(), Some(&PropagateTags::TaskDefinition));
        RunTaskOutput::builder().tasks(task("PROVISIONING")).build()
    });
    let describe =
        describes(vec![stopped("EssentialContainerExited", "done", true, &[("app", Some(0), "")])]);
    let mut cfg = config();
    cfg.network =
        Network::FromService { service: "api".into(), capacity_provider: None, platform_version: None };
    let r = run(
        &[&no_tasks_in_flight(), &service, &start, &describe],
        &[&quiet_logs()],
        cfg,
        &containers(&[("app", true)]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.message);
    assert_eq!(start.num_calls(), 1);
}

/// `task exec` opens the session in the task's only essential container, and refuses a task
/// started without ECS Exec, saying how to turn it on.
#[tokio::test]
async fn exec_picks_the_container_and_refuses_a_task_without_ecs_exec() {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
    use shipgate::task::exec::{ExecRequest, prepare};
    let definition = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(TD)
                    .container_definitions(ContainerDefinition::builder().name("app").essential(true).build())
                    .container_definitions(
                        ContainerDefinition::builder().name("proxy").essential(false).build(),
                    )
                    .build(),
            )
            .build()
    });
    let request = ExecRequest {
        cluster: "prod".into(),
        region: None,
        task: TASK.into(),
        container: None,
        command: vec![],
    };
    for (exec_enabled, want) in
        [(true, Ok("--container app --interactive --command /bin/sh")), (false, Err("without ECS Exec"))]
    {
        let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
            let mut t = task("RUNNING");
            t.enable_execute_command = exec_enabled;
            DescribeTasksOutput::builder().tasks(t).build()
        });
        let aws = mocked_aws(&[&describe, &definition], &[&quiet_logs()]);
        let got = prepare(&aws, &request).await.map(|argv| argv.join(" "));
        match (got, want) {
            (Ok(line), Ok(fragment)) => assert!(line.contains(fragment), "{line}"),
            (Err(e), Err(fragment)) => assert!(e.message().contains(fragment), "{e}"),
            (got, want) => panic!("{got:?}, want {want:?}"),
        }
    }
}
