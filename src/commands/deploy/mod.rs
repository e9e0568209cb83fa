//! `shipgate deploy --env NAME`: seed 003's flow as one command. Render every template
//! (exit 2 before any AWS call), check the services exist, register the task definitions
//! that changed, run the migration task (master, then tenants, sharded when configured),
//! and only if every migration task succeeded roll the services out and follow each rollout
//! to a verdict. `--rollback-on-failure` puts the services back; migrations are never
//! reverted automatically.

pub mod ci;
pub mod local;
pub mod migrations;
pub mod plan;
pub mod prepare;
pub mod services;

use crate::aws::Aws;
use crate::commands::taskdef::register::register_if_changed;
use crate::config::deploy::DeployConfig;
use crate::deploy::report::{DeployRecord, TaskDefRecord};
use crate::deploy::view::ServiceView;
use crate::error::Result;
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use ci::Ci;
use migrations::Migration;
use prepare::{Prepared, Rendered};
use services::{Follow, Rolled, Target};

pub async fn run(cfg: &DeployConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let ci = Ci::new(&cfg.run.ci, out);
    ci.mask_variables(&cfg.env);
    let prepared = prepare::prepare(&cfg.env)?;
    if cfg.env.platform == crate::project::Platform::Local {
        return local::run(cfg, &prepared, &ci, shutdown, out).await;
    }
    let aws = Aws::load(cfg.env.region.as_deref()).await?;
    if cfg.dry_run {
        return plan::run(&aws, cfg, &prepared, out).await;
    }
    run_with(&aws, cfg, &prepared, &ci, shutdown, out).await
}

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
    if result.is_ok() {
        record.message = format!(
            "{} migration task{} succeeded, {} service{} rolled out",
            record.tasks.len(),
            if record.tasks.len() == 1 { "" } else { "s" },
            record.services.len(),
            if record.services.len() == 1 { "" } else { "s" }
        );
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
    let mut arns = Vec::new();
    for r in prepared.migration.iter().map(|(r, _)| r).chain(&prepared.services) {
        match register(aws, r, record, out).await {
            Ok(arn) => arns.push(arn),
            Err(e) => {
                ci.end_group("task definitions", false, e.message());
                return Err(e);
            }
        }
    }
    ci.end_group("task definitions", true, "");
    let (migration_arn, service_arns) = match prepared.migration {
        Some(_) => (Some(arns[0].clone()), &arns[1..]),
        None => (None, &arns[..]),
    };

    if let (Some((rendered, _)), Some(task), Some(td_arn)) =
        (&prepared.migration, &env.migration, &migration_arn)
    {
        let migration = Migration {
            aws,
            env,
            settings: &cfg.run,
            task,
            td_arn,
            containers: &rendered.containers,
            ci,
            shutdown,
            out,
        };
        migration
            .run(&migrations::deploy_steps(env), record)
            .await
            .map_err(|e| migrations::before_services(e, prepared.services.len()))?;
    }

    if prepared.services.is_empty() {
        return Ok(());
    }
    let follow =
        Follow { cluster: env.cluster.clone(), tick: cfg.run.follow.tick, timeout: cfg.run.service_timeout };
    let targets: Vec<(Target, ServiceView)> = prepared
        .services
        .iter()
        .zip(service_arns)
        .zip(before)
        .map(|((r, arn), view)| {
            (Target { service: r.role.clone(), task_definition: arn.clone(), desired: None }, view)
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
