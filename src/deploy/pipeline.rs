//! The deploy pipeline once templates are rendered and AWS is configured: check the services
//! exist, register the task definitions that changed, run the migration steps (master, then
//! tenants, sharded when configured), and only if every migration task succeeded roll the
//! services out and follow each rollout to a verdict. `--rollback-on-failure` puts the
//! services back; migrations are never reverted automatically.

use std::collections::BTreeMap;

use crate::aws::Aws;
use crate::config::deploy::DeployConfig;
use crate::deploy::ci::Ci;
use crate::deploy::migrations::{self, Migration};
use crate::deploy::prepare::{Prepared, Rendered};
use crate::deploy::report::{DeployRecord, TaskDefRecord};
use crate::deploy::services::{self, Follow, Rolled, Target};
use crate::deploy::view::ServiceView;
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use crate::taskdef::register::register_if_changed;

/// The deploy once templates are rendered and AWS is configured (the part mock tests drive).
pub async fn run_with(
    aws: &Aws,
    cfg: &DeployConfig,
    prepared: &Prepared,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let mut record = DeployRecord {
        command: "deploy",
        env: cfg.env.name.clone(),
        cluster: cfg.env.cluster.clone(),
        region: aws.region.clone(),
        ..DeployRecord::default()
    };
    let result = pipeline(aws, cfg, prepared, &mut record, ci, shutdown, out).await;
    let mut pruned = 0;
    if let (Ok(()), Some(keep)) = (&result, cfg.env.keep_revisions) {
        pruned = crate::deploy::revisions::prune(aws, &record, keep).await.len();
    }
    if result.is_ok() {
        record.message = format!(
            "{} migration task{} succeeded, {} service{} rolled out{}",
            record.tasks.len(),
            if record.tasks.len() == 1 { "" } else { "s" },
            record.services.len(),
            if record.services.len() == 1 { "" } else { "s" },
            migrations::post_note(&record)
        );
        if pruned > 0 {
            record.message.push_str(&format!(
                "; {pruned} old task definition revision{} deregistered",
                if pruned == 1 { "" } else { "s" }
            ));
        }
    }
    ci.finish(&mut record, &result);
    result
}

async fn pipeline(
    aws: &Aws,
    cfg: &DeployConfig,
    prepared: &Prepared,
    record: &mut DeployRecord,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let env = &cfg.env;
    // A missing service is found now, not after the migrations changed the schema.
    let names: Vec<String> = prepared.services.iter().map(|s| s.role.clone()).collect();
    let before = services::describe_all(aws, &env.cluster, &names).await?;

    ci.group("task definitions");
    let registered = register_all(aws, prepared, record, out).await;
    ci.end_group(
        "task definitions",
        registered.is_ok(),
        registered.as_ref().err().map_or("", |e| e.message()),
    );
    let (migration_arn, service_arns) = registered?;

    let migration = match (&prepared.migration, &env.migration, &migration_arn) {
        (Some((rendered, _)), Some(task), Some(td_arn)) => Some(Migration {
            aws,
            env,
            settings: &cfg.run,
            task,
            td_arn,
            containers: &rendered.containers,
            ci,
            shutdown,
            out,
        }),
        _ => None,
    };
    let mut post = Vec::new();
    if let Some(migration) = &migration {
        let steps = migrations::deploy_steps(env, cfg.lint);
        let heard = migration
            .run(&steps, record)
            .await
            .map_err(|e| migrations::before_services(e, prepared.services.len()))?;
        post = migrations::post_steps(&steps, &heard);
    }
    let rolled_out = roll_out(aws, cfg, prepared, &service_arns, before, record, ci, shutdown, out).await;
    let Some(migration) = &migration else { return rolled_out };
    if let Err(e) = rolled_out {
        migrations::post_not_run(&post, "the rollout did not complete", record);
        return Err(e);
    }
    migrations::run_post(migration, post, cfg.skip_post, &cfg.run, ci, out, record).await
}

