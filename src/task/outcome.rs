//! How a stopped task ended, decided from what `DescribeTasks` says: `stopCode`,
//! `stoppedReason`, and the watched container's `exitCode` and `reason`, matched by name.
//!
//! Only the watched container decides. Sidecars that ECS stops after the essential container
//! exited report 137 or 143; that is how ECS stops them, not a failure. A missing exit code
//! is never a success: the container did not run to completion, whatever else the task says.

use std::fmt;

use super::view::TaskView;

/// Why a task never ran its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    /// `CannotPullContainerError`: image name, registry auth, or no route to the registry.
    ImagePull,
    /// `ResourceInitializationError`: secrets or registry auth could not be fetched.
    ResourceInit,
    /// `ResourceInitializationError` creating the awslogs stream: the log group does not exist.
    LogGroup,
    /// `ResourceInitializationError` downloading the `environmentFiles` from S3.
    EnvironmentFiles,
    /// `ResourceInitializationError` mounting an EFS volume.
    Efs,
    /// The task's network interface could not be attached (ENI provisioning, no free address).
    Network,
    /// `CannotStartContainerError` … `exec format error`: the image is for another CPU.
    Architecture,
    /// `ContainerRuntimeTimeoutError`: the runtime did not start the container in time.
    RuntimeTimeout,
    /// No Fargate capacity (or a Spot reclaim) before the container started.
    Capacity,
    Other,
}

/// The verdict on one stopped task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The watched container ran and exited nonzero.
    ContainerFailed {
        container: String,
        exit_code: i32,
        reason: Option<String>,
    },
    /// Killed for using more memory than allowed (whatever the exit code says).
    OutOfMemory {
        container: String,
        exit_code: Option<i32>,
        reason: String,
    },
    FailedToStart {
        kind: StartFailure,
        reason: String,
    },
    /// Fargate Spot reclaimed the capacity while the container ran.
    SpotInterrupted {
        reason: String,
    },
    /// Someone (or something) called StopTask.
    StoppedByUser {
        reason: String,
    },
    /// Stopped without an exit code for the watched container, for a reason we do not know.
    NoExitCode {
        container: String,
        reason: String,
    },
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    /// Failed before the container ran, for a reason that may not happen again: worth one
    /// more `RunTask`. Never true once the container ran, whatever its exit.
    pub fn transient_start_failure(&self) -> bool {
        match self {
            Outcome::FailedToStart {
                kind: StartFailure::Capacity | StartFailure::Network | StartFailure::RuntimeTimeout,
                ..
            } => true,
            Outcome::FailedToStart { kind: StartFailure::ImagePull | StartFailure::ResourceInit, reason } => {
                timed_out(reason)
            }
            _ => false,
        }
    }

    /// The container's own exit code, when it ran and failed.
    pub fn container_exit_code(&self) -> Option<i32> {
        match self {
            Outcome::ContainerFailed { exit_code, .. } => Some(*exit_code),
            Outcome::OutOfMemory { exit_code: Some(code), .. } if *code != 0 => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => write!(f, "succeeded (exit code 0)"),
            Outcome::ContainerFailed { container, exit_code, reason } => {
                write!(f, "failed: container `{container}` exited with code {exit_code}")?;
                if let Some(reason) = reason {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
            Outcome::OutOfMemory { container, exit_code, reason } => {
                write!(f, "failed: container `{container}` ran out of memory")?;
                if let Some(code) = exit_code {
                    write!(f, " (exit code {code})")?;
                }
                write!(f, ": {reason}")
            }
            Outcome::FailedToStart { kind, reason } => {
                let what = match kind {
                    StartFailure::ImagePull => "the image could not be pulled",
                    StartFailure::ResourceInit => "secrets or registry credentials could not be fetched",
                    StartFailure::LogGroup => "its awslogs log group does not exist",
                    StartFailure::EnvironmentFiles => "its environment files could not be downloaded",
                    StartFailure::Efs => "an EFS volume could not be mounted",
                    StartFailure::Network => "its network interface could not be attached",
                    StartFailure::Architecture => "the image is built for another CPU architecture",
                    StartFailure::RuntimeTimeout => "the container runtime timed out starting it",
                    StartFailure::Capacity => "no capacity",
                    StartFailure::Other => "it never ran",
                };
                write!(f, "task failed to start ({what}): {reason}")
            }
            Outcome::SpotInterrupted { reason } => {
                write!(f, "interrupted: Fargate Spot reclaimed the task: {reason}")
            }
            Outcome::StoppedByUser { reason } => write!(f, "stopped by StopTask: {reason}"),
            Outcome::NoExitCode { container, reason } => {
                write!(f, "failed: container `{container}` has no exit code (it did not finish): {reason}")
            }
        }
    }
}

/// What to tell the operator to do about a start failure.
pub fn hint(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::FailedToStart { kind: StartFailure::ImagePull, .. } => Some(
            "check the image name and tag exist, that the task execution role may pull it (ecr:GetAuthorizationToken, ecr:BatchGetImage), and that the subnets reach ECR (public IP, NAT gateway, or VPC endpoints)",
        ),
        Outcome::FailedToStart { kind: StartFailure::ResourceInit, .. } => Some(
            "check the task execution role may read every secret (secretsmanager:GetSecretValue, ssm:GetParameters, kms:Decrypt) and that the subnets reach Secrets Manager/SSM and ECR (NAT gateway or VPC endpoints)",
        ),
        Outcome::FailedToStart { kind: StartFailure::LogGroup, .. } => Some(
            "create the log group the task definition's awslogs-group names, or set \"awslogs-create-group\": \"true\" in its logConfiguration options and allow the task execution role logs:CreateLogGroup",
        ),
        Outcome::FailedToStart { kind: StartFailure::EnvironmentFiles, .. } => Some(
            "check that every environmentFiles S3 object exists and that the task execution role may read it (s3:GetObject, s3:GetBucketLocation)",
        ),
        Outcome::FailedToStart { kind: StartFailure::Efs, .. } => Some(
            "check the EFS file system (and access point) exists, has a mount target in each of the task's subnets, and that the security groups allow NFS (port 2049)",
        ),
        Outcome::FailedToStart { kind: StartFailure::Network, .. } => Some(
            "ECS could not attach the task's network interface: check the subnets have free IP addresses and the account's ENI quota",
        ),
        Outcome::FailedToStart { kind: StartFailure::Architecture, .. } => Some(
            "build the image for the task's runtimePlatform.cpuArchitecture (docker buildx build --platform linux/amd64 or linux/arm64), or change runtimePlatform to the image's",
        ),
        Outcome::OutOfMemory { .. } => {
            Some("raise the task's or the container's memory (--memory, or the task definition)")
        }
        _ => None,
    }
}

