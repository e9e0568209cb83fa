//! Is a service rollout done? One pure function over what `DescribeServices` (and, where the
//! account has it, `DescribeServiceDeployments`) said, so every case is a row in a table.
//!
//! "Stable" is not enough: a service whose circuit breaker rolled back is stable too, on the
//! old task definition (the false successes of aws-actions #191 and fabfuel #185). A rollout
//! succeeds only when the deployment *this deploy created* is PRIMARY, COMPLETED, and the only
//! one with tasks left running.

use std::fmt;
use std::time::Duration;

use super::view::{ServiceView, revision_name};
use crate::duration;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    InProgress {
        running: i32,
        desired: i32,
        failed_tasks: i32,
    },
    Completed,
    /// Our deployment completed with a desired count of 0: the task definition is in place,
    /// but no task of it ran, so nothing says the new version works. Not a failure (a service
    /// scaled to zero is a choice), and never called "completed".
    NothingVerified,
    /// Our deployment failed and nothing replaced it (a circuit breaker without rollback).
    Failed {
        reason: String,
    },
    /// Our deployment failed and the service went back to an earlier task definition.
    RolledBack {
        reason: String,
    },
    /// Our deployment failed and so did ECS's rollback of it (`ROLLBACK_FAILED`): the
    /// service may run neither version fully.
    RollbackFailed {
        reason: String,
    },
    /// Someone else's deployment replaced ours.
    Superseded {
        by: String,
        task_definition: String,
    },
    /// Still in progress after the timeout.
    Stuck {
        after: Duration,
        running: i32,
        desired: i32,
    },
    /// The service is being deleted.
    Gone {
        status: String,
    },
}

impl Rollout {
    pub fn finished(&self) -> bool {
        !matches!(self, Rollout::InProgress { .. })
    }

    pub fn succeeded(&self) -> bool {
        matches!(self, Rollout::Completed | Rollout::NothingVerified)
    }
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollout::InProgress { running, desired, failed_tasks } => {
                write!(f, "in progress: {running}/{desired} running")?;
                if *failed_tasks > 0 {
                    write!(f, ", {failed_tasks} failed task{}", if *failed_tasks == 1 { "" } else { "s" })?;
                }
                Ok(())
            }
            Rollout::Completed => f.write_str("completed"),
            Rollout::NothingVerified => f.write_str(
                "nothing verified (desired count 0): the service is on the new task definition, but no task of it ran",
            ),
            Rollout::Failed { reason } => write!(f, "failed: {reason}"),
            Rollout::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            Rollout::RollbackFailed { reason } => write!(
                f,
                "ROLLBACK FAILED: the deployment failed and ECS could not put the service back ({reason}); \
                 check the service now: it may run neither version fully"
            ),
            Rollout::Superseded { by, task_definition } => write!(
                f,
                "superseded: another deployment ({by}, {}) replaced this one",
                revision_name(task_definition)
            ),
            Rollout::Stuck { after, running, desired } => write!(
                f,
                "stuck: still in progress after {} ({running}/{desired} running)",
                duration::human(*after)
            ),
            Rollout::Gone { status } => write!(f, "the service is {status}"),
        }
    }
}

/// What we know about the rollout, besides the service itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment id `UpdateService` answered with.
    pub ours: &'a str,
    /// The task definition the service ran before this deploy.
    pub previous: &'a str,
    /// The status `DescribeServiceDeployments` reports for ours, where available.
    pub service_deployment: Option<&'a str>,
    pub elapsed: Duration,
    pub timeout: Duration,
}

