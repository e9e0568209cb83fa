//! What `tenants status` and `tenants verify` read: where every tenant stands, from a
//! read-only session, in a few statements for the whole fleet (histories are read 500 tenants
//! per statement).

use serde::Serialize;

use crate::config::FleetConfig;
use crate::db;
use crate::error::{Error, Result};
use crate::fleet::control::{Control, Roster, recorded_failures};
use crate::fleet::db::{self as fleet_db, Failure};
use crate::fleet::state::Standing;
use crate::migrate::source::{self, MigrationSet};
use crate::shutdown::Shutdown;

/// One tenant as status sees it.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub tenant: String,
    pub schema_exists: bool,
    #[serde(flatten)]
    pub standing: Standing,
    /// What the last run that failed on it recorded (cleared by its next success).
    pub last_failure: Option<Failure>,
}

impl View {
    /// Every problem, worst first; empty when the tenant is current.
    pub fn problems(&self) -> Vec<&'static str> {
        let s = &self.standing;
        let mut p = Vec::new();
        if !self.schema_exists {
            p.push("no_schema");
        }
        if self.last_failure.is_some() {
            p.push("failed");
        }
        if !s.dirty.is_empty() {
            p.push("dirty");
        }
        if !s.modified.is_empty() || !s.missing.is_empty() {
            p.push("drift");
        }
        if self.schema_exists && !s.pending.is_empty() {
            p.push("behind");
        }
        p
    }
}

/// The fleet, read once.
pub struct Survey {
    pub scope: String,
    pub set: MigrationSet,
    pub views: Vec<View>,
    pub invalid: Vec<(String, String)>,
}

pub async fn survey(cfg: &FleetConfig, shutdown: &Shutdown) -> Result<Survey> {
    let set = source::load(&cfg.db.source, &cfg.db.read)?;
    let mut control = Control::open(cfg, true, shutdown).await?;
    let result = async {
        let roster = Roster::load(&mut control, cfg).await?;
        let with_history: Vec<&str> = roster.with_history.iter().map(String::as_str).collect();
        let mut facts = fleet_db::facts(control.conn(), &with_history).await.map_err(|e| {
            Error::failed(format!("could not read the tenants' histories: {}", db::error_text(&e)))
        })?;
        let mut failures = recorded_failures(&mut control).await?;
        let views = roster
            .tenants
            .iter()
            .map(|t| View {
                tenant: t.clone(),
                schema_exists: roster.existing.contains(t),
                standing: Standing::of(&set, facts.remove(t).as_deref().unwrap_or_default()),
                last_failure: failures.remove(t),
            })
            .collect();
        Ok(Survey { scope: control.describe(cfg), set, views, invalid: roster.invalid })
    }
    .await;
    control.close().await;
    result
}
