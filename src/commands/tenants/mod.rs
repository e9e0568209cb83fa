//! `shipgate tenants …`: the tenant set across every tenant schema. Each command opens one
//! control connection in the master schema, which runs `tenants_query`, holds the fleet lock
//! for writing commands, and cancels workers' statements on a signal.

pub mod adopt;
pub mod down;
pub mod provision;
pub mod status;
pub mod up;
pub mod verify;

use crate::config::{FleetConfig, FleetJob};
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, job: &FleetJob, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    match job {
        FleetJob::Up(options) => up::run(cfg, options, shutdown, out).await,
        FleetJob::Down(to) => down::run(cfg, *to, shutdown, out).await,
        FleetJob::Status => status::run(cfg, shutdown, out).await,
        FleetJob::Verify { at_least } => verify::run(cfg, *at_least, shutdown, out).await,
        FleetJob::Provision { name } => provision::run(cfg, name, shutdown, out).await,
        FleetJob::Adopt(options) => adopt::run(cfg, options, shutdown, out).await,
    }
}
