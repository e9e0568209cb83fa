//! Running one ECS task to its end: resolve the watched container, check no other run of the
//! family is in flight, start the task, follow it, and start it again only when it failed to
//! start for a transient reason (a task whose container ran is never started twice).

use crate::aws::Aws;
use crate::aws::ecs::{self, Started};
use crate::config::{Network, RunConfig};
use crate::error::{Error, Result};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;
use crate::task::follow::{self, FollowOptions};
use crate::task::guard::{self, GROUP_TAG, Guard, RUN_ID_TAG, TOKEN_TAG};
use crate::task::spec::{Placement, RunSpec};
use crate::task::verdict;
use crate::task::view::{TaskView, family_of};
use crate::taskdef::ContainerInfo;

/// A run's result and the last task it followed (none when no task was started).
#[derive(Debug)]
pub struct Launch {
    pub task: Option<TaskView>,
    pub watched: Option<String>,
    pub result: Result<()>,
}

/// Run a task to its end, keeping the task for the caller's record (`deploy`'s summary).
pub async fn run_followed(
    aws: &Aws,
    cfg: &RunConfig,
    td_arn: &str,
    containers: &[ContainerInfo],
    shutdown: &Shutdown,
    out: &Reporter,
) -> Launch {
    let mut last = None;
    let (watched, result) =
        match verdict::watched_container(containers, cfg.follow.container.as_deref(), td_arn) {
            Ok(w) => {
                let result =
                    start_and_follow(aws, cfg, td_arn, containers, &w, shutdown, out, &mut last).await;
                (Some(w), result)
            }
            Err(e) => (None, Err(e)),
        };
    Launch { task: last, watched, result }
}

#[allow(clippy::too_many_arguments)]
async fn start_and_follow(
    aws: &Aws,
    cfg: &RunConfig,
    td_arn: &str,
    containers: &[ContainerInfo],
    watched: &str,
    shutdown: &Shutdown,
    out: &Reporter,
    last: &mut Option<TaskView>,
) -> Result<()> {
    let watched = watched.to_string();
    let mut overrides = cfg.overrides.clone();
    overrides.container = watched.clone();
    let placement = placement(aws, cfg).await?;
    let family = family_of(td_arn);
    let opts = &cfg.follow.options;
    let token = |attempt| guard::client_token(td_arn, &overrides.fingerprint(), &cfg.run_id, attempt);

    let in_flight = ecs::in_flight(&aws.ecs, &cfg.cluster, &cfg.started_by).await?;
    match guard::check(&in_flight, &cfg.cluster, family, &token(0), cfg.group.as_deref()) {
        Guard::Clear => {}
        Guard::Ours(task) => {
            tracing::info!(
                "this run (run id {}) already started task {}; following it",
                cfg.run_id,
                task.arn
            );
            let followed =
                follow::follow(aws, &cfg.cluster, &task.arn, containers, opts, shutdown, out).await?;
            *last = Some(followed.task.clone());
            return verdict::verdict(&followed, &watched, cfg.follow.exit_code, opts.timeout, out);
        }
        Guard::Busy(task) if cfg.wait_for_running => {
            tracing::warn!(
                "task {} of `{family}` is {}; waiting for it to stop first",
                task.arn,
                task.last_status
            );
            // Someone else's task: never stop it because we were cancelled.
            let waiting = FollowOptions { stop_on_cancel: false, timeout: None, ..opts.clone() };
            follow::follow(aws, &cfg.cluster, &task.arn, &[], &waiting, shutdown, out).await?;
        }
        Guard::Busy(task) => return Err(busy(task, &cfg.cluster)),
    }

    let mut attempt = 0;
    loop {
        let spec = RunSpec {
            cluster: cfg.cluster.clone(),
            task_definition_arn: td_arn.to_string(),
            placement: placement.clone(),
            overrides: overrides.clone(),
            started_by: cfg.started_by.clone(),
            tags: tags(cfg, &token(attempt)),
            client_token: token(attempt),
        };
        let task = match ecs::run_task(&aws.ecs, &spec).await? {
            Started::Task(task) => task,
            Started::Refused(reasons) => {
                let transient = reasons.iter().all(|r| capacity_refusal(r));
                let text = format!("RunTask started no task: {}", reasons.join("; "));
                if transient && attempt < cfg.start_retries {
                    attempt += 1;
                    tracing::warn!("{text}; trying again ({attempt} of {} retries)", cfg.start_retries);
                    pause(opts, attempt, shutdown).await?;
                    continue;
                }
                return Err(Error::failed(text).hint(
                    "RESOURCE:* and capacity failures pass; MISSING/ATTRIBUTE mean the cluster or definition cannot run this task",
                ));
            }
        };
        out.emit(&Event::TaskStarted {
            task_arn: task.arn.clone(),
            cluster: cfg.cluster.clone(),
            task_definition_arn: td_arn.to_string(),
            attempt,
        });
        tracing::info!("started task {} (watching container `{watched}`)", task.arn);
        if cfg.detach {
            out.emit(&Event::Detached {
                task_arn: task.arn.clone(),
                attach: follow::attach_hint(&cfg.cluster, &task.arn),
            });
            return Ok(());
        }
        let followed = follow::follow(aws, &cfg.cluster, &task.arn, containers, opts, shutdown, out).await?;
        *last = Some(followed.task.clone());
        if let Some(outcome) = verdict::retry_start(&followed, &watched)
            && attempt < cfg.start_retries
        {
            attempt += 1;
            tracing::warn!(
                "task {} {outcome}; starting it again ({attempt} of {} retries)",
                followed.task.id(),
                cfg.start_retries
            );
            pause(opts, attempt, shutdown).await?;
            continue;
        }
        return verdict::verdict(&followed, &watched, cfg.follow.exit_code, opts.timeout, out);
    }
}

