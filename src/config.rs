//! Turning parsed arguments and the environment into one validated job description.
//!
//! Everything that can be checked without touching the database is checked here, so a bad
//! flag or variable fails with exit 2 before any connection is opened.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod deploy;

use crate::cli::{
    AdoptArgs, AdoptFrom, AttachArgs, Cli, Command, ConfigAction, DbAction, ExitCodeMode, FollowArgs,
    LogsArgs, MigrateAction, MigrateArgs, MigrateCmd, OutputFormat, RunArgs, SetChoice, SourceFormat,
    TaskAction, TaskdefAction, TenantsAction, TenantsCmd, VarArgs,
};
use crate::db::Credentials;
use crate::db::target;
use crate::error::{Error, Result};
use crate::fleet::names::Shard;
use crate::identity;
use crate::migrate::adopt::Tool;
use crate::migrate::adopt::apply::AdoptOptions;
use crate::migrate::exec::Limits;
use crate::migrate::lint;
use crate::migrate::phase::RunPhase;
use crate::migrate::plan::{DownTo, UpOptions};
use crate::migrate::source::{Format, ReadOptions};
use crate::project::{self, Project, Sets};
use crate::task::follow::FollowOptions;
use crate::task::spec::{Overrides, Placement};
use crate::task::view::parse_task_arn;
use crate::taskdef::{self, template};

/// Settings shared by every migrate command that talks to the database.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub source: PathBuf,
    /// How to read the folder: the layout forced with `--format`, and the allowed exceptions.
    pub read: ReadOptions,
    pub credentials: Credentials,
    pub schema: Option<String>,
    pub connect_timeout: Duration,
    pub lock_timeout: Duration,
    pub limits: Limits,
    pub run_id: String,
    pub application_name: String,
    pub output: OutputFormat,
    /// The lint `migrate up` runs over what it is about to apply; `None` with `--no-lint`.
    pub lint: Option<lint::Settings>,
    /// `--blocker-age`: how old a transaction must be to be listed as a blocker before a run.
    pub blocker_age: Duration,
}

/// `migrate lint`, validated.
#[derive(Debug, Clone)]
pub struct LintJob {
    /// Every set of the project, in order (master, tenant), each with how to read it.
    pub sets: Vec<LintSet>,
    pub settings: lint::Settings,
    /// `--pending`: the one schema whose pending migrations are linted.
    pub pending: Option<Box<MigrateConfig>>,
    pub explain: bool,
    pub output: OutputFormat,
    /// Under GitHub Actions: annotations besides the text, and the step summary file.
    pub github: bool,
    pub step_summary: Option<PathBuf>,
}

/// One migration set to lint.
#[derive(Debug, Clone)]
pub struct LintSet {
    pub name: &'static str,
    pub dir: PathBuf,
    pub read: ReadOptions,
}

/// What `repair` does with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    MarkApplied,
    Remove,
}

/// One validated migrate command.
#[derive(Debug, Clone)]
pub enum MigrateJob {
    Up {
        options: UpOptions,
        dry_run: bool,
    },
    Down {
        to: DownTo,
        dry_run: bool,
    },
    Status,
    Verify {
        ignore_missing: bool,
    },
    Baseline {
        version: i64,
        force: bool,
    },
    /// `baseline --from-schema`: propose the version from the live catalog.
    BaselineFromSchema,
    Repair {
        version: i64,
        resolution: Resolution,
    },
    Adopt(AdoptOptions),
}

/// A tenant fleet: the tenant set, how to find the tenants, and how to run them.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Connection and runner settings; `source` is the tenant set, `schema` the master schema.
    pub db: MigrateConfig,
    pub tenants_query: String,
    pub provision_sql: String,
    /// Workers, already capped so workers + 1 control connection fit `--max-connections`.
    pub concurrency: usize,
    pub canary: usize,
    pub only: Vec<String>,
    pub fail_fast: bool,
    pub shard: Option<Shard>,
    /// Draw a bar of the tenants done on stderr ([`crate::progress::wanted`]).
    pub progress: bool,
}

/// One validated fleet command.
#[derive(Debug, Clone)]
pub enum FleetJob {
    Up(UpOptions),
    Down(DownTo),
    Status,
    Verify { at_least: i64 },
    Provision { name: String },
    Adopt(AdoptOptions),
}

/// Everything `main` can be asked to do.
#[derive(Debug, Clone)]
pub enum Job {
    Migrate(Box<MigrateConfig>, MigrateJob),
    Tenants(Box<FleetConfig>, FleetJob),
    /// `migrate up --set all`: the master schema, then, only if it succeeded, every tenant.
    MigrateAll {
        master: Box<MigrateConfig>,
        options: UpOptions,
        fleet: Box<FleetConfig>,
    },
    Lint(Box<LintJob>),
    NewMigration {
        dir: PathBuf,
        name: String,
        reversible: bool,
    },
    TaskdefRender {
        template: TemplateSource,
    },
    TaskdefRegister {
        template: TemplateSource,
        region: Option<String>,
    },
    TaskRun(Box<RunConfig>),
    TaskAttach(Box<AttachConfig>),
    TaskExec(Box<crate::task::exec::ExecRequest>),
    TaskLogs {
        task: String,
        cluster: String,
        region: Option<String>,
        /// `--task-definition`: read the streams without describing the task.
        task_definition: Option<String>,
    },
    /// `db check`; `source` is the set whose pending count is reported, when there is one.
    DbCheck {
        cfg: Box<MigrateConfig>,
        source: Option<PathBuf>,
    },
    Deploy(Box<deploy::DeployConfig>),
    Rollback(Box<deploy::RollbackConfig>),
    ConfigCheck(Box<deploy::EnvConfig>),
    ConfigReference,
    ConfigSchema,
    Completions {
        shell: clap_complete::Shell,
    },
    Man {
        dir: Option<PathBuf>,
    },
}

/// A template file and the values given for its placeholders: `vars` (`--var` over
/// `--vars-file`) win over the process environment, which wins over `defaults` (an
/// environment's `vars` in shipgate.toml).
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub path: PathBuf,
    pub vars: BTreeMap<String, String>,
    pub defaults: BTreeMap<String, String>,
}

