//! The migration steps of a deploy (or rollback): the migration task run once per step with
//! `MIGRATION_TYPE` set, a tenant step split across `tenant_shards` tasks that run at once
//! (each with `SHIPGATE_SHARD=i/N`, the environment form of `tenants up --shard i/N`), their
//! logs interleaved with a `[tenants i/N]` prefix. A step fails if any of its tasks fails,
//! and the steps after it do not run.
//!
//! A deploy's steps run in the pre phase (`MIGRATION_PHASE=pre`); each task ends with a
//! phase report in its logs (`migrate::phase::Report`), and a post step runs after the
//! rollout only for a step whose tasks reported post migrations waiting, or said nothing.

use std::time::Instant;

use futures_util::future::join_all;

use super::ci::Ci;
use crate::aws::Aws;
use crate::cli::ExitCodeMode;
use crate::config::deploy::{EnvConfig, MigrationTask, RunSettings};
use crate::config::{FollowConfig, RunConfig, TaskDefinitionRef};
use crate::deploy::report::{DeployRecord, PostRecord, PostState, TaskRecord};
use crate::error::{Error, Result};
use crate::migrate::phase::{self, Heard, Report};
use crate::migrate::plan::DownTo;
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use crate::task::logs::sources;
use crate::task::outcome;
use crate::task::run::{Launch, run_followed};
use crate::task::spec::Overrides;
use crate::taskdef::ContainerInfo;

/// One migration step: the variables of its task(s) and how many tasks share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub label: String,
    pub env: Vec<(String, String)>,
    pub shards: u32,
    /// `pre` or `post` for a deploy's steps; `None` for a rollback's.
    pub stage: Option<&'static str>,
}

fn migration_type(kind: &str) -> Vec<(String, String)> {
    vec![("MIGRATION_TYPE".to_string(), kind.to_string())]
}

/// A deploy migrates the master schema, then the tenants, in the pre phase; with `lint`
/// off (`deploy --no-lint`) the runner's own lint is off too.
pub fn deploy_steps(env: &EnvConfig, lint: bool) -> Vec<Step> {
    let phased = |kind: &str| {
        let mut vars = migration_type(kind);
        vars.push(("MIGRATION_PHASE".into(), "pre".into()));
        if !lint {
            vars.push(("SHIPGATE_LINT".into(), "off".into()));
        }
        vars
    };
    let pre = Some("pre");
    let mut steps = vec![Step { label: "master".into(), env: phased("master"), shards: 1, stage: pre }];
    if env.tenants {
        steps.push(Step {
            label: "tenants".into(),
            env: phased("tenants"),
            shards: env.tenant_shards,
            stage: pre,
        });
    }
    steps
}

/// Why a post step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostStep {
    pub step: Step,
    /// Post migrations its pre tasks reported waiting; `None`: a task reported nothing.
    pub waiting: Option<usize>,
}

/// The post steps after the rollout: one for each pre step whose tasks reported post
/// migrations waiting, or whose tasks did not all report (a runner that is not shipgate's, or
/// logs that never arrived: the post task then finds out, and applies nothing if nothing
/// waits). Pure; `heard` is aligned with `pre`.
pub fn post_steps(pre: &[Step], heard: &[Heard]) -> Vec<PostStep> {
    pre.iter()
        .zip(heard)
        .filter_map(|(step, heard)| {
            let waiting = match heard {
                Heard::Waiting(0) => return None,
                Heard::Waiting(n) => Some(*n),
                Heard::Silent => None,
            };
            let env = step
                .env
                .iter()
                .map(|(k, v)| {
                    (k.clone(), if k == "MIGRATION_PHASE" { "post".to_string() } else { v.clone() })
                })
                .collect();
            let label = format!("{} post", step.label);
            Some(PostStep { step: Step { label, env, shards: step.shards, stage: Some("post") }, waiting })
        })
        .collect()
}

/// Every post step that may run after `pre`: which do is known only from the pre tasks'
/// reports, so a dry run shows them all.
pub fn possible_post_steps(pre: &[Step]) -> Vec<Step> {
    post_steps(pre, &vec![Heard::Silent; pre.len()]).into_iter().map(|p| p.step).collect()
}

