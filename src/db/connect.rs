//! Opening a connection, patiently: a Fargate task often starts before its database is
//! reachable (security group propagation, DNS, an RDS instance still booting), so transient
//! failures are retried with backoff until `--connect-timeout`; anything else fails at once,
//! except a rejected password that came from a secret: the secret is read once more (it may
//! have just been rotated) and the connection retried with the new version.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::db::credentials::Credentials;
use crate::db::target::DbTarget;
use crate::db::tls;
use crate::duration;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// How to open one connection.
#[derive(Debug, Clone)]
pub struct ConnectSpec<'a> {
    pub credentials: &'a Credentials,
    /// `application_name`, so `pg_stat_activity` shows who holds a lock.
    pub application_name: &'a str,
    /// `default_transaction_read_only=on`, for dry runs and status.
    pub read_only: bool,
    /// Overall budget for retries.
    pub timeout: Duration,
    /// Warn at each retry. Of two connections opened together, the second is quiet: one wait
    /// prints one line per attempt, not two.
    pub announce: bool,
}

/// Is a failed connection attempt worth retrying?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Transient,
    Fatal,
}

/// Classify a connection failure from its SQLSTATE (server errors) or I/O kind (network).
pub fn classify(sqlstate: Option<&str>, io: Option<std::io::ErrorKind>) -> Attempt {
    use std::io::ErrorKind as K;
    match (sqlstate, io) {
        // cannot_connect_now (starting up / shutting down), too_many_connections,
        // and the connection_exception class.
        (Some("57P03" | "53300"), _) => Attempt::Transient,
        (Some(code), _) if code.starts_with("08") => Attempt::Transient,
        (Some(_), _) => Attempt::Fatal,
        (None, Some(K::PermissionDenied | K::InvalidInput | K::InvalidData | K::Unsupported)) => {
            Attempt::Fatal
        }
        // Refused, reset, unreachable, DNS not resolvable yet, timed out, ...
        (None, Some(_)) => Attempt::Transient,
        (None, None) => Attempt::Fatal,
    }
}

/// A failed attempt: what happened, whether to retry, what to do, and whether the server
/// rejected the password.
struct Failure {
    reason: String,
    attempt: Attempt,
    hint: Option<String>,
    auth: bool,
}

fn describe(err: &sqlx::Error, target: &DbTarget) -> Failure {
    if let Some(problem) = tls::problem(err) {
        let host = target.host();
        return Failure {
            reason: problem.describe(&host, &target.tls),
            attempt: Attempt::Fatal,
            hint: Some(problem.hint(&host, &target.tls)),
            auth: false,
        };
    }
    let (reason, attempt) = match err {
        sqlx::Error::Database(db) => (super::error_text(err), classify(db.code().as_deref(), None)),
        sqlx::Error::Io(io) => (io.to_string(), classify(None, Some(io.kind()))),
        sqlx::Error::Configuration(e) => (format!("configuration error: {e}"), Attempt::Fatal),
        other => (other.to_string(), Attempt::Fatal),
    };
    let auth = err.as_database_error().and_then(|db| db.code()).is_some_and(|c| c == "28P01");
    Failure { hint: Some(hint_for(&reason, target)), reason, attempt, auth }
}

fn hint_for(reason: &str, target: &DbTarget) -> String {
    if reason.contains("28P01") || reason.contains("28000") {
        if reason.contains("28P01") && target.password_from_secret {
            let reread = if target.generation > 0 {
                "and so was the newer version read after it"
            } else {
                "and reading the secret again found no newer version"
            };
            return format!(
                "the password from {} was rejected, {reread}: check that the secret matches the \
                 database user's password (a failed rotation leaves them apart: aws secretsmanager \
                 describe-secret)",
                target.origin
            );
        }
        return "check the user and password (DATABASE_URL, DB_USER/DB_PASSWORD, PGUSER/PGPASSWORD \
                or the secret named by DB_SECRET_ID)"
            .to_string();
    }
    if reason.contains("3D000") {
        return "the database does not exist: check DB_NAME / PGDATABASE / the URL path / the secret's dbname"
            .to_string();
    }
    "check that the host and port are reachable from here (security groups, VPC routes, DNS) \
     and that the database is running; --connect-timeout sets how long to keep trying"
        .to_string()
}

fn options_for(spec: &ConnectSpec<'_>, target: &DbTarget) -> PgConnectOptions {
    let mut options = target
        .options()
        .clone()
        .application_name(spec.application_name)
        // Statements are logged by us, with context; sqlx's own statement logs would repeat
        // whole migration files at debug level and warn on every slow (legitimate) migration.
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600));
    if spec.read_only {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    options
}

