//! How a followed task becomes shipgate's result: the container whose exit decides, the
//! report of a stopped task, and its exit code (the container's own, or classified).

use crate::cli::ExitCodeMode;
use crate::duration;
use crate::error::{Error, Kind, Result};
use crate::output::Reporter;
use crate::task::follow::{self, EndedBy, Followed};
use crate::task::outcome::{self, Outcome};
use crate::taskdef::{self, ContainerInfo};

/// The container whose exit decides: the requested one (which must exist), or the only
/// essential one.
pub fn watched_container(containers: &[ContainerInfo], requested: Option<&str>, td: &str) -> Result<String> {
    match requested {
        Some(name) if containers.iter().any(|c| c.name == name) => Ok(name.to_string()),
        Some(name) => Err(Error::input(format!(
            "--container `{name}` is not in {td}; its containers are: {}",
            containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        None => taskdef::default_container(containers).map_err(|e| Error::input(format!("{td}: {e}"))),
    }
}

/// Report a followed task and turn its result into shipgate's result.
pub fn verdict(
    f: &Followed,
    watched: &str,
    mode: ExitCodeMode,
    timeout: Option<std::time::Duration>,
    out: &Reporter,
) -> Result<()> {
    let outcome = outcome::classify(&f.task, watched);
    out.emit(&follow::stopped_event(f, &outcome));
    let id = f.task.id();
    tracing::info!("{}", follow::logs_summary(f));
    for note in outcome::other_failures(&f.task, watched) {
        tracing::warn!("task {id}: {note}");
    }
    match f.ended_by {
        EndedBy::Cancelled(signal) if !f.task.stopped() => {
            return Err(Error::interrupted(
                signal,
                format!(
                    "cancelled: StopTask was sent for task {id}, which ECS is stopping (it was {})",
                    f.task.last_status
                ),
            ));
        }
        EndedBy::Cancelled(signal) => {
            return Err(Error::interrupted(signal, format!("cancelled: task {id} was stopped ({outcome})")));
        }
        EndedBy::TimedOut => {
            let after = duration::human(timeout.unwrap_or_default());
            return Err(Error::failed(format!("timed out after {after}: task {id} was stopped ({outcome})")));
        }
        EndedBy::Stopped => {}
    }
    if outcome.succeeded() {
        tracing::info!("task {id} {outcome}");
        return Ok(());
    }
    let message = format!("task {id} {outcome}");
    let error = match (outcome.container_exit_code(), mode) {
        (Some(code), ExitCodeMode::Container) => Error::new(Kind::Exit(exit_byte(code)), message),
        (Some(2), ExitCodeMode::Classified) => Error::input(message),
        (Some(3), ExitCodeMode::Classified) => Error::unavailable(message),
        _ => Error::failed(message),
    };
    Err(match outcome::hint(&outcome) {
        Some(hint) => error.hint(hint),
        None => error,
    })
}

/// A container exit code as a process exit code (out-of-range codes become 1).
fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1)
}

/// True when the outcome was a failure to start worth another RunTask.
pub fn retry_start(f: &Followed, watched: &str) -> Option<Outcome> {
    let outcome = outcome::classify(&f.task, watched);
    (f.ended_by == EndedBy::Stopped && outcome.transient_start_failure()).then_some(outcome)
}