/// What the pre steps leave for after the rollout, in words (the deploy summary's).
pub fn describe_post(post: &[PostStep]) -> String {
    let waiting: usize = post.iter().filter_map(|p| p.waiting).sum();
    let unknown = post.iter().any(|p| p.waiting.is_none());
    match (waiting, unknown) {
        (0, false) => "no post migration waits".to_string(),
        (n, false) => phase::waiting_words(n),
        (0, true) => "post migrations may wait (a pre task did not report)".to_string(),
        (n, true) => format!("{n} or more post migrations wait (a pre task did not report)"),
    }
}

/// A rollback reverts the tenants first (they depend on the master schema), then the master.
pub fn rollback_steps(env: &EnvConfig, to: &DownTo) -> Vec<Step> {
    let how = match to {
        DownTo::Steps(n) => ("SHIPGATE_ROLLBACK_STEPS".to_string(), n.to_string()),
        DownTo::Version(v) => ("SHIPGATE_ROLLBACK_TO".to_string(), v.to_string()),
        DownTo::LastRun => ("SHIPGATE_ROLLBACK_STEPS".to_string(), String::new()),
    };
    let step = |label: &str, kind: &str, shards| {
        let mut env = migration_type(kind);
        env.push(how.clone());
        Step { label: label.into(), env, shards, stage: None }
    };
    let mut steps = Vec::new();
    if env.tenants {
        steps.push(step("rollback-tenants", "rollback-tenants", env.tenant_shards));
    }
    steps.push(step("rollback-master", "rollback-master", 1));
    steps
}

/// One task of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTask {
    pub label: String,
    pub env: Vec<(String, String)>,
    pub started_by: String,
    /// Its place among the step's shards, from 0 (0 for a step that is not sharded).
    pub shard: u32,
}

/// The time between the starts of two shards of a step on ECS: sixteen shards do not call
/// RunTask (and the in-flight check before it) in the same instant.
pub const SHARD_STAGGER: std::time::Duration = std::time::Duration::from_millis(250);

/// The tasks of a step. A shard's `startedBy` is its own, so each task's idempotency token
/// and in-flight check are its own.
pub fn shard_tasks(step: &Step, started_by: &str) -> Vec<StepTask> {
    if step.shards <= 1 {
        return vec![StepTask {
            label: step.label.clone(),
            env: step.env.clone(),
            started_by: started_by.to_string(),
            shard: 0,
        }];
    }
    (1..=step.shards)
        .map(|i| {
            let mut env = step.env.clone();
            env.push(("SHIPGATE_SHARD".into(), format!("{i}/{}", step.shards)));
            let mut by = format!("{started_by}-{i}of{}", step.shards);
            by.truncate(36);
            StepTask {
                label: format!("{} {i}/{}", step.label, step.shards),
                env,
                started_by: by,
                shard: i - 1,
            }
        })
        .collect()
}

/// End a step's group; its first failure (with every task's message) is the step's error.
pub fn finish_step(step: &Step, failures: Vec<(String, Error)>, ci: &Ci, title: &str) -> Result<()> {
    let ok = failures.is_empty();
    let message = if ok {
        format!("{} succeeded", step.label)
    } else {
        failures.iter().map(|(l, e)| format!("{l}: {}", e.message())).collect::<Vec<_>>().join("; ")
    };
    ci.end_group(title, ok, &message);
    match failures.into_iter().next() {
        None => Ok(()),
        // A follower that lost its credentials does not know the task failed: it runs on.
        Some((label, first)) if first.message().starts_with(crate::task::follow::LOST_CREDENTIALS) => {
            Err(first.map_message(|_| format!("the {label} migration may still be running: {message}")))
        }
        Some((label, first)) => {
            Err(first.map_message(|_| format!("the {label} migration failed: {message}")))
        }
    }
}

/// A failed migration, said to have stopped the deploy before its services.
pub fn before_services(e: Error, services: usize) -> Error {
    match services {
        0 => e,
        _ => e.map_message(|m| format!("{m}; no service was updated")),
    }
}

/// Where a step's tasks run: on Fargate ([`Migration`], over ECS) or as processes on this
/// machine (`deploy::local`). The step loop, [`run_steps`], is written once over it.
pub trait TaskRunner {
    /// Run one task of a step to its verdict: the task's record and its result. The outer
    /// error stops the deploy before the task could start (a bad input); `group` names the
    /// step's tasks when there are several.
    fn run_task(
        &self,
        task: StepTask,
        group: Option<String>,
        out: Reporter,
    ) -> impl std::future::Future<Output = Result<(TaskRecord, Result<()>)>>;
}

