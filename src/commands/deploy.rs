//! `shipgate deploy --env NAME`: render every template (exit 2 before any AWS call), then run
//! the deploy pipeline (`deploy::pipeline`) on ECS, the local platform (`deploy::local`), or,
//! with `--dry-run`, print its plan (`deploy::plan`).

use crate::aws::Aws;
use crate::config::deploy::DeployConfig;
use crate::deploy::ci::Ci;
use crate::deploy::{local, pipeline, plan, prepare};
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &DeployConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let ci = Ci::new(&cfg.run.ci, out);
    ci.mask_variables(&cfg.env);
    let prepared = prepare::prepare(&cfg.env)?;
    prepare::lint(&cfg.env, cfg.lint, cfg.dry_run, &ci, out)?;
    if cfg.env.platform == crate::project::Platform::Local {
        return local::run(cfg, &prepared, &ci, shutdown, out).await;
    }
    let aws = Aws::load(cfg.env.region.as_deref()).await?.with_log_reads(cfg.run.follow.log_reads_per_second);
    if cfg.dry_run {
        return plan::run(&aws, cfg, &prepared, out).await;
    }
    pipeline::run_with(&aws, cfg, &prepared, &ci, shutdown, out).await
}
