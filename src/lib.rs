//! shipgate: the deploy gate for AWS ECS/Fargate.
//!
//! This crate is the `shipgate` binary's library: `cli` parses, `config` validates, and the
//! `commands` modules do the work. The database edge lives in `db` and `migrate::{history,
//! lock, exec, session}`; every decision (what is pending, may this run proceed) is a pure
//! function in `migrate::plan` and friends.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod deploy;
pub mod duration;
pub mod error;
pub mod fleet;
pub mod identity;
pub mod logging;
pub mod migrate;
pub mod output;
pub mod parallel;
pub mod progress;
pub mod project;
pub mod redact;
pub mod shutdown;
pub mod task;
pub mod taskdef;

use crate::cli::{Cli, OutputFormat};
use crate::config::Job;
use crate::error::Error;
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

/// Run a parsed command line to completion and return the process exit code.
pub fn main(cli: Cli) -> u8 {
    logging::init(cli.verbose, cli.quiet);
    let out = Reporter::new(cli.output());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&out, &Error::failed(format!("cannot start the async runtime: {e}"))),
    };
    let then = cli.then_command();
    let result = runtime.block_on(async {
        let job = config::from_cli(cli, &|name| std::env::var(name).ok())?;
        // The orchestrator stops its tasks at the first signal; a second one ends it at once.
        let orchestrates =
            matches!(job, Job::Deploy(_) | Job::Rollback(_) | Job::TaskRun(_) | Job::TaskAttach(_));
        let shutdown = Shutdown::install(orchestrates)
            .map_err(|e| Error::failed(format!("cannot install signal handlers: {e}")))?;
        run(job, &shutdown, &out).await
    });
    // Connections and the lock are closed by now; the runtime goes before the exec.
    drop(runtime);
    match (result, then) {
        (Ok(()), Some(command)) => report(&out, &exec(&command)),
        (Ok(()), None) => 0,
        (Err(e), _) => report(&out, &e),
    }
}

/// Become `command` (the entrypoint pattern `migrate up --then -- app`): same PID, so the
/// container's signals reach the application. Returns only if the exec failed.
fn exec(command: &[String]) -> Error {
    use std::os::unix::process::CommandExt;
    let (program, args) = command.split_first().expect("clap requires a command after --then --");
    tracing::info!("migrations done; starting {}", command.join(" "));
    let e = std::process::Command::new(program).args(args).exec();
    Error::failed(format!("the migrations were applied, but `{program}` could not be started: {e}"))
        .hint("check the command after `--then --` (is it on PATH inside the image?)")
}

/// Dispatch one validated job.
pub async fn run(job: Job, shutdown: &Shutdown, out: &Reporter) -> error::Result<()> {
    match job {
        Job::Migrate(cfg, job) => commands::migrate::run(&cfg, &job, shutdown, out).await,
        Job::Tenants(cfg, job) => commands::tenants::run(&cfg, &job, shutdown, out).await,
        Job::MigrateAll { master, options, fleet } => {
            commands::migrate::up::run(&master, &options, false, shutdown, out).await?;
            commands::tenants::up::run(&fleet, &options, shutdown, out).await
        }
        Job::Lint(job) => commands::migrate::lint::run(&job, shutdown, out).await,
        Job::NewMigration { dir, name, reversible } => {
            commands::migrate::new::run(&dir, &name, reversible, out)
        }
        Job::TaskdefRender { template } => commands::taskdef::render::run(&template),
        Job::TaskdefRegister { template, region } => {
            commands::taskdef::register::run(&template, region.as_deref(), out).await
        }
        Job::TaskRun(cfg) => commands::task::run::run(&cfg, shutdown, out).await,
        Job::TaskAttach(cfg) => commands::task::attach::run(&cfg, shutdown, out).await,
        Job::TaskExec(request) => commands::task::exec::run(&request, out).await,
        Job::TaskLogs { task, cluster, region, task_definition } => {
            commands::task::logs::run(&task, &cluster, region.as_deref(), task_definition.as_deref(), out)
                .await
        }
        Job::DbCheck { cfg, source } => {
            commands::db::check::run(&cfg, source.as_deref(), shutdown, out).await
        }
        Job::Deploy(cfg) => commands::deploy::run(&cfg, shutdown, out).await,
        Job::Rollback(cfg) => commands::rollback::run(&cfg, shutdown, out).await,
        Job::ConfigCheck(env) => commands::config::check::run(&env, out),
        Job::ConfigReference => commands::config::reference::run(),
        Job::ConfigSchema => commands::config::reference::schema(),
        Job::Completions { shell } => commands::completions::run(shell),
        Job::Man { dir } => commands::man::run(dir.as_deref()),
    }
}

/// Print a failure (stderr always; stdout too as a final JSON object) and return its code.
fn report(out: &Reporter, e: &Error) -> u8 {
    eprintln!("error: {}", redact::redact(&e.to_string()));
    if out.format() == OutputFormat::Json {
        out.emit(&Event::Error {
            exit_code: e.exit_code(),
            message: e.message().to_string(),
            hint: e.hint_text().map(str::to_string),
        });
    }
    e.exit_code()
}