/// Run `steps` in order on `runner`, a step's tasks at once; stop at the first step that
/// fails. `settings` give the run's `startedBy` and run id. Each step's phase reports, read
/// from its tasks' logs, are what it returns.
pub async fn run_steps(
    runner: &impl TaskRunner,
    steps: &[Step],
    settings: &RunSettings,
    ci: &Ci,
    out: &Reporter,
    record: &mut DeployRecord,
) -> Result<Vec<Heard>> {
    let mut heard = Vec::new();
    for step in steps {
        let title = format!("migrations: {}", step.label);
        ci.group(&title);
        let tasks = shard_tasks(step, &settings.started_by);
        let group = (tasks.len() > 1).then(|| format!("{}/{}", settings.run_id, step.label));
        let runs = tasks.into_iter().map(|task| {
            let out = if step.shards > 1 { out.prefixed(&task.label) } else { out.clone() };
            let (out, said) = out.tapped(Report::may_be);
            let group = group.clone();
            async move { (runner.run_task(task, group, out).await, said) }
        });
        let mut failures = Vec::new();
        let mut reports = Vec::new();
        for (run, said) in join_all(runs).await {
            let (mut task, result) = run?;
            if let Err(e) = result {
                failures.push((task.phase.clone(), e));
            }
            task.stage = step.stage;
            record.tasks.push(task);
            let said = said.lock().unwrap_or_else(|e| e.into_inner());
            reports.push(said.iter().rev().find_map(|line| Report::parse(line)));
        }
        finish_step(step, failures, ci, &title)?;
        heard.push(phase::heard(&reports));
    }
    Ok(heard)
}

/// The post stage, once every service rolled out (or at once, where no service is rolled
/// out): the post steps, unless there are none or `--skip-post` defers them.
pub async fn run_post(
    runner: &impl TaskRunner,
    post: Vec<PostStep>,
    skip: bool,
    settings: &RunSettings,
    ci: &Ci,
    out: &Reporter,
    record: &mut DeployRecord,
) -> Result<()> {
    let what = describe_post(&post);
    if post.is_empty() {
        record.post = Some(PostRecord { state: PostState::NotNeeded, detail: what });
        return Ok(());
    }
    if skip {
        tracing::warn!(
            "--skip-post: {what}; a later deploy (or `shipgate migrate up --phase post`) applies them"
        );
        record.post = Some(PostRecord {
            state: PostState::Deferred,
            detail: format!("--skip-post: {what}, for a later deploy"),
        });
        return Ok(());
    }
    for p in post.iter().filter(|p| p.waiting.is_none()) {
        tracing::warn!(
            "{}: a pre task wrote no phase report (is its runner shipgate's? were its logs complete?); \
             running the post step to be sure",
            p.step.label
        );
    }
    tracing::info!("post phase: {what}");
    let steps: Vec<Step> = post.into_iter().map(|p| p.step).collect();
    let result = run_steps(runner, &steps, settings, ci, out, record).await;
    record.post = Some(PostRecord {
        state: if result.is_ok() { PostState::Ran } else { PostState::Failed },
        detail: format!("{what} before it"),
    });
    result.map(drop).map_err(|e| {
        e.map_message(|m| {
            format!("{m}; the services had rolled out already (the post phase runs after them)")
        })
    })
}

/// The deploy summary's words on the post phase: `; post phase: …`, or nothing.
pub fn post_note(record: &DeployRecord) -> String {
    match &record.post {
        Some(PostRecord { state: PostState::Ran, .. }) => {
            "; post migrations applied after the rollout".to_string()
        }
        Some(PostRecord { state: PostState::NotNeeded, .. }) | None => String::new(),
        Some(p) => format!("; post phase {}: {}", p.state.name(), p.detail),
    }
}

/// The post steps do not run: `why` is the step before them that did not complete.
pub fn post_not_run(post: &[PostStep], why: &str, record: &mut DeployRecord) {
    record.post = Some(PostRecord {
        state: PostState::NotRun,
        detail: format!(
            "{why}, so the post phase did not run ({}); the next deploy applies it",
            describe_post(post)
        ),
    });
}

/// Everything a step's tasks share.
pub struct Migration<'a> {
    pub aws: &'a Aws,
    pub env: &'a EnvConfig,
    pub settings: &'a RunSettings,
    pub task: &'a MigrationTask,
    pub td_arn: &'a str,
    pub containers: &'a [ContainerInfo],
    pub ci: &'a Ci,
    pub shutdown: &'a Shutdown,
    pub out: &'a Reporter,
}

