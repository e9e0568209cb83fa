//! Task definitions: rendering a template file, checking it against the ECS API, comparing it
//! with a registered revision, and reading what the follower needs from one (its containers
//! and where each one logs). Everything here is pure but `register` (reuse the latest
//! revision or register a new one), whose calls `aws::ecs` makes.

pub mod normalize;
pub mod register;
pub mod schema;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Render a template with its `--var`s, falling back to the process environment and then to
/// the environment's defaults.
pub fn render_source(source: &crate::config::TemplateSource) -> Result<Value> {
    let env = |name: &str| std::env::var(name).ok().or_else(|| source.defaults.get(name).cloned());
    render_file(&source.path, &template::Vars { explicit: &source.vars, env: &env })
}

/// Read `--vars-file` style text: `NAME=VALUE` lines, `#` comments and blank lines ignored.
pub fn parse_vars_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read vars file {}: {e}", path.display())))?;
    let mut vars = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = template::parse_assignment(line)
            .map_err(|e| Error::input(format!("{}:{}: {e}", path.display(), i + 1)))?;
        vars.insert(name, value);
    }
    Ok(vars)
}

/// Render a template file and check it is a valid `RegisterTaskDefinition` request.
pub fn render_file(path: &Path, vars: &template::Vars) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read template {}: {e}", path.display())))?;
    render(&text, &path.display().to_string(), vars)
}

/// Render template text; `name` is how errors refer to it.
pub fn render(text: &str, name: &str, vars: &template::Vars) -> Result<Value> {
    let rendered = template::substitute(text, vars).map_err(|problems| problems_error(name, &problems))?;
    schema::parse(&rendered).map_err(|e| {
        Error::input(format!("{name}:{}:{}: {}", e.line, e.column, e.message))
            .hint("templates are RegisterTaskDefinition request JSON, as `aws ecs register-task-definition --cli-input-json` takes")
    })
}

/// One error for every problem of a template: each variable that is not set named once, with
/// the lines that use it, and a pointer at the project's vars files when there are any.
fn problems_error(name: &str, problems: &[template::Problem]) -> Error {
    let mut unset: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut lines = Vec::new();
    for p in problems {
        match &p.unset {
            Some(var) => match unset.iter_mut().find(|(v, _)| v == var) {
                Some((_, at)) => at.push(p.line),
                None => unset.push((var, vec![p.line])),
            },
            None => lines.push(format!("{name}:{}: {}", p.line, p.message)),
        }
    }
    if !unset.is_empty() {
        let list: Vec<String> = unset
            .iter()
            .map(|(var, at)| {
                let at: Vec<String> = at.iter().map(usize::to_string).collect();
                format!("{var} (line{} {})", if at.len() == 1 { "" } else { "s" }, at.join(", "))
            })
            .collect();
        lines.insert(
            0,
            format!(
                "{name}: {} not set: {}",
                if unset.len() == 1 { "a template variable is" } else { "template variables are" },
                list.join(", ")
            ),
        );
    }
    let error = Error::input(lines.join("\n"));
    if unset.is_empty() {
        return error;
    }
    let files = vars_files_near(Path::new(name));
    let also = match files.as_slice() {
        [] => String::new(),
        [one] => format!(" (this project has {one})"),
        many => format!(" (this project has {})", many.join(", ")),
    };
    error.hint(format!("pass them with --var NAME=VALUE or --vars-file FILE{also}, export them, or write ${{NAME:-default}} in the template"))
}

/// The `*.vars` files beside a template, as the user would type them.
fn vars_files_near(template: &Path) -> Vec<String> {
    let Some(dir) = template.parent() else { return Vec::new() };
    let listed = if dir.as_os_str().is_empty() { std::fs::read_dir(".") } else { std::fs::read_dir(dir) };
    let mut found: Vec<String> = listed
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vars") && p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    found.sort();
    found
}

/// How one container's output reaches us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDriver {
    /// The awslogs driver: we can read the stream.
    AwsLogs { group: String, region: Option<String>, prefix: Option<String>, non_blocking: bool },
    /// FireLens, splunk, ...: the lines go somewhere we cannot read.
    Other(String),
    /// No log configuration: the output is discarded.
    None,
}

impl LogDriver {
    /// From a container's `logConfiguration`: its driver and a lookup of its options.
    pub fn from_config(driver: Option<&str>, option: impl Fn(&str) -> Option<String>) -> LogDriver {
        match driver {
            Some("awslogs") => LogDriver::AwsLogs {
                group: option("awslogs-group").unwrap_or_default(),
                region: option("awslogs-region"),
                prefix: option("awslogs-stream-prefix"),
                // Since 2025-06-25 ECS defaults to non-blocking unless told otherwise.
                non_blocking: option("mode").is_none_or(|m| m != "blocking"),
            },
            Some(other) => LogDriver::Other(other.to_string()),
            None => LogDriver::None,
        }
    }
}

