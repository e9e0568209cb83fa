//! Rendering task-definition templates: `${NAME}` and `${NAME:-default}` placeholders in
//! ECS `RegisterTaskDefinition` JSON, filled from `--var` and the environment.
//!
//! Substitution is JSON-aware: a value placed inside a JSON string is escaped (a quote or a
//! newline in an image tag cannot break the document), a value placed outside a string is
//! inserted as is, so `"stopTimeout": ${STOP_TIMEOUT:-120}` works. Every unknown variable is
//! reported at once, with its line, before the JSON is even parsed. `$${` writes a literal `${`.

use std::collections::BTreeMap;

/// Where variables come from: explicit `--var`s win over the environment.
pub struct Vars<'a> {
    pub explicit: &'a BTreeMap<String, String>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    /// A value given explicitly, else one from the environment, except that a credential
    /// in the orchestrator's environment never renders into a task definition (which ECS
    /// stores and shows in clear text) unless it was passed on purpose.
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(value) = self.explicit.get(name) {
            return Ok(Some(value.clone()));
        }
        match (self.env)(name) {
            Some(_) if credential_like(name) => Err(format!(
                "`${{{name}}}` would put a credential from the environment into the task definition, which ECS \
                 stores and shows in clear text; pass it to the container as a secret (`secrets` with a \
                 Secrets Manager ARN), or, if it is not a secret, pass it on purpose with --var {name}=VALUE"
            )),
            value => Ok(value),
        }
    }
}

/// Environment names that hold credentials: AWS's (but the region and account, which
/// templates need), GitHub's tokens, and anything named like a secret, token, key or password,
/// except names of a reference to one (`DATABASE_SECRET_ARN`, `DB_SECRET_ID`).
pub fn credential_like(name: &str) -> bool {
    const AWS_PLAIN: [&str; 3] = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCOUNT_ID"];
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("AWS_") {
        return !AWS_PLAIN.contains(&upper.as_str());
    }
    let reference = ["_ARN", "_ID", "_NAME"].iter().any(|end| upper.ends_with(end));
    !reference
        && ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE_KEY"]
            .iter()
            .any(|w| upper.contains(w))
}

/// A problem in the template text, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
    /// The variable that is not set, when that is the problem (messages group them by name).
    pub unset: Option<String>,
}

/// Replace every placeholder; on failure, every problem found (in order of appearance).
pub fn substitute(text: &str, vars: &Vars) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut line = 1;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("$${") {
            out.push_str("${");
            rest = &rest[3..];
            continue;
        }
        if rest.starts_with("${") {
            let Some(end) = rest.find('}') else {
                problems.push(Problem { line, message: "`${` is never closed with `}`".into(), unset: None });
                break;
            };
            let inner = &rest[2..end];
            match expand(inner, vars) {
                Ok(value) if in_string => push_json_escaped(&mut out, &value),
                Ok(value) => out.push_str(&value),
                Err(message) => {
                    let name = inner.split(":-").next().unwrap_or_default().trim();
                    let unset = message.starts_with("variable `").then(|| name.to_string());
                    problems.push(Problem { line, message, unset })
                }
            }
            line += inner.matches('\n').count();
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '\n' => line += 1,
            '\\' if in_string && !escaped => {
                escaped = true;
                out.push(c);
                rest = &rest[1..];
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            _ => {}
        }
        escaped = false;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// The names a template refers to, in order of first appearance (for `aws/example.vars` checks
/// and `--help` of a template).
pub fn variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 && rest[..start].ends_with('$') {
            rest = &rest[start + 2..];
            continue;
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = after[..end].split(":-").next().unwrap_or("").trim().to_string();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 1..];
    }
    names
}