/// What `task run` runs.
#[derive(Debug, Clone)]
pub enum TaskDefinitionRef {
    Registered(String),
    Template(TemplateSource),
}

/// Where `task run` takes its network and capacity from.
#[derive(Debug, Clone)]
pub enum Network {
    Explicit(Placement),
    /// Copied from a service, with the flags' capacity provider and platform version on top.
    FromService {
        service: String,
        capacity_provider: Option<String>,
        platform_version: Option<String>,
    },
}

/// How a task is watched and what its result means.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub container: Option<String>,
    pub options: FollowOptions,
    pub exit_code: ExitCodeMode,
}

/// `task run`, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub region: Option<String>,
    pub cluster: String,
    pub task_definition: TaskDefinitionRef,
    pub network: Network,
    /// Overrides; `container` is empty until the task definition names the default one.
    pub overrides: Overrides,
    pub started_by: String,
    pub tags: Vec<(String, String)>,
    pub detach: bool,
    pub start_retries: u32,
    pub wait_for_running: bool,
    /// `--enable-execute-command`: ECS Exec into the task, whatever the service says.
    pub execute_command: bool,
    pub run_id: String,
    /// Tasks of this run started together (tagged with it; the guard lets them be).
    pub group: Option<String>,
    pub follow: FollowConfig,
}

/// `task attach`, validated.
#[derive(Debug, Clone)]
pub struct AttachConfig {
    pub region: Option<String>,
    pub cluster: String,
    pub task: String,
    pub follow: FollowConfig,
}

/// Validate the command line against the environment.
pub fn from_cli(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Job> {
    match cli.command {
        Command::Migrate(cmd) => migrate_job(cmd, env),
        Command::Tenants(cmd) => tenants_job(cmd, env),
        Command::Db(cmd) => match cmd.action {
            DbAction::Check => db_check_job(cmd.common, env),
        },
        Command::Taskdef(cmd) => match cmd.action {
            TaskdefAction::Render(a) => {
                Ok(Job::TaskdefRender { template: template_source(a.template, &a.vars)? })
            }
            TaskdefAction::Register(a) => Ok(Job::TaskdefRegister {
                template: template_source(a.template.template, &a.template.vars)?,
                region: a.aws.region,
            }),
        },
        Command::Task(cmd) => match cmd.action {
            TaskAction::Run(a) => Ok(Job::TaskRun(Box::new(run_config(*a, env)?))),
            TaskAction::Attach(a) => Ok(Job::TaskAttach(Box::new(attach_config(a, env)?))),
            TaskAction::Logs(a) => logs_job(a),
            TaskAction::Exec(a) => {
                let (cluster, region) = locate(&a.task, a.cluster, a.aws.region)?;
                Ok(Job::TaskExec(Box::new(crate::task::exec::ExecRequest {
                    cluster,
                    region,
                    task: a.task,
                    container: a.container,
                    command: a.command,
                })))
            }
        },
        Command::Deploy(a) => Ok(Job::Deploy(Box::new(deploy::deploy_config(*a, env)?))),
        Command::Rollback(a) => Ok(Job::Rollback(Box::new(deploy::rollback_config(*a, env)?))),
        Command::Config(cmd) => match cmd.action {
            ConfigAction::Check(a) => Ok(Job::ConfigCheck(Box::new(deploy::env_config(&a)?))),
            ConfigAction::Reference => Ok(Job::ConfigReference),
            ConfigAction::Schema => Ok(Job::ConfigSchema),
        },
        Command::Completions(a) => Ok(Job::Completions { shell: a.shell }),
        Command::Man(a) => Ok(Job::Man { dir: a.dir }),
    }
}

fn template_source(path: PathBuf, args: &VarArgs) -> Result<TemplateSource> {
    let mut vars = match &args.vars_file {
        Some(file) => taskdef::parse_vars_file(file)?,
        None => BTreeMap::new(),
    };
    for assignment in &args.vars {
        let (name, value) =
            template::parse_assignment(assignment).map_err(|e| Error::input(format!("--var {e}")))?;
        vars.insert(name, value);
    }
    Ok(TemplateSource { path, vars, defaults: BTreeMap::new() })
}

fn pairs(flag: &str, values: &[String]) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => Ok((k.trim().to_string(), val.to_string())),
            _ => Err(Error::input(format!("{flag} `{v}` is not KEY=VALUE"))),
        })
        .collect()
}

/// ECS allows up to 36 letters, digits, `-`, `_` and `/` in `startedBy`.
fn validate_started_by(text: &str) -> Result<()> {
    let ok = !text.is_empty()
        && text.len() <= 36
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'));
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "--started-by `{text}`: ECS accepts 1 to 36 letters, digits, `-`, `_` and `/`"
        )))
    }
}

/// `--log-reads-per-second`: a positive, finite rate.
pub fn validate_log_reads(per_second: f64) -> Result<()> {
    if per_second.is_finite() && per_second >= 0.1 {
        Ok(())
    } else {
        Err(Error::input(format!("--log-reads-per-second {per_second}: give a rate of at least 0.1"))
            .hint("CloudWatch Logs allows GetLogEvents about 10 times a second per account and region; the default is 5"))
    }
}

