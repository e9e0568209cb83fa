//! `shipgate deploy --dry-run`: what the deploy would do, found with read-only calls
//! (`DescribeTaskDefinition`, `DescribeServices`) and nothing else.

use super::migrations::Step;
use super::prepare::Prepared;
use crate::aws::{Aws, ecs};
use crate::config::Network;
use crate::config::deploy::DeployConfig;
use crate::deploy::view::revision_name;
use crate::error::Result;
use crate::output::{Event, Reporter};
use crate::taskdef::normalize;

pub async fn run(aws: &Aws, cfg: &DeployConfig, prepared: &Prepared, out: &Reporter) -> Result<()> {
    let env = &cfg.env;
    let names: Vec<String> = prepared.services.iter().map(|s| s.role.clone()).collect();
    let services = super::services::describe_all(aws, &env.cluster, &names).await?;
    if let (Network::FromService { service, .. }, Some(_)) = (&env.network, &prepared.migration) {
        ecs::service_placement(&aws.ecs, &env.cluster, service).await?;
    }
    // What each template resolves to: the revision reused, or "family (new revision)".
    let mut resolved = Vec::new();
    let mut changes = 0;
    for r in prepared.migration.iter().map(|(r, _)| r).chain(&prepared.services) {
        let (action, target, detail) = match ecs::latest_revision(&aws.ecs, &r.family).await? {
            Some((arn, registered)) => {
                let name = revision_name(&arn).to_string();
                let diff = normalize::diff(&registered, &r.rendered, &name);
                if diff.is_empty() {
                    ("reuse", arn, None)
                } else {
                    let next =
                        name.rsplit_once(':').and_then(|(_, n)| n.parse::<u32>().ok()).map_or(0, |n| n + 1);
                    ("register", format!("{}:{next}", r.family), Some(diff))
                }
            }
            None => ("register", format!("{}:1", r.family), None),
        };
        changes += usize::from(action == "register");
        out.emit(&Event::Planned {
            action,
            target: format!("{} ({})", revision_name(&target), r.role),
            detail,
        });
        resolved.push(target);
    }
    let steps = super::migrations::deploy_steps(env, cfg.lint);
    let run_events = |steps: &[Step], action: &'static str, when: &str| {
        let Some((_, watched)) = &prepared.migration else { return };
        for step in steps {
            for task in super::migrations::shard_tasks(step, &cfg.run.started_by) {
                let (label, vars) = (task.label, task.env);
                let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.emit(&Event::Planned {
                    action,
                    target: format!(
                        "{when}{label}: {} in cluster {} (container `{watched}`, {})",
                        revision_name(&resolved[0]),
                        env.cluster,
                        vars.join(" ")
                    ),
                    detail: None,
                });
            }
        }
    };
    run_events(&steps, "run", "");
    let offset = usize::from(prepared.migration.is_some());
    for (i, view) in services.iter().enumerate() {
        let target = &resolved[offset + i];
        let unchanged = revision_name(&view.task_definition) == revision_name(target);
        let forced = unchanged && cfg.forces(&view.name);
        let (action, text) = if forced {
            ("update", format!("service {}: new deployment on {} (forced)", view.name, revision_name(target)))
        } else if unchanged {
            ("unchanged", format!("service {} stays on {}", view.name, revision_name(target)))
        } else {
            (
                "update",
                format!(
                    "service {}: {} -> {}",
                    view.name,
                    revision_name(&view.task_definition),
                    revision_name(target)
                ),
            )
        };
        changes += usize::from(!unchanged || forced);
        out.emit(&Event::Planned { action, target: text, detail: None });
    }
    let post = super::migrations::possible_post_steps(&steps);
    match cfg.skip_post {
        false => {
            run_events(&post, "run", "after the rollout, if the pre task reports post migrations waiting: ")
        }
        true => run_events(&post, "skip", "--skip-post: "),
    }
    out.emit(&Event::Summary {
        command: "deploy --dry-run",
        schema: None,
        changed: changes,
        duration_ms: 0,
        version: None,
        message: format!("dry run for env {}: nothing was registered, run or updated", env.name),
    });
    Ok(())
}