fn timed_out(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["timeout", "timed out", "deadline exceeded", "i/o timeout", "connection reset"]
        .iter()
        .any(|t| r.contains(t))
}

/// What kept a task from starting, from the most specific words of its reason: the same
/// `ResourceInitializationError` prefix covers a missing log group, environment files, EFS
/// and secrets, each with its own fix.
fn start_failure_kind(reason: &str) -> StartFailure {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("exec format error") {
        StartFailure::Architecture
    } else if reason.contains("ContainerRuntimeTimeoutError") {
        StartFailure::RuntimeTimeout
    } else if reason.contains("CannotPullContainerError") || reason.contains("PullImage") {
        StartFailure::ImagePull
    } else if lower.contains("log group does not exist")
        || (lower.contains("failed to validate logger args") && lower.contains("resourcenotfoundexception"))
    {
        StartFailure::LogGroup
    } else if lower.contains("env files") || lower.contains("environment file") || lower.contains("envfile") {
        StartFailure::EnvironmentFiles
    } else if lower.contains("efs utils") || lower.contains("efs volume") || lower.contains(" efs ") {
        StartFailure::Efs
    } else if lower.contains("network interface") || lower.contains(" eni") || lower.contains("eni ") {
        StartFailure::Network
    } else if reason.contains("ResourceInitializationError") || reason.contains("unable to pull secrets") {
        StartFailure::ResourceInit
    } else if reason.contains("Capacity is unavailable") || reason.starts_with("RESOURCE:") {
        StartFailure::Capacity
    } else {
        StartFailure::Other
    }
}

