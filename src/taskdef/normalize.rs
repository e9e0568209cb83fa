//! Deciding whether a rendered task definition differs from a registered revision.
//!
//! `DescribeTaskDefinition` does not return what was sent: it adds server-set fields
//! (`revision`, `status`, `registeredAt`...), fills defaults (`essential: true`, port
//! `protocol: "tcp"`, empty lists), and may reorder lists. Both sides are brought to one
//! canonical form before comparing, so an unchanged template reuses the revision instead of
//! registering a new one on every deploy.

use serde_json::{Map, Value};

use super::schema::SERVER_SET;

/// The canonical form of a task definition (a request, or a described `taskDefinition` plus
/// its `tags`).
pub fn normalize(td: &Value) -> Value {
    let mut v = td.clone();
    if let Value::Object(map) = &mut v {
        for key in SERVER_SET {
            map.remove(*key);
        }
        let awsvpc = map.get("networkMode").and_then(Value::as_str).is_none_or(|m| m == "awsvpc");
        for key in ["cpu", "memory"] {
            if let Some(Value::String(s)) = map.get_mut(key) {
                *s = task_size(s, key == "cpu");
            }
        }
        if map.get("enableFaultInjection") == Some(&Value::Bool(false)) {
            map.remove("enableFaultInjection");
        }
        sort_by(map.get_mut("requiresCompatibilities"), |v| v.as_str().unwrap_or("").to_string());
        sort_by(map.get_mut("tags"), |t| key_of(t, "key"));
        if let Some(Value::Array(containers)) = map.get_mut("containerDefinitions") {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                container(c, awsvpc);
            }
        }
    }
    prune(&mut v);
    sort_keys(&mut v);
    v
}

/// Object keys in one order, so the pretty form (and its diff) does not depend on the source's.
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

fn container(c: &mut Map<String, Value>, awsvpc: bool) {
    c.entry("essential").or_insert(Value::Bool(true));
    if c.get("cpu").and_then(Value::as_i64) == Some(0) {
        c.remove("cpu");
    }
    for key in ["environment", "secrets"] {
        sort_by(c.get_mut(key), |e| key_of(e, "name"));
    }
    sort_by(c.get_mut("ulimits"), |e| key_of(e, "name"));
    if let Some(Value::Array(ports)) = c.get_mut("portMappings") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| Value::from("tcp"));
            if awsvpc && let Some(port) = p.get("containerPort").cloned() {
                p.entry("hostPort").or_insert(port);
            }
        }
    }
    if let Some(Value::Object(hc)) = c.get_mut("healthCheck") {
        for (key, default) in [("interval", 30), ("timeout", 5), ("retries", 3)] {
            hc.entry(key).or_insert_with(|| Value::from(default));
        }
    }
}

fn key_of(v: &Value, field: &str) -> String {
    v.get(field).and_then(Value::as_str).unwrap_or("").to_string()
}

fn sort_by(list: Option<&mut Value>, key: impl Fn(&Value) -> String) {
    if let Some(Value::Array(items)) = list {
        items.sort_by_key(key);
    }
}

/// ECS accepts "1 vCPU" and "2 GB" and stores units (1024, 2048); compare the stored form.
fn task_size(text: &str, cpu: bool) -> String {
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = match lower.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (lower[..i].trim(), lower[i..].trim()),
        None => return text.trim().to_string(),
    };
    let scale = match (cpu, unit) {
        (true, "vcpu") => 1024.0,
        (false, "gb") => 1024.0,
        (false, "mb") => 1.0,
        _ => return text.to_string(),
    };
    match number.parse::<f64>() {
        Ok(n) => format!("{}", (n * scale).round() as i64),
        Err(_) => text.to_string(),
    }
}

/// Drop nulls, `false`-free empties: empty strings, lists and objects the API omits or returns.
fn prune(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, child| !is_empty(child));
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                prune(child);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A unified diff of two canonical forms (keys sorted), empty when they are equal.
pub fn diff(registered: &Value, rendered: &Value, registered_name: &str) -> String {
    let old = pretty(&normalize(registered));
    let new = pretty(&normalize(rendered));
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(registered_name, "rendered template")
        .to_string()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("values serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered() -> Value {
        json!({
            "family": "migrate",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "0.25 vCPU",
            "memory": "0.5 GB",
            "containerDefinitions": [{
                "name": "app",
                "image": "app:1",
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                "portMappings": [{"containerPort": 8080}],
                "healthCheck": {"command": ["CMD", "true"]}
            }]
        })
    }

    fn described() -> Value {
        json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/migrate:7",
            "revision": 7,
            "status": "ACTIVE",
            "family": "migrate",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "compatibilities": ["EC2", "FARGATE"],
            "requiresAttributes": [{"name": "ecs.capability.task-eni"}],
            "registeredAt": 1_700_000_000.0,
            "cpu": "256",
            "memory": "512",
            "volumes": [],
            "placementConstraints": [],
            "containerDefinitions": [{
                "name": "app",
                "image": "app:1",
                "cpu": 0,
                "essential": true,
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "mountPoints": [],
                "volumesFrom": [],
                "systemControls": [],
                "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                "healthCheck": {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3}
            }]
        })
    }

    #[test]
    fn described_and_rendered_forms_of_one_definition_are_equal() {
        assert_eq!(normalize(&rendered()), normalize(&described()));
        assert_eq!(diff(&described(), &rendered(), "migrate:7"), "");
    }

    #[test]
    fn real_changes_are_differences() {
        let changes: [fn(&mut Value); 5] = [
            |v| v["containerDefinitions"][0]["image"] = json!("app:2"),
            |v| v["containerDefinitions"][0]["environment"][0]["value"] = json!("3"),
            |v| v["containerDefinitions"][0]["essential"] = json!(false),
            |v| v["memory"] = json!("1 GB"),
            |v| v["containerDefinitions"][0]["portMappings"][0]["protocol"] = json!("udp"),
        ];
        for change in changes {
            let mut v = rendered();
            change(&mut v);
            assert_ne!(normalize(&v), normalize(&described()), "{v}");
            assert!(
                diff(&described(), &v, "migrate:7").starts_with("--- migrate:7\n+++ rendered template\n")
            );
        }
    }

    #[test]
    fn task_sizes_use_units() {
        let cases = [
            ("1 vCPU", true, "1024"),
            ("0.25 vcpu", true, "256"),
            ("512", true, "512"),
            ("2GB", false, "2048"),
            ("512 MB", false, "512"),
            ("x GB", false, "x GB"),
        ];
        for (text, cpu, expected) in cases {
            assert_eq!(task_size(text, cpu), expected, "{text}");
        }
    }
}
