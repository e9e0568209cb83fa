//! `shipgate migrate …`: the migration runner's commands, and the session discipline they
//! share (connect, lock, work, always unlock and close).

pub mod baseline;
pub mod down;
pub mod new;
pub mod repair;
pub mod status;
pub mod up;
pub mod verify;

use std::time::Duration;

use crate::config::{MigrateConfig, MigrateJob};
use crate::error::Result;
use crate::migrate::plan::AppliedRow;
use crate::migrate::session::{Mode, Session};
use crate::output::Reporter;
use crate::shutdown::Shutdown;

/// Run one validated migrate command.
pub async fn run(cfg: &MigrateConfig, job: &MigrateJob, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    match job {
        MigrateJob::Up { options, dry_run } => up::run(cfg, options, *dry_run, shutdown, out).await,
        MigrateJob::Down { to, dry_run } => down::run(cfg, *to, *dry_run, shutdown, out).await,
        MigrateJob::Status => status::run(cfg, shutdown, out).await,
        MigrateJob::Verify => verify::run(cfg, shutdown, out).await,
        MigrateJob::Baseline { version, force } => baseline::run(cfg, *version, *force, shutdown, out).await,
        MigrateJob::Repair { version, resolution } => {
            repair::run(cfg, *version, *resolution, shutdown, out).await
        }
    }
}

/// Open a session, take the lock when writing, run `body`, then unlock and close whatever
/// `body` returned: the one place that guarantees the lock never outlives the work.
pub async fn with_session<T>(
    cfg: &MigrateConfig,
    mode: Mode,
    shutdown: &Shutdown,
    body: impl AsyncFnOnce(&mut Session) -> Result<T>,
) -> Result<T> {
    let mut session = Session::open(cfg, mode, shutdown).await?;
    let result = match mode {
        Mode::ReadOnly => body(&mut session).await,
        Mode::Write => match session.lock(cfg.lock_timeout, shutdown).await {
            Ok(()) => body(&mut session).await,
            Err(e) => Err(e),
        },
    };
    session.close().await;
    result
}

/// The newest successfully applied version.
pub fn current_version(history: &[AppliedRow]) -> Option<i64> {
    history.iter().filter(|r| r.success).map(|r| r.version).max()
}

pub fn millis(d: Duration) -> u128 {
    d.as_millis()
}
