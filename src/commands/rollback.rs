//! `shipgate rollback --env NAME`: the emergency path teams script by hand, as one command.
//! Optionally scale the services to zero (so no old code writes while the schema changes under it),
//! revert migrations with the latest registered migration task (`MIGRATION_TYPE=rollback-*`,
//! tenants first), then put the services on an earlier revision (and their old desired
//! counts). It asks first on a terminal; CI passes `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use crate::aws::{Aws, ecs};
use crate::config::TemplateSource;
use crate::config::deploy::{RevisionTarget, RollbackConfig};
use crate::deploy::ci::Ci;
use crate::deploy::migrations::{self, Migration};
use crate::deploy::report::DeployRecord;
use crate::deploy::services::{self, Follow, Target};
use crate::deploy::view::{ServiceView, revision_name};
use crate::error::{Error, Result};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;
use crate::task::view::family_of;
use crate::taskdef::{self, template};

pub async fn run(cfg: &RollbackConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let ci = Ci::new(&cfg.run.ci, out);
    ci.mask_variables(&cfg.env);
    let env = &cfg.env;
    let migration = env.migration.as_ref().expect("validated: rollback needs a migration task");
    let migration_family = template_family(&migration.template)?;
    let aws = Aws::load(env.region.as_deref()).await?.with_log_reads(cfg.run.follow.log_reads_per_second);

    let names: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
    let before = services::describe_all(&aws, &env.cluster, &names).await?;
    let mut targets = Vec::new();
    for view in &before {
        let td = target_revision(&aws, view, cfg.target).await?;
        let desired = cfg.stop_services.then_some(view.desired);
        targets.push((
            Target {
                service: view.name.clone(),
                task_definition: td,
                desired,
                force: false,
                mutable_images: Vec::new(),
            },
            view.clone(),
        ));
    }
    let (td_arn, containers) = ecs::task_definition(&aws.ecs, &migration_family).await?;
    let steps = migrations::rollback_steps(env, &cfg.to);

    let mut plan = vec![format!("rollback of env {} in cluster {}:", env.name, env.cluster)];
    if cfg.stop_services {
        for (t, v) in &targets {
            plan.push(format!("  stop service {} ({} running → 0)", t.service, v.desired));
        }
    }
    for step in &steps {
        let vars: Vec<String> = step.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let shards = if step.shards > 1 { format!(" as {} tasks", step.shards) } else { String::new() };
        plan.push(format!("  run {}{shards}: {}", revision_name(&td_arn), vars.join(" ")));
    }
    for (t, v) in &targets {
        plan.push(format!(
            "  service {}: {} → {}{}",
            t.service,
            revision_name(&v.task_definition),
            revision_name(&t.task_definition),
            t.desired.map_or(String::new(), |d| format!(", back to {d} running"))
        ));
    }
    let plan = plan.join("\n");
    out.emit(&Event::Planned { action: "rollback", target: plan.clone(), detail: None });
    confirm(cfg.yes, &plan)?;

    let mut record = DeployRecord {
        command: "rollback",
        env: env.name.clone(),
        cluster: env.cluster.clone(),
        region: aws.region.clone(),
        ..DeployRecord::default()
    };
    let follow =
        Follow { cluster: env.cluster.clone(), tick: cfg.run.follow.tick, timeout: cfg.run.service_timeout };
    let result = async {
        if cfg.stop_services {
            stop_services(&aws, &follow, &targets, &ci, shutdown).await?;
        }
        let migration = Migration {
            aws: &aws,
            env,
            settings: &cfg.run,
            task: migration,
            td_arn: &td_arn,
            containers: &containers,
            ci: &ci,
            shutdown,
            out,
        };
        migration.run(&steps, &mut record).await.map_err(|e| {
            if cfg.stop_services {
                e.map_message(|m| format!("{m}; the services are still scaled to zero"))
                    .hint("fix the rollback and run it again, or restore them with `aws ecs update-service --desired-count`")
            } else {
                e
            }
        })?;
        // The services' current state, now that they may have been scaled down.
        let now = services::with_current(&aws, &env.cluster, targets.iter().map(|(t, _)| t.clone()).collect()).await?;
        ci.group("services");
        let mut rolled = services::roll_out_all(&aws, &follow, &now, now.len(), shutdown, out).await;
        record.services = rolled.iter().map(|r| r.record.clone()).collect();
        let result = services::outcome(&mut rolled, "putting the services back");
        ci.end_group("services", result.is_ok(), result.as_ref().err().map_or("", |e| e.message()));
        result
    }
    .await;
    if result.is_ok() {
        record.message = format!(
            "migrations reverted ({}), {} service{} on the earlier revision",
            match cfg.to {
                crate::migrate::plan::DownTo::Steps(n) =>
                    format!("{n} step{}", if n == 1 { "" } else { "s" }),
                crate::migrate::plan::DownTo::Version(v) => format!("to version {v}"),
                crate::migrate::plan::DownTo::LastRun => "the last run".into(),
            },
            record.services.len(),
            if record.services.len() == 1 { "" } else { "s" }
        );
    }
    ci.finish(&mut record, &result);
    result
}