impl Migration<'_> {
    fn run_config(&self, env: Vec<(String, String)>, started_by: String, group: Option<String>) -> RunConfig {
        RunConfig {
            region: self.env.region.clone(),
            cluster: self.env.cluster.clone(),
            task_definition: TaskDefinitionRef::Registered(self.td_arn.to_string()),
            network: self.env.network.clone(),
            overrides: Overrides { container: String::new(), env, command: None, cpu: None, memory: None },
            started_by,
            tags: vec![("shipgate:env".into(), self.env.name.clone())],
            detach: false,
            start_retries: 2,
            wait_for_running: false,
            execute_command: false,
            run_id: self.settings.run_id.clone(),
            group,
            follow: FollowConfig {
                container: self.task.container.clone(),
                options: crate::task::follow::FollowOptions {
                    timeout: self.task.timeout,
                    ..self.settings.follow.clone()
                },
                // The deploy's own contract: 2 and 3 from the runner keep their meaning.
                exit_code: ExitCodeMode::Classified,
            },
        }
    }

    /// Run the steps in order on ECS; stop at the first that fails.
    pub async fn run(&self, steps: &[Step], record: &mut DeployRecord) -> Result<Vec<Heard>> {
        run_steps(self, steps, self.settings, self.ci, self.out, record).await
    }

    fn record(&self, label: &str, launch: &Launch, ms: u128) -> TaskRecord {
        let watched = launch.watched.clone().unwrap_or_default();
        let (outcome, exit_code) = match &launch.task {
            Some(t) => {
                let o = outcome::classify(t, &watched);
                let code = o.container_exit_code().or(o.succeeded().then_some(0));
                (o.to_string(), code)
            }
            None => (launch.result.as_ref().err().map_or(String::new(), |e| e.message().to_string()), None),
        };
        let log = launch.task.as_ref().and_then(|t| {
            let (found, _) = sources(self.containers, t.id());
            found
                .into_iter()
                .find(|s| s.container == watched)
                .map(|s| (s.group, s.stream, s.region.unwrap_or_else(|| self.aws.region.clone())))
        });
        TaskRecord {
            phase: label.to_string(),
            task_arn: launch.task.as_ref().map(|t| t.arn.clone()),
            succeeded: launch.result.is_ok(),
            outcome,
            exit_code,
            stop_code: launch.task.as_ref().and_then(|t| t.stop_code.clone()),
            stopped_reason: launch.task.as_ref().and_then(|t| t.stopped_reason.clone()),
            duration_ms: Some(ms),
            log,
            stage: None,
            ended_at: Some(std::time::SystemTime::now()),
        }
    }
}

