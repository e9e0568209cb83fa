//! `shipgate task attach ARN`: follow a running or stopped task again, from its first log
//! line, with the same verdict and exit code as `task run`.

use crate::aws::{Aws, ecs};
use crate::config::AttachConfig;
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use crate::task::follow;

pub async fn run(cfg: &AttachConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let aws = Aws::load(cfg.region.as_deref()).await?.with_log_reads(cfg.follow.options.log_reads_per_second);
    let task = ecs::describe_task(&aws.ecs, &cfg.cluster, &cfg.task)
        .await?
        .ok_or_else(|| follow::unknown_task(&cfg.task, &cfg.cluster))?;
    let (td_arn, containers) = ecs::task_definition(&aws.ecs, &task.task_definition_arn).await?;
    let watched =
        crate::task::verdict::watched_container(&containers, cfg.follow.container.as_deref(), &td_arn)?;
    tracing::info!("attached to task {} ({}), watching container `{watched}`", task.arn, task.last_status);
    let followed =
        follow::follow(&aws, &cfg.cluster, &task.arn, &containers, &cfg.follow.options, shutdown, out)
            .await?;
    crate::task::verdict::verdict(&followed, &watched, cfg.follow.exit_code, cfg.follow.options.timeout, out)
}
