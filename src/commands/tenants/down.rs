//! `shipgate tenants down`: revert tenant migrations across the fleet, newest first.

use crate::config::FleetConfig;
use crate::error::Result;
use crate::fleet::run::Work;
use crate::migrate::plan::DownTo;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, to: DownTo, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    crate::fleet::control::fleet_run(cfg, Work::Down(to), shutdown, out).await
}