fn busy(task: &TaskView, cluster: &str) -> Error {
    let run = task.tag(RUN_ID_TAG).map(|r| format!(", run id {r}")).unwrap_or_default();
    Error::unavailable(format!(
        "task {} of `{}` is already {} (started by `{}`{run}); refusing to run two at once",
        task.arn,
        task.family(),
        task.last_status,
        task.started_by.as_deref().unwrap_or("?"),
    ))
    .hint(format!(
        "{}; or pass --wait-for-running to start after it",
        follow::attach_hint(cluster, &task.arn)
    ))
}

fn tags(cfg: &RunConfig, token: &str) -> Vec<(String, String)> {
    let mut tags = cfg.tags.clone();
    tags.push((TOKEN_TAG.into(), token.into()));
    tags.push((RUN_ID_TAG.into(), cfg.run_id.clone()));
    if let Some(group) = &cfg.group {
        tags.push((GROUP_TAG.into(), group.clone()));
    }
    tags
}

/// RunTask `failures[]` that another attempt may not hit.
fn capacity_refusal(reason: &str) -> bool {
    reason.starts_with("RESOURCE:")
        || reason.contains("Capacity is unavailable")
        || reason.starts_with("AGENT")
}

/// Wait before another start, still answering a signal.
async fn pause(opts: &FollowOptions, attempt: u32, shutdown: &Shutdown) -> Result<()> {
    tokio::select! {
        () = tokio::time::sleep(opts.tick * 2 * attempt) => Ok(()),
        signal = shutdown.wait() => Err(Error::interrupted(signal, format!("{} received before the task was started again", signal.name()))),
    }
}

async fn placement(aws: &Aws, cfg: &RunConfig) -> Result<Placement> {
    let mut p = from_network(aws, cfg).await?;
    p.execute_command |= cfg.execute_command;
    Ok(p)
}

async fn from_network(aws: &Aws, cfg: &RunConfig) -> Result<Placement> {
    match &cfg.network {
        Network::Explicit(p) => Ok(p.clone()),
        Network::FromService { service, capacity_provider, platform_version } => {
            let mut p = ecs::service_placement(&aws.ecs, &cfg.cluster, service).await?;
            if let Some(provider) = capacity_provider {
                p.capacity_providers = vec![(provider.clone(), 1, 0)];
                p.launch_type = None;
            }
            if platform_version.is_some() {
                p.platform_version = platform_version.clone();
            }
            Ok(p)
        }
    }
}
