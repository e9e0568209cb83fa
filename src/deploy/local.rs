//! `shipgate deploy` on the local platform (`platform = "local"` or `--local`): the same
//! migration steps as on Fargate (master, then tenants, sharded when configured), each run as
//! the migration container's command in a process on this machine, followed and judged the
//! same way. Nothing is registered and no service is touched; a rehearsal against a laptop's
//! database before the real deploy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::ci::Ci;
use super::migrations::{self, StepTask, TaskRunner, shard_tasks};
use super::prepare::Prepared;
use crate::cli::ExitCodeMode;
use crate::config::deploy::DeployConfig;
use crate::deploy::report::{DeployRecord, TaskRecord};
use crate::error::{Error, Result};
use crate::output::Reporter;
use crate::shutdown::Shutdown;
use crate::task::follow::Followed;
use crate::task::local::{self, SecretFrom};
use crate::task::outcome;

pub async fn run(
    cfg: &DeployConfig,
    prepared: &Prepared,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let env = &cfg.env;
    let mut record = DeployRecord {
        command: "deploy",
        env: env.name.clone(),
        cluster: "local".into(),
        region: "local".into(),
        dry_run: cfg.dry_run,
        ..DeployRecord::default()
    };
    let result = pipeline(cfg, prepared, &mut record, ci, shutdown, out).await;
    if result.is_ok() {
        let tasks = record.tasks.len();
        record.message = format!(
            "{tasks} local migration process{} succeeded; {} service{} skipped (local platform){}",
            if tasks == 1 { "" } else { "es" },
            prepared.services.len(),
            if prepared.services.len() == 1 { "" } else { "s" },
            migrations::post_note(&record),
        );
        if cfg.dry_run {
            record.message = "dry run on the local platform: nothing was run".into();
        }
    }
    ci.finish(&mut record, &result);
    result
}

async fn pipeline(
    cfg: &DeployConfig,
    prepared: &Prepared,
    record: &mut DeployRecord,
    ci: &Ci,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let env = &cfg.env;
    // Validation refuses a local environment without a migration task.
    let (rendered, watched) = prepared.migration.as_ref().expect("the local platform has a migration task");
    let container = local::container_definition(&rendered.rendered, watched)
        .expect("the watched container was found in the rendered template");
    let others: Vec<&str> =
        rendered.containers.iter().map(|c| c.name.as_str()).filter(|n| n != watched).collect();
    if !others.is_empty() {
        tracing::warn!("local platform: only container `{watched}` runs; not {}", others.join(", "));
    }
    if container.get("environmentFiles").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        tracing::warn!(
            "local platform: environmentFiles of container `{watched}` are not read (they live in S3)"
        );
    }
    tracing::info!(
        "local platform: nothing is registered with ECS (family {}); its container `{watched}` runs here as a process",
        rendered.family
    );
    let this_binary = std::env::current_exe()
        .map_err(|e| Error::failed(format!("cannot find the shipgate binary to run locally: {e}")))?;
    let inherited = local::inherited_environment();
    let steps = migrations::deploy_steps(env, cfg.lint);

    if cfg.dry_run {
        let secrets: BTreeMap<String, String> =
            local::secrets_of(container).into_iter().map(|(name, _)| (name, "***".into())).collect();
        let post = if cfg.skip_post { Vec::new() } else { migrations::possible_post_steps(&steps) };
        for step in steps.iter().chain(&post) {
            for t in shard_tasks(step, &cfg.run.started_by) {
                let task = local::plan(container, &secrets, &t.env, &inherited, &this_binary)?;
                let set: Vec<&str> = t.env.iter().map(|(k, _)| k.as_str()).collect();
                tracing::info!("would run ({}): {} with {}", t.label, task.argv.join(" "), set.join(", "));
            }
        }
        skip_services(prepared);
        return Ok(());
    }

    let secrets = resolve_secrets(container, &cfg.secrets).await?;
    // Every value is checked before the first process starts.
    local::plan(container, &secrets, &[], &inherited, &this_binary)?;
    let runner = Local {
        container,
        secrets: &secrets,
        inherited: &inherited,
        binary: &this_binary,
        cwd: env.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")),
        timeout: env.migration.as_ref().and_then(|m| m.timeout),
        shutdown,
    };
    let heard = migrations::run_steps(&runner, &steps, &cfg.run, ci, out, record)
        .await
        .map_err(|e| migrations::before_services(e, prepared.services.len()))?;
    skip_services(prepared);
    // No rollout here: the post phase follows the pre phase at once.
    let post = migrations::post_steps(&steps, &heard);
    migrations::run_post(&runner, post, cfg.skip_post, &cfg.run, ci, out, record).await
}