/// Classify a STOPPED task by its watched container.
pub fn classify(task: &TaskView, watched: &str) -> Outcome {
    let stop_code = task.stop_code.as_deref().unwrap_or("");
    let stopped_reason = task.stopped_reason.clone().unwrap_or_default();
    let container = task.containers.iter().find(|c| c.name == watched);
    let exit_code = container.and_then(|c| c.exit_code);
    let container_reason = container.and_then(|c| c.reason.clone()).filter(|r| !r.is_empty());
    let reason = || container_reason.clone().unwrap_or_else(|| stopped_reason.clone());

    if let Some(r) = container_reason.as_deref().filter(|r| r.contains("OutOfMemory")) {
        return Outcome::OutOfMemory { container: watched.to_string(), exit_code, reason: r.to_string() };
    }
    if exit_code.is_none() {
        // The container never produced an exit code: find out why from the most specific text.
        let texts = [container_reason.as_deref().unwrap_or(""), stopped_reason.as_str()];
        let kind = texts.iter().map(|t| start_failure_kind(t)).find(|k| *k != StartFailure::Other);
        let never_ran = task.started_at.is_none() || stop_code == "TaskFailedToStart";
        return match (stop_code, kind) {
            ("UserInitiated", _) => Outcome::StoppedByUser { reason: stopped_reason },
            ("SpotInterruption" | "TerminationNotice", _) if never_ran => {
                Outcome::FailedToStart { kind: StartFailure::Capacity, reason: stopped_reason }
            }
            ("SpotInterruption" | "TerminationNotice", _) => {
                Outcome::SpotInterrupted { reason: stopped_reason }
            }
            (_, Some(kind)) => Outcome::FailedToStart { kind, reason: reason() },
            _ if never_ran => Outcome::FailedToStart { kind: StartFailure::Other, reason: reason() },
            _ => Outcome::NoExitCode { container: watched.to_string(), reason: reason() },
        };
    }
    match (exit_code, stop_code) {
        (Some(0), "UserInitiated") => Outcome::StoppedByUser { reason: stopped_reason },
        (Some(0), _) => Outcome::Succeeded,
        (Some(code), "UserInitiated") if code == 137 || code == 143 => {
            Outcome::StoppedByUser { reason: stopped_reason }
        }
        (Some(code), "SpotInterruption" | "TerminationNotice") if code == 137 || code == 143 => {
            Outcome::SpotInterrupted { reason: stopped_reason }
        }
        (Some(code), _) => Outcome::ContainerFailed {
            container: watched.to_string(),
            exit_code: code,
            reason: container_reason,
        },
        (None, _) => unreachable!("handled above"),
    }
}

