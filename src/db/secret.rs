//! Database credentials kept in AWS Secrets Manager: which secret (`--db-secret` /
//! `DB_SECRET_ID`), and what its value says. Fetching is `aws::secrets`; this module is pure.
//!
//! Three shapes are accepted, the ones our users already store:
//! - the RDS format (`username`, `password`, and optionally `host`, `port`, `dbname`,
//!   `engine`), which rotation templates write and RDS-managed master secrets hold (those have
//!   only `username` and `password`; the host then comes from `DB_HOST` or `PGHOST`);
//! - a JSON object with the URL under `url` or `DATABASE_URL` (an application's own secret, as apps deployed from GitHub Actions keep it);
//! - the plain URL string.
//!
//! Every value that could be secret is registered for redaction before anything can print
//! it, and no message here quotes a value.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::redact;

/// A secret to read: its name or ARN, and the version stage (AWSCURRENT unless given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub id: String,
    pub stage: Option<String>,
}

impl SecretRef {
    /// `NAME`, `NAME:STAGE`, `ARN` or `ARN:STAGE`. Secret names cannot contain `:`, and an
    /// ARN has exactly seven `:`-separated parts, so the stage is never ambiguous.
    pub fn parse(text: &str, from: &str) -> Result<SecretRef> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::input(format!("{from}=`{text}` {why}"))
                .hint("give the secret's name or ARN, optionally followed by :VERSION-STAGE (e.g. prod/db:AWSPREVIOUS)")
        };
        if text.is_empty() {
            return Err(bad("is empty"));
        }
        let (id, stage) = if text.starts_with("arn:") {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() < 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
                return Err(bad(
                    "is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)",
                ));
            }
            match parts.len() {
                7 => (text.to_string(), None),
                8 => (parts[..7].join(":"), Some(parts[7].to_string())),
                _ => {
                    return Err(bad(
                        "has more parts than ARN:VERSION-STAGE (the ECS `valueFrom` form with a JSON key is for task definitions; shipgate reads the whole secret)",
                    ));
                }
            }
        } else {
            match text.split_once(':') {
                None => (text.to_string(), None),
                Some((name, stage)) if !stage.contains(':') => (name.to_string(), Some(stage.to_string())),
                Some(_) => return Err(bad("has more than one `:` (expected NAME or NAME:VERSION-STAGE)")),
            }
        };
        if id.is_empty() || stage.as_deref() == Some("") {
            return Err(bad("has an empty name or version stage"));
        }
        Ok(SecretRef { id, stage })
    }

    /// The region named by an ARN, which is where the secret must be read from.
    pub fn region(&self) -> Option<&str> {
        self.id.strip_prefix("arn:").and_then(|rest| rest.split(':').nth(2)).filter(|r| !r.is_empty())
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Some(stage) => write!(f, "`{}` (stage {stage})", self.id),
            None => write!(f, "`{}`", self.id),
        }
    }
}

/// What a secret supplies. `Debug` never shows the password or the URL.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretCreds {
    /// A whole connection URL (the URL shapes).
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
}

impl fmt::Debug for SecretCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCreds")
            .field("url", &self.url.as_ref().map(|_| redact::MASK))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| redact::MASK))
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// Keys of the RDS format that name things rather than hold secrets.
const IDENTITY_KEYS: &[&str] =
    &["username", "host", "port", "dbname", "engine", "dbInstanceIdentifier", "dbClusterIdentifier"];
const URL_KEYS: &[&str] = &["url", "DATABASE_URL", "database_url"];

/// Read a secret's value. `what` names the secret in messages.
pub fn parse(text: &str, what: &str) -> Result<SecretCreds> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed).map_err(|e| {
            register_loose_values(trimmed);
            // serde_json's syntax errors give a position, never the text around it.
            Error::input(format!("secret {what} is not valid JSON ({e})"))
                .hint("store a JSON object such as {\"username\":…,\"password\":…,\"host\":…,\"port\":5432,\"dbname\":…}, or a postgres:// URL")
        })?;
        let Value::Object(map) = value else { unreachable!("text starting with `{{` parses to an object") };
        register_secret_values(&map);
        return from_object(&map, what);
    }
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        redact::register_url_password(trimmed);
        return Ok(SecretCreds { url: Some(trimmed.to_string()), ..SecretCreds::default() });
    }
    // Whatever it is, it may be a secret: mask it before it can appear anywhere.
    redact::register(trimmed);
    Err(Error::input(format!("secret {what} holds neither a JSON object nor a postgres:// URL"))
        .hint("store the RDS format ({\"username\",\"password\",\"host\",\"port\",\"dbname\"}), {\"url\": \"postgres://…\"}, or the URL itself"))
}

