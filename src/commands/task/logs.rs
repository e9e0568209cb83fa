//! `shipgate task logs ARN`: print every line a task's awslogs containers have written so far,
//! from the head of each stream, and exit. With `--task-definition` the streams come from the
//! definition's log configuration, so a task ECS no longer knows (about an hour after it
//! stopped) can still be read.

use crate::aws::{Aws, ecs};
use crate::error::Result;
use crate::output::Reporter;
use crate::task::follow;
use crate::task::view::task_id;

pub async fn run(
    task_arn: &str,
    cluster: &str,
    region: Option<&str>,
    task_definition: Option<&str>,
    out: &Reporter,
) -> Result<()> {
    let aws = Aws::load(region).await?;
    let (id, status, definition) = match task_definition {
        Some(definition) => (task_id(task_arn).to_string(), None, definition.to_string()),
        None => {
            let task = ecs::describe_task(&aws.ecs, cluster, task_arn).await?.ok_or_else(|| {
                follow::unknown_task(task_arn, cluster).hint(
                    "ECS forgets a stopped task after about an hour; its logs stay: pass --task-definition \
                     FAMILY:REV (the definition it ran) to read them",
                )
            })?;
            (task.id().to_string(), Some(task.last_status.clone()), task.task_definition_arn.clone())
        }
    };
    let (_, containers) = ecs::task_definition(&aws.ecs, &definition).await?;
    let (mut tails, prefixed) = follow::tails(&containers, &id);
    for tail in &mut tails {
        while follow::read_available(&aws, tail, prefixed, out).await {}
    }
    let lines: u64 = tails.iter().map(|t| t.lines).sum();
    let streams = tails.iter().filter(|t| t.exists()).count();
    match status {
        Some(status) => tracing::info!("{lines} lines from {streams} streams (task {status})"),
        None => tracing::info!("{lines} lines from {streams} streams (task {id}, as {definition} logs them)"),
    }
    Ok(())
}
