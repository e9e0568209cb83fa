//! `shipgate config check --env NAME`: validate an environment offline. The keys were
//! checked when the file was read; this renders every template with the variables given
//! and reports what a deploy would work with.

use crate::config::Network;
use crate::config::deploy::EnvConfig;
use crate::deploy::{migrations, prepare};
use crate::error::Result;
use crate::output::{Event, Reporter};
use crate::project::Platform;

pub fn run(env: &EnvConfig, out: &Reporter) -> Result<()> {
    let prepared = prepare::prepare(env)?;
    let mut lines = vec![match env.platform {
        Platform::Local => format!(
            "env {} ({}): platform local (the migration container's command runs on this machine; services are skipped)",
            env.name,
            env.file.display()
        ),
        Platform::Ecs => format!(
            "env {} ({}): cluster {}{}",
            env.name,
            env.file.display(),
            env.cluster,
            env.region.as_deref().map_or(String::new(), |r| format!(" in {r}"))
        ),
    }];
    lines.push(match &env.network {
        _ if env.platform == Platform::Local => "  network: none (local)".into(),
        Network::FromService { service, .. } => format!("  network: copied from service {service}"),
        Network::Explicit(p) if p.subnets.is_empty() => "  network: none (no migration task)".into(),
        Network::Explicit(p) => format!(
            "  network: subnets {}, security groups {}, public IP {}",
            p.subnets.join(","),
            if p.security_groups.is_empty() { "(default)".into() } else { p.security_groups.join(",") },
            if p.assign_public_ip { "yes" } else { "no" }
        ),
    });
    if let Some((r, watched)) = &prepared.migration {
        lines.push(format!("  migration task: family {} (container `{watched}`)", r.family));
        for step in migrations::deploy_steps(env, true) {
            let how = if step.shards > 1 { format!("{} tasks", step.shards) } else { "1 task".into() };
            lines.push(format!("    {}: {how}", step.label));
        }
    }
    for s in &prepared.services {
        lines.push(format!("  service {}: family {}", s.role, s.family));
    }
    let count = prepared.services.len() + usize::from(prepared.migration.is_some());
    lines.push(format!("ok: {count} template{} rendered and valid", if count == 1 { "" } else { "s" }));
    out.emit(&Event::Summary {
        command: "config check",
        schema: None,
        changed: 0,
        duration_ms: 0,
        version: None,
        message: lines.join("\n"),
    });
    Ok(())
}
