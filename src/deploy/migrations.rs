//! The migration phases of a deploy (or rollback): the migration task run once per step with
//! `MIGRATION_TYPE` set, a tenant step split across `tenant_shards` tasks that run at once
//! (each with `SHIPGATE_SHARD=i/N`, the environment form of `tenants up --shard i/N`), their
//! logs interleaved with a `[tenants i/N]` prefix. A step fails if any of its tasks fails,
//! and the steps after it do not run.

use std::time::Instant;

use futures_util::future::join_all;

use super::ci::Ci;
use crate::aws::Aws;
use crate::cli::ExitCodeMode;
use crate::config::deploy::{EnvConfig, MigrationTask, RunSettings};
use crate::config::{FollowConfig, RunConfig, TaskDefinitionRef};
use crate::deploy::report::{DeployRecord, TaskRecord};
use crate::error::{Error, Result};
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
}

fn migration_type(kind: &str) -> Vec<(String, String)> {
    vec![("MIGRATION_TYPE".to_string(), kind.to_string())]
}

/// A deploy migrates the master schema, then the tenants.
pub fn deploy_steps(env: &EnvConfig) -> Vec<Step> {
    let mut steps = vec![Step { label: "master".into(), env: migration_type("master"), shards: 1 }];
    if env.tenants {
        steps.push(Step {
            label: "tenants".into(),
            env: migration_type("tenants"),
            shards: env.tenant_shards,
        });
    }
    steps
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
        Step { label: label.into(), env, shards }
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
}

/// The tasks of a step. A shard's `startedBy` is its own, so each task's idempotency token
/// and in-flight check are its own.
pub fn shard_tasks(step: &Step, started_by: &str) -> Vec<StepTask> {
    if step.shards <= 1 {
        return vec![StepTask {
            label: step.label.clone(),
            env: step.env.clone(),
            started_by: started_by.to_string(),
        }];
    }
    (1..=step.shards)
        .map(|i| {
            let mut env = step.env.clone();
            env.push(("SHIPGATE_SHARD".into(), format!("{i}/{}", step.shards)));
            let mut by = format!("{started_by}-{i}of{}", step.shards);
            by.truncate(36);
            StepTask { label: format!("{} {i}/{}", step.label, step.shards), env, started_by: by }
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
/// fails. `settings` give the run's `startedBy` and run id.
pub async fn run_steps(
    runner: &impl TaskRunner,
    steps: &[Step],
    settings: &RunSettings,
    ci: &Ci,
    out: &Reporter,
    record: &mut DeployRecord,
) -> Result<()> {
    for step in steps {
        let title = format!("migrations: {}", step.label);
        ci.group(&title);
        let tasks = shard_tasks(step, &settings.started_by);
        let group = (tasks.len() > 1).then(|| format!("{}/{}", settings.run_id, step.label));
        let runs = tasks.into_iter().map(|task| {
            let out = if step.shards > 1 { out.prefixed(&task.label) } else { out.clone() };
            runner.run_task(task, group.clone(), out)
        });
        let mut failures = Vec::new();
        for run in join_all(runs).await {
            let (task, result) = run?;
            if let Err(e) = result {
                failures.push((task.phase.clone(), e));
            }
            record.tasks.push(task);
        }
        finish_step(step, failures, ci, &title)?;
    }
    Ok(())
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
    pub async fn run(&self, steps: &[Step], record: &mut DeployRecord) -> Result<()> {
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
        let StepTask { label, env, started_by } = task;
        let cfg = self.run_config(env, started_by, group);
        let started = Instant::now();
        let launch = run_followed(self.aws, &cfg, self.td_arn, self.containers, self.shutdown, &out).await;
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
            lint: None,
        }
    }

    #[test]
    fn steps_and_shards() {
        let labels =
            |steps: Vec<Step>| steps.iter().map(|s| format!("{}x{}", s.label, s.shards)).collect::<Vec<_>>();
        assert_eq!(labels(deploy_steps(&env(false, 4))), ["masterx1"]);
        assert_eq!(labels(deploy_steps(&env(true, 4))), ["masterx1", "tenantsx4"]);
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

        let step = &deploy_steps(&env(true, 4))[1];
        let tasks = shard_tasks(step, "shipgate");
        assert_eq!(tasks.len(), 4);
        assert_eq!(tasks[1].label, "tenants 2/4");
        assert_eq!(tasks[1].started_by, "shipgate-2of4");
        assert_eq!(tasks[1].env.last().unwrap(), &("SHIPGATE_SHARD".to_string(), "2/4".to_string()));
        assert_eq!(shard_tasks(&deploy_steps(&env(true, 1))[1], "shipgate").len(), 1);
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
