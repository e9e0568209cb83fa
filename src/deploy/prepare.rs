//! Everything a deploy can check offline: every template rendered with its variables and
//! checked against the ECS API, and the migration task's watched container found. A problem
//! here is exit 2 naming the shipgate.toml key, before any AWS call.

use serde_json::Value;

use crate::config::TemplateSource;
use crate::config::deploy::EnvConfig;
use crate::error::Result;
use crate::taskdef::render_source;
use crate::taskdef::{self, ContainerInfo};

/// A rendered template.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `migration` or the service name.
    pub role: String,
    pub family: String,
    pub rendered: Value,
    pub containers: Vec<ContainerInfo>,
}

/// What a deploy will register and run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub migration: Option<(Rendered, String)>,
    pub services: Vec<Rendered>,
}

fn render(key: &str, role: &str, source: &TemplateSource) -> Result<Rendered> {
    let rendered = render_source(source).map_err(|e| e.map_message(|m| format!("{key}: {m}")))?;
    Ok(Rendered {
        role: role.to_string(),
        family: taskdef::family(&rendered).to_string(),
        containers: taskdef::containers(&rendered),
        rendered,
    })
}

/// Render every template of the environment; the migration task comes with its watched container.
pub fn prepare(env: &EnvConfig) -> Result<Prepared> {
    let key = |k: &str| format!("{}: env.{}.{k}", env.file.display(), env.name);
    let migration = match &env.migration {
        Some(m) => {
            let r = render(&key("migration_task.template"), "migration", &m.template)?;
            let watched = crate::task::verdict::watched_container(
                &r.containers,
                m.container.as_deref(),
                &m.template.path.display().to_string(),
            )
            .map_err(|e| e.map_message(|m| format!("{}: {m}", key("migration_task.container"))))?;
            Some((r, watched))
        }
        None => None,
    };
    let services = env
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| render(&key(&format!("services[{i}].template")), &s.name, &s.template))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared { migration, services })
}