fn follow_config(args: FollowArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<FollowConfig> {
    if args.poll_interval < Duration::from_millis(100) {
        return Err(Error::input("--poll-interval must be at least 100ms"));
    }
    if args.timeout == Some(Duration::ZERO) {
        return Err(Error::input(
            "--timeout 0 would stop the task at once; leave it out to wait without limit",
        ));
    }
    validate_log_reads(args.log_reads_per_second)?;
    Ok(FollowConfig {
        container: args.container,
        options: FollowOptions {
            tick: args.poll_interval,
            timeout: args.timeout,
            stop_on_cancel: !args.no_stop_on_cancel,
            canceller: identity::operator(env),
            log_reads_per_second: args.log_reads_per_second,
            ..FollowOptions::default()
        },
        exit_code: args.exit_code,
    })
}

fn run_config(a: RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig> {
    validate_started_by(&a.started_by)?;
    let task_definition = match (a.task_definition, a.template) {
        (Some(td), None) => TaskDefinitionRef::Registered(td),
        (None, Some(path)) => TaskDefinitionRef::Template(template_source(path, &a.vars)?),
        _ => unreachable!("clap requires exactly one of --task-definition and --template"),
    };
    let network = match a.network_from_service {
        Some(service) => Network::FromService {
            service,
            capacity_provider: a.capacity_provider,
            platform_version: a.platform_version,
        },
        None if a.subnets.is_empty() => {
            return Err(Error::input("no network for the task: Fargate tasks need subnets").hint(
                "pass --subnets (and --security-groups), or --network-from-service SERVICE to copy a service's",
            ));
        }
        None => Network::Explicit(Placement {
            subnets: a.subnets,
            security_groups: a.security_groups,
            assign_public_ip: a.assign_public_ip,
            launch_type: None,
            capacity_providers: a.capacity_provider.into_iter().map(|p| (p, 1, 0)).collect(),
            platform_version: a.platform_version,
            ..Placement::default()
        }),
    };
    let run_id = identity::run_id(a.run_id, env);
    Ok(RunConfig {
        region: a.aws.region,
        cluster: a.cluster,
        task_definition,
        network,
        overrides: Overrides {
            container: a.follow.container.clone().unwrap_or_default(),
            env: pairs("--env", &a.env)?,
            command: a.command,
            cpu: a.cpu,
            memory: a.memory,
        },
        started_by: a.started_by,
        tags: pairs("--tag", &a.tags)?,
        detach: a.detach,
        start_retries: a.start_retries,
        wait_for_running: a.wait_for_running,
        execute_command: a.enable_execute_command,
        run_id,
        group: None,
        follow: follow_config(a.follow, env)?,
    })
}

/// The cluster and region of a task, from flags or else from its ARN.
fn locate(task: &str, cluster: Option<String>, region: Option<String>) -> Result<(String, Option<String>)> {
    let arn = parse_task_arn(task);
    let cluster = cluster.or_else(|| arn.as_ref().and_then(|a| a.cluster.clone())).ok_or_else(|| {
        Error::input(format!("cannot tell the cluster of `{task}`"))
            .hint("pass --cluster, or the task's full ARN")
    })?;
    Ok((cluster, region.or_else(|| arn.map(|a| a.region))))
}

fn attach_config(a: AttachArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<AttachConfig> {
    let (cluster, region) = locate(&a.task, a.cluster, a.aws.region)?;
    let mut follow = follow_config(a.follow, env)?;
    // An ARN someone typed that ECS does not know is a typo, not eventual consistency.
    follow.options.missing_grace = Duration::from_secs(30);
    Ok(AttachConfig { region, cluster, task: a.task, follow })
}

fn logs_job(a: LogsArgs) -> Result<Job> {
    let (cluster, region) = locate(&a.task, a.cluster, a.aws.region)?;
    Ok(Job::TaskLogs { task: a.task, cluster, region, task_definition: a.task_definition })
}

/// What `shipgate migrate` with no command does, from `MIGRATION_TYPE` (the contract of the entrypoint scripts teams run today).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationType {
    /// Unset or empty: `migrate up` with the default set.
    Default,
    Master,
    Tenants,
    Provision(String),
    RollbackMaster(DownTo),
    RollbackTenants(DownTo),
}

pub const MIGRATION_TYPES: &str = "master, tenants, provision, rollback-master, rollback-tenants";

pub fn migration_type(env: &dyn Fn(&str) -> Option<String>) -> Result<MigrationType> {
    let set = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let rollback = || -> Result<DownTo> {
        match (set("SHIPGATE_ROLLBACK_STEPS"), set("SHIPGATE_ROLLBACK_TO")) {
            (Some(_), Some(_)) => {
                Err(Error::input("set SHIPGATE_ROLLBACK_STEPS or SHIPGATE_ROLLBACK_TO, not both"))
            }
            (Some(n), None) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(DownTo::Steps(n)),
                _ => Err(Error::input(format!(
                    "SHIPGATE_ROLLBACK_STEPS=`{n}` is not a number of migrations (1 or more)"
                ))),
            },
            (None, Some(v)) => match v.parse::<i64>() {
                Ok(v) if v >= 0 => Ok(DownTo::Version(v)),
                _ => Err(Error::input(format!("SHIPGATE_ROLLBACK_TO=`{v}` is not a migration version"))),
            },
            (None, None) => Ok(DownTo::LastRun),
        }
    };
    let Some(kind) = set("MIGRATION_TYPE") else { return Ok(MigrationType::Default) };
    Ok(match kind.as_str() {
        "master" => MigrationType::Master,
        "tenants" => MigrationType::Tenants,
        "provision" => match set("TENANT_ID").or_else(|| set("CLERK_ORG_ID")) {
            Some(name) => MigrationType::Provision(name),
            None => {
                return Err(Error::input(
                    "MIGRATION_TYPE=provision needs the tenant: set TENANT_ID (or CLERK_ORG_ID)",
                ));
            }
        },
        "rollback-master" => MigrationType::RollbackMaster(rollback()?),
        "rollback-tenants" => MigrationType::RollbackTenants(rollback()?),
        other => {
            return Err(Error::input(format!(
                "MIGRATION_TYPE=`{}` is not a mode shipgate knows; use one of: {MIGRATION_TYPES}",
                other.escape_debug()
            ))
            .hint("or unset it to apply every pending migration (`shipgate migrate up`)"));
        }
    })
}

/// `--phase`, else `MIGRATION_PHASE`, else `all`.
fn run_phase(flag: Option<crate::cli::PhaseArg>, env: &dyn Fn(&str) -> Option<String>) -> Result<RunPhase> {
    use crate::cli::PhaseArg;
    if let Some(flag) = flag {
        return Ok(match flag {
            PhaseArg::Pre => RunPhase::Pre,
            PhaseArg::Post => RunPhase::Post,
            PhaseArg::All => RunPhase::All,
        });
    }
    match env("MIGRATION_PHASE").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        None => Ok(RunPhase::All),
        Some(v) => RunPhase::parse(&v).ok_or_else(|| {
            Error::input(format!(
                "MIGRATION_PHASE=`{}` is not a phase; use one of: {}",
                v.escape_debug(),
                RunPhase::VALUES
            ))
            .hint("or unset it to apply every pending migration")
        }),
    }
}

