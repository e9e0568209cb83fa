//! Which database to connect to, and how, from the flags and variables our users already set.
//!
//! Two questions, each answered by one table (the README shows both).
//!
//! **Who supplies the connection** (host, port, user, password, database), highest first:
//!
//! | source | how it is used |
//! |---|---|
//! | `--database-url URL` | the whole URL |
//! | `--db-secret ID` | the secret's fields, then `DB_*` over them, then `PG*` under them |
//! | `DATABASE_URL` | the whole URL |
//! | `DB_SECRET_ID` | as `--db-secret` |
//! | `DB_*` (Knex-style apps) | `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME`, each over `PG*` |
//! | libpq | `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `~/.pgpass`, defaults |
//!
//! A URL is complete on its own (libpq's `PG*` only fill what it leaves out). A secret is
//! layered: an RDS-managed secret holds only `username` and `password`, so `DB_HOST` and
//! `DB_NAME` say where; any `DB_*` set overrides the secret's field.
//!
//! **How TLS is used**, highest first: `--sslmode` / `--ssl-root-cert`; `sslmode` /
//! `sslrootcert` in the URL; `DB_SSL`, `DB_SSL_REJECT_UNAUTHORIZED`, `DB_SSL_CERT_PATH`
//! (node-postgres semantics: `DB_SSL=true` verifies unless `DB_SSL_REJECT_UNAUTHORIZED=false`);
//! `PGSSLMODE` / `PGSSLROOTCERT`; and by default `verify-full` for every host that is not the
//! machine itself (the compiled-in RDS CAs plus the public roots), `prefer` on loopback and
//! unix sockets. `prefer` falls back to clear text when the server (or an attacker on the
//! path) says no, so it is never the default where a path exists.
//!
//! Everything is read and validated up front ([`settings`]); only the secret's value arrives
//! later ([`resolve`]). Every password seen is registered for redaction before anything can
//! print it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::db::secret::{SecretCreds, SecretRef};
use crate::db::tls::{self, Roots, SslMode, TlsChoice};
use crate::error::{Error, Result};
use crate::redact;

/// The command line's database flags, as plain data.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub database_url: Option<String>,
    pub db_secret: Option<String>,
    pub sslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    pub allow_cleartext_password: bool,
}

/// Who supplies the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A whole URL, and where it came from (`--database-url` or `DATABASE_URL`).
    Url { from: &'static str },
    /// A Secrets Manager secret, and where it was named.
    Secret { secret: SecretRef, from: &'static str },
    /// `DB_*` over `PG*`.
    Fields,
}

/// `DB_*` values, validated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DbFields {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub name: Option<String>,
}

impl fmt::Debug for DbFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbFields({})", self.names().join(", "))
    }
}

impl DbFields {
    fn names(&self) -> Vec<&'static str> {
        [
            ("DB_HOST", self.host.is_some()),
            ("DB_PORT", self.port.is_some()),
            ("DB_USER", self.user.is_some()),
            ("DB_PASSWORD", self.password.is_some()),
            ("DB_NAME", self.name.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect()
    }

    fn apply(&self, mut options: PgConnectOptions) -> PgConnectOptions {
        if let Some(host) = &self.host {
            options = options.host(host);
        }
        if let Some(port) = self.port {
            options = options.port(port);
        }
        if let Some(user) = &self.user {
            options = options.username(user);
        }
        if let Some(password) = &self.password {
            options = options.password(password);
        }
        if let Some(name) = &self.name {
            options = options.database(name);
        }
        options
    }
}

/// Every TLS input, layer by layer, before the host is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInputs {
    pub flag_mode: Option<SslMode>,
    pub flag_root: Option<PathBuf>,
    pub db_ssl: Option<bool>,
    pub db_reject_unauthorized: Option<bool>,
    pub db_cert: Option<PathBuf>,
    pub pg_mode: Option<SslMode>,
    pub pg_root: Option<PathBuf>,
    /// `--allow-cleartext-password`: no guard on a connection without TLS.
    pub allow_cleartext_password: bool,
}

