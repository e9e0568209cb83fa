//! `shipgate migrate …`: the migration runner's commands, and the session discipline they
//! share (connect, lock, work, always unlock and close).

pub mod adopt;
pub mod baseline;
pub mod down;
pub mod lint;
pub mod new;
pub mod repair;
pub mod status;
pub mod up;
pub mod verify;

use crate::config::{MigrateConfig, MigrateJob};
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

/// Run one validated migrate command.
pub async fn run(cfg: &MigrateConfig, job: &MigrateJob, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    match job {
        MigrateJob::Up { options, dry_run } => up::run(cfg, options, *dry_run, shutdown, out).await,
        MigrateJob::Down { to, dry_run } => down::run(cfg, *to, *dry_run, shutdown, out).await,
        MigrateJob::Status => status::run(cfg, shutdown, out).await,
        MigrateJob::Verify { ignore_missing } => verify::run(cfg, *ignore_missing, shutdown, out).await,
        MigrateJob::Baseline { version, force } => baseline::run(cfg, *version, *force, shutdown, out).await,
        MigrateJob::BaselineFromSchema => baseline::propose(cfg, shutdown, out).await,
        MigrateJob::Adopt(options) => adopt::run(cfg, options, shutdown, out).await,
        MigrateJob::Repair { version, resolution } => {
            repair::run(cfg, *version, *resolution, shutdown, out).await
        }
    }
}