/// The family a template registers, read without needing its variables.
fn template_family(source: &TemplateSource) -> Result<String> {
    let text = std::fs::read_to_string(&source.path)
        .map_err(|e| Error::input(format!("cannot read template {}: {e}", source.path.display())))?;
    // Every variable stands in as "0", which is valid inside and outside JSON strings.
    let env = |_: &str| Some("0".to_string());
    let rendered = taskdef::render(
        &text,
        &source.path.display().to_string(),
        &template::Vars { explicit: &source.vars, env: &env },
    )?;
    Ok(taskdef::family(&rendered).to_string())
}

/// The revision a service goes back to: `--to-revision N` of its family, or the ACTIVE
/// revision before the one it runs.
async fn target_revision(aws: &Aws, view: &ServiceView, target: RevisionTarget) -> Result<String> {
    let family = family_of(&view.task_definition).to_string();
    let revisions = ecs::revisions(&aws.ecs, &family).await?;
    let number = |arn: &str| arn.rsplit(':').next().and_then(|r| r.parse::<u32>().ok());
    let chosen = match target {
        RevisionTarget::Revision(n) => revisions.iter().find(|a| number(a) == Some(n)),
        RevisionTarget::Previous => {
            let current = number(&view.task_definition).unwrap_or(u32::MAX);
            revisions.iter().find(|a| number(a).is_some_and(|n| n < current))
        }
    };
    chosen.cloned().ok_or_else(|| {
        let what = match target {
            RevisionTarget::Revision(n) => format!("{family}:{n} is not an ACTIVE revision"),
            RevisionTarget::Previous => {
                format!("{family} has no ACTIVE revision before {}", revision_name(&view.task_definition))
            }
        };
        Error::input(format!("service {}: {what}", view.name)).hint(format!(
            "the ACTIVE revisions are: {}",
            revisions.iter().map(|a| revision_name(a)).collect::<Vec<_>>().join(", ")
        ))
    })
}

fn confirm(yes: bool, plan: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::input("rollback changes production and needs a confirmation")
            .hint("pass --yes to run it without asking"));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{plan}\nThis may lose data written since the migrations ran. Proceed? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(Error::input("rollback cancelled; nothing was changed")),
    }
}

/// Scale every service to zero and wait until none of its tasks runs.
async fn stop_services(
    aws: &Aws,
    follow: &Follow,
    targets: &[(Target, ServiceView)],
    ci: &Ci,
    shutdown: &Shutdown,
) -> Result<()> {
    ci.group("stop services");
    let started = Instant::now();
    for (t, _) in targets {
        ecs::update_service(&aws.ecs, &follow.cluster, &t.service, None, Some(0), false).await?;
        tracing::info!("service {}: desired count 0", t.service);
    }
    for (t, _) in targets {
        loop {
            let view =
                ecs::describe_service(&aws.ecs, &follow.cluster, &t.service).await.map_err(Error::from)?;
            let running = view.as_ref().map_or(0, |v| v.running);
            if running == 0 {
                tracing::info!("service {}: no task running", t.service);
                break;
            }
            if started.elapsed() >= follow.timeout {
                ci.end_group("stop services", false, "");
                return Err(Error::failed(format!(
                    "service {} still has {running} task(s) running after {}",
                    t.service,
                    crate::duration::human(follow.timeout)
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(follow.tick) => {}
                signal = shutdown.wait() => return Err(Error::interrupted(signal, format!("{} received while stopping the services", signal.name()))),
            }
        }
    }
    ci.end_group("stop services", true, "");
    Ok(())
}
