//! `shipgate taskdef register FILE`: register a rendered template unless the family's latest
//! ACTIVE revision is the same once both are normalized; then that revision is reused.

use crate::aws::Aws;
use crate::config::TemplateSource;
use crate::error::Result;
use crate::output::Reporter;
use crate::taskdef::register::register_if_changed;

pub async fn run(source: &TemplateSource, region: Option<&str>, out: &Reporter) -> Result<()> {
    let rendered = crate::taskdef::render_source(source)?;
    let aws = Aws::load(region).await?;
    let registered = register_if_changed(&aws, &rendered).await?;
    out.emit(&registered.event());
    Ok(())
}