/// The local platform's task runner: the migration container's command as a process here.
struct Local<'a> {
    container: &'a Value,
    secrets: &'a BTreeMap<String, String>,
    inherited: &'a [(String, String)],
    binary: &'a Path,
    cwd: &'a Path,
    timeout: Option<std::time::Duration>,
    shutdown: &'a Shutdown,
}

impl TaskRunner for Local<'_> {
    async fn run_task(
        &self,
        task: StepTask,
        _group: Option<String>,
        out: Reporter,
    ) -> Result<(TaskRecord, Result<()>)> {
        let started = Instant::now();
        let planned = local::plan(self.container, self.secrets, &task.env, self.inherited, self.binary)?;
        let followed = local::run(&planned, self.cwd, self.timeout, self.shutdown, &out).await;
        let verdict = crate::task::verdict::verdict(
            &followed,
            &planned.container,
            ExitCodeMode::Classified,
            self.timeout,
            &out,
        );
        let record =
            task_record(&task.label, &followed, &planned.container, &verdict, started.elapsed().as_millis());
        Ok((record, verdict))
    }
}

fn skip_services(prepared: &Prepared) {
    for s in &prepared.services {
        tracing::info!("service {}: skipped (the local platform registers and updates no service)", s.role);
    }
}

fn task_record(label: &str, f: &Followed, watched: &str, verdict: &Result<()>, ms: u128) -> TaskRecord {
    let o = outcome::classify(&f.task, watched);
    TaskRecord {
        phase: label.to_string(),
        task_arn: Some(f.task.arn.clone()),
        succeeded: verdict.is_ok(),
        exit_code: o.container_exit_code().or(o.succeeded().then_some(0)),
        outcome: o.to_string(),
        stop_code: f.task.stop_code.clone(),
        stopped_reason: f.task.stopped_reason.clone(),
        duration_ms: Some(ms),
        log: None,
        stage: None,
        ended_at: Some(std::time::SystemTime::now()),
    }
}

/// The value of every `secrets` entry of the container: `--secret` first, else Secrets
/// Manager with the operator's credentials. Each value is masked before it can be printed.
async fn resolve_secrets(
    container: &Value,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (name, value_from) in local::secrets_of(container) {
        if let Some(v) = given.get(&name) {
            values.insert(name, v.clone());
            continue;
        }
        let what = format!("secret {name} ({value_from})");
        // Whatever kept it from being read, on this machine it is input the rehearsal lacks
        // (exit 2, before anything runs), and `--secret` supplies it.
        let with_hint = |e: Error| {
            Error::input(format!("{what}: {}", e.message()))
                .hint(format!("pass --secret {name}=VALUE to run without reading it from AWS"))
        };
        let value = match local::secret_from(&value_from).map_err(with_hint)? {
            SecretFrom::Parameter(_) => {
                return Err(with_hint(Error::input(
                    "it is an SSM parameter, which the local platform does not read",
                )));
            }
            SecretFrom::SecretsManager { secret, key } => {
                // The ARN names the region to read it from.
                let client = crate::aws::secrets::client(&secret).await.map_err(with_hint)?;
                let fetched = crate::aws::secrets::get(&client, &secret).await.map_err(with_hint)?;
                local::secret_value(&fetched.text, key.as_deref(), &what)?
            }
        };
        crate::redact::register(&value);
        values.insert(name, value);
    }
    Ok(values)
}