/// Whether a person is at the keyboard: stdin and stderr are both terminals.
fn on_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The project file and the sets it (or `--source`) describes.
/// The project file and the sets it (or the flags) name. The file's `sources` and
/// `allow_unread` stand in for the flags when those are not given.
fn project_sets(args: &mut MigrateArgs) -> Result<(Option<Project>, Sets)> {
    let project = project::load(args.config.as_deref())?;
    if let Some(p) = &project {
        let m = &p.file.migrations;
        if let Some(sources) = &m.sources {
            if m.master.is_some() {
                return Err(Error::input(format!(
                    "{}: [migrations] has both `master` and `sources`",
                    p.path.display()
                ))
                .hint("`sources` is the master set made of several folders: keep one of the two keys"));
            }
            if sources.is_empty() {
                return Err(Error::input(format!("{}: [migrations] sources is empty", p.path.display()))
                    .hint("name at least one folder, or remove the key"));
            }
            if args.source.is_empty() {
                args.source = sources.iter().map(|d| p.base().join(d)).collect();
            }
        }
        if let Some(globs) = &m.allow_unread
            && args.allow_unread.is_empty()
        {
            args.allow_unread = globs.clone();
        }
    }
    if args.source.len() > 1
        && let Some(split) =
            args.source.iter().find(|d| d.join("master").is_dir() || d.join("tenant").is_dir())
    {
        return Err(Error::input(format!(
            "several --source folders are merged into one migration set, but {} holds master/ and tenant/ sets",
            split.display()
        ))
        .hint("pass one --source for a folder of sets, or name the sets in shipgate.toml ([migrations] master, tenant)"));
    }
    let sets = project::resolve_sets(
        args.source.first().map(PathBuf::as_path),
        args.fleet.tenant_source.as_deref(),
        project.as_ref(),
        &|p| p.is_dir(),
    );
    Ok((project, sets))
}

fn no_set(which: &str, sets: &Sets) -> Error {
    let have = match (&sets.master, &sets.tenant) {
        (Some(m), _) => format!("the only set is {}", m.display()),
        (None, Some(t)) => format!("the only set is the tenant set {}", t.display()),
        (None, None) => "no set was found".to_string(),
    };
    Error::input(format!("there is no {which} migration set: {have}")).hint(
        "put the two sets in <source>/master and <source>/tenant, or name them in shipgate.toml \
         ([migrations] master = ..., tenant = ...), or pass --tenant-source DIR",
    )
}

fn migrate_job(mut cmd: MigrateCmd, env: &dyn Fn(&str) -> Option<String>) -> Result<Job> {
    let (project, sets) = project_sets(&mut cmd.common)?;
    let action = match cmd.action {
        Some(action) => action,
        None if env("MIGRATION_TYPE").is_none() && on_a_terminal() => {
            // The entrypoint contract is for containers; typed by hand it would apply every
            // pending migration on whatever database the environment names.
            let mut help = <Cli as clap::CommandFactory>::command();
            help.build();
            let text =
                help.find_subcommand_mut("migrate").map(|c| c.render_help().to_string()).unwrap_or_default();
            return Err(Error::input(format!(
                "`shipgate migrate` without a command is the container entrypoint (MIGRATION_TYPE chooses \
                 what it does); on a terminal it does nothing\n\n{}",
                text.trim_end()
            ))
            .hint("to apply pending migrations: shipgate migrate up (or set MIGRATION_TYPE, as the container does)"));
        }
        None => {
            let kind = migration_type(env)?;
            let phased = UpOptions { phase: run_phase(None, env)?, ..UpOptions::default() };
            if env("MIGRATION_PHASE").is_some_and(|v| !v.trim().is_empty())
                && !matches!(kind, MigrationType::Default | MigrationType::Master | MigrationType::Tenants)
            {
                return Err(Error::input(format!(
                    "MIGRATION_PHASE is set, but MIGRATION_TYPE={} does not apply migrations by phase",
                    env("MIGRATION_TYPE").unwrap_or_default().trim()
                ))
                .hint("unset MIGRATION_PHASE for rollbacks and provisioning (they run every migration they touch)"));
            }
            return match kind {
                MigrationType::Default => up_job(cmd.common, cmd.set, phased, &project, &sets, env),
                MigrationType::Master => {
                    up_job(cmd.common, Some(SetChoice::Master), phased, &project, &sets, env)
                }
                MigrationType::Tenants => fleet_job(cmd.common, &project, &sets, env, FleetJob::Up(phased)),
                MigrationType::Provision(name) => {
                    fleet_job(cmd.common, &project, &sets, env, FleetJob::Provision { name })
                }
                MigrationType::RollbackMaster(to) => {
                    let source = sets.master.clone().ok_or_else(|| no_set("master", &sets))?;
                    let cfg = migrate_config(&cmd.common, source, project.as_ref(), env)?;
                    Ok(Job::Migrate(Box::new(cfg), MigrateJob::Down { to, dry_run: false }))
                }
                MigrationType::RollbackTenants(to) => {
                    fleet_job(cmd.common, &project, &sets, env, FleetJob::Down(to))
                }
            };
        }
    };
    let job = match action {
        MigrateAction::New(args) => {
            let dir = match cmd.set {
                Some(SetChoice::Tenant) => sets.tenant.clone().ok_or_else(|| no_set("tenant", &sets))?,
                Some(SetChoice::All) => {
                    return Err(Error::input(
                        "--set all: `migrate new` writes to one set (master or tenant)",
                    ));
                }
                _ => sets.master.clone().or(sets.tenant.clone()).ok_or_else(|| no_set("master", &sets))?,
            };
            return Ok(Job::NewMigration { dir, name: args.name, reversible: args.reversible });
        }
        MigrateAction::Up(a) => {
            let options = UpOptions {
                target: a.target,
                strict_order: a.strict_order,
                ignore_missing: a.ignore_missing,
                phase: run_phase(a.phase, env)?,
            };
            if a.dry_run {
                // A plan is for one schema; `tenants status` is the fleet's.
                let set = match cmd.set {
                    None => Some(SetChoice::Master),
                    Some(SetChoice::Tenant) if cmd.common.schema.is_some() => Some(SetChoice::Tenant),
                    Some(SetChoice::Master) => Some(SetChoice::Master),
                    Some(_) => {
                        return Err(Error::input(
                            "--dry-run plans one schema: use --set master, or --set tenant --schema NAME",
                        )
                        .hint("`shipgate tenants status` shows what every tenant has pending"));
                    }
                };
                let (source, _) = single_set(set, &sets, cmd.common.schema.is_some())?;
                let cfg = migrate_config(&cmd.common, source, project.as_ref(), env)?;
                return Ok(Job::Migrate(Box::new(cfg), MigrateJob::Up { options, dry_run: true }));
            }
            return up_job(cmd.common, cmd.set, options, &project, &sets, env);
        }
        MigrateAction::Down(a) => {
            let to = match (a.to, a.steps, a.last_run) {
                (Some(v), None, false) if v >= 0 => DownTo::Version(v),
                (Some(v), None, false) => {
                    return Err(Error::input(format!("--to {v}: versions are not negative")));
                }
                (None, Some(n), false) => DownTo::Steps(n as usize),
                _ => DownTo::LastRun,
            };
            MigrateJob::Down { to, dry_run: a.dry_run }
        }
        MigrateAction::Lint(a) => {
            return lint_job(&cmd.common, a, cmd.set, project.as_ref(), &sets, env);
        }
        MigrateAction::Status => MigrateJob::Status,
        MigrateAction::Verify(a) => MigrateJob::Verify { ignore_missing: a.ignore_missing },
        MigrateAction::Baseline(a) => match a.version {
            Some(version) => MigrateJob::Baseline { version, force: a.force },
            None => MigrateJob::BaselineFromSchema,
        },
        MigrateAction::Repair(a) => MigrateJob::Repair {
            version: a.version,
            resolution: if a.mark_applied { Resolution::MarkApplied } else { Resolution::Remove },
        },
        MigrateAction::Adopt(a) => MigrateJob::Adopt(adopt_options(a, false)?),
    };
    let (source, _) = single_set(cmd.set, &sets, cmd.common.schema.is_some())?;
    Ok(Job::Migrate(Box::new(migrate_config(&cmd.common, source, project.as_ref(), env)?), job))
}