/// What a URL says about TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlTls {
    pub mode: Option<SslMode>,
    pub root: Option<PathBuf>,
}

/// Everything known before any secret is fetched. `Debug` never shows a password.
#[derive(Clone)]
pub struct Settings {
    pub source: Source,
    url: Option<String>,
    pub fields: DbFields,
    pub tls: TlsInputs,
    /// Sources that were set but lost to a higher one, to say so once.
    pub ignored: Vec<String>,
    /// The OS user (`USER`, `LOGNAME`), the user when nothing else names one: libpq's default.
    os_user: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("source", &self.source)
            .field("fields", &self.fields)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Read the flags and the environment into [`Settings`]: which source wins, every `DB_*` and
/// TLS value parsed. Bad values are exit 2 here, before any connection or AWS call.
pub fn settings(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // Mask every password in sight, used or not: a later message may quote any of them.
    for name in ["DB_PASSWORD", "PGPASSWORD"] {
        if let Some(p) = env(name) {
            redact::register(&p);
        }
    }
    let flag_url = flags.database_url.clone().filter(|u| !u.trim().is_empty());
    let flag_secret = flags.db_secret.clone().filter(|s| !s.trim().is_empty());
    if flag_url.is_some() && flag_secret.is_some() {
        return Err(Error::input("--database-url and --db-secret both name the database; give one"));
    }
    let mut candidates: Vec<(&'static str, String)> = Vec::new();
    if let Some(u) = flag_url {
        candidates.push(("--database-url", u));
    }
    if let Some(s) = flag_secret {
        candidates.push(("--db-secret", s));
    }
    if let Some(u) = get("DATABASE_URL") {
        candidates.push(("DATABASE_URL", u));
    }
    if let Some(s) = get("DB_SECRET_ID") {
        candidates.push(("DB_SECRET_ID", s));
    }
    let mut ignored = candidates.iter().skip(1).map(|(from, _)| from.to_string()).collect::<Vec<_>>();
    let (source, url) = match candidates.into_iter().next() {
        Some((from @ ("--database-url" | "DATABASE_URL"), url)) => {
            redact::register_url_password(&url);
            (Source::Url { from }, Some(url))
        }
        Some((from, id)) => (Source::Secret { secret: SecretRef::parse(&id, from)?, from }, None),
        None => (Source::Fields, None),
    };
    let port = match get("DB_PORT") {
        Some(port) => Some(port.trim().parse::<u16>().map_err(|_| {
            Error::input(format!("DB_PORT=`{port}` is not a port number"))
                .hint("set DB_PORT to a number such as 5432")
        })?),
        None => None,
    };
    let fields = DbFields {
        host: get("DB_HOST"),
        port,
        user: get("DB_USER"),
        password: get("DB_PASSWORD"),
        name: get("DB_NAME"),
    };
    // A URL is the whole answer: DB_* are ignored, and so is each PG* variable for a part the
    // URL gives (PG* still fill in what it leaves out, as libpq does).
    if let (Source::Url { .. }, Some(url)) = (&source, &url) {
        ignored.extend(fields.names().into_iter().map(str::to_string));
        if let Ok(parsed) = url::Url::parse(url) {
            let given = [
                ("PGHOST", parsed.host_str().is_some_and(|h| !h.is_empty())),
                ("PGPORT", parsed.port().is_some()),
                ("PGUSER", !parsed.username().is_empty()),
                ("PGPASSWORD", parsed.password().is_some()),
                ("PGDATABASE", parsed.path().len() > 1),
            ];
            ignored.extend(
                given.iter().filter(|(v, by_url)| *by_url && get(v).is_some()).map(|(v, _)| v.to_string()),
            );
        }
    }
    let mode = |from: &str, text: Option<String>| -> Result<Option<SslMode>> {
        text.map(|t| {
            SslMode::parse(&t).ok_or_else(|| {
                Error::input(format!("{from} `{t}` is not a TLS mode"))
                    .hint(format!("use one of: {}", tls::MODES))
            })
        })
        .transpose()
    };
    let flag = |name: &str| -> Result<Option<bool>> {
        match get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(v) => Err(Error::input(format!("{name}=`{v}` is not true or false"))),
        }
    };
    let tls = TlsInputs {
        flag_mode: mode("--sslmode", flags.sslmode.clone())?,
        flag_root: flags.ssl_root_cert.clone(),
        db_ssl: flag("DB_SSL")?,
        db_reject_unauthorized: flag("DB_SSL_REJECT_UNAUTHORIZED")?,
        db_cert: get("DB_SSL_CERT_PATH").map(PathBuf::from),
        pg_mode: mode("PGSSLMODE", get("PGSSLMODE"))?,
        pg_root: get("PGSSLROOTCERT").map(PathBuf::from),
        allow_cleartext_password: flags.allow_cleartext_password,
    };
    // Nothing names a database: libpq's defaults (a local socket, the OS user) are a guess, and
    // a wrong guess costs the whole connect timeout before it says anything useful.
    const PG_VARS: [&str; 7] =
        ["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE"];
    if matches!(source, Source::Fields)
        && fields.names().is_empty()
        && !PG_VARS.iter().any(|v| get(v).is_some())
    {
        return Err(Error::input(
            "no database given: set DATABASE_URL (or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME, the PG* \
             variables, --database-url URL, or --db-secret ID / DB_SECRET_ID)",
        )
        .hint("e.g. DATABASE_URL=postgres://app@localhost:5432/app"));
    }
    let os_user = get("USER").or_else(|| get("LOGNAME")).filter(|_| get("PGUSER").is_none());
    let settings = Settings { source, url, fields, tls, ignored, os_user };
    if let Some(url) = &settings.url {
        // Parse now, so a malformed DATABASE_URL is exit 2 before anything else happens.
        parse_url(url, settings.url_from())?;
    }
    Ok(settings)
}

impl Settings {
    fn url_from(&self) -> &'static str {
        match self.source {
            Source::Url { from } => from,
            _ => "the secret",
        }
    }

