//! `shipgate taskdef …`: render templates and register task definitions only when they changed.

pub mod register;
pub mod render;

use serde_json::Value;

use crate::config::TemplateSource;
use crate::error::Result;
use crate::taskdef::{self, template::Vars};

/// Render a template with its `--var`s, falling back to the process environment and then to
/// the environment's defaults.
pub fn render_template(source: &TemplateSource) -> Result<Value> {
    let env = |name: &str| std::env::var(name).ok().or_else(|| source.defaults.get(name).cloned());
    taskdef::render_file(&source.path, &Vars { explicit: &source.vars, env: &env })
}
