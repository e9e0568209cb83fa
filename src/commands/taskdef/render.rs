//! `shipgate taskdef render FILE`: print what a template renders to, checked, with no AWS call.

use crate::config::TemplateSource;
use crate::error::Result;

pub fn run(source: &TemplateSource) -> Result<()> {
    let rendered = crate::taskdef::render_source(source)?;
    println!("{}", serde_json::to_string_pretty(&rendered).expect("values serialize"));
    Ok(())
}
