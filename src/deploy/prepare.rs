//! Everything a deploy can check offline: every template rendered with its variables and
//! checked against the ECS API, the migration task's watched container found, and the
//! migrations linted. A problem here is exit 2 naming the shipgate.toml key (a lint error:
//! exit 1 on the file's line), before any AWS call.

use serde_json::Value;

use crate::config::TemplateSource;
use crate::config::deploy::EnvConfig;
use crate::deploy::ci::Ci;
use crate::error::Result;
use crate::migrate::{lint, source};
use crate::output::{Event, Reporter};
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

/// Lint the project's migration sets on this machine, before anything changes: each finding
/// is reported (an annotation on its line under GitHub Actions, a table in the step summary),
/// and an error finding fails the deploy. Without a database the linter cannot know which
/// migrations are already applied, so each file is its own run; the runner lints again, with
/// the database, what it is about to apply.
///
/// A dry run also prints the statements that block writes (the lock plan's dangerous part);
/// `--no-lint` skips all of it, and says so.
pub fn lint(env: &EnvConfig, lint_on: bool, dry_run: bool, ci: &Ci, out: &Reporter) -> Result<()> {
    let Some((sets, settings)) = &env.lint else {
        return Ok(());
    };
    if !lint_on {
        tracing::warn!(
            "the migrations are not linted (--no-lint / SHIPGATE_LINT=off): not here, and not by the migration \
             tasks (SHIPGATE_LINT=off is passed to them)"
        );
        return Ok(());
    }
    let mut report = lint::Report::default();
    for set in sets {
        let loaded = source::load(&set.dir, &set.read)?;
        if dry_run {
            for statement in lint::blocking_plan(&loaded, settings) {
                out.emit(&Event::StatementLock(statement));
            }
        }
        report.absorb(lint::lint_set(&loaded, settings)?);
    }
    for f in &report.findings {
        out.emit(&Event::Finding(f.clone()));
        ci.workflow(&lint::annotation(f));
    }
    if !report.findings.is_empty() {
        ci.step_summary(&lint::step_summary(
            &format!("shipgate deploy {}: migration lint", env.name),
            &report,
        ));
    }
    tracing::info!("{}", lint::summary_message(&report));
    report.refusal(
        "refused by the migration lint before any change",
        "; no task definition was registered, no task was started, no service was updated",
        "; migrations applied before the lint was adopted can be left out with [lint] baseline = VERSION",
    )
}
