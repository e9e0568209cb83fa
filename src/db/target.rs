//! Which database to connect to, from the variables our users already set.
//!
//! Precedence, highest first (one source wins as a whole, then fields fill in):
//!
//! | source | variables |
//! |---|---|
//! | `--database-url` / `DATABASE_URL` | the whole URL (`sslmode` and other parameters included) |
//! | `DB_*` (seed 000) | `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME`, `DB_SSL`, `DB_SSL_CERT_PATH`, `DB_SSL_REJECT_UNAUTHORIZED` |
//! | libpq (seed 001) | `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `~/.pgpass` |
//!
//! With a URL, nothing else is consulted. Without one, each `DB_*` field overrides the
//! matching `PG*` field and unset fields fall back to libpq's defaults. Every password seen
//! is registered for redaction before anything can print it.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::error::{Error, Result};
use crate::redact;

/// A resolved connection target. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct DbTarget {
    options: PgConnectOptions,
    /// Which variables it came from, for messages.
    pub origin: &'static str,
}

impl DbTarget {
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    pub fn host(&self) -> String {
        self.options.get_host().to_string()
    }

    pub fn port(&self) -> u16 {
        self.options.get_port()
    }

    pub fn user(&self) -> String {
        self.options.get_username().to_string()
    }

    pub fn database(&self) -> String {
        self.options.get_database().unwrap_or(self.options.get_username()).to_string()
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database `{}` on {}:{} as user `{}` (from {})",
            self.database(),
            self.host(),
            self.port(),
            self.user(),
            self.origin
        )
    }
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbTarget({self})")
    }
}

/// Resolve the target from an explicit URL (flag or `DATABASE_URL`) and the environment.
pub fn resolve(url: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<DbTarget> {
    // Mask every password in sight, used or not: a later message may quote any of them.
    for name in ["DB_PASSWORD", "PGPASSWORD"] {
        if let Some(p) = env(name) {
            redact::register(&p);
        }
    }
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        return from_url(url);
    }
    from_fields(env)
}

fn from_url(text: &str) -> Result<DbTarget> {
    let bad = |why: String| {
        Error::input(format!("DATABASE_URL / --database-url is not a valid PostgreSQL URL: {why}"))
            .hint("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require (percent-encode special characters in the password)")
    };
    let parsed = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if let Some(password) = parsed.password() {
        redact::register(password);
        redact::register(&percent_encoding::percent_decode_str(password).decode_utf8_lossy());
    }
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "the scheme is `{}`, expected postgres:// or postgresql://",
            parsed.scheme()
        )));
    }
    let options = PgConnectOptions::from_str(text).map_err(|e| bad(redact::redact(&e.to_string())))?;
    Ok(DbTarget { options, origin: "DATABASE_URL" })
}

fn from_fields(env: &dyn Fn(&str) -> Option<String>) -> Result<DbTarget> {
    let db = |name: &str| env(name).filter(|v| !v.is_empty());
    let uses_db_vars =
        ["DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"].iter().any(|n| db(n).is_some());
    // PgConnectOptions::new() applies PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE/PGSSLMODE/
    // PGSSLROOTCERT and ~/.pgpass, exactly as libpq would.
    let mut options = PgConnectOptions::new();
    if let Some(host) = db("DB_HOST") {
        options = options.host(&host);
    }
    if let Some(port) = db("DB_PORT") {
        let port: u16 = port.trim().parse().map_err(|_| {
            Error::input(format!("DB_PORT=`{port}` is not a port number"))
                .hint("set DB_PORT to a number such as 5432")
        })?;
        options = options.port(port);
    }
    if let Some(user) = db("DB_USER") {
        options = options.username(&user);
    }
    if let Some(password) = db("DB_PASSWORD") {
        options = options.password(&password);
    }
    if let Some(name) = db("DB_NAME") {
        options = options.database(&name);
    }
    options = apply_db_ssl(options, env)?;
    let origin = if uses_db_vars { "DB_* variables" } else { "PG* variables and libpq defaults" };
    Ok(DbTarget { options, origin })
}

/// Seed 000's node-postgres style TLS switches.
fn apply_db_ssl(
    mut options: PgConnectOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PgConnectOptions> {
    let flag = |name: &str| -> Result<Option<bool>> {
        match env(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(v) => Err(Error::input(format!("{name}=`{v}` is not true or false"))),
        }
    };
    let cert = env("DB_SSL_CERT_PATH").filter(|v| !v.is_empty());
    match flag("DB_SSL")? {
        None => {}
        Some(false) => options = options.ssl_mode(PgSslMode::Disable),
        Some(true) => {
            let verify = flag("DB_SSL_REJECT_UNAUTHORIZED")?.unwrap_or(true);
            options = match (&cert, verify) {
                (Some(path), true) => options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(path),
                (_, _) => options.ssl_mode(PgSslMode::Require),
            };
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn precedence_url_then_db_vars() {
        let env = env_of(&[
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "6543"),
            ("DB_USER", "app"),
            ("DB_NAME", "main"),
        ]);
        type Seen<'a> = (&'a str, u16, &'a str, &'a str, &'a str);
        let cases: Vec<(Option<&str>, Seen)> = vec![
            (Some("postgres://u:pw@url-host:5433/urldb"), ("url-host", 5433, "u", "urldb", "DATABASE_URL")),
            (None, ("db.internal", 6543, "app", "main", "DB_* variables")),
            (Some(""), ("db.internal", 6543, "app", "main", "DB_* variables")),
        ];
        for (url, (host, port, user, db, origin)) in cases {
            let t = resolve(url, &env).unwrap();
            assert_eq!(
                (t.host().as_str(), t.port(), t.user().as_str(), t.database().as_str(), t.origin),
                (host, port, user, db, origin)
            );
        }
    }

    #[test]
    fn db_ssl_switches() {
        let cases = [
            (vec![("DB_HOST", "h"), ("DB_SSL", "false")], PgSslMode::Disable),
            (vec![("DB_HOST", "h"), ("DB_SSL", "true")], PgSslMode::Require),
            (
                vec![("DB_HOST", "h"), ("DB_SSL", "true"), ("DB_SSL_CERT_PATH", "/ca.pem")],
                PgSslMode::VerifyFull,
            ),
            (
                vec![
                    ("DB_HOST", "h"),
                    ("DB_SSL", "true"),
                    ("DB_SSL_CERT_PATH", "/ca.pem"),
                    ("DB_SSL_REJECT_UNAUTHORIZED", "false"),
                ],
                PgSslMode::Require,
            ),
        ];
        for (pairs, mode) in cases {
            let t = resolve(None, &env_of(&pairs)).unwrap();
            assert_eq!(format!("{:?}", t.options().get_ssl_mode()), format!("{mode:?}"), "{pairs:?}");
        }
    }

    #[test]
    fn bad_input_is_exit_2_and_never_echoes_the_password() {
        let env = env_of(&[("DB_PORT", "five"), ("DB_PASSWORD", "hunter2-db")]);
        let err = resolve(None, &env).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("DB_PORT=`five`"));

        for url in ["mysql://u:hunter2-url@h/db", "postgres://u:hunter2-url@h:notaport/db"] {
            let err = resolve(Some(url), &env_of(&[])).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{url}");
            let shown = redact::redact(&err.to_string());
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(
            !format!("{:?}", resolve(Some("postgres://u:hunter2-dbg@h/db"), &env_of(&[])).unwrap())
                .contains("hunter2")
        );
    }
}
