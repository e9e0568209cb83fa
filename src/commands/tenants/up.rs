//! `shipgate tenants up`: apply pending tenant migrations to every tenant.

use crate::config::FleetConfig;
use crate::error::Result;
use crate::fleet::run::Work;
use crate::migrate::plan::UpOptions;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, options: &UpOptions, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    crate::fleet::control::fleet_run(cfg, Work::Up(options.clone()), shutdown, out).await
}
