//! Following one task to the end: our own loop (the task described in the process's shared
//! `DescribeTasks` rounds, one a tick, no ceiling), every awslogs stream tailed by forward
//! token within the process's `GetLogEvents` budget (a silent stream read less and less
//! often while the task runs), a drain after STOPPED, and `StopTask` on cancellation or
//! `--timeout`.
//!
//! SDK waiters are not used: they back off to minutes between polls, give up at a fixed
//! ceiling, and cannot share a schedule with log reading or react to a signal. A task may go
//! from PENDING to STOPPED between two polls; nothing here waits to see RUNNING.

use std::time::{Duration, Instant, SystemTime};

use super::logs::{Source, Tail, drained, sources};
use super::view::TaskView;
use crate::aws::poll::{Polled, Watcher};
use crate::aws::{Aws, ecs, logs};
use crate::duration;
use crate::error::{Error, Result};
use crate::output::{Event, Reporter};
use crate::shutdown::{Shutdown, Signal};
use crate::taskdef::ContainerInfo;

/// How the follower paces itself.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Time between `DescribeTasks` calls while the task runs (jittered by ±10 %).
    pub tick: Duration,
    /// Time between reads while draining a stopped task's logs.
    pub drain_tick: Duration,
    /// Minimum time after `stoppedAt` before the drain may end (delivery lag).
    pub drain_grace: Duration,
    /// Stop the task after this long (none: follow for as long as it runs).
    pub timeout: Option<Duration>,
    /// On SIGINT/SIGTERM, stop the task (else leave it running and say how to attach).
    pub stop_on_cancel: bool,
    /// Who is cancelling, for StopTask's reason (a CI run URL or user@host).
    pub canceller: String,
    /// How long a task ECS does not know yet is tolerated: DescribeTasks may answer MISSING
    /// for a task RunTask just returned, and the API reference says to retry for up to five
    /// minutes (`task attach` of a typed ARN uses 30 s).
    pub missing_grace: Duration,
    /// After StopTask for a signal, how long to go on printing lines before giving up on the
    /// task's end: a cancelled CI job is killed about 10 s after its first signal.
    pub cancel_grace: Duration,
    /// The process's budget of `GetLogEvents` calls a second, shared by every stream it
    /// follows (see `Aws::with_log_reads`).
    pub log_reads_per_second: f64,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            tick: Duration::from_secs(3),
            drain_tick: Duration::from_secs(1),
            drain_grace: Duration::from_secs(3),
            timeout: None,
            stop_on_cancel: true,
            canceller: "shipgate".into(),
            missing_grace: Duration::from_secs(300),
            cancel_grace: Duration::from_secs(5),
            log_reads_per_second: crate::aws::budget::DEFAULT_PER_SECOND,
        }
    }
}

/// Why following ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The task stopped on its own (or someone else stopped it).
    Stopped,
    /// We stopped it because of a signal.
    Cancelled(Signal),
    /// We stopped it because `--timeout` expired.
    TimedOut,
}

/// The stopped task and what was read of its logs.
#[derive(Debug)]
pub struct Followed {
    pub task: TaskView,
    pub ended_by: EndedBy,
    pub lines: u64,
    pub streams: usize,
}

