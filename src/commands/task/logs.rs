//! `shipgate task logs ARN`: print every line a task's awslogs containers have written so far,
//! from the head of each stream, and exit.

use crate::aws::{Aws, ecs};
use crate::error::Result;
use crate::output::Reporter;
use crate::task::follow;

pub async fn run(task_arn: &str, cluster: &str, region: Option<&str>, out: &Reporter) -> Result<()> {
    let aws = Aws::load(region).await?;
    let task = ecs::describe_task(&aws.ecs, cluster, task_arn)
        .await?
        .ok_or_else(|| follow::unknown_task(task_arn, cluster))?;
    let (_, containers) = ecs::task_definition(&aws.ecs, &task.task_definition_arn).await?;
    let (mut tails, prefixed) = follow::tails(&containers, task.id());
    for tail in &mut tails {
        while follow::read_available(&aws, tail, prefixed, out).await {}
    }
    let lines: u64 = tails.iter().map(|t| t.lines).sum();
    let streams = tails.iter().filter(|t| t.exists()).count();
    tracing::info!("{lines} lines from {streams} streams (task {})", task.last_status);
    Ok(())
}
