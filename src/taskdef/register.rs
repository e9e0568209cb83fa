//! Registering a rendered task definition only when it changed: the family's latest ACTIVE
//! revision is reused when it equals the rendered one once both are normalized.

use serde_json::Value;

use crate::aws::{Aws, ecs};
use crate::error::Result;
use crate::output::Event;
use crate::taskdef::{self, normalize};

/// The revision a template resolved to.
#[derive(Debug, Clone)]
pub struct Registered {
    pub family: String,
    pub arn: String,
    pub new: bool,
    /// What changed since the previous revision (none for a family's first revision).
    pub diff: Option<String>,
}

impl Registered {
    pub fn event(&self) -> Event {
        Event::Registered {
            family: self.family.clone(),
            task_definition_arn: self.arn.clone(),
            new: self.new,
            diff: self.diff.clone(),
        }
    }
}

/// Reuse the latest revision when it equals `rendered`, else register a new one.
pub async fn register_if_changed(aws: &Aws, rendered: &Value) -> Result<Registered> {
    let family = taskdef::family(rendered).to_string();
    let diff = match ecs::latest_revision(&aws.ecs, &family).await? {
        Some((arn, registered)) => {
            let name = arn.rsplit('/').next().unwrap_or(&arn).to_string();
            let diff = normalize::diff(&registered, rendered, &name);
            if diff.is_empty() {
                return Ok(Registered { family, arn, new: false, diff: None });
            }
            Some(diff)
        }
        None => None,
    };
    let arn = ecs::register(&aws.ecs, rendered).await?;
    Ok(Registered { family, arn, new: true, diff })
}
