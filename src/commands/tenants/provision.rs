//! `shipgate tenants provision NAME`: create the tenant's schema, register it with
//! `provision_sql`, and apply every tenant migration. Each step checks what is already
//! there, so a second call, or one after a crash at any point, finishes the job.

use std::time::Instant;

use crate::config::FleetConfig;
use crate::db;
use crate::error::{Error, Result};
use crate::fleet::control::{Control, finish};
use crate::fleet::db as fleet_db;
use crate::fleet::run::{self as fleet_run, Fleet, Tenant, Work};
use crate::fleet::state::Outcome;
use crate::fleet::{names, provision};
use crate::identity;
use crate::migrate::history::Writer;
use crate::migrate::plan::UpOptions;
use crate::migrate::source;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, name: &str, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    if let Some(reason) = names::invalid(name, "") {
        return Err(Error::input(format!("cannot provision tenant: {reason}")));
    }
    let set = source::load(&cfg.db.source, &cfg.db.read)?;
    let started = Instant::now();
    let mut control = Control::open(cfg, false, shutdown).await?;
    let result = async {
        if let Some(reason) = names::invalid(name, &control.master) {
            return Err(Error::input(format!("cannot provision tenant: {reason}")));
        }
        let created = provision::create_schema(&mut control, name).await?;
        let registered = provision::register(&mut control, &cfg.provision_sql, name).await?;
        let master = control.master.clone();
        let failed_before = match fleet_db::ensure_failures(control.conn(), &master).await {
            Ok(()) => fleet_db::failures(control.conn(), &master)
                .await
                .map(|f| f.contains_key(name))
                .unwrap_or(false),
            Err(e) => {
                tracing::warn!(
                    "could not create {master}.{}: {}",
                    fleet_db::FAILURES_TABLE,
                    db::error_text(&e)
                );
                false
            }
        };
        let applied_by = identity::applied_by().await;
        let fleet = Fleet {
            cfg: &cfg.db,
            set: &set,
            database: &control.database,
            master: &master,
            work: Work::Up(UpOptions::default()),
            concurrency: 1,
            canary: 0,
            fail_fast: true,
            by: Writer { run_id: &cfg.db.run_id, applied_by: &applied_by },
            fleet_lock: control.fleet_lock,
            // One tenant: no bar.
            progress: false,
        };
        let tenants = vec![Tenant { name: name.to_string(), failed_before }];
        let ran = fleet_run::run(&fleet, tenants, control.shared_conn(), shutdown, out).await?;
        let results = ran.results;
        if ran.interrupted.is_some() || results.iter().any(|(_, o)| matches!(o, Outcome::Failed { .. })) {
            return finish(
                "provision",
                "migrated",
                &results,
                started,
                out,
                ran.interrupted,
                Default::default(),
            );
        }
        let (changed, version) = match results.first().map(|(_, o)| o) {
            Some(Outcome::Changed { to, count, .. }) => (*count, *to),
            Some(Outcome::Current { version }) => (0, *version),
            _ => (0, None),
        };
        let steps = [
            if created { "created its schema" } else { "its schema already existed" },
            if registered { "registered it" } else { "it was already registered" },
        ];
        out.emit(&Event::Summary {
            command: "provision",
            schema: Some(name.to_string()),
            changed,
            duration_ms: started.elapsed().as_millis(),
            version,
            message: format!(
                "provisioned tenant `{name}`: {}, {}, applied {changed} migration{}; now at {} ({:.2}s)",
                steps[0],
                steps[1],
                if changed == 1 { "" } else { "s" },
                version.map_or("no migration".into(), |v| format!("version {v}")),
                started.elapsed().as_secs_f64()
            ),
        });
        Ok(())
    }
    .await;
    control.close().await;
    result
}
