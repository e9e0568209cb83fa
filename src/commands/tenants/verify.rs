//! `shipgate tenants verify --at-least V`: exit 0 only if every tenant has every tenant
//! migration up to V — the gate an application deploy waits on.

use crate::config::FleetConfig;
use crate::error::{Error, Result};
use crate::fleet::survey::survey;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, at_least: i64, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let survey = survey(cfg, shutdown).await?;
    if survey.set.get(at_least).is_none() {
        return Err(Error::input(format!(
            "--at-least {at_least} is not the version of any migration in {}",
            survey.set.dir.display()
        ))
        .hint("`shipgate tenants status` shows the latest version"));
    }
    let mut short: Vec<String> = survey
        .views
        .iter()
        .filter_map(|v| {
            let why = if v.schema_exists {
                v.standing.short_of(at_least)?
            } else {
                "its schema does not exist".into()
            };
            Some(format!("  - {}: {why}", v.tenant))
        })
        .collect();
    short.extend(survey.invalid.iter().map(|(_, reason)| format!("  - (not a valid schema name) {reason}")));
    let total = survey.views.len() + survey.invalid.len();
    if !short.is_empty() {
        let shown = short.len().min(50);
        let more = if short.len() > shown {
            format!("\n  ... and {} more", short.len() - shown)
        } else {
            String::new()
        };
        return Err(Error::failed(format!(
            "{} of {total} tenants are not at version {at_least} or later ({}):\n{}{more}",
            short.len(),
            survey.scope,
            short[..shown].join("\n")
        ))
        .hint(
            "`shipgate tenants up` applies what is pending; `shipgate tenants status` shows every tenant",
        ));
    }
    out.emit(&Event::Summary {
        command: "verify",
        schema: None,
        changed: 0,
        duration_ms: 0,
        version: Some(at_least),
        message: format!("all {total} tenants are at version {at_least} or later ({})", survey.scope),
    });
    Ok(())
}