/// What the follower needs to know about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub essential: bool,
    pub log: LogDriver,
}

/// The containers of a task definition (rendered or described), in definition order.
pub fn containers(td: &Value) -> Vec<ContainerInfo> {
    let Some(list) = td.get("containerDefinitions").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|c| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            let log = match c.get("logConfiguration") {
                None | Some(Value::Null) => LogDriver::None,
                Some(conf) => LogDriver::from_config(conf.get("logDriver").and_then(Value::as_str), |k| {
                    text(conf.get("options").and_then(|o| o.get(k)))
                }),
            };
            ContainerInfo {
                name: text(c.get("name")).unwrap_or_default(),
                essential: c.get("essential").and_then(Value::as_bool).unwrap_or(true),
                log,
            }
        })
        .collect()
}

/// The container a run watches by default: the only essential one.
pub fn default_container(containers: &[ContainerInfo]) -> std::result::Result<String, String> {
    let essential: Vec<&str> = containers.iter().filter(|c| c.essential).map(|c| c.name.as_str()).collect();
    match essential.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err("the task definition has no essential container".into()),
        many => Err(format!(
            "the task definition has {} essential containers ({}); choose one with --container",
            many.len(),
            many.join(", ")
        )),
    }
}

/// `family` of a rendered template.
/// The container images of a task definition named by a tag (or by nothing, which is
/// `latest`), not by a digest (`@sha256:…`): the same definition may run another image
/// tomorrow.
pub fn mutable_images(td: &Value) -> Vec<String> {
    td["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .filter(|image| !image.contains("@sha256:"))
        .map(str::to_string)
        .collect()
}

pub fn family(td: &Value) -> &str {
    td.get("family").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_named_by_tag_are_mutable_and_by_digest_are_not() {
        let digest = "123.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["app:latest"], vec!["app:latest"]),
            (vec!["app"], vec!["app"]),
            (vec![digest], vec![]),
            (vec!["registry:5000/app:1.2", digest], vec!["registry:5000/app:1.2"]),
            (vec![], vec![]),
        ];
        for (images, mutable) in cases {
            let td = serde_json::json!({
                "containerDefinitions": images.iter().map(|i| serde_json::json!({"name": "c", "image": i})).collect::<Vec<_>>()
            });
            assert_eq!(mutable_images(&td), mutable, "{images:?}");
        }
    }
    use serde_json::json;

    #[test]
    fn each_unset_variable_is_named_once_with_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("task.json");
        std::fs::write(dir.path().join("example.vars"), "A=1\n").unwrap();
        let text = "{\"family\": \"${A}\",\n \"x\": \"${B}\",\n \"y\": \"${A}\", \"z\": \"${C:-c}\"}";
        let env = |_: &str| None;
        let err = render(
            text,
            &template.display().to_string(),
            &template::Vars { explicit: &BTreeMap::new(), env: &env },
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.message(),
            format!("{}: template variables are not set: A (lines 1, 3), B (line 2)", template.display())
        );
        let hint = err.hint_text().unwrap();
        assert!(
            hint.contains(&format!("(this project has {})", dir.path().join("example.vars").display())),
            "{hint}"
        );
    }

    #[test]
    fn reads_log_drivers_and_essential_flags() {
        let td = json!({"containerDefinitions": [
            {"name": "app", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/m", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "m", "mode": "blocking"}}},
            {"name": "proxy", "essential": false, "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "quiet", "essential": false, "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/g"}}},
            {"name": "none", "essential": false}
        ]});
        let got = containers(&td);
        assert_eq!(
            got[0].log,
            LogDriver::AwsLogs {
                group: "/ecs/m".into(),
                region: Some("eu-west-1".into()),
                prefix: Some("m".into()),
                non_blocking: false
            }
        );
        assert_eq!(got[1].log, LogDriver::Other("awsfirelens".into()));
        assert!(matches!(&got[2].log, LogDriver::AwsLogs { non_blocking: true, prefix: None, .. }));
        assert_eq!(got[3].log, LogDriver::None);
        assert_eq!(default_container(&got), Ok("app".to_string()));
    }

    #[test]
    fn default_container_needs_exactly_one_essential() {
        let two = containers(&json!({"containerDefinitions": [{"name": "a"}, {"name": "b"}]}));
        assert!(default_container(&two).unwrap_err().contains("2 essential containers (a, b)"));
        let none = containers(&json!({"containerDefinitions": [{"name": "a", "essential": false}]}));
        assert!(default_container(&none).is_err());
    }
}