/// Other containers that failed on their own (not the 137/143 of being stopped after the
/// watched container exited), to mention next to the verdict.
pub fn other_failures(task: &TaskView, watched: &str) -> Vec<String> {
    task.containers
        .iter()
        .filter(|c| c.name != watched)
        .filter_map(|c| match c.exit_code {
            Some(0 | 137 | 143) | None => None,
            Some(code) => Some(format!("container `{}` exited with code {code}", c.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::view::ContainerView;
    use std::time::SystemTime;

    fn task(
        stop_code: &str,
        reason: &str,
        started: bool,
        containers: &[(&str, Option<i32>, &str)],
    ) -> TaskView {
        TaskView {
            last_status: "STOPPED".into(),
            stop_code: (!stop_code.is_empty()).then(|| stop_code.into()),
            stopped_reason: (!reason.is_empty()).then(|| reason.into()),
            started_at: started.then(SystemTime::now),
            containers: containers
                .iter()
                .map(|(name, exit_code, reason)| ContainerView {
                    name: name.to_string(),
                    exit_code: *exit_code,
                    reason: (!reason.is_empty()).then(|| reason.to_string()),
                    last_status: Some("STOPPED".into()),
                })
                .collect(),
            ..TaskView::default()
        }
    }

    const EXITED: &str = "Essential container in task exited";

    #[test]
    fn classification_table() {
        use StartFailure::*;
        let oom = "OutOfMemoryError: Container killed due to memory usage";
        let pull = "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref app:nope: not found";
        let pull_timeout = "CannotPullContainerError: ref pull has been retried 5 time(s): failed to copy: httpReadSeeker: failed open: failed to do request: dial tcp 1.2.3.4:443: i/o timeout";
        let init = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: AccessDeniedException";
        let init_timeout = "ResourceInitializationError: unable to pull secrets or registry auth: unable to retrieve secret from asm: operation error Secrets Manager: GetSecretValue, https response error: context deadline exceeded";
        // The texts ECS writes (its troubleshooting pages), one per start failure.
        let log_group = "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist. : exit status 1";
        let env_files = "ResourceInitializationError: failed to download env files: file download command: non empty error stream: service call has been retried 5 time(s): AccessDenied: Access Denied";
        let efs = "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: Failed to resolve \"fs-1234.efs.us-east-1.amazonaws.com\"";
        let arch = "CannotStartContainerError: ResourceInitializationError: failed to create new container runtime task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/usr/local/bin/shipgate\": exec format error: unknown";
        let runtime =
            "ContainerRuntimeTimeoutError: Could not transition to running; timed out after waiting 3m0s";
        let mut cases: Vec<(TaskView, Outcome, bool)> = [
            (log_group, LogGroup, false),
            (env_files, EnvironmentFiles, false),
            (efs, Efs, false),
            (arch, Architecture, false),
            (runtime, RuntimeTimeout, true),
        ]
        .into_iter()
        .map(|(text, kind, transient)| {
            (
                task("TaskFailedToStart", text, false, &[("app", None, "")]),
                Outcome::FailedToStart { kind, reason: text.into() },
                transient,
            )
        })
        .collect();
        cases.extend(vec![
            (
                task("EssentialContainerExited", EXITED, true, &[("app", Some(0), "")]),
                Outcome::Succeeded,
                false,
            ),
            (
                task("EssentialContainerExited", EXITED, true, &[("app", Some(1), "")]),
                Outcome::ContainerFailed { container: "app".into(), exit_code: 1, reason: None },
                false,
            ),
            // A sidecar stopped by ECS after the watched container succeeded.
            (
                task(
                    "EssentialContainerExited",
                    EXITED,
                    true,
                    &[("proxy", Some(137), ""), ("app", Some(0), "")],
                ),
                Outcome::Succeeded,
                false,
            ),
            (
                task("EssentialContainerExited", EXITED, true, &[("app", Some(137), oom)]),
                Outcome::OutOfMemory { container: "app".into(), exit_code: Some(137), reason: oom.into() },
                false,
            ),
            // amazon-ecs-agent #2467: OOM reason with exit code 0 is still OOM.
            (
                task("EssentialContainerExited", EXITED, true, &[("app", Some(0), oom)]),
                Outcome::OutOfMemory { container: "app".into(), exit_code: Some(0), reason: oom.into() },
                false,
            ),
            (
                task("TaskFailedToStart", pull, false, &[("app", None, "")]),
                Outcome::FailedToStart { kind: ImagePull, reason: pull.into() },
                false,
            ),
            (
                task("TaskFailedToStart", "Task failed to start", false, &[("app", None, pull_timeout)]),
                Outcome::FailedToStart { kind: ImagePull, reason: pull_timeout.into() },
                true,
            ),
            (
                task("TaskFailedToStart", init, false, &[("app", None, "")]),
                Outcome::FailedToStart { kind: ResourceInit, reason: init.into() },
                false,
            ),
            (
                task("TaskFailedToStart", init_timeout, false, &[("app", None, "")]),
                Outcome::FailedToStart { kind: ResourceInit, reason: init_timeout.into() },
                true,
            ),
            (
                task(
                    "TaskFailedToStart",
                    "Timeout waiting for network interface provisioning to complete.",
                    false,
                    &[("app", None, "")],
                ),
                Outcome::FailedToStart {
                    kind: Network,
                    reason: "Timeout waiting for network interface provisioning to complete.".into(),
                },
                true,
            ),
            (
                task("SpotInterruption", "Your Spot Task was interrupted.", false, &[("app", None, "")]),
                Outcome::FailedToStart { kind: Capacity, reason: "Your Spot Task was interrupted.".into() },
                true,
            ),
            (
                task("SpotInterruption", "Your Spot Task was interrupted.", true, &[("app", Some(143), "")]),
                Outcome::SpotInterrupted { reason: "Your Spot Task was interrupted.".into() },
                false,
            ),
            (
                task("UserInitiated", "cancelled by alice", true, &[("app", Some(143), "")]),
                Outcome::StoppedByUser { reason: "cancelled by alice".into() },
                false,
            ),
            (
                task("UserInitiated", "cancelled by alice", false, &[("app", None, "")]),
                Outcome::StoppedByUser { reason: "cancelled by alice".into() },
                false,
            ),
            (
                task("UserInitiated", "deploy stopped it", true, &[("app", Some(0), "")]),
                Outcome::StoppedByUser { reason: "deploy stopped it".into() },
                false,
            ),
            // Ran, but no exit code: never a success.
            (
                task("EssentialContainerExited", EXITED, true, &[("app", None, "")]),
                Outcome::NoExitCode { container: "app".into(), reason: EXITED.into() },
                false,
            ),
            // The watched container is missing from the response entirely.
            (
                task("EssentialContainerExited", EXITED, true, &[("other", Some(0), "")]),
                Outcome::NoExitCode { container: "app".into(), reason: EXITED.into() },
                false,
            ),
        ]);
        for (task, expected, transient) in cases {
            let got = classify(&task, "app");
            assert_eq!(got, expected, "{task:?}");
            assert_eq!(got.transient_start_failure(), transient, "{got}");
        }
    }

    #[test]
    fn sidecar_failures_are_mentioned_but_stop_kills_are_not() {
        let t = task(
            "EssentialContainerExited",
            EXITED,
            true,
            &[("app", Some(0), ""), ("proxy", Some(137), ""), ("agent", Some(2), "")],
        );
        assert_eq!(other_failures(&t, "app"), ["container `agent` exited with code 2"]);
    }

    #[test]
    fn only_containers_that_ran_have_an_exit_code_to_pass_through() {
        let failed = Outcome::ContainerFailed { container: "app".into(), exit_code: 3, reason: None };
        assert_eq!(failed.container_exit_code(), Some(3));
        assert_eq!(
            Outcome::FailedToStart { kind: StartFailure::Other, reason: String::new() }.container_exit_code(),
            None
        );
    }
}