impl TaskRunner for Migration<'_> {
    async fn run_task(
        &self,
        task: StepTask,
        group: Option<String>,
        out: Reporter,
    ) -> Result<(TaskRecord, Result<()>)> {
        let StepTask { label, env, started_by, shard } = task;
        let cfg = self.run_config(env, started_by, group);
        let started = Instant::now();
        let stagger = SHARD_STAGGER * shard;
        let launch = tokio::select! {
            () = tokio::time::sleep(stagger) => {
                run_followed(self.aws, &cfg, self.td_arn, self.containers, self.shutdown, &out).await
            }
            signal = self.shutdown.wait(), if shard > 0 => Launch {
                task: None,
                watched: None,
                result: Err(Error::interrupted(
                    signal,
                    format!("{} received before {label} was started", signal.name()),
                )),
            },
        };
        let record = self.record(&label, &launch, started.elapsed().as_millis());
        Ok((record, launch.result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;
    use crate::fleet::names::Shard;
    use crate::task::spec::Placement;

    fn env(tenants: bool, shards: u32) -> EnvConfig {
        EnvConfig {
            name: "staging".into(),
            file: "shipgate.toml".into(),
            platform: Default::default(),
            region: None,
            cluster: "c".into(),
            network: Network::Explicit(Placement::default()),
            migration: None,
            services: vec![],
            tenants,
            tenant_shards: shards,
            keep_revisions: None,
            lint: None,
        }
    }

    fn deploy_steps_of(env: &EnvConfig) -> Vec<Step> {
        deploy_steps(env, true)
    }

    #[test]
    fn steps_and_shards() {
        let labels =
            |steps: Vec<Step>| steps.iter().map(|s| format!("{}x{}", s.label, s.shards)).collect::<Vec<_>>();
        assert_eq!(labels(deploy_steps_of(&env(false, 4))), ["masterx1"]);
        assert_eq!(labels(deploy_steps_of(&env(true, 4))), ["masterx1", "tenantsx4"]);
        assert_eq!(
            labels(rollback_steps(&env(true, 2), &DownTo::Steps(1))),
            ["rollback-tenantsx2", "rollback-masterx1"]
        );
        assert_eq!(
            rollback_steps(&env(false, 1), &DownTo::Version(7))[0].env,
            [
                ("MIGRATION_TYPE".to_string(), "rollback-master".to_string()),
                ("SHIPGATE_ROLLBACK_TO".into(), "7".into())
            ]
        );

        let step = &deploy_steps_of(&env(true, 4))[1];
        let tasks = shard_tasks(step, "shipgate");
        assert_eq!(tasks.len(), 4);
        assert_eq!(tasks[1].label, "tenants 2/4");
        assert_eq!(tasks[1].started_by, "shipgate-2of4");
        assert_eq!(tasks[1].env.last().unwrap(), &("SHIPGATE_SHARD".to_string(), "2/4".to_string()));
        assert_eq!(shard_tasks(&deploy_steps_of(&env(true, 1))[1], "shipgate").len(), 1);
    }

    #[test]
    fn post_steps_follow_what_the_pre_tasks_reported() {
        let pre = deploy_steps_of(&env(true, 3));
        assert_eq!(pre[0].env[1], ("MIGRATION_PHASE".to_string(), "pre".to_string()));
        let labels = |post: &[PostStep]| {
            post.iter()
                .map(|p| format!("{}x{}:{:?}", p.step.label, p.step.shards, p.waiting))
                .collect::<Vec<_>>()
        };
        let cases: &[(&[Heard], &[&str], &str)] = &[
            (&[Heard::Waiting(0), Heard::Waiting(0)], &[], "no post migration waits"),
            (&[Heard::Waiting(2), Heard::Waiting(0)], &["master postx1:Some(2)"], "2 post migrations wait"),
            (
                &[Heard::Waiting(1), Heard::Waiting(4)],
                &["master postx1:Some(1)", "tenants postx3:Some(4)"],
                "5 post migrations wait",
            ),
            (
                &[Heard::Waiting(0), Heard::Silent],
                &["tenants postx3:None"],
                "post migrations may wait (a pre task did not report)",
            ),
            (&[Heard::Waiting(1)], &["master postx1:Some(1)"], "1 post migration waits"),
        ];
        for (heard, expected, words) in cases {
            let post = post_steps(&pre, heard);
            assert_eq!(labels(&post), *expected, "{heard:?}");
            assert_eq!(describe_post(&post), *words);
            for p in &post {
                assert_eq!(p.step.stage, Some("post"));
                assert!(p.step.env.contains(&("MIGRATION_PHASE".to_string(), "post".to_string())));
                assert!(!p.step.env.iter().any(|(_, v)| v == "pre"));
            }
        }
    }

    /// What the shards' `SHIPGATE_SHARD` values mean to the runner: every tenant in exactly
    /// one task, and a new tenant moves nobody else.
    #[test]
    fn shard_assignment_covers_every_tenant_once_and_is_stable() {
        let assign = |names: &[String], n: u32| -> Vec<u32> {
            names
                .iter()
                .map(|name| {
                    let owners: Vec<u32> =
                        (1..=n).filter(|&i| Shard { index: i, count: n }.owns(name)).collect();
                    assert_eq!(owners.len(), 1, "{name} is in shards {owners:?}");
                    owners[0]
                })
                .collect()
        };
        let mut names: Vec<String> = (0..500).map(|i| format!("tenant_{i}")).collect();
        for n in [1, 2, 4, 7] {
            let before = assign(&names, n);
            let mut sizes = vec![0; n as usize];
            before.iter().for_each(|&s| sizes[s as usize - 1] += 1);
            assert!(sizes.iter().all(|&c| c >= 500 / n as usize / 2), "{n} shards: {sizes:?}");
            names.push(format!("new_tenant_{n}"));
            let after = assign(&names, n);
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            assert_eq!(moved, 0, "adding a tenant moved {moved} others with {n} shards");
        }
    }
}