    /// The secret to fetch, if the secret is the source.
    pub fn secret(&self) -> Option<&SecretRef> {
        match &self.source {
            Source::Secret { secret, .. } => Some(secret),
            _ => None,
        }
    }

    /// "the database named by secret `prod/db`", for messages before the secret is read.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Url { from } => format!("the database of {from}"),
            Source::Secret { secret, .. } => format!("the database of secret {secret}"),
            Source::Fields => "the database of DB_* / PG* variables".to_string(),
        }
    }
}

/// A resolved connection target. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct DbTarget {
    options: PgConnectOptions,
    /// Where the connection came from, for messages ("secret `prod/db`, DB_HOST from the environment").
    pub origin: String,
    /// The password came from a secret, so a rejected one may have just been rotated.
    pub password_from_secret: bool,
    /// The secret's version id, to tell whether a second fetch found a new one.
    pub secret_version: Option<String>,
    pub tls: TlsChoice,
    /// How many times the secret had been re-read when this target was made.
    pub generation: u32,
    /// Connections go through the clear-text password guard (see `db::guard`): the mode
    /// allows a connection without TLS to a host that is not loopback.
    pub guarded: bool,
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
        write!(f, "DbTarget({self}, sslmode {})", self.tls.mode.name())
    }
}

/// The target, once the secret (when it is the source) has been read. `secret` is the parsed
/// value and its version id; `generation` counts re-reads.
pub fn resolve(
    settings: &Settings,
    secret: Option<(&SecretCreds, Option<String>)>,
    generation: u32,
) -> Result<DbTarget> {
    let (options, origin, url_tls, password_from_secret, secret_version) = match &settings.source {
        Source::Url { from } => {
            let url = settings.url.as_deref().expect("a URL source has a URL");
            let (mut options, url_tls) = parse_url(url, from)?;
            if url::Url::parse(url).is_ok_and(|u| u.username().is_empty())
                && let Some(user) = &settings.os_user
            {
                options = options.username(user);
            }
            (options, from.to_string(), url_tls, false, None)
        }
        Source::Secret { secret: id, .. } => {
            let (creds, version) = secret.expect("the secret is read before the target is resolved");
            let (base, url_tls) = match &creds.url {
                Some(url) => parse_url(url, "the secret")?,
                None => (secret_fields(creds), UrlTls::default()),
            };
            let overrides = settings.fields.names();
            let origin = if overrides.is_empty() {
                format!("secret {id}")
            } else {
                format!("secret {id}, with {} from the environment", overrides.join(", "))
            };
            let secret_has_password = creds.password.is_some()
                || creds
                    .url
                    .as_deref()
                    .and_then(|u| url::Url::parse(u).ok())
                    .is_some_and(|u| u.password().is_some());
            let from_secret = secret_has_password && settings.fields.password.is_none();
            (settings.fields.apply(base), origin, url_tls, from_secret, version)
        }
        Source::Fields => {
            // PgConnectOptions::new() applies PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE and
            // ~/.pgpass, exactly as libpq would.
            let origin = if settings.fields.names().is_empty() {
                "PG* variables and libpq defaults"
            } else {
                "DB_* variables"
            };
            let mut base = PgConnectOptions::new();
            if let Some(user) = &settings.os_user {
                base = base.username(user);
            }
            (settings.fields.apply(base), origin.to_string(), UrlTls::default(), false, None)
        }
    };
    let tls = decide_tls(&settings.tls, &url_tls, options.get_host());
    warn_cleartext(&tls, options.get_host());
    let guarded = !settings.tls.allow_cleartext_password
        && !tls.mode.encrypts_always()
        && !tls::is_loopback(options.get_host());
    let options = apply_tls(options, &tls)?;
    Ok(DbTarget { options, origin, password_from_secret, secret_version, tls, generation, guarded })
}

