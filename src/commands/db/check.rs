//! `shipgate db check`: the pre-flight a Kubernetes init container runs before the app
//! starts. Resolve the credentials, connect with the runner's retry policy, and report what a
//! deploy is about to talk to: server version, TLS in use and whether it was verified, and the
//! migration history. Read-only; exit 0 when connected, 3 when not.

use std::path::Path;

use serde_json::json;

use crate::config::MigrateConfig;
use crate::db::{self, SessionTls, tls};
use crate::error::Result;
use crate::migrate::history;
use crate::migrate::plan::{self, State};
use crate::migrate::run::with_session;
use crate::migrate::session::Mode;
use crate::migrate::source;
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    source: Option<&Path>,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    // Load the files first: a broken migration folder is exit 2 before we connect.
    let set = match source.filter(|dir| dir.is_dir()) {
        Some(dir) => Some(source::load(dir, &cfg.read)?),
        None => None,
    };
    with_session(cfg, Mode::ReadOnly, shutdown, async |s| {
        let target = cfg.credentials.target().await?;
        let conn = s.worker();
        let version = db::server_version(conn).await.map_err(db::failed("could not read the server version"))?;
        let ssl = db::session_tls(conn).await.map_err(db::failed("could not read pg_stat_ssl"))?;
        let table = s.table.clone();
        let exists = history::exists(s.worker(), &table).await.map_err(db::failed("could not look for the history table"))?;
        let rows = s.history().await?;
        let counts = set.as_ref().map(|set| plan::counts(&plan::reconcile(set, &rows)));
        let count = |state: State| counts.as_ref().and_then(|c| c.iter().find(|(st, _)| *st == state)).map(|(_, n)| *n);
        let applied = rows.iter().filter(|r| r.success).count();
        let tls_on = ssl.as_ref().is_some_and(|r| r.ssl);
        let doc = json!({
            "ok": true,
            "database": s.database,
            "host": target.host(),
            "port": target.port(),
            "user": target.user(),
            "credentials_from": target.origin,
            "server_version": version,
            "tls": {
                "in_use": tls_on,
                "protocol": ssl.as_ref().and_then(|r| r.version.clone()),
                "cipher": ssl.as_ref().and_then(|r| r.cipher.clone()),
                "bits": ssl.as_ref().and_then(|r| r.bits),
                "sslmode": target.tls.mode.name(),
                "sslmode_from": target.tls.mode_from,
                "verified": tls_on && target.tls.mode.verifies(),
                "hostname_verified": tls_on && target.tls.mode == tls::SslMode::VerifyFull,
                "roots": target.tls.mode.verifies().then(|| target.tls.roots.to_string()),
            },
            "schema": table.schema,
            "history_table": table.qualified(),
            "history_table_exists": exists,
            "applied": applied,
            "pending": count(State::Pending),
            "source": source.map(|p| p.display().to_string()),
        });
        let tls_line = match &ssl {
            Some(SessionTls { ssl: true, version, cipher, bits }) => format!(
                "{} {} ({} bits), {}{}",
                version.as_deref().unwrap_or("TLS"),
                cipher.as_deref().unwrap_or("unknown cipher"),
                bits.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
                target.tls.verification(),
                if target.tls.mode.verifies() { format!(" against {}", target.tls.roots) } else { String::new() },
            ),
            _ => "not in use: the connection is unencrypted".to_string(),
        };
        let history_line = match (exists, &counts) {
            (false, _) => format!("{} does not exist yet (no migration has run here)", table.qualified()),
            (true, _) => format!("{}: {applied} applied", table.qualified()),
        };
        let pending_line = match (source, counts.is_some()) {
            (Some(dir), true) => format!(
                "{} pending in {}{}",
                count(State::Pending).unwrap_or(0),
                dir.display(),
                match count(State::Modified).unwrap_or(0) + count(State::Missing).unwrap_or(0) + count(State::Failed).unwrap_or(0) {
                    0 => String::new(),
                    n => format!(", {n} needing attention (see `shipgate migrate status`)"),
                }
            ),
            (Some(dir), false) => format!("unknown: no migrations folder at {}", dir.display()),
            (None, _) => "unknown: no migration set configured".to_string(),
        };
        let text = format!(
            "connected to {target}\n  server      PostgreSQL {version}\n  tls         {tls_line}\n  sslmode     {} (from {})\n  history     {history_line}\n  pending     {pending_line}\n",
            target.tls.mode.name(),
            target.tls.mode_from,
        );
        out.document(&doc, &text);
        Ok(())
    })
    .await
}