/// The one set a single-schema command works on: master by default; tenant only for the
/// tenant schema named by `--schema`.
fn single_set(choice: Option<SetChoice>, sets: &Sets, schema_given: bool) -> Result<(PathBuf, SetChoice)> {
    let choice = choice.unwrap_or(if sets.master.is_some() { SetChoice::Master } else { SetChoice::Tenant });
    match choice {
        SetChoice::Master => Ok((sets.master.clone().ok_or_else(|| no_set("master", sets))?, choice)),
        SetChoice::Tenant if !schema_given => {
            Err(Error::input("this command works on one schema: name the tenant with --schema NAME")
                .hint("for the whole fleet use `shipgate tenants status|verify|down`"))
        }
        SetChoice::Tenant => Ok((sets.tenant.clone().ok_or_else(|| no_set("tenant", sets))?, choice)),
        SetChoice::All => Err(Error::input("--set all is for `migrate up`; other commands take one set")
            .hint("use --set master, or `shipgate tenants ...` for the tenants")),
    }
}

fn up_job(
    args: MigrateArgs,
    choice: Option<SetChoice>,
    options: UpOptions,
    project: &Option<Project>,
    sets: &Sets,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Job> {
    let choice = choice.unwrap_or(match (&sets.master, &sets.tenant) {
        (Some(_), Some(_)) => SetChoice::All,
        (Some(_), None) => SetChoice::Master,
        (None, _) => SetChoice::Tenant,
    });
    match choice {
        SetChoice::Tenant if args.schema.is_none() => {
            fleet_job(args, project, sets, env, FleetJob::Up(options))
        }
        SetChoice::Master | SetChoice::Tenant => {
            let (source, _) = single_set(Some(choice), sets, args.schema.is_some())?;
            let cfg = migrate_config(&args, source, project.as_ref(), env)?;
            Ok(Job::Migrate(Box::new(cfg), MigrateJob::Up { options, dry_run: false }))
        }
        SetChoice::All => {
            if options.target.is_some() {
                return Err(Error::input(
                    "--target names a version of one set: add --set master or --set tenant",
                ));
            }
            let master_dir = sets.master.clone().ok_or_else(|| no_set("master", sets))?;
            if sets.tenant.is_none() {
                return Err(no_set("tenant", sets));
            }
            let master = migrate_config(&args, master_dir, project.as_ref(), env)?;
            let Job::Tenants(mut fleet, _) =
                fleet_job(args, project, sets, env, FleetJob::Up(options.clone()))?
            else {
                unreachable!("fleet_job returns a tenants job")
            };
            // One run, one id in every history row it writes, one read of the secret.
            fleet.db.credentials = master.credentials.clone();
            fleet.db.run_id = master.run_id.clone();
            fleet.db.application_name = master.application_name.clone();
            Ok(Job::MigrateAll { master: Box::new(master), options, fleet })
        }
    }
}

/// `migrate adopt` / `tenants adopt` flags, validated. For a fleet the table is a name in
/// each tenant's schema, so it cannot name a schema itself.
fn adopt_options(a: AdoptArgs, per_tenant: bool) -> Result<AdoptOptions> {
    if let Some(table) = &a.table {
        let parts: Vec<&str> = table.split('.').collect();
        if per_tenant && parts.len() > 1 {
            return Err(Error::input(format!(
                "--table `{table}` names a schema, but `tenants adopt` reads the table in each tenant's schema"
            ))
            .hint("pass the table's name alone (e.g. --table knex_migrations_tenant), or adopt one schema with `shipgate migrate adopt --schema S --table S.NAME`"));
        }
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::input(format!("--table `{table}` is not [SCHEMA.]NAME"))
                .hint("e.g. --table knex_migrations_master or --table drizzle.__drizzle_migrations"));
        }
        for part in parts {
            validate_identifier("--table", part)?;
        }
    }
    Ok(AdoptOptions {
        tool: match a.from {
            AdoptFrom::Knex => Tool::Knex,
            AdoptFrom::Drizzle => Tool::Drizzle,
            AdoptFrom::Sqlx => Tool::Sqlx,
            AdoptFrom::Prisma => Tool::Prisma,
            AdoptFrom::Diesel => Tool::Diesel,
            AdoptFrom::Dbmate => Tool::Dbmate,
            AdoptFrom::GolangMigrate => Tool::GolangMigrate,
            AdoptFrom::Goose => Tool::Goose,
            AdoptFrom::Flyway => Tool::Flyway,
        },
        table: a.table,
        baseline: a.baseline,
        dry_run: a.dry_run,
    })
}