/// A mode that may send the password in clear text over a real network says so, once per
/// process (every connection resolves the target again).
fn warn_cleartext(tls: &TlsChoice, host: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let risky = matches!(tls.mode, SslMode::Disable | SslMode::Allow | SslMode::Prefer);
    if risky && !tls::is_loopback(host) && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "sslmode {} (from {}) to {host}: the connection {}; anyone on the path can read the password and \
             the data. Use verify-full (the default) unless this network is trusted",
            tls.mode.name(),
            tls.mode_from,
            if tls.mode == SslMode::Disable {
                "is not encrypted"
            } else {
                "falls back to clear text when the server, or an attacker, refuses TLS"
            }
        );
    }
}

fn secret_fields(creds: &SecretCreds) -> PgConnectOptions {
    let fields = DbFields {
        host: creds.host.clone(),
        port: creds.port,
        user: creds.username.clone(),
        password: creds.password.clone(),
        name: creds.dbname.clone(),
    };
    fields.apply(PgConnectOptions::new())
}

/// The TLS mode and roots, layer by layer (see the module header). Pure.
pub fn decide_tls(inputs: &TlsInputs, url: &UrlTls, host: &str) -> TlsChoice {
    let db_ssl = inputs.db_ssl.map(|on| match (on, inputs.db_reject_unauthorized) {
        (false, _) => (SslMode::Disable, "DB_SSL=false"),
        (true, Some(false)) => (SslMode::Require, "DB_SSL_REJECT_UNAUTHORIZED=false"),
        (true, _) => (SslMode::VerifyFull, "DB_SSL=true"),
    });
    let rds = tls::is_rds_host(host);
    let (mode, mode_from) = inputs
        .flag_mode
        .map(|m| (m, "--sslmode"))
        .or(url.mode.map(|m| (m, "sslmode in the URL")))
        .or(db_ssl)
        .or(inputs.pg_mode.map(|m| (m, "PGSSLMODE")))
        .unwrap_or(if rds {
            (SslMode::VerifyFull, "the default for RDS hosts")
        } else if tls::is_loopback(host) {
            (SslMode::Prefer, "the default on loopback")
        } else {
            (SslMode::VerifyFull, "the default for hosts that are not loopback")
        });
    let file = [
        (&inputs.flag_root, "--ssl-root-cert"),
        (&url.root, "sslrootcert in the URL"),
        (&inputs.db_cert, "DB_SSL_CERT_PATH"),
        (&inputs.pg_root, "PGSSLROOTCERT"),
    ]
    .into_iter()
    .find_map(|(path, from)| path.clone().map(|path| Roots::File { path, from }));
    let roots = match file {
        Some(file) => file,
        None if rds || !tls::is_loopback(host) => Roots::RdsBundle,
        None => Roots::Public,
    };
    TlsChoice { mode, mode_from, roots }
}