fn expand(inner: &str, vars: &Vars) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !valid_name(name) {
        return Err(format!(
            "`${{{inner}}}` is not a valid placeholder: names are letters, digits and `_`, not starting with a digit"
        ));
    }
    match (vars.get(name)?.filter(|v| !v.is_empty()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!(
            "variable `{name}` is not set (pass --var {name}=VALUE, export it, or write ${{{name}:-default}})"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn push_json_escaped(out: &mut String, value: &str) {
    let quoted = serde_json::to_string(value).expect("strings serialize");
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Parse `NAME=VALUE` (from `--var` or a vars file line). A line that is not one is quoted
/// without its value: `DB_PASSWORD: hunter2` (a YAML habit) must not print the password.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        let found = match text.split_once(':') {
            Some((name, _)) if valid_name(name.trim()) => format!("`{}: ***`", name.trim()),
            _ => "a line with no `=` (not shown: it may hold a value)".to_string(),
        };
        format!("expected NAME=VALUE, found {found}")
    })?;
    let name = name.trim();
    if !valid_name(name) {
        return Err(format!("`{name}` is not a variable name (letters, digits and `_`)"));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, explicit: &[(&str, &str)], env: &[(&str, &str)]) -> Result<String, Vec<Problem>> {
        let explicit: BTreeMap<String, String> =
            explicit.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        substitute(text, &Vars { explicit: &explicit, env: &lookup })
    }

    type Pairs = &'static [(&'static str, &'static str)];

    #[test]
    fn substitutes_from_vars_then_env_then_default() {
        let cases: &[(&str, Pairs, Pairs, &str)] = &[
            (r#"{"image": "app:${TAG}"}"#, &[("TAG", "v1")], &[("TAG", "env")], r#"{"image": "app:v1"}"#),
            (r#"{"image": "app:${TAG}"}"#, &[], &[("TAG", "env")], r#"{"image": "app:env"}"#),
            (r#"{"image": "app:${TAG:-latest}"}"#, &[], &[], r#"{"image": "app:latest"}"#),
            (r#"{"image": "app:${TAG:-latest}"}"#, &[], &[("TAG", "")], r#"{"image": "app:latest"}"#),
            (r#"{"n": ${N:-120}}"#, &[], &[], r#"{"n": 120}"#),
            (r#"{"n": ${N}}"#, &[("N", "30")], &[], r#"{"n": 30}"#),
            (r#"{"cmd": "echo $${HOME}"}"#, &[], &[], r#"{"cmd": "echo ${HOME}"}"#),
            (r#"{"q": "say \"${W}\""}"#, &[("W", "a\"b\nc")], &[], r#"{"q": "say \"a\"b\nc\""}"#),
            (r#"{"e": "\\", "v": "${V}"}"#, &[("V", "x\"")], &[], r#"{"e": "\\", "v": "x\""}"#),
        ];
        for (text, explicit, env, expected) in cases {
            assert_eq!(render(text, explicit, env).unwrap(), *expected, "{text}");
        }
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let text = "{\n  \"a\": \"${A}\",\n  \"b\": \"${B}\",\n  \"c\": \"${1X}\",\n  \"d\": \"${D\"";
        let problems = render(text, &[("B", "ok")], &[]).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 4, 5], "{problems:?}");
        assert!(problems[0].message.contains("variable `A` is not set"));
        assert!(problems[1].message.contains("not a valid placeholder"));
        assert!(problems[2].message.contains("never closed"));
    }

    #[test]
    fn credentials_in_the_environment_are_refused_unless_passed_on_purpose() {
        let env = [("AWS_SECRET_ACCESS_KEY", "wJalr"), ("GH_TOKEN", "ghp_x"), ("AWS_REGION", "eu-west-1")];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<&'a str, &'a str>);
        let cases: [Case; 5] = [
            (r#"{"a": "${AWS_SECRET_ACCESS_KEY}"}"#, &[], Err("would put a credential")),
            (r#"{"a": "${GH_TOKEN}"}"#, &[], Err("--var GH_TOKEN=VALUE")),
            (r#"{"a": "${AWS_REGION}"}"#, &[], Ok(r#"{"a": "eu-west-1"}"#)),
            (r#"{"a": "${GH_TOKEN}"}"#, &[("GH_TOKEN", "on-purpose")], Ok(r#"{"a": "on-purpose"}"#)),
            (r#"{"a": "${DB_PASSWORD:-none}"}"#, &[], Ok(r#"{"a": "none"}"#)),
        ];
        for (text, explicit, expected) in cases {
            match (render(text, explicit, &env), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(problems), Err(needle)) => assert!(problems[0].message.contains(needle), "{problems:?}"),
                (got, want) => panic!("{text}: {got:?} vs {want:?}"),
            }
        }
        for name in [
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "GITHUB_TOKEN",
            "STRIPE_SECRET",
            "DB_PASSWORD",
            "OPENAI_API_KEY",
        ] {
            assert!(credential_like(name), "{name}");
        }
        for name in
            ["IMAGE_TAG", "AWS_REGION", "CLUSTER", "DATABASE_SECRET_ARN", "DB_SECRET_ID", "KEYCLOAK_URL"]
        {
            assert!(!credential_like(name), "{name}");
        }
    }

    #[test]
    fn a_line_that_is_not_an_assignment_is_quoted_without_its_value() {
        let cases = [
            ("DB_PASSWORD: hunter2", "found `DB_PASSWORD: ***`"),
            ("hunter2", "found a line with no `=` (not shown"),
        ];
        for (line, needle) in cases {
            let e = parse_assignment(line).unwrap_err();
            assert!(e.contains(needle) && !e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn lists_variables_once() {
        let text = r#"{"a": "${IMAGE}:${TAG:-x}", "b": "${IMAGE}", "c": "$${NOT}"}"#;
        assert_eq!(variables(text), ["IMAGE", "TAG"]);
    }

    #[test]
    fn parses_assignments() {
        assert_eq!(parse_assignment("TAG=a=b").unwrap(), ("TAG".into(), "a=b".into()));
        assert_eq!(parse_assignment("EMPTY=").unwrap(), ("EMPTY".into(), String::new()));
        assert!(parse_assignment("nothing").is_err());
        assert!(parse_assignment("1A=x").is_err());
    }
}