fn tenants_job(mut cmd: TenantsCmd, env: &dyn Fn(&str) -> Option<String>) -> Result<Job> {
    let (project, sets) = project_sets(&mut cmd.common)?;
    let job = match cmd.action {
        TenantsAction::Up(a) => FleetJob::Up(UpOptions {
            target: a.target,
            strict_order: a.strict_order,
            ignore_missing: a.ignore_missing,
            phase: run_phase(a.phase, env)?,
        }),
        TenantsAction::Down(a) => FleetJob::Down(match (a.to, a.steps) {
            (Some(v), _) if v < 0 => {
                return Err(Error::input(format!("--to {v}: versions are not negative")));
            }
            (Some(v), _) => DownTo::Version(v),
            (None, Some(n)) => DownTo::Steps(n as usize),
            (None, None) => DownTo::LastRun,
        }),
        TenantsAction::Status => FleetJob::Status,
        TenantsAction::Verify(a) => FleetJob::Verify { at_least: a.at_least },
        TenantsAction::Provision(a) => FleetJob::Provision { name: a.name },
        TenantsAction::Adopt(a) => FleetJob::Adopt(adopt_options(a, true)?),
    };
    fleet_job(cmd.common, &project, &sets, env, job)
}

fn fleet_job(
    args: MigrateArgs,
    project: &Option<Project>,
    sets: &Sets,
    env: &dyn Fn(&str) -> Option<String>,
    job: FleetJob,
) -> Result<Job> {
    let tenant_dir = sets.tenant.clone().ok_or_else(|| no_set("tenant", sets))?;
    let section = project.as_ref().map(|p| p.file.migrations.clone()).unwrap_or_default();
    let tenants_query = args
        .fleet
        .tenants_query
        .clone()
        .or(section.tenants_query)
        .unwrap_or_else(|| project::DEFAULT_TENANTS_QUERY.to_string());
    let provision_sql = args
        .fleet
        .provision_sql
        .clone()
        .or(section.provision_sql)
        .unwrap_or_else(|| project::DEFAULT_PROVISION_SQL.to_string());
    let shard = match &args.fleet.shard {
        Some(text) => Some(Shard::parse(text).map_err(|e| Error::input(format!("--shard {e}")))?),
        None => None,
    };
    let concurrency = worker_budget(args.fleet.concurrency, args.fleet.max_connections);
    let fleet = &args.fleet;
    let (canary, only, fail_fast) = (fleet.canary as usize, fleet.only.clone(), fleet.fail_fast);
    let only: Vec<String> =
        only.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    Ok(Job::Tenants(
        Box::new(FleetConfig {
            db: migrate_config(&args, tenant_dir, project.as_ref(), env)?,
            tenants_query,
            provision_sql,
            concurrency,
            canary,
            only,
            fail_fast,
            shard,
            progress: crate::progress::wanted(
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                args.output == OutputFormat::Text,
                env,
            ),
        }),
        job,
    ))
}

