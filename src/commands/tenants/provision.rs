//! `shipgate tenants provision NAME`: create the tenant's schema, register it with
//! `provision_sql`, and apply every tenant migration. Each step checks what is already
//! there, so a second call, or one after a crash at any point, finishes the job.

use std::time::Instant;

use sqlx::AssertSqlSafe;

use crate::config::FleetConfig;
use crate::db::{self, quote_ident};
use crate::error::{Error, Result};
use crate::fleet::control::{Control, finish};
use crate::fleet::db as fleet_db;
use crate::fleet::names;
use crate::fleet::run::{self as fleet_run, Fleet, Tenant, Work};
use crate::fleet::state::Outcome;
use crate::identity;
use crate::migrate::history::Writer;
use crate::migrate::plan::UpOptions;
use crate::migrate::source;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

/// SQLSTATEs that mean "someone already did this": duplicate_schema, unique_violation.
const ALREADY_THERE: [&str; 2] = ["42P06", "23505"];

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
        let created = create_schema(&mut control, name).await?;
        let registered = register(&mut control, cfg, name).await?;
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
        };
        let tenants = vec![Tenant { name: name.to_string(), failed_before }];
        let (results, interrupted) =
            fleet_run::run(&fleet, tenants, control.shared_conn(), shutdown, out).await?;
        if interrupted.is_some() || results.iter().any(|(_, o)| matches!(o, Outcome::Failed { .. })) {
            return finish("provision", "migrated", &results, started, out, interrupted);
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

/// Create the schema unless it exists. Returns whether this call created it.
async fn create_schema(control: &mut Control, name: &str) -> Result<bool> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(control.conn())
        .await
        .map_err(|e| Error::failed(format!("could not look up schema `{name}`: {}", db::error_text(&e))))?;
    if exists {
        return Ok(false);
    }
    // Not IF NOT EXISTS: that checks the database-level CREATE privilege even when the schema
    // exists; a concurrent provision that won the race shows up as an error we accept below.
    let sql = format!("CREATE SCHEMA {}", quote_ident(name));
    match sqlx::raw_sql(AssertSqlSafe(sql)).execute(control.conn()).await {
        Ok(_) => Ok(true),
        Err(e) if sqlstate_in(&e, &ALREADY_THERE) => Ok(false),
        Err(e) => Err(Error::failed(format!("could not create schema `{name}`: {}", db::error_text(&e)))
            .hint("the database user needs CREATE on the database (GRANT CREATE ON DATABASE ... TO ...)")),
    }
}

/// Run `provision_sql` with the name as `$1`. Returns whether it added a row.
async fn register(control: &mut Control, cfg: &FleetConfig, name: &str) -> Result<bool> {
    let done = sqlx::query(AssertSqlSafe(cfg.provision_sql.clone())).bind(name).execute(control.conn()).await;
    match done {
        Ok(r) => Ok(r.rows_affected() > 0),
        // A provision_sql without ON CONFLICT: the row is there, which is all we need.
        Err(e) if sqlstate_in(&e, &ALREADY_THERE[1..]) => Ok(false),
        Err(e) => Err(Error::failed(format!(
            "provision_sql failed for tenant `{name}`: {}\n  sql: {}",
            db::error_text(&e),
            cfg.provision_sql
        ))
        .hint(
            "provision_sql (shipgate.toml or --provision-sql) runs in the master schema with $1 = the schema \
             name; the master migrations must have created its table (`shipgate migrate up --set master`). \
             The schema was created and is kept; running provision again continues from here",
        )),
    }
}

fn sqlstate_in(e: &sqlx::Error, codes: &[&str]) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| codes.contains(&c.as_ref()))
}
