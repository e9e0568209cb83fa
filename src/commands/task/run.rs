//! `shipgate task run`: resolve the task definition (registering a template only when it
//! changed), run the task to its end (`task::run`), and exit with its result.

use crate::aws::Aws;
use crate::aws::ecs;
use crate::config::{RunConfig, TaskDefinitionRef};
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use crate::task::run::run_followed;
use crate::taskdef::{self, register::register_if_changed, render_source};

pub async fn run(cfg: &RunConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    // Render first: a bad template is exit 2 before any AWS call.
    let rendered = match &cfg.task_definition {
        TaskDefinitionRef::Template(source) => Some(render_source(source)?),
        TaskDefinitionRef::Registered(_) => None,
    };
    let aws = Aws::load(cfg.region.as_deref()).await?.with_log_reads(cfg.follow.options.log_reads_per_second);
    let (td_arn, containers) = match (&cfg.task_definition, rendered) {
        (TaskDefinitionRef::Template(_), Some(rendered)) => {
            let registered = register_if_changed(&aws, &rendered).await?;
            match registered.new {
                true => tracing::info!("registered {}", registered.arn),
                false => tracing::info!("task definition unchanged: reusing {}", registered.arn),
            }
            if out.format() == crate::cli::OutputFormat::Json {
                out.emit(&registered.event());
            }
            (registered.arn, taskdef::containers(&rendered))
        }
        (TaskDefinitionRef::Registered(id), _) => ecs::task_definition(&aws.ecs, id).await?,
        (TaskDefinitionRef::Template(_), None) => unreachable!("templates are rendered above"),
    };
    run_followed(&aws, cfg, &td_arn, &containers, shutdown, out).await.result
}
