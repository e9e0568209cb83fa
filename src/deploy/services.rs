//! Rolling services onto new task definitions and following each rollout to a verdict:
//! `UpdateService` gives the deployment id; every tick `DescribeServices` (and, where the
//! account has it, `DescribeServiceDeployments`) feeds `deploy::rollout::decide`. New service
//! events and the stopped reasons of the new deployment's failed tasks are printed as they
//! happen, so a crash-looping service explains itself in the deploy log.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::types::DesiredStatus;
use futures_util::StreamExt;
use futures_util::stream;

use crate::aws::{Aws, ecs};
use crate::deploy::report::ServiceRecord;
use crate::deploy::rollout::{self, Context, Rollout};
use crate::deploy::view::{ServiceView, revision_name};
use crate::error::{Error, Result};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

/// How rollouts are followed.
#[derive(Debug, Clone)]
pub struct Follow {
    pub cluster: String,
    pub tick: Duration,
    pub timeout: Duration,
}

/// One service to move to a task definition.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub task_definition: String,
    /// Set `desiredCount` too (a rollback restoring a stopped service).
    pub desired: Option<i32>,
    /// A new deployment even when nothing changed (`--force-new-deployment`).
    pub force: bool,
    /// The images of its task definition named by a tag, not a digest: "already on this task
    /// definition" may then hide a new image behind the same tag.
    pub mutable_images: Vec<String>,
}

/// What happened to one service.
#[derive(Debug)]
pub struct Rolled {
    pub record: ServiceRecord,
    /// `UpdateService` was called (so a rollback must undo it).
    pub updated: bool,
    /// A call failed or a signal arrived (rather than the rollout reaching a verdict).
    pub error: Option<Error>,
}

/// The services as they are now; a missing one is exit 2 (found before anything changes).
pub async fn describe_all(aws: &Aws, cluster: &str, names: &[String]) -> Result<Vec<ServiceView>> {
    let mut found = Vec::new();
    for name in names {
        match ecs::describe_service(&aws.ecs, cluster, name).await.map_err(Error::from)? {
            Some(s) if s.status == "ACTIVE" => {
                s.updatable(cluster)?;
                found.push(s)
            }
            Some(s) => {
                return Err(Error::input(format!("service `{name}` in cluster `{cluster}` is {}", s.status)));
            }
            None => {
                return Err(Error::input(format!("service `{name}` was not found in cluster `{cluster}`"))
                    .hint("create the service first (shipgate deploy updates existing services), or fix its name in shipgate.toml"));
            }
        }
    }
    Ok(found)
}

/// Each target with its service as it is now.
pub async fn with_current(
    aws: &Aws,
    cluster: &str,
    targets: Vec<Target>,
) -> Result<Vec<(Target, ServiceView)>> {
    let names: Vec<String> = targets.iter().map(|t| t.service.clone()).collect();
    Ok(targets.into_iter().zip(describe_all(aws, cluster, &names).await?).collect())
}