/// Roll every service onto its new task definition and follow each to a verdict; on a
/// failure, `--rollback-on-failure` puts them back.
#[allow(clippy::too_many_arguments)]
async fn roll_out(
    aws: &Aws,
    cfg: &DeployConfig,
    prepared: &Prepared,
    service_arns: &BTreeMap<String, String>,
    before: Vec<ServiceView>,
    record: &mut DeployRecord,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let env = &cfg.env;
    if prepared.services.is_empty() {
        return Ok(());
    }
    let follow =
        Follow { cluster: env.cluster.clone(), tick: cfg.run.follow.tick, timeout: cfg.run.service_timeout };
    let targets: Vec<(Target, ServiceView)> = prepared
        .services
        .iter()
        .zip(before)
        .map(|(r, view)| {
            let task_definition = service_arns[&r.role].clone();
            let target = Target {
                service: r.role.clone(),
                task_definition,
                desired: None,
                force: cfg.forces(&r.role),
                mutable_images: crate::taskdef::mutable_images(&r.rendered),
            };
            (target, view)
        })
        .collect();
    ci.group("services");
    let mut rolled = services::roll_out_all(aws, &follow, &targets, cfg.max_parallel, shutdown, out).await;
    record.services = rolled.iter().map(|r| r.record.clone()).collect();
    let result = services::outcome(&mut rolled, "the rollout");
    ci.end_group("services", result.is_ok(), result.as_ref().err().map_or("", |e| e.message()));
    if result.is_err() && cfg.rollback_on_failure && shutdown.requested().is_none() {
        roll_back(aws, cfg, &follow, &targets, &rolled, record, ci, shutdown, out).await;
    }
    result
}

/// Register every template that changed: the migration task's ARN, and each service's by name.
async fn register_all(
    aws: &Aws,
    prepared: &Prepared,
    record: &mut DeployRecord,
    out: &Reporter,
) -> Result<(Option<String>, BTreeMap<String, String>)> {
    let migration = match &prepared.migration {
        Some((r, _)) => Some(register(aws, r, record, out).await?),
        None => None,
    };
    let mut services = BTreeMap::new();
    for r in &prepared.services {
        services.insert(r.role.clone(), register(aws, r, record, out).await?);
    }
    Ok((migration, services))
}

/// Register a rendered template unless the family's latest revision is the same.
async fn register(aws: &Aws, r: &Rendered, record: &mut DeployRecord, out: &Reporter) -> Result<String> {
    let registered = register_if_changed(aws, &r.rendered).await?;
    match registered.new {
        true => tracing::info!("{}: registered {}", r.role, registered.arn),
        false => tracing::info!("{}: unchanged, reusing {}", r.role, registered.arn),
    }
    out.emit(&registered.event());
    record.task_definitions.push(TaskDefRecord {
        role: r.role.clone(),
        family: registered.family.clone(),
        task_definition_arn: registered.arn.clone(),
        new: registered.new,
    });
    Ok(registered.arn)
}

/// `--rollback-on-failure`: every service this deploy updated goes back to the task
/// definition it ran before (one the circuit breaker already moved back is followed to the
/// end of that rollback).
#[allow(clippy::too_many_arguments)]
async fn roll_back(
    aws: &Aws,
    cfg: &DeployConfig,
    follow: &Follow,
    targets: &[(Target, ServiceView)],
    rolled: &[Rolled],
    record: &mut DeployRecord,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) {
    // Each goes back to what it ran before this deploy, from wherever it is now.
    let back: Vec<Target> = targets
        .iter()
        .zip(rolled)
        .filter(|(_, r)| r.updated)
        .map(|((target, before), _)| Target {
            service: target.service.clone(),
            task_definition: before.task_definition.clone(),
            desired: None,
            force: false,
            mutable_images: Vec::new(),
        })
        .collect();
    if back.is_empty() {
        return;
    }
    ci.group("rollback");
    tracing::warn!(
        "putting {} service{} back on the previous task definition (--rollback-on-failure)",
        back.len(),
        if back.len() == 1 { "" } else { "s" }
    );
    let current = match services::with_current(aws, &follow.cluster, back).await {
        Ok(current) => current,
        Err(e) => {
            ci.end_group("rollback", false, e.message());
            tracing::error!("cannot roll back: {e}");
            return;
        }
    };
    let mut done = services::roll_out_all(aws, follow, &current, cfg.max_parallel, shutdown, out).await;
    record.rollbacks = done.iter().map(|r| r.record.clone()).collect();
    let result = services::outcome(&mut done, "the rollback");
    ci.end_group("rollback", result.is_ok(), result.as_ref().err().map_or("", |e| e.message()));
    if let Err(e) = result {
        tracing::error!("{e}");
    }
}