/// Follow `task_arn` until it stopped and its logs are drained.
pub async fn follow(
    aws: &Aws,
    cluster: &str,
    task_arn: &str,
    containers: &[ContainerInfo],
    opts: &FollowOptions,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<Followed> {
    let (mut tails, prefixed) = tails(containers, super::view::task_id(task_arn));
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    // The task is described in the process's shared rounds (one call for every task
    // followed), until it stopped: a stopped task does not change.
    let mut watcher = Some(aws.tasks.watch(cluster, task_arn, opts.tick));
    let mut polled: Option<Polled> = None;
    let mut task: Option<TaskView> = None;
    let mut ended_by = EndedBy::Stopped;
    let mut stop_sent = false;
    let mut stopped_seen: Option<Instant> = None;
    let mut cancelled_at: Option<Instant> = None;

    loop {
        match polled.take() {
            None => {}
            Some(Ok(Some(t))) => {
                let previous = task.as_ref().map(|p| p.last_status.as_str()).unwrap_or("");
                if t.last_status != previous {
                    tracing::info!("task {}: {}", t.id(), t.last_status);
                }
                task = Some(t);
            }
            Some(Ok(None)) if task.is_none() && started.elapsed() < opts.missing_grace => {}
            Some(Ok(None)) => return Err(unknown_task(task_arn, cluster)),
            Some(Err(f)) if f.transient => {
                tracing::warn!("{}; trying again at the next tick", f.error.message())
            }
            Some(Err(f)) if f.expired => return Err(lost_credentials(cluster, task_arn, &f.error)),
            Some(Err(f)) => return Err(f.error),
        }
        let stopped = task.as_ref().is_some_and(TaskView::stopped);
        if stopped && stopped_seen.is_none() {
            stopped_seen = Some(Instant::now());
            watcher = None;
            tails.iter_mut().for_each(Tail::begin_drain);
        }
        // Before the container started there is nothing to read; the drain reads from the
        // head of every stream, so a task that went straight to STOPPED loses nothing.
        if task.as_ref().is_some_and(|t| may_have_logs(&t.last_status)) {
            let now = Instant::now();
            for tail in tails.iter_mut().filter(|t| t.due(now)) {
                let before = tail.lines;
                read_available(aws, tail, prefixed, out).await;
                if !stopped {
                    tail.settle(tail.lines > before, Instant::now(), opts.tick);
                }
            }
        }
        if let (Some(seen), Some(t)) = (stopped_seen, &task) {
            let by_aws =
                t.stopped_at.and_then(|at| SystemTime::now().duration_since(at).ok()).unwrap_or_default();
            if drained(&tails, by_aws.max(seen.elapsed()), opts.drain_grace) {
                break;
            }
        }
        if cancelled_at.is_some_and(|at| at.elapsed() >= opts.cancel_grace) {
            if !stopped {
                tracing::warn!(
                    "task {task_arn} was asked to stop and is stopping; not waiting for it ({})",
                    attach_hint(cluster, task_arn)
                );
            }
            break;
        }

        let cancel_armed = !stop_sent && !stopped;
        tokio::select! {
            next = next_round(&mut watcher) => polled = Some(next),
            () = tokio::time::sleep(opts.drain_tick), if stopped => {}
            signal = shutdown.wait(), if cancel_armed => {
                if !opts.stop_on_cancel {
                    return Err(Error::interrupted(signal, format!("{} received; task {task_arn} was left running", signal.name()))
                        .hint(attach_hint(cluster, task_arn)));
                }
                let reason = format!("cancelled by {} ({})", opts.canceller, signal.name());
                stop(aws, cluster, task_arn, &reason).await?;
                ended_by = EndedBy::Cancelled(signal);
                stop_sent = true;
                cancelled_at = Some(Instant::now());
            }
            () = sleep_until(deadline), if cancel_armed && deadline.is_some() => {
                let after = duration::human(opts.timeout.unwrap_or_default());
                let reason = format!("shipgate --timeout: timed out after {after} ({})", opts.canceller);
                stop(aws, cluster, task_arn, &reason).await?;
                ended_by = EndedBy::TimedOut;
                stop_sent = true;
            }
        }
    }
    let task = task.expect("the loop only ends after a task was described");
    let lines = tails.iter().map(|t| t.lines).sum();
    for tail in &tails {
        report_unread(tail);
    }
    Ok(Followed { task, ended_by, lines, streams: tails.iter().filter(|t| t.exists()).count() })
}

/// The next shared round's answer about the task; never, once it is no longer watched.
async fn next_round(watcher: &mut Option<Watcher>) -> Polled {
    match watcher {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Whether a task in this state may have written logs: its containers started.
fn may_have_logs(last_status: &str) -> bool {
    !matches!(last_status, "" | "PROVISIONING" | "PENDING" | "ACTIVATING")
}

async fn stop(aws: &Aws, cluster: &str, task_arn: &str, reason: &str) -> Result<()> {
    tracing::warn!("stopping task {}: {reason}", super::view::task_id(task_arn));
    // A transient failure is retried by the SDK; if StopTask still fails, say so and let the
    // caller fail rather than pretend the task is stopping.
    ecs::stop_task(&aws.ecs, cluster, task_arn, reason).await.map_err(Error::from)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A tail for every readable stream of a task (warning about the rest), and whether lines
/// need a container prefix.
pub fn tails(containers: &[ContainerInfo], task_id: &str) -> (Vec<Tail>, bool) {
    let (sources, warnings) = sources(containers, task_id);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let prefixed = sources.len() > 1;
    (sources.into_iter().map(Tail::new).collect(), prefixed)
}

/// What a follower that lost its credentials says: the task was not seen to fail, it keeps
/// running on ECS (exit 3, AWS unusable; never "the migration failed").
pub fn lost_credentials(cluster: &str, task_arn: &str, error: &Error) -> Error {
    Error::unavailable(format!(
        "{LOST_CREDENTIALS} while task {task_arn} was still running ({}); it continues on ECS, and its result is \
         not known here",
        error.message()
    ))
    .hint(format!(
        "{} once you have fresh credentials; for long migrations raise role-duration-seconds in \
         configure-aws-credentials (up to the role's MaxSessionDuration)",
        attach_hint(cluster, task_arn)
    ))
}

/// The words [`lost_credentials`] starts with, for callers that must not call it a failure.
pub const LOST_CREDENTIALS: &str = "lost the AWS credentials";

/// ECS does not (or no longer) know a task.
pub fn unknown_task(task_arn: &str, cluster: &str) -> Error {
    Error::input(format!("ECS does not know task {task_arn} in cluster `{cluster}`"))
        .hint("stopped tasks are kept for about an hour; check the ARN, --cluster and the region")
}

/// The command that resumes following a task.
pub fn attach_hint(cluster: &str, task_arn: &str) -> String {
    format!("follow it again with: shipgate task attach {task_arn} --cluster {cluster}")
}

/// Read what a stream has now: pages until one is not full. True when more is waiting
/// (the per-call bound was reached).
pub async fn read_available(aws: &Aws, tail: &mut Tail, prefixed: bool, out: &Reporter) -> bool {
    if tail.unavailable().is_some() {
        return false;
    }
    let Source { container, group, region, stream } = tail.source.clone();
    let client = aws.logs(region.as_deref());
    // A bound per tick keeps DescribeTasks (and a signal) from waiting behind a huge backlog.
    for _ in 0..100 {
        aws.log_reads.take().await;
        match logs::read(&client, &group, &stream, tail.token()).await {
            Ok(page) => {
                out.log_lines(prefixed.then_some(container.as_str()), &page.lines);
                if !tail.record(page.read) {
                    return false;
                }
            }
            Err(f) if f.transient => {
                tracing::warn!("{}; reading {stream} again at the next tick", f.error.message());
                return false;
            }
            Err(f) => {
                tracing::warn!(
                    "cannot read the logs of container `{container}` ({group} {stream}): {}",
                    f.error.message()
                );
                tail.give_up(f.error.message().to_string());
                return false;
            }
        }
    }
    true
}

fn report_unread(tail: &Tail) {
    let Source { container, group, stream, .. } = &tail.source;
    if let Some(why) = tail.unavailable() {
        tracing::warn!("logs of container `{container}` are incomplete: {why}");
    } else if !tail.exists() {
        tracing::info!("container `{container}` wrote no log stream ({group} {stream})");
    }
}

/// The final line about the logs.
pub fn logs_summary(f: &Followed) -> String {
    format!(
        "logs: {} line{} from {} stream{}, drain complete",
        f.lines,
        if f.lines == 1 { "" } else { "s" },
        f.streams,
        if f.streams == 1 { "" } else { "s" }
    )
}

/// Turn a stopped task into an event for `--output json` and the verdict line.
pub fn stopped_event(f: &Followed, outcome: &super::outcome::Outcome) -> Event {
    Event::TaskStopped {
        task_arn: f.task.arn.clone(),
        succeeded: outcome.succeeded(),
        outcome: outcome.to_string(),
        exit_code: outcome.container_exit_code().or(outcome.succeeded().then_some(0)),
        stop_code: f.task.stop_code.clone(),
        stopped_reason: f.task.stopped_reason.clone(),
        lines: f.lines,
        streams: f.streams,
    }
}