/// Roll out every target, at most `parallel` at once; results in the targets' order.
pub async fn roll_out_all(
    aws: &Aws,
    follow: &Follow,
    targets: &[(Target, ServiceView)],
    parallel: usize,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Vec<Rolled> {
    let mut results: Vec<(usize, Rolled)> = stream::iter(targets.iter().enumerate())
        .map(|(i, (target, before))| async move {
            (i, roll_out(aws, follow, target, before, shutdown, out).await)
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The error a set of rollouts ends with: a signal or AWS error first, else a failed rollout.
pub fn outcome(rolled: &mut [Rolled], what: &str) -> Result<()> {
    if let Some(e) = rolled.iter_mut().find_map(|r| r.error.take()) {
        return Err(e);
    }
    let failed = failures(rolled);
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!("{what} failed: {}", failed.join("; "))))
}

/// Move one service to its target and follow the rollout.
pub async fn roll_out(
    aws: &Aws,
    follow: &Follow,
    target: &Target,
    before: &ServiceView,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Rolled {
    let started = Instant::now();
    let name = &target.service;
    let record = |deployment_id: Option<String>, state: &Rollout| ServiceRecord {
        service: name.clone(),
        task_definition_arn: target.task_definition.clone(),
        previous_task_definition_arn: before.task_definition.clone(),
        deployment_id,
        succeeded: state.succeeded(),
        result: state.to_string(),
        duration_ms: started.elapsed().as_millis(),
        ended_at: Some(SystemTime::now()),
    };
    let settled = before.deployments.len() == 1
        && before.primary().is_some_and(|p| p.rollout_state.as_deref().is_none_or(|s| s == "COMPLETED"));
    if before.task_definition == target.task_definition
        && settled
        && target.desired.is_none_or(|d| d == before.desired)
        && !target.force
    {
        tracing::info!("service {name}: already on {}", revision_name(&target.task_definition));
        if !target.mutable_images.is_empty() {
            tracing::warn!(
                "service {name}: not redeployed, and its task definition names {} by tag, not by digest; \
                 if the tag now points to another image, the service still runs the old one (pass \
                 --force-new-deployment, or set force_new_deployment = true for it in shipgate.toml)",
                target.mutable_images.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
            );
        }
        let state = Rollout::Completed;
        let mut r = record(before.primary().map(|p| p.id.clone()), &state);
        r.result = "unchanged: already on this task definition".into();
        return Rolled { record: r, updated: false, error: None };
    }
    let failed = |deployment: Option<String>, e: Error, updated: bool| {
        let state = Rollout::Failed { reason: e.message().to_string() };
        Rolled { record: record(deployment, &state), updated, error: Some(e) }
    };
    // Clocks differ; a service deployment created a little before our call is still ours.
    let since = SystemTime::now() - Duration::from_secs(10);
    let updated = match ecs::update_service(
        &aws.ecs,
        &follow.cluster,
        name,
        Some(&target.task_definition),
        target.desired,
        target.force,
    )
    .await
    {
        Ok(updated) => updated,
        Err(e) => return failed(None, e, false),
    };
    let ours = updated
        .deployments
        .iter()
        .find(|d| d.status == "PRIMARY" && d.task_definition == target.task_definition)
        .or(updated.primary())
        .map(|d| d.id.clone())
        .unwrap_or_default();
    tracing::info!(
        "service {name}: {} -> {} (deployment {ours})",
        revision_name(&before.task_definition),
        revision_name(&target.task_definition)
    );
    match follow_rollout(aws, follow, name, &ours, &before.task_definition, before, since, shutdown, out)
        .await
    {
        Ok(state) => Rolled { record: record(Some(ours), &state), updated: true, error: None },
        Err(e) => failed(Some(ours), e, true),
    }
}

/// Poll until the rollout of deployment `ours` reached a verdict.
#[allow(clippy::too_many_arguments)]
pub async fn follow_rollout(
    aws: &Aws,
    follow: &Follow,
    name: &str,
    ours: &str,
    previous: &str,
    before: &ServiceView,
    since: SystemTime,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<Rollout> {
    let started = Instant::now();
    let mut seen_events: HashSet<String> = before.events.iter().map(|e| e.id.clone()).collect();
    let mut seen_tasks: HashSet<String> = HashSet::new();
    let mut failed_seen = 0;
    let mut service_deployment: Option<String> = None;
    let mut deployments_api = true;
    let mut last = String::new();
    loop {
        let view = match ecs::describe_service(&aws.ecs, &follow.cluster, name).await {
            Ok(Some(view)) => view,
            Ok(None) => return Ok(Rollout::Gone { status: "deleted".into() }),
            Err(f) if f.transient => {
                tracing::warn!("{}; trying again at the next tick", f.error.message());
                pause(follow.tick, name, shutdown).await?;
                continue;
            }
            Err(f) => return Err(f.error),
        };
        for event in view.events.iter().rev() {
            if seen_events.insert(event.id.clone()) {
                say(out, name, &event.message);
            }
        }
        let failed = view.deployment(ours).map_or(0, |d| d.failed_tasks);
        if failed > failed_seen {
            failed_seen = failed;
            stopped_reasons(aws, &follow.cluster, name, ours, &mut seen_tasks, out).await;
        }
        let mut status = None;
        if deployments_api {
            match service_deployment_status(aws, follow, name, since, &mut service_deployment).await {
                Ok(s) => status = s,
                // Throttled or a server error: this tick goes without it, the next asks again.
                Err(f) if f.transient => {
                    tracing::debug!("DescribeServiceDeployments this tick: {}", f.error.message());
                }
                Err(f) => {
                    // Not in this partition, not allowed, or an emulator without it: the
                    // DescribeServices deployments still decide.
                    tracing::debug!("not using DescribeServiceDeployments: {}", f.error.message());
                    deployments_api = false;
                }
            }
        }
        let ctx = Context {
            ours,
            previous,
            service_deployment: status.as_deref(),
            elapsed: started.elapsed(),
            timeout: follow.timeout,
        };
        let state = rollout::decide(&view, &ctx);
        let text = state.to_string();
        if text != last {
            tracing::info!("service {name}: {text}");
            out.emit(&Event::Rollout {
                service: name.to_string(),
                deployment_id: Some(ours.to_string()),
                state: state_name(&state).into(),
                message: text.clone(),
            });
            last = text;
        }
        if state.finished() {
            return Ok(state);
        }
        pause(follow.tick, name, shutdown).await?;
    }
}

async fn service_deployment_status(
    aws: &Aws,
    follow: &Follow,
    name: &str,
    since: SystemTime,
    arn: &mut Option<String>,
) -> std::result::Result<Option<String>, crate::aws::error::Failure> {
    if arn.is_none() {
        *arn = ecs::service_deployment_since(&aws.ecs, &follow.cluster, name, since).await?;
    }
    match arn {
        Some(a) => ecs::service_deployment_status(&aws.ecs, a).await,
        None => Ok(None),
    }
}

fn state_name(state: &Rollout) -> &'static str {
    match state {
        Rollout::InProgress { .. } => "in_progress",
        Rollout::Completed => "completed",
        Rollout::NothingVerified => "nothing_verified",
        Rollout::Failed { .. } => "failed",
        Rollout::RolledBack { .. } => "rolled_back",
        Rollout::RollbackFailed { .. } => "rollback_failed",
        Rollout::Superseded { .. } => "superseded",
        Rollout::Stuck { .. } => "stuck",
        Rollout::Gone { .. } => "gone",
    }
}

fn say(out: &Reporter, name: &str, message: &str) {
    tracing::info!("service {name}: {message}");
    out.emit(&Event::ServiceMessage { service: name.to_string(), message: message.to_string() });
}

/// Print why the new deployment's tasks stopped (its tasks carry the deployment id as
/// `startedBy`), each task once.
async fn stopped_reasons(
    aws: &Aws,
    cluster: &str,
    name: &str,
    deployment: &str,
    seen: &mut HashSet<String>,
    out: &Reporter,
) {
    let tasks = match ecs::tasks_started_by(&aws.ecs, cluster, deployment, DesiredStatus::Stopped).await {
        Ok(tasks) => tasks,
        Err(e) => {
            tracing::warn!("cannot list the stopped tasks of {deployment}: {}", e.message());
            return;
        }
    };
    for task in tasks {
        if !seen.insert(task.arn.clone()) {
            continue;
        }
        let mut reasons: Vec<String> = task.stopped_reason.iter().cloned().collect();
        for c in &task.containers {
            match (&c.reason, c.exit_code) {
                (Some(r), _) => reasons.push(format!("container `{}`: {r}", c.name)),
                (None, Some(code)) if code != 0 => {
                    reasons.push(format!("container `{}` exited with {code}", c.name))
                }
                _ => {}
            }
        }
        say(out, name, &format!("task {} stopped: {}", task.id(), reasons.join("; ")));
    }
}

async fn pause(tick: Duration, name: &str, shutdown: &Shutdown) -> Result<()> {
    tokio::select! {
        () = tokio::time::sleep(crate::duration::jittered(tick)) => Ok(()),
        signal = shutdown.wait() => Err(Error::interrupted(signal, format!(
            "{} received while following the rollout of `{name}`; ECS continues it without shipgate",
            signal.name()
        ))
        .hint("follow it in the ECS console, or run the deploy again (unchanged task definitions are reused)")),
    }
}

/// One line per failed service, for the deploy's error.
fn failures(rolled: &[Rolled]) -> Vec<String> {
    rolled
        .iter()
        .filter(|r| !r.record.succeeded)
        .map(|r| format!("{}: {}", r.record.service, r.record.result))
        .collect()
}
