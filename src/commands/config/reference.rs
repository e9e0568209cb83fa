//! `shipgate config reference` and `shipgate config schema`: the configuration reference,
//! generated from the code so it cannot drift. The shipgate.toml keys come from the JSON
//! Schema of the types the file is read into (their doc comments are the descriptions); the
//! environment variables come from the clap definitions (`env = ...` on a flag). The README
//! holds a copy of the reference, which a test compares with this output.

use std::collections::BTreeMap;

use clap::CommandFactory;
use serde_json::Value;

use crate::cli::Cli;
use crate::error::Result;
use crate::project::ProjectFile;

/// The JSON Schema of shipgate.toml.
pub fn schema_value() -> Value {
    serde_json::to_value(schemars::schema_for!(ProjectFile)).expect("a schema serializes")
}

pub fn schema() -> Result<()> {
    let text = serde_json::to_string_pretty(&schema_value()).expect("a schema serializes");
    crate::output::document(format!("{text}\n").as_bytes());
    Ok(())
}

pub fn run() -> Result<()> {
    crate::output::document(reference().as_bytes());
    Ok(())
}

/// The whole reference, as Markdown.
pub fn reference() -> String {
    let mut s = String::from("#### shipgate.toml\n\n");
    s.push_str("Paths are relative to the file. Unknown keys are errors.\n\n");
    s.push_str("| key | type | meaning |\n|---|---|---|\n");
    let schema = schema_value();
    for row in toml_rows(&schema) {
        s.push_str(&format!("| `{}` | {} | {} |\n", row.key, row.kind, cell(&row.description)));
    }
    s.push_str("\n#### Environment variables\n\n");
    s.push_str("Each stands for a flag; the flag wins. `shipgate COMMAND --help` has every flag.\n\n");
    s.push_str("| variable | flag | commands | meaning |\n|---|---|---|---|\n");
    for (var, v) in env_rows() {
        s.push_str(&format!(
            "| `{var}` | `{}` | {} | {} |\n",
            v.flag,
            v.commands.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
            cell(&v.help)
        ));
    }
    s
}

fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// One shipgate.toml key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlRow {
    pub key: String,
    pub kind: String,
    pub description: String,
}

/// Every key of the schema, depth first, in declaration order.
pub fn toml_rows(schema: &Value) -> Vec<TomlRow> {
    let mut rows = Vec::new();
    walk(schema, schema, "", &mut rows);
    rows
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
            .map_or(node, |target| resolve(root, target)),
        None => node,
    }
}

/// The non-null alternative of an `Option<T>`.
fn non_null<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let node = resolve(root, node);
    match node.get("anyOf").and_then(Value::as_array) {
        Some(alternatives) => alternatives
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .map_or(node, |a| resolve(root, a)),
        None => node,
    }
}

fn type_names(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    }
}