/// Decide where the rollout stands.
pub fn decide(service: &ServiceView, ctx: &Context) -> Rollout {
    if service.status != "ACTIVE" {
        return Rollout::Gone { status: service.status.clone() };
    }
    let ours = service.deployment(ctx.ours);
    let reason = || {
        ours.and_then(|d| d.rollout_state_reason.clone())
            .unwrap_or_else(|| "the deployment failed".to_string())
    };
    match ctx.service_deployment {
        Some("ROLLBACK_FAILED") => return Rollout::RollbackFailed { reason: reason() },
        Some(s) if s.starts_with("ROLLBACK_") => {
            return Rollout::RolledBack { reason: format!("{} ({s})", reason()) };
        }
        Some(s @ ("STOPPED" | "STOP_REQUESTED")) => {
            return Rollout::Failed { reason: format!("the service deployment was stopped ({s})") };
        }
        _ => {}
    }
    let primary = service.primary();
    let primary_is_other = primary.is_some_and(|p| p.id != ctx.ours);
    if let Some(d) = ours
        && d.rollout_state.as_deref() == Some("FAILED")
    {
        return if primary_is_other {
            Rollout::RolledBack { reason: reason() }
        } else {
            Rollout::Failed { reason: reason() }
        };
    }
    match (ours, primary) {
        (Some(d), _) if d.status == "PRIMARY" => {
            let others_drained = service.deployments.iter().all(|o| o.id == d.id || o.running == 0);
            let completed = match d.rollout_state.as_deref() {
                Some("COMPLETED") => others_drained,
                // No rollout state (not the ECS rolling controller): the old deployments are
                // gone and every desired task of ours runs.
                None => service.deployments.len() == 1 && d.running >= d.desired,
                Some(_) => false,
            };
            if completed && d.desired == 0 && service.desired == 0 {
                Rollout::NothingVerified
            } else if completed {
                Rollout::Completed
            } else if ctx.elapsed >= ctx.timeout {
                Rollout::Stuck { after: ctx.elapsed, running: d.running, desired: d.desired }
            } else {
                Rollout::InProgress { running: d.running, desired: d.desired, failed_tasks: d.failed_tasks }
            }
        }
        (_, Some(p))
            if p.task_definition == ctx.previous
                && ours.is_none_or(|d| d.task_definition != p.task_definition) =>
        {
            Rollout::RolledBack {
                reason: format!(
                    "the service is back on {} without our deployment",
                    revision_name(ctx.previous)
                ),
            }
        }
        (_, Some(p)) => Rollout::Superseded { by: p.id.clone(), task_definition: p.task_definition.clone() },
        (_, None) => Rollout::Failed { reason: "the service has no PRIMARY deployment".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::view::DeploymentView;

    const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/api:6";
    const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/api:7";
    const THEIRS: &str = "arn:aws:ecs:us-east-1:1:task-definition/api:8";

    fn d(id: &str, status: &str, td: &str, state: Option<&str>, running: i32) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: state.map(str::to_string),
            rollout_state_reason: state.map(|s| match s {
                "FAILED" => "ECS deployment circuit breaker: tasks failed to start.".to_string(),
                other => format!("ECS deployment {id} {}", other.to_lowercase()),
            }),
            desired: 2,
            running,
            pending: 0,
            failed_tasks: if state == Some("FAILED") { 3 } else { 0 },
            created_at: None,
        }
    }

    fn service(deployments: Vec<DeploymentView>) -> ServiceView {
        ServiceView {
            name: "api".into(),
            status: "ACTIVE".into(),
            desired: 2,
            deployments,
            ..ServiceView::default()
        }
    }

    #[test]
    fn rollout_decisions() {
        let minute = Duration::from_secs(60);
        type Row = (&'static str, ServiceView, Option<&'static str>, Duration, &'static str);
        let rows: Vec<Row> = vec![
            (
                "COMPLETED and the only deployment",
                service(vec![d("ours", "PRIMARY", NEW, Some("COMPLETED"), 2)]),
                None,
                minute,
                "completed",
            ),
            (
                "a service scaled to zero verifies nothing",
                ServiceView {
                    desired: 0,
                    ..service(vec![DeploymentView {
                        desired: 0,
                        ..d("ours", "PRIMARY", NEW, Some("COMPLETED"), 0)
                    }])
                },
                None,
                minute,
                "nothing verified (desired count 0): the service is on the new task definition, but no task of it ran",
            ),
            (
                "COMPLETED but old tasks still running is not done",
                service(vec![
                    d("ours", "PRIMARY", NEW, Some("COMPLETED"), 2),
                    d("old", "ACTIVE", OLD, Some("COMPLETED"), 1),
                ]),
                None,
                minute,
                "in progress: 2/2 running",
            ),
            (
                "IN_PROGRESS",
                service(vec![
                    d("ours", "PRIMARY", NEW, Some("IN_PROGRESS"), 1),
                    d("old", "ACTIVE", OLD, Some("COMPLETED"), 2),
                ]),
                None,
                minute,
                "in progress: 1/2 running",
            ),
            (
                "FAILED with nothing replacing it (circuit breaker without rollback)",
                service(vec![d("ours", "PRIMARY", NEW, Some("FAILED"), 0), d("old", "ACTIVE", OLD, None, 2)]),
                None,
                minute,
                "failed: ECS deployment circuit breaker: tasks failed to start.",
            ),
            (
                "rolled back by the circuit breaker",
                service(vec![
                    d("rollback", "PRIMARY", OLD, Some("IN_PROGRESS"), 2),
                    d("ours", "ACTIVE", NEW, Some("FAILED"), 0),
                ]),
                None,
                minute,
                "rolled back: ECS deployment circuit breaker: tasks failed to start.",
            ),
            (
                "rolled back, and our deployment already gone",
                service(vec![d("rollback", "PRIMARY", OLD, Some("COMPLETED"), 2)]),
                None,
                minute,
                "rolled back: the service is back on api:6 without our deployment",
            ),
            (
                "rolled back according to DescribeServiceDeployments",
                service(vec![d("ours", "PRIMARY", NEW, Some("IN_PROGRESS"), 0)]),
                Some("ROLLBACK_IN_PROGRESS"),
                minute,
                "rolled back: ECS deployment ours in_progress (ROLLBACK_IN_PROGRESS)",
            ),
            (
                "a rollback that failed is its own failure, not \"rolled back\"",
                service(vec![d("ours", "PRIMARY", NEW, Some("IN_PROGRESS"), 0)]),
                Some("ROLLBACK_FAILED"),
                minute,
                "ROLLBACK FAILED: the deployment failed and ECS could not put the service back (ECS deployment ours in_progress); check the service now: it may run neither version fully",
            ),
            (
                "another deployment started by someone else",
                service(vec![
                    d("theirs", "PRIMARY", THEIRS, Some("IN_PROGRESS"), 0),
                    d("ours", "ACTIVE", NEW, Some("IN_PROGRESS"), 1),
                ]),
                None,
                minute,
                "superseded: another deployment (theirs, api:8) replaced this one",
            ),
            (
                "someone forced a new deployment of the same revision",
                service(vec![d("theirs", "PRIMARY", NEW, Some("IN_PROGRESS"), 0)]),
                None,
                minute,
                "superseded: another deployment (theirs, api:7) replaced this one",
            ),
            (
                "stuck past the timeout",
                service(vec![
                    d("ours", "PRIMARY", NEW, Some("IN_PROGRESS"), 1),
                    d("old", "ACTIVE", OLD, Some("COMPLETED"), 2),
                ]),
                None,
                Duration::from_secs(1800),
                "stuck: still in progress after 30min (1/2 running)",
            ),
            (
                "no rollout state: done when alone and all running",
                service(vec![d("ours", "PRIMARY", NEW, None, 2)]),
                None,
                minute,
                "completed",
            ),
            (
                "no rollout state: not done while the old one remains",
                service(vec![d("ours", "PRIMARY", NEW, None, 2), d("old", "ACTIVE", OLD, None, 0)]),
                None,
                minute,
                "in progress: 2/2 running",
            ),
            (
                "deployment stopped",
                service(vec![d("ours", "PRIMARY", NEW, Some("IN_PROGRESS"), 0)]),
                Some("STOPPED"),
                minute,
                "failed: the service deployment was stopped (STOPPED)",
            ),
            (
                "service being deleted",
                ServiceView { status: "DRAINING".into(), ..service(vec![]) },
                None,
                minute,
                "the service is DRAINING",
            ),
        ];
        for (name, svc, sd, elapsed, expected) in rows {
            let ctx = Context {
                ours: "ours",
                previous: OLD,
                service_deployment: sd,
                elapsed,
                timeout: Duration::from_secs(1800),
            };
            let got = decide(&svc, &ctx);
            assert_eq!(got.to_string(), expected, "{name}");
            // Success is completed, or a service scaled to zero that no task could prove wrong.
            assert_eq!(
                got.succeeded(),
                expected == "completed" || expected.starts_with("nothing verified"),
                "{name}"
            );
        }
    }
}