/// Set the mode and load the roots. A CA file is read here, once, so a missing or empty file
/// is exit 2 naming the variable, not a handshake failure later.
fn apply_tls(options: PgConnectOptions, tls: &TlsChoice) -> Result<PgConnectOptions> {
    let options = options.ssl_mode(tls.mode.to_sqlx());
    if !tls.mode.verifies() {
        return Ok(options);
    }
    Ok(match &tls.roots {
        Roots::Public => options,
        Roots::RdsBundle => options.ssl_root_cert_from_pem(tls::RDS_CA_BUNDLE.to_vec()),
        Roots::File { path, from } => {
            let bad = |why: String| {
                Error::input(format!("{from}={}: {why}", path.display())).hint(
                    "point it at the PEM file of the CA that signed the server's certificate \
                     (for RDS, leave it out: the RDS CAs are built in)",
                )
            };
            let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read the CA file: {e}")))?;
            let certs = {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                CertificateDer::pem_slice_iter(&pem).filter(|c| c.is_ok()).count()
            };
            if certs == 0 {
                return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
            }
            options.ssl_root_cert_from_pem(pem)
        }
    })
}

fn parse_url(text: &str, from: &str) -> Result<(PgConnectOptions, UrlTls)> {
    let bad = |why: String| {
        Error::input(format!("{from} is not a valid PostgreSQL URL: {why}"))
            .hint("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require (percent-encode special characters in the password)")
    };
    redact::register_url_password(text);
    let parsed = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "the scheme is `{}`, expected postgres:// or postgresql://",
            parsed.scheme()
        )));
    }
    let mut url_tls = UrlTls::default();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" => {
                url_tls.mode = Some(
                    SslMode::parse(&value)
                        .ok_or_else(|| bad(format!("sslmode `{value}` is not one of {}", tls::MODES)))?,
                );
            }
            "sslrootcert" | "ssl-root-cert" => url_tls.root = Some(PathBuf::from(value.as_ref())),
            _ => {}
        }
    }
    let options = PgConnectOptions::from_str(text).map_err(|e| bad(redact::redact(&e.to_string())))?;
    Ok((options, url_tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    fn secret(host: Option<&str>) -> SecretCreds {
        SecretCreds {
            host: host.map(str::to_string),
            port: Some(5432),
            username: Some("secret_user".into()),
            password: Some("secret-pw-1".into()),
            dbname: Some("secret_db".into()),
            url: None,
        }
    }

    /// The precedence table of the module header (and the README), row by row.
    #[test]
    fn precedence_table() {
        let url_flag = "postgres://flag:pw@flag-host:5433/flagdb";
        let url_env = "postgres://env:pw@env-host:5434/envdb";
        type Row<'a> =
            (Flags, Vec<(&'a str, &'a str)>, Option<SecretCreds>, (&'a str, u16, &'a str, &'a str), &'a str);
        let rows: Vec<Row> = vec![
            // --database-url beats everything.
            (
                Flags { database_url: Some(url_flag.into()), ..Flags::default() },
                vec![("DATABASE_URL", url_env), ("DB_SECRET_ID", "prod/db"), ("DB_HOST", "db-host")],
                None,
                ("flag-host", 5433, "flag", "flagdb"),
                "--database-url",
            ),
            // --db-secret beats DATABASE_URL; DB_* override the secret's fields.
            (
                Flags { db_secret: Some("prod/db".into()), ..Flags::default() },
                vec![("DATABASE_URL", url_env), ("DB_HOST", "proxy-host")],
                Some(secret(Some("rds-host"))),
                ("proxy-host", 5432, "secret_user", "secret_db"),
                "secret `prod/db`, with DB_HOST from the environment",
            ),
            // DATABASE_URL beats DB_SECRET_ID, and is complete on its own.
            (
                Flags::default(),
                vec![("DATABASE_URL", url_env), ("DB_SECRET_ID", "prod/db"), ("DB_HOST", "db-host")],
                None,
                ("env-host", 5434, "env", "envdb"),
                "DATABASE_URL",
            ),
            // An RDS-managed secret (no host): DB_HOST and DB_NAME say where.
            (
                Flags::default(),
                vec![("DB_SECRET_ID", "rds!db-1"), ("DB_HOST", "db-host"), ("DB_NAME", "app")],
                Some(SecretCreds { host: None, port: None, dbname: None, ..secret(None) }),
                ("db-host", 5432, "secret_user", "app"),
                "secret `rds!db-1`, with DB_HOST, DB_NAME from the environment",
            ),
            // No URL, no secret: DB_*.
            (
                Flags::default(),
                vec![("DB_HOST", "db-host"), ("DB_PORT", "6543"), ("DB_USER", "app"), ("DB_NAME", "main")],
                None,
                ("db-host", 6543, "app", "main"),
                "DB_* variables",
            ),
        ];
        for (flags, env, creds, (host, port, user, db), origin) in rows {
            let s = settings(&flags, &env_of(&env)).unwrap();
            let t = resolve(&s, creds.as_ref().map(|c| (c, Some("v1".to_string()))), 0).unwrap();
            assert_eq!(
                (t.host().as_str(), t.port(), t.user().as_str(), t.database().as_str(), t.origin.as_str()),
                (host, port, user, db, origin),
                "{flags:?} {env:?}"
            );
        }
    }

    #[test]
    fn ignored_sources_and_conflicts() {
        let s = settings(
            &Flags::default(),
            &env_of(&[("DATABASE_URL", "postgres://h/db"), ("DB_SECRET_ID", "x")]),
        )
        .unwrap();
        assert_eq!(s.ignored, vec!["DB_SECRET_ID".to_string()]);
        // DB_* lose to a URL; a PG* variable does only for a part the URL gives.
        let s = settings(
            &Flags::default(),
            &env_of(&[
                ("DATABASE_URL", "postgres://h/db"),
                ("DB_HOST", "x"),
                ("PGHOST", "y"),
                ("PGUSER", "u"),
            ]),
        )
        .unwrap();
        assert_eq!(s.ignored, vec!["DB_HOST".to_string(), "PGHOST".to_string()]);
        let both = Flags {
            database_url: Some("postgres://h/db".into()),
            db_secret: Some("x".into()),
            ..Flags::default()
        };
        assert_eq!(settings(&both, &env_of(&[])).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn the_user_nothing_names_is_the_os_user() {
        let cases = [
            (vec![("DB_HOST", "db"), ("USER", "alice")], "alice"),
            (vec![("DB_HOST", "db"), ("LOGNAME", "bob")], "bob"),
            (vec![("DB_HOST", "db"), ("DB_USER", "app"), ("USER", "alice")], "app"),
            (vec![("DATABASE_URL", "postgres://db/app"), ("USER", "alice")], "alice"),
            (vec![("DATABASE_URL", "postgres://app@db/app"), ("USER", "alice")], "app"),
        ];
        for (env, user) in cases {
            let s = settings(&Flags::default(), &env_of(&env)).unwrap();
            assert_eq!(resolve(&s, None, 0).unwrap().user(), user, "{env:?}");
        }
    }

    #[test]
    fn nothing_naming_a_database_is_exit_2_at_once() {
        let err = settings(&Flags::default(), &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().starts_with("no database given: set DATABASE_URL"), "{}", err.message());
        // Any one source is enough; the PG* variables are libpq's own.
        for env in
            [[("PGHOST", "db")], [("PGDATABASE", "app")], [("DB_HOST", "db")], [("DB_SECRET_ID", "prod/db")]]
        {
            assert!(settings(&Flags::default(), &env_of(&env)).is_ok(), "{env:?}");
        }
        let flag = Flags { database_url: Some("postgres://h/db".into()), ..Flags::default() };
        assert!(settings(&flag, &env_of(&[])).is_ok());
    }

    #[test]
    fn password_from_secret_only_when_no_db_password_overrides_it() {
        let creds = secret(Some("h"));
        let cases = [
            (vec![("DB_SECRET_ID", "s")], true),
            (vec![("DB_SECRET_ID", "s"), ("DB_PASSWORD", "env-pw-9")], false),
        ];
        for (env, expected) in cases {
            let s = settings(&Flags::default(), &env_of(&env)).unwrap();
            assert_eq!(
                resolve(&s, Some((&creds, None)), 0).unwrap().password_from_secret,
                expected,
                "{env:?}"
            );
        }
        let url_secret =
            SecretCreds { url: Some("postgres://u:url-pw-9@h/db".into()), ..SecretCreds::default() };
        let s = settings(&Flags::default(), &env_of(&[("DB_SECRET_ID", "s")])).unwrap();
        assert!(resolve(&s, Some((&url_secret, None)), 0).unwrap().password_from_secret);
    }

    /// The TLS table of the module header, row by row.
    #[test]
    fn tls_table() {
        use SslMode::*;
        let rds = "db.abc.eu-west-1.rds.amazonaws.com";
        let file = |p: &str, from: &'static str| Roots::File { path: p.into(), from };
        let inputs = |f: &dyn Fn(&mut TlsInputs)| {
            let mut i = TlsInputs::default();
            f(&mut i);
            i
        };
        type Expected<'a> = (SslMode, &'a str, Roots);
        let cases: Vec<(TlsInputs, UrlTls, &str, Expected)> = vec![
            (
                TlsInputs::default(),
                UrlTls::default(),
                "localhost",
                (Prefer, "the default on loopback", Roots::Public),
            ),
            (
                TlsInputs::default(),
                UrlTls::default(),
                "127.0.0.1",
                (Prefer, "the default on loopback", Roots::Public),
            ),
            (
                TlsInputs::default(),
                UrlTls::default(),
                "/run/postgresql",
                (Prefer, "the default on loopback", Roots::Public),
            ),
            (
                TlsInputs::default(),
                UrlTls::default(),
                "db.internal",
                (VerifyFull, "the default for hosts that are not loopback", Roots::RdsBundle),
            ),
            (
                TlsInputs::default(),
                UrlTls::default(),
                rds,
                (VerifyFull, "the default for RDS hosts", Roots::RdsBundle),
            ),
            (
                inputs(&|i| {
                    i.flag_mode = Some(Require);
                    i.pg_mode = Some(VerifyFull);
                }),
                UrlTls { mode: Some(Disable), root: None },
                rds,
                (Require, "--sslmode", Roots::RdsBundle),
            ),
            (
                inputs(&|i| i.db_ssl = Some(true)),
                UrlTls { mode: Some(VerifyCa), root: Some("/url-ca.pem".into()) },
                "h",
                (VerifyCa, "sslmode in the URL", file("/url-ca.pem", "sslrootcert in the URL")),
            ),
            (
                inputs(&|i| i.db_ssl = Some(false)),
                UrlTls::default(),
                rds,
                (Disable, "DB_SSL=false", Roots::RdsBundle),
            ),
            (
                inputs(&|i| i.db_ssl = Some(true)),
                UrlTls::default(),
                "localhost",
                (VerifyFull, "DB_SSL=true", Roots::Public),
            ),
            (
                inputs(&|i| i.db_ssl = Some(true)),
                UrlTls::default(),
                "h",
                (VerifyFull, "DB_SSL=true", Roots::RdsBundle),
            ),
            (
                inputs(&|i| {
                    i.db_ssl = Some(true);
                    i.db_reject_unauthorized = Some(false);
                    i.db_cert = Some("/ca.pem".into());
                }),
                UrlTls::default(),
                "h",
                (Require, "DB_SSL_REJECT_UNAUTHORIZED=false", file("/ca.pem", "DB_SSL_CERT_PATH")),
            ),
            (
                inputs(&|i| {
                    i.db_ssl = Some(true);
                    i.db_cert = Some("ssl/rds-ca-2019-root.pem".into());
                    i.pg_root = Some("/pg.pem".into());
                }),
                UrlTls::default(),
                rds,
                (VerifyFull, "DB_SSL=true", file("ssl/rds-ca-2019-root.pem", "DB_SSL_CERT_PATH")),
            ),
            (
                inputs(&|i| {
                    i.pg_mode = Some(VerifyCa);
                    i.pg_root = Some("/pg.pem".into());
                    i.flag_root = Some("/flag.pem".into());
                }),
                UrlTls::default(),
                "h",
                (VerifyCa, "PGSSLMODE", file("/flag.pem", "--ssl-root-cert")),
            ),
        ];
        for (inputs, url, host, (mode, from, roots)) in cases {
            let got = decide_tls(&inputs, &url, host);
            assert_eq!(got, TlsChoice { mode, mode_from: from, roots }, "{inputs:?} {url:?} {host}");
        }
    }

    #[test]
    fn tls_settings_reach_the_options() {
        let s = settings(
            &Flags { sslmode: Some("verify-full".into()), ..Flags::default() },
            &env_of(&[("DATABASE_URL", "postgres://u@db.x.us-east-1.rds.amazonaws.com/app?sslmode=disable")]),
        )
        .unwrap();
        let t = resolve(&s, None, 0).unwrap();
        assert_eq!(format!("{:?}", t.options().get_ssl_mode()), "VerifyFull");
        assert_eq!(t.tls.roots, Roots::RdsBundle);

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        for (path, needle) in
            [(empty, "holds no PEM certificate"), (dir.path().join("missing.pem"), "cannot read")]
        {
            let env =
                env_of(&[("DB_HOST", "h"), ("DB_SSL", "true"), ("DB_SSL_CERT_PATH", path.to_str().unwrap())]);
            let err = resolve(&settings(&Flags::default(), &env).unwrap(), None, 0).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string().contains(&format!("DB_SSL_CERT_PATH={}: {needle}", path.display())),
                "{err}"
            );
        }
        // A CA file is not read when nothing verifies with it.
        let env = env_of(&[
            ("DB_HOST", "h"),
            ("DB_SSL", "true"),
            ("DB_SSL_REJECT_UNAUTHORIZED", "false"),
            ("DB_SSL_CERT_PATH", "/nope.pem"),
        ]);
        assert!(resolve(&settings(&Flags::default(), &env).unwrap(), None, 0).is_ok());
    }

    #[test]
    fn bad_input_is_exit_2_and_never_echoes_the_password() {
        type Env<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Flags, Env, &str)> = vec![
            (Flags::default(), vec![("DB_PORT", "five"), ("DB_PASSWORD", "hunter2-db")], "DB_PORT=`five`"),
            (Flags::default(), vec![("DB_SSL", "maybe")], "DB_SSL=`maybe` is not true or false"),
            (Flags::default(), vec![("PGSSLMODE", "strict")], "PGSSLMODE `strict` is not a TLS mode"),
            (
                Flags { sslmode: Some("on".into()), ..Flags::default() },
                vec![],
                "--sslmode `on` is not a TLS mode",
            ),
            (Flags::default(), vec![("DATABASE_URL", "mysql://u:hunter2-url@h/db")], "the scheme is `mysql`"),
            (
                Flags::default(),
                vec![("DATABASE_URL", "postgres://u:hunter2-url@h:notaport/db")],
                "not a valid PostgreSQL URL",
            ),
            (
                Flags::default(),
                vec![("DATABASE_URL", "postgres://u:hunter2-url@h/db?sslmode=on")],
                "sslmode `on`",
            ),
            (Flags::default(), vec![("DB_SECRET_ID", "a:b:c")], "DB_SECRET_ID=`a:b:c`"),
        ];
        for (flags, env, needle) in cases {
            let err = settings(&flags, &env_of(&env)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{env:?}");
            let shown = redact::redact(&err.to_string());
            assert!(shown.contains(needle), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let s = settings(&Flags::default(), &env_of(&[("DATABASE_URL", "postgres://u:hunter2-dbg@h/db")]))
            .unwrap();
        assert!(!format!("{:?} {:?}", s, resolve(&s, None, 0).unwrap()).contains("hunter2"));
    }
}
