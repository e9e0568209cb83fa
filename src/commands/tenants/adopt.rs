//! `shipgate tenants adopt --from TOOL`: `migrate adopt` in every tenant schema, with the
//! fleet workers, under the fleet lock and each tenant's own lock. Each tenant is adopted in
//! its own transaction: one whose rows do not match is that tenant's failure, recorded
//! nothing, and leaves the others as they are.

use crate::config::FleetConfig;
use crate::error::Result;
use crate::fleet::run::Work;
use crate::migrate::adopt::apply::AdoptOptions;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, opts: &AdoptOptions, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    crate::fleet::control::fleet_run(cfg, Work::Adopt(opts.clone()), shutdown, out).await
}