fn walk(root: &Value, node: &Value, prefix: &str, rows: &mut Vec<TomlRow>) {
    let Some(properties) = node.get("properties").and_then(Value::as_object) else { return };
    for (name, property) in properties {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let described = property.get("description").and_then(Value::as_str).unwrap_or_default();
        let target = non_null(root, property);
        let description = match described {
            "" => target.get("description").and_then(Value::as_str).unwrap_or_default(),
            text => text,
        };
        let types = type_names(target);
        let is = |t: &str| types.contains(&t);
        if let Some(variants) = target.get("oneOf").or(target.get("enum")).and_then(Value::as_array) {
            let values: Vec<String> = variants
                .iter()
                .filter_map(|v| v.get("const").or(Some(v)).and_then(Value::as_str))
                .map(|v| format!("`\"{v}\"`"))
                .collect();
            rows.push(TomlRow { key, kind: values.join(" or "), description: description.into() });
        } else if is("object") && target.get("properties").is_some() {
            rows.push(TomlRow {
                key: format!("[{key}]"),
                kind: "table".into(),
                description: description.into(),
            });
            walk(root, target, &key, rows);
        } else if is("object") {
            let values = target.get("additionalProperties").map(|v| non_null(root, v));
            match values {
                Some(v) if v.get("properties").is_some() => {
                    let key = format!("{key}.NAME");
                    let d = description.to_string();
                    rows.push(TomlRow { key: format!("[{key}]"), kind: "table".into(), description: d });
                    walk(root, v, &key, rows);
                }
                Some(v) => rows.push(TomlRow {
                    key,
                    kind: format!("table of {}s", type_names(v).first().copied().unwrap_or("value")),
                    description: description.into(),
                }),
                None => rows.push(TomlRow { key, kind: "table".into(), description: description.into() }),
            }
        } else if is("array") {
            let items = target.get("items").map(|i| non_null(root, i));
            match items {
                Some(item) if item.get("properties").is_some() => {
                    let key = format!("{key}[]");
                    rows.push(TomlRow {
                        key: key.clone(),
                        kind: "list of tables".into(),
                        description: description.into(),
                    });
                    walk(root, item, &key, rows);
                }
                Some(item) => rows.push(TomlRow {
                    key,
                    kind: format!("list of {}s", type_names(item).first().copied().unwrap_or("value")),
                    description: description.into(),
                }),
                None => rows.push(TomlRow { key, kind: "list".into(), description: description.into() }),
            }
        } else {
            let kind = types.first().copied().unwrap_or("value").to_string();
            let kind = match (kind.as_str(), target.get("minimum").and_then(|m| m.as_u64())) {
                ("integer", Some(min)) => format!("integer ≥ {min}"),
                _ => kind,
            };
            rows.push(TomlRow { key, kind, description: description.into() });
        }
    }
}

/// One environment variable and the flag it stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvRow {
    pub flag: String,
    pub commands: Vec<String>,
    pub help: String,
}

/// Every `env = ...` of the clap definitions, by variable.
pub fn env_rows() -> BTreeMap<String, EnvRow> {
    let mut rows: BTreeMap<String, EnvRow> = BTreeMap::new();
    let mut stack = vec![(String::from("shipgate"), Cli::command())];
    while let Some((path, cmd)) = stack.pop() {
        for arg in cmd.get_arguments() {
            let Some(var) = arg.get_env().and_then(|v| v.to_str()) else { continue };
            let row = rows.entry(var.to_string()).or_default();
            if row.flag.is_empty() {
                row.flag = arg.get_long().map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
                row.help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            }
            if !row.commands.contains(&path) {
                row.commands.push(path.clone());
            }
        }
        for sub in cmd.get_subcommands() {
            stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
        }
    }
    for row in rows.values_mut() {
        row.commands.sort();
        // A global flag shows up on every subcommand; its top command says it.
        let tops: Vec<String> = row.commands.clone();
        row.commands.retain(|c| !tops.iter().any(|t| t != c && c.starts_with(&format!("{t} "))));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_file_is_in_the_reference_with_a_meaning() {
        let rows = toml_rows(&schema_value());
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        for expected in [
            "[migrations]",
            "migrations.tenants_query",
            "[env.NAME]",
            "env.NAME.platform",
            "env.NAME.cluster",
            "[env.NAME.migration_task]",
            "env.NAME.migration_task.timeout",
            "env.NAME.services[]",
            "env.NAME.services[].template",
            "env.NAME.vars",
            "env.NAME.tenant_shards",
        ] {
            assert!(keys.contains(&expected), "{expected} not in {keys:?}");
        }
        for row in &rows {
            assert!(!row.description.is_empty(), "{} has no description (a doc comment)", row.key);
        }
        let platform = rows.iter().find(|r| r.key == "env.NAME.platform").unwrap();
        assert_eq!(platform.kind, "`\"ecs\"` or `\"local\"`");
        let subnets = rows.iter().find(|r| r.key == "env.NAME.subnets").unwrap();
        assert_eq!(subnets.kind, "list of strings");
    }

    #[test]
    fn environment_variables_name_their_flag_and_commands() {
        let rows = env_rows();
        assert_eq!(rows["SHIPGATE_SOURCE"].flag, "--source");
        assert_eq!(rows["SHIPGATE_SOURCE"].commands, ["shipgate db", "shipgate migrate", "shipgate tenants"]);
        assert!(rows["SHIPGATE_ENV"].commands.contains(&"shipgate deploy".to_string()));
        assert!(rows.values().all(|r| !r.help.is_empty()), "every flag with a variable has help");
    }
}