/// `db check` reports on the master set (or the only one); without any, it checks the
/// connection alone.
fn db_check_job(mut args: MigrateArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Job> {
    let (project, sets) = project_sets(&mut args)?;
    let source = single_set(None, &sets, args.schema.is_some()).ok().map(|(dir, _)| dir);
    let cfg = migrate_config(&args, source.clone().unwrap_or_default(), project.as_ref(), env)?;
    Ok(Job::DbCheck { cfg: Box::new(cfg), source })
}

/// Workers for a fleet run: `--concurrency`, but never more than the connection budget
/// leaves after the control connection.
pub fn worker_budget(concurrency: u32, max_connections: u32) -> usize {
    let workers = concurrency.min(max_connections.saturating_sub(1)).max(1);
    if workers < concurrency {
        tracing::info!(
            "--concurrency {concurrency} needs {} connections; --max-connections {max_connections} allows {workers} workers",
            concurrency + 1
        );
    }
    workers as usize
}

fn migrate_config(
    args: &MigrateArgs,
    source: PathBuf,
    project: Option<&Project>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MigrateConfig> {
    let flags = target::Flags {
        database_url: args.db.database_url.clone(),
        db_secret: args.db.db_secret.clone(),
        sslmode: args.db.sslmode.clone(),
        ssl_root_cert: args.db.ssl_root_cert.clone(),
        allow_cleartext_password: args.db.allow_cleartext_password,
    };
    let credentials = Credentials::new(target::settings(&flags, env)?);
    if let Some(schema) = &args.schema {
        validate_schema(schema)?;
    }
    let run_id = identity::run_id(args.run_id.clone(), env);
    let application_name = identity::application_name(&run_id);
    let lint = if lint_enabled(args, env)? { Some(lint_settings(project)?) } else { None };
    Ok(MigrateConfig {
        read: read_options(args, &source, project)?,
        source,
        credentials,
        schema: args.schema.clone(),
        connect_timeout: args.connect_timeout,
        lock_timeout: args.lock_timeout,
        limits: Limits {
            lock_timeout: args.ddl_lock_timeout,
            statement_timeout: args.statement_timeout,
            lock_retries: args.lock_retries,
        },
        run_id,
        application_name,
        output: args.output,
        lint,
        blocker_age: args.blocker_age,
    })
}

/// How to read the folder `source`: the layout forced with `--format`, the allowed
/// exceptions, and the further `--source` folders that join its set.
fn read_options(args: &MigrateArgs, source: &PathBuf, project: Option<&Project>) -> Result<ReadOptions> {
    let also = match args.source.split_first() {
        Some((first, rest)) if first == source => rest.to_vec(),
        _ => Vec::new(),
    };
    Ok(ReadOptions {
        format: args.format.map(|f| match f {
            SourceFormat::Sqlx => Format::Sqlx,
            SourceFormat::GolangMigrate => Format::GolangMigrate,
            SourceFormat::Drizzle => Format::Drizzle,
            SourceFormat::Prisma => Format::Prisma,
            SourceFormat::Diesel => Format::Diesel,
            SourceFormat::Dbmate => Format::Dbmate,
            SourceFormat::Goose => Format::Goose,
            SourceFormat::Flyway => Format::Flyway,
        }),
        allow_unread: args.allow_unread.clone(),
        allow_empty: args.allow_empty,
        also,
        post: project::post_folders(project)?,
    })
}

/// Whether `migrate up` lints first: unless `--no-lint` or `SHIPGATE_LINT=off`.
fn lint_enabled(args: &MigrateArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<bool> {
    lint_switch(args.no_lint, env)
}

/// The lint is on unless `--no-lint` (`no_lint`) or `SHIPGATE_LINT=off` turn it off.
pub(crate) fn lint_switch(no_lint: bool, env: &dyn Fn(&str) -> Option<String>) -> Result<bool> {
    let by_env = match env("SHIPGATE_LINT").map(|v| v.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if v.is_empty() || v == "on" => true,
        Some(v) if v == "off" => false,
        Some(v) => {
            return Err(Error::input(format!("SHIPGATE_LINT=`{v}`: the values are `on` and `off`")));
        }
    };
    Ok(by_env && !no_lint)
}

/// `[lint]` of the project file, validated (the defaults without one).
pub fn lint_settings(project: Option<&Project>) -> Result<lint::Settings> {
    let Some(project) = project else {
        return Ok(lint::Settings::default());
    };
    let section = &project.file.lint;
    lint::Settings::new(&section.rules, section.pg_version.as_deref(), &section.exclude, section.baseline)
        .map_err(|e| {
            Error::input(format!("{}: [lint] {e}", project.path.display()))
                .hint("see the README's shipgate.toml reference for [lint]")
        })
}

/// `migrate lint`: every set, or with `--pending` the one schema's pending migrations.
fn lint_job(
    args: &MigrateArgs,
    lint_args: crate::cli::LintArgs,
    choice: Option<SetChoice>,
    project: Option<&Project>,
    sets: &Sets,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Job> {
    let settings = lint_settings(project)?;
    let pending = if lint_args.pending {
        let (source, _) = single_set(choice, sets, args.schema.is_some())?;
        Some(Box::new(migrate_config(args, source, project, env)?))
    } else {
        None
    };
    let mut chosen = Vec::new();
    let wanted = |name: &str| match choice {
        None | Some(SetChoice::All) => true,
        Some(SetChoice::Master) => name == "master",
        Some(SetChoice::Tenant) => name == "tenant",
    };
    for (name, dir) in [("master", &sets.master), ("tenant", &sets.tenant)] {
        if let Some(dir) = dir
            && wanted(name)
        {
            chosen.push(LintSet { name, dir: dir.clone(), read: read_options(args, dir, project)? });
        }
    }
    if let Some(cfg) = &pending {
        chosen.retain(|s| s.dir == cfg.source);
    }
    if chosen.is_empty() {
        return Err(no_set(if choice == Some(SetChoice::Tenant) { "tenant" } else { "master" }, sets));
    }
    let github = env("GITHUB_ACTIONS").as_deref() == Some("true");
    Ok(Job::Lint(Box::new(LintJob {
        sets: chosen,
        settings,
        pending,
        explain: lint_args.explain,
        output: args.output,
        github,
        step_summary: env("GITHUB_STEP_SUMMARY").filter(|p| github && !p.is_empty()).map(PathBuf::from),
    })))
}

/// PostgreSQL identifiers are at most 63 bytes and cannot contain NUL; anything else is
/// quoted, never interpolated.
pub fn validate_schema(name: &str) -> Result<()> {
    validate_identifier("--schema", name)
}

/// The identifier rules above for the value of any `flag` that names a schema or table.
fn validate_identifier(flag: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 63 {
        Some("is longer than 63 bytes (PostgreSQL would truncate it)")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::input(format!("{flag} `{}` {p}", name.escape_debug()))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn job(args: &[&str]) -> Result<Job> {
        let cli = Cli::try_parse_from(std::iter::once("shipgate").chain(args.iter().copied())).unwrap();
        from_cli(cli, &|k| (k == "DB_HOST").then(|| "db.example".to_string()))
    }

    #[test]
    fn down_selectors() {
        let cases = [
            (vec!["migrate", "down", "--to", "0"], DownTo::Version(0)),
            (vec!["migrate", "down", "--steps", "2"], DownTo::Steps(2)),
            (vec!["migrate", "down", "--last-run"], DownTo::LastRun),
        ];
        for (args, expected) in cases {
            match job(&args).unwrap() {
                Job::Migrate(_, MigrateJob::Down { to, .. }) => assert_eq!(to, expected),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn schema_names_are_validated() {
        let long = "x".repeat(64);
        for (schema, ok) in [("public", true), ("tenant \"a\"", true), ("", false), (long.as_str(), false)] {
            assert_eq!(validate_schema(schema).is_ok(), ok, "{schema}");
        }
        assert_eq!(job(&["migrate", "status", "--schema", &long]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn flags_reach_the_config() {
        let Job::Migrate(cfg, _) = job(&[
            "migrate",
            "up",
            "--set",
            "master",
            "--lock-timeout",
            "2s",
            "--ddl-lock-timeout",
            "250ms",
            "--run-id",
            "r-1",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(cfg.lock_timeout, Duration::from_secs(2));
        assert_eq!(cfg.limits.lock_timeout, Duration::from_millis(250));
        assert_eq!(cfg.run_id, "r-1");
        assert!(cfg.application_name.starts_with("shipgate ") && cfg.application_name.ends_with(" r-1"));
        assert_eq!(cfg.credentials.settings().fields.host.as_deref(), Some("db.example"));
    }

    #[test]
    fn migration_type_modes() {
        let env_of = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
        };
        type Case = (&'static [(&'static str, &'static str)], Option<MigrationType>);
        let cases: [Case; 11] = [
            (&[], Some(MigrationType::Default)),
            (&[("MIGRATION_TYPE", " ")], Some(MigrationType::Default)),
            (&[("MIGRATION_TYPE", "master")], Some(MigrationType::Master)),
            (&[("MIGRATION_TYPE", "tenants")], Some(MigrationType::Tenants)),
            (
                &[("MIGRATION_TYPE", "provision"), ("TENANT_ID", "t1"), ("CLERK_ORG_ID", "org")],
                Some(MigrationType::Provision("t1".into())),
            ),
            (
                &[("MIGRATION_TYPE", "provision"), ("CLERK_ORG_ID", "org_2x")],
                Some(MigrationType::Provision("org_2x".into())),
            ),
            (&[("MIGRATION_TYPE", "provision")], None),
            (&[("MIGRATION_TYPE", "rollback-master")], Some(MigrationType::RollbackMaster(DownTo::LastRun))),
            (
                &[("MIGRATION_TYPE", "rollback-tenants"), ("SHIPGATE_ROLLBACK_TO", "20240101000000")],
                Some(MigrationType::RollbackTenants(DownTo::Version(20240101000000))),
            ),
            (&[("MIGRATION_TYPE", "rollback-master"), ("SHIPGATE_ROLLBACK_STEPS", "0")], None),
            (&[("MIGRATION_TYPE", "Master")], None),
        ];
        for (pairs, expected) in cases {
            let got = migration_type(&env_of(pairs));
            match expected {
                Some(mode) => assert_eq!(got.unwrap(), mode, "{pairs:?}"),
                None => assert_eq!(got.unwrap_err().exit_code(), 2, "{pairs:?}"),
            }
        }
    }

    #[test]
    fn one_set_per_command_and_the_fleet_for_tenants() {
        let both = Sets { master: Some("m".into()), tenant: Some("t".into()) };
        let master_only = Sets { master: Some("m".into()), tenant: None };
        let cases = [
            (None, &both, false, Ok(("m", SetChoice::Master))),
            (Some(SetChoice::Tenant), &both, true, Ok(("t", SetChoice::Tenant))),
            (Some(SetChoice::Tenant), &both, false, Err(2)),
            (Some(SetChoice::Tenant), &master_only, true, Err(2)),
            (Some(SetChoice::All), &both, false, Err(2)),
        ];
        for (choice, sets, schema, expected) in cases {
            let got = single_set(choice, sets, schema).map(|(p, c)| (p.display().to_string(), c));
            match expected {
                Ok((path, c)) => assert_eq!(got.unwrap(), (path.to_string(), c)),
                Err(code) => assert_eq!(got.unwrap_err().exit_code(), code, "{choice:?} {sets:?}"),
            }
        }
        for (concurrency, max, workers) in [(8, 10, 8), (8, 5, 4), (1, 2, 1), (20, 10, 9)] {
            assert_eq!(worker_budget(concurrency, max), workers);
        }
    }

    #[test]
    fn tenants_flags_become_one_fleet_config() {
        let Job::Tenants(cfg, FleetJob::Up(_)) = job(&[
            "tenants",
            "up",
            "--tenant-source",
            "db/tenant",
            "--concurrency",
            "16",
            "--canary",
            "3",
            "--only",
            "a, b",
            "--shard",
            "2/4",
            "--fail-fast",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!((cfg.concurrency, cfg.canary, cfg.fail_fast), (9, 3, true));
        assert_eq!(cfg.only, ["a", "b"]);
        assert_eq!(cfg.shard, Some(Shard { index: 2, count: 4 }));
        assert_eq!(cfg.db.source, PathBuf::from("db/tenant"));
        let bad = ["--shard", "5/4"];
        let args: Vec<&str> =
            ["tenants", "up", "--tenant-source", "t"].iter().chain(bad.iter()).copied().collect();
        assert_eq!(job(&args).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn task_run_flags_become_one_run_config() {
        let Job::TaskRun(cfg) = job(&[
            "task",
            "run",
            "--task-definition",
            "db-migrate:3",
            "--cluster",
            "prod",
            "--subnets",
            "subnet-a,subnet-b",
            "--env",
            "MIGRATION_TYPE=tenants",
            "--tag",
            "team=db",
            "--timeout",
            "45min",
            "--run-id",
            "r-9",
            "--command",
            "shipgate",
            "migrate",
            "up",
            "--dry-run",
        ])
        .unwrap() else {
            panic!()
        };
        let Network::Explicit(p) = &cfg.network else { panic!() };
        assert_eq!(p.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(cfg.overrides.env, [("MIGRATION_TYPE".to_string(), "tenants".to_string())]);
        assert_eq!(cfg.overrides.command.as_deref().unwrap(), ["shipgate", "migrate", "up", "--dry-run"]);
        assert_eq!(cfg.follow.options.timeout, Some(Duration::from_secs(45 * 60)));
        assert_eq!((cfg.run_id.as_str(), cfg.started_by.as_str()), ("r-9", "shipgate"));
    }

    #[test]
    fn task_run_refuses_bad_input_before_any_call() {
        let base = ["task", "run", "--task-definition", "m:1", "--cluster", "c"];
        let cases: [&[&str]; 5] = [
            &[],
            &["--subnets", "s", "--started-by", "has spaces"],
            &["--subnets", "s", "--env", "NOEQUALS"],
            &["--subnets", "s", "--timeout", "0"],
            &["--subnets", "s", "--started-by", "0123456789012345678901234567890123456"],
        ];
        for extra in cases {
            let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
            assert_eq!(job(&args).unwrap_err().exit_code(), 2, "{extra:?}");
        }
    }

    #[test]
    fn attach_takes_cluster_and_region_from_the_arn() {
        let Job::TaskAttach(cfg) = job(&["task", "attach", "arn:aws:ecs:eu-west-1:1:task/prod/abc"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((cfg.cluster.as_str(), cfg.region.as_deref()), ("prod", Some("eu-west-1")));
        assert_eq!(job(&["task", "logs", "abc"]).unwrap_err().exit_code(), 2);
    }
}