/// Connect, retrying transient failures with backoff until `spec.timeout`.
pub async fn connect(spec: &ConnectSpec<'_>, shutdown: &Shutdown) -> Result<PgConnection> {
    let interrupted = |signal: crate::shutdown::Signal| {
        Error::interrupted(
            signal,
            format!("interrupted by {} while connecting; nothing changed", signal.name()),
        )
    };
    let mut target = tokio::select! {
        t = spec.credentials.target() => t?,
        signal = shutdown.wait() => return Err(interrupted(signal)),
    };
    let mut options = options_for(spec, &target);
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        // One attempt never outlives the budget, and never hangs on a black-holed host.
        let per_attempt = remaining.clamp(Duration::from_secs(1), Duration::from_secs(10));
        let attempt = tokio::time::timeout(per_attempt, attempt_once(&options, &target));
        let outcome = tokio::select! {
            r = attempt => r,
            signal = shutdown.wait() => return Err(interrupted(signal)),
        };
        let failure = match outcome {
            Ok(Attempted::Refused) => return Err(cleartext_refused(&target)),
            Ok(Attempted::Done(Ok(mut conn))) => {
                if let Err(e) = sqlx::raw_sql(super::keep_session_sql(&conn)).execute(&mut conn).await {
                    tracing::debug!("could not turn the idle timeouts off: {}", super::error_text(&e));
                }
                if attempts > 1 {
                    tracing::info!(
                        "connected after {attempts} attempts ({:.1}s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(conn);
            }
            Ok(Attempted::Done(Err(e))) => describe(&e, &target),
            Err(_) => Failure {
                reason: format!("no answer within {}", duration::human(per_attempt)),
                attempt: Attempt::Transient,
                hint: Some(hint_for("", &target)),
                auth: false,
            },
        };
        if failure.auth {
            let fresh = tokio::select! {
                f = spec.credentials.after_auth_failure(&target) => f?,
                signal = shutdown.wait() => return Err(interrupted(signal)),
            };
            if let Some(fresh) = fresh {
                target = fresh;
                options = options_for(spec, &target);
                continue;
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if failure.attempt == Attempt::Fatal || remaining.is_zero() {
            let when = if failure.attempt == Attempt::Fatal {
                String::new()
            } else {
                format!(" within {} ({attempts} attempts)", duration::human(spec.timeout))
            };
            let error =
                Error::unavailable(format!("could not connect to {target}{when}: {}", failure.reason));
            return Err(match failure.hint {
                Some(hint) => error.hint(hint),
                None => error,
            });
        }
        let wait = jitter(delay).min(remaining);
        // The second of two connections opened together waits the same; one line per attempt.
        let message = format!(
            "database not reachable yet ({}); retrying in {}, {} left",
            failure.reason,
            duration::human(wait),
            duration::human(remaining)
        );
        if spec.announce {
            tracing::warn!("{message}");
        } else {
            tracing::debug!("{message}");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            signal = shutdown.wait() => return Err(interrupted(signal)),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What one attempt came to: a connection or why not, or the guard's refusal.
enum Attempted {
    Done(sqlx::Result<PgConnection>),
    Refused,
}

/// One attempt, through the clear-text password guard when the target may connect without
/// TLS across a network.
async fn attempt_once(options: &PgConnectOptions, target: &DbTarget) -> Attempted {
    if !target.guarded {
        return Attempted::Done(PgConnection::connect_with(options).await);
    }
    let guard = match super::guard::start(&target.host(), target.port()).await {
        Ok(guard) => guard,
        Err(e) => return Attempted::Done(Err(sqlx::Error::Io(e))),
    };
    tracing::debug!(
        "connecting to {}:{} through the clear-text password guard (sslmode {})",
        target.host(),
        target.port(),
        target.tls.mode.name()
    );
    let relayed = options.clone().host("127.0.0.1").port(guard.port);
    let result = PgConnection::connect_with(&relayed).await;
    match result {
        Err(_) if guard.refused() => Attempted::Refused,
        result => Attempted::Done(result),
    }
}

fn cleartext_refused(target: &DbTarget) -> Error {
    Error::unavailable(format!(
        "could not connect to {target}: the server asked for the password in clear text (`password` \
         authentication) on a connection without TLS (sslmode {} from {}), where anyone on the path \
         can read it; the connection was closed before the password was sent",
        target.tls.mode.name(),
        target.tls.mode_from
    ))
    .hint(
        "use TLS (sslmode verify-full, the default for hosts that are not loopback), or have the server ask \
         for scram-sha-256 (pg_hba.conf); on a network you trust, --allow-cleartext-password lets it through",
    )
}

/// ±20 %, so a fleet of tasks started together does not retry in lockstep.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind as K;

    #[test]
    fn transient_versus_fatal() {
        let cases = [
            (Some("57P03"), None, Attempt::Transient),
            (Some("53300"), None, Attempt::Transient),
            (Some("08006"), None, Attempt::Transient),
            (Some("28P01"), None, Attempt::Fatal),
            (Some("3D000"), None, Attempt::Fatal),
            (None, Some(K::ConnectionRefused), Attempt::Transient),
            (None, Some(K::TimedOut), Attempt::Transient),
            (None, Some(K::Other), Attempt::Transient),
            (None, Some(K::InvalidData), Attempt::Fatal),
            (None, None, Attempt::Fatal),
        ];
        for (code, io, expected) in cases {
            assert_eq!(classify(code, io), expected, "{code:?} {io:?}");
        }
    }
}