/// For text that failed to parse as JSON: mask every quoted value after a `:` anyway, since a
/// later message (ours or a library's) might still quote one.
fn register_loose_values(text: &str) {
    let mut rest = text;
    while let Some(colon) = rest.find(':') {
        let is_password = rest[..colon].trim_end().ends_with("\"password\"");
        rest = &rest[colon + 1..];
        let after = rest.trim_start();
        let Some(body) = after.strip_prefix('"') else { continue };
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match (c, escaped) {
                ('\\', false) => escaped = true,
                ('"', false) => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let value = &body[..end.unwrap_or(body.len())];
        // As for parsed secrets: short values would mask ordinary words, except a password.
        if is_password || value.len() >= 6 {
            redact::register(value);
        }
        rest = &body[end.map_or(body.len(), |e| e + 1)..];
    }
}

fn register_secret_values(map: &serde_json::Map<String, Value>) {
    for (key, value) in map {
        if let Value::String(s) = value
            && !IDENTITY_KEYS.contains(&key.as_str())
        {
            // Short values (flags, ports, "true") would mask ordinary words in every message;
            // the password is always masked, however short.
            if key == "password" || s.len() >= 6 {
                redact::register(s);
            }
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                redact::register_url_password(s);
            }
        }
    }
}

fn from_object(map: &serde_json::Map<String, Value>, what: &str) -> Result<SecretCreds> {
    let wrong_type = |key: &str, expected: &str| {
        Error::input(format!("secret {what}: the value of `{key}` is not {expected}"))
            .hint("fix the secret's JSON; shipgate never prints secret values, so check it with `aws secretsmanager get-secret-value`")
    };
    let text = |key: &str| -> Result<Option<String>> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(key, "a string")),
        }
    };
    for key in URL_KEYS {
        if let Some(url) = text(key)? {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(wrong_type(key, "a postgres:// URL"));
            }
            return Ok(SecretCreds { url: Some(url), ..SecretCreds::default() });
        }
    }
    if let Some(engine) = text("engine")?
        && !matches!(engine.as_str(), "postgres" | "postgresql" | "aurora-postgresql")
    {
        return Err(Error::input(format!(
            "secret {what} is for engine `{engine}`; shipgate migrates PostgreSQL"
        ))
        .hint("point --db-secret / DB_SECRET_ID at the PostgreSQL database's secret"));
    }
    let port = match map.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| wrong_type("port", "a port number"))?,
        ),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(s.trim().parse::<u16>().map_err(|_| wrong_type("port", "a port number"))?)
        }
        Some(_) => return Err(wrong_type("port", "a port number")),
    };
    let creds = SecretCreds {
        url: None,
        host: text("host")?,
        port,
        username: text("username")?,
        password: text("password")?,
        dbname: text("dbname")?,
    };
    let missing: Vec<&str> = [("username", creds.username.is_none()), ("password", creds.password.is_none())]
        .into_iter()
        .filter_map(|(k, missing)| missing.then_some(k))
        .collect();
    if !missing.is_empty() {
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        return Err(Error::input(format!(
            "secret {what} has no `{}` key (its keys: {})",
            missing.join("` or `"),
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        ))
        .hint("store the RDS format ({\"username\",\"password\",\"host\",\"port\",\"dbname\"}), or the URL under \"url\" or \"DATABASE_URL\""));
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ids_and_stages() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        type Parsed<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: Vec<(String, Parsed)> = vec![
            ("prod/db".into(), Some(("prod/db", None))),
            ("prod/db:AWSPREVIOUS".into(), Some(("prod/db", Some("AWSPREVIOUS")))),
            ("rds!db-1234-abcd".into(), Some(("rds!db-1234-abcd", None))),
            (arn.into(), Some((arn, None))),
            (format!("{arn}:AWSPENDING"), Some((arn, Some("AWSPENDING")))),
            (format!("{arn}:password::"), None),
            ("arn:aws:ssm:eu-west-1:1:parameter/x".into(), None),
            ("a:b:c".into(), None),
            ("prod/db:".into(), None),
            ("  ".into(), None),
        ];
        for (text, expected) in cases {
            let got = SecretRef::parse(&text, "DB_SECRET_ID");
            match expected {
                Some((id, stage)) => {
                    let r = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!((r.id.as_str(), r.stage.as_deref()), (id, stage), "{text}");
                }
                None => assert_eq!(got.map_err(|e| e.exit_code()).unwrap_err(), 2, "{text}"),
            }
        }
        assert_eq!(SecretRef::parse(arn, "x").unwrap().region(), Some("eu-west-1"));
        assert_eq!(SecretRef::parse("prod/db", "x").unwrap().region(), None);
    }

    #[test]
    fn accepted_shapes() {
        let rds = r#"{"username":"app","password":"pw-rds-1","host":"db.example","port":5432,"dbname":"main","engine":"postgres","dbInstanceIdentifier":"db"}"#;
        let managed = r#"{"username":"postgres","password":"pw-managed-1"}"#;
        let port_text = r#"{"username":"u","password":"pw-port-1","port":"6543"}"#;
        let cases: Vec<(&str, SecretCreds)> = vec![
            (
                rds,
                SecretCreds {
                    host: Some("db.example".into()),
                    port: Some(5432),
                    username: Some("app".into()),
                    password: Some("pw-rds-1".into()),
                    dbname: Some("main".into()),
                    url: None,
                },
            ),
            (
                managed,
                SecretCreds {
                    username: Some("postgres".into()),
                    password: Some("pw-managed-1".into()),
                    ..SecretCreds::default()
                },
            ),
            (
                port_text,
                SecretCreds {
                    username: Some("u".into()),
                    password: Some("pw-port-1".into()),
                    port: Some(6543),
                    ..SecretCreds::default()
                },
            ),
            (
                r#"{"DATABASE_URL":"postgres://u:pw-url-1@h/db","STRIPE_KEY":"sk_live_abcdef"}"#,
                SecretCreds { url: Some("postgres://u:pw-url-1@h/db".into()), ..SecretCreds::default() },
            ),
            (
                " postgresql://u:pw-plain-1@h:5433/db \n",
                SecretCreds {
                    url: Some("postgresql://u:pw-plain-1@h:5433/db".into()),
                    ..SecretCreds::default()
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text, "`s`").unwrap(), expected, "{text}");
        }
        // Everything secret-looking is masked from now on, other app secrets in the JSON included.
        for value in ["pw-rds-1", "pw-managed-1", "pw-url-1", "pw-plain-1", "sk_live_abcdef"] {
            assert_eq!(redact::redact(&format!("x {value} y")), "x ******** y", "{value}");
        }
        assert!(!format!("{:?}", parse(rds, "`s`").unwrap()).contains("pw-rds-1"));
    }

    #[test]
    fn rejected_shapes_name_the_key_and_never_the_value() {
        let cases = [
            (r#"{"username":"app","host":"h"}"#, "no `password` key (its keys: host, username)"),
            (r#"{"user":"app","pass":"pw-miss-1"}"#, "no `username` or `password` key"),
            (
                r#"{"username":"app","password":"pw-port-2","port":"fifty"}"#,
                "the value of `port` is not a port number",
            ),
            (r#"{"username":"app","password":7}"#, "the value of `password` is not a string"),
            (r#"{"url":"mysql://u:pw-my-1@h/db"}"#, "the value of `url` is not a postgres:// URL"),
            (r#"{"username":"a","password":"pw-engine-1","engine":"mysql"}"#, "is for engine `mysql`"),
            (r#"{"username":"app","password":"pw-bad-json-1""#, "is not valid JSON (EOF while parsing"),
            ("hunter2-plain-secret", "holds neither a JSON object nor a postgres:// URL"),
        ];
        for (text, needle) in cases {
            let err = parse(text, "`prod/db`").unwrap_err();
            assert_eq!(err.exit_code(), 2, "{text}");
            let shown = redact::redact(&err.to_string());
            assert!(shown.contains(needle), "{text}: {shown}");
            for value in ["pw-", "hunter2"] {
                assert!(!shown.contains(value), "{text} echoed a value: {shown}");
            }
        }
        // Text that is not JSON still has its values masked, in case anything quotes them.
        assert!(parse(r#"{"user":"x","password":"pw-broken-42","#, "`s`").is_err());
        assert_eq!(redact::redact("pw-broken-42"), redact::MASK);
    }
}
