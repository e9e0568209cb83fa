//! `[env.NAME]` of shipgate.toml, validated into what `deploy`, `rollback` and `config check`
//! receive. Everything here runs before any AWS call: a typo in a key, a missing template or
//! an impossible network is exit 2 naming the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Network, TemplateSource, template_source, validate_started_by};
use crate::cli::{DeployArgs, EnvArgs, OutputFormat, RollbackArgs};
use crate::duration;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::plan::DownTo;
use crate::project::{self, EnvSection, Platform, Project};
use crate::task::follow::FollowOptions;
use crate::task::spec::Placement;

/// The most migration tasks one tenant run is split across.
pub const MAX_TENANT_SHARDS: u32 = 50;

/// The migration task of an environment.
#[derive(Debug, Clone)]
pub struct MigrationTask {
    pub template: TemplateSource,
    pub container: Option<String>,
    pub timeout: Option<Duration>,
}

/// One service of an environment and the template of its task definition.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub template: TemplateSource,
    /// A new deployment on every deploy, changed or not (`force_new_deployment`).
    pub force_new_deployment: bool,
}

/// One validated `[env.NAME]`.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub name: String,
    /// The project file, for messages.
    pub file: PathBuf,
    pub platform: Platform,
    pub region: Option<String>,
    /// The ECS cluster; `local` on the local platform.
    pub cluster: String,
    pub network: Network,
    pub migration: Option<MigrationTask>,
    pub services: Vec<Service>,
    /// Whether a tenant run follows the master run.
    pub tenants: bool,
    pub tenant_shards: u32,
    /// `keep_revisions`: after a successful deploy, older revisions of its families are
    /// deregistered, the newest N and those in use kept.
    pub keep_revisions: Option<u32>,
    /// The project's migration sets and `[lint]`: what `deploy` lints before any AWS call.
    pub lint: Option<(Vec<super::LintSet>, crate::migrate::lint::Settings)>,
}

impl EnvConfig {
    /// Every template of the environment, named by its key in the file.
    pub fn templates(&self) -> Vec<(String, &TemplateSource)> {
        let mut all = Vec::new();
        if let Some(m) = &self.migration {
            all.push((format!("env.{}.migration_task.template", self.name), &m.template));
        }
        for (i, s) in self.services.iter().enumerate() {
            all.push((format!("env.{}.services[{i}].template", self.name), &s.template));
        }
        all
    }

    /// The values of secret-looking template variables (`--var`, `--vars-file`, `vars`).
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .templates()
            .into_iter()
            .flat_map(|(_, source)| source.vars.iter().chain(&source.defaults))
            .filter(|(name, value)| secret_like(name) && !value.is_empty())
            .map(|(_, value)| value.as_str())
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }
}

/// Where CI output goes (GitHub Actions when `GITHUB_ACTIONS=true`).
#[derive(Debug, Clone, Default)]
pub struct CiConfig {
    pub github: bool,
    pub step_summary: Option<PathBuf>,
    pub outputs: Option<PathBuf>,
    /// Live progress on the terminal (never in CI, never with --output json).
    pub progress: bool,
}

/// How migration tasks are run and services followed, shared by deploy and rollback.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub follow: FollowOptions,
    pub service_timeout: Duration,
    pub run_id: String,
    pub started_by: String,
    pub ci: CiConfig,
}

impl DeployConfig {
    /// Whether `service` gets a new deployment even when its task definition did not change:
    /// `--force-new-deployment`, or `force_new_deployment = true` for it.
    pub fn forces(&self, service: &str) -> bool {
        self.force_new_deployment
            || self.env.services.iter().any(|s| s.name == service && s.force_new_deployment)
    }
}

/// `shipgate deploy`, validated.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub env: EnvConfig,
    /// `--secret NAME=VALUE`: the local platform's values for the template's `secrets`.
    pub secrets: BTreeMap<String, String>,
    pub dry_run: bool,
    pub rollback_on_failure: bool,
    /// `--skip-post`: the post migrations wait for a later deploy.
    pub skip_post: bool,
    /// `--force-new-deployment`: every service gets a new deployment, changed or not.
    pub force_new_deployment: bool,
    /// The pre-flight lint of the project's migrations: off with `--no-lint` / `SHIPGATE_LINT=off`.
    pub lint: bool,
    pub max_parallel: usize,
    pub run: RunSettings,
}

/// Which revision `rollback` puts the services on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionTarget {
    Previous,
    Revision(u32),
}

/// `shipgate rollback`, validated.
#[derive(Debug, Clone)]
pub struct RollbackConfig {
    pub env: EnvConfig,
    pub target: RevisionTarget,
    pub to: DownTo,
    pub stop_services: bool,
    pub yes: bool,
    pub run: RunSettings,
}

/// Load the project file and validate `[env.NAME]` in it.
pub fn env_config(args: &EnvArgs) -> Result<EnvConfig> {
    let project = project::load(args.config.as_deref())?.ok_or_else(|| {
        Error::input(format!("no {} in this directory: `--env {}` needs one", project::FILE_NAME, args.env))
            .hint("run from the repository root, or pass --config FILE")
    })?;
    let vars = template_source(PathBuf::new(), &args.vars)?.vars;
    let sets = project::resolve_sets(None, None, Some(&project), &|p| p.is_dir());
    let mut cfg = validate(&project, &args.env, vars, sets.tenant.is_some(), &|p| p.is_file())?;
    // An empty folder has nothing to lint; whether it may be empty is the runner's to say.
    let read = crate::migrate::source::ReadOptions {
        allow_unread: project.file.migrations.allow_unread.clone().unwrap_or_default(),
        allow_empty: true,
        post: project::post_folders(Some(&project))?,
        ..Default::default()
    };
    let m = &project.file.migrations;
    let configured = m.master.is_some() || m.tenant.is_some() || m.sources.is_some();
    // `sources`: several folders merged into the master set, as `--source A --source B` does.
    let merged: Vec<PathBuf> =
        project.file.migrations.sources.iter().flatten().map(|d| project.base().join(d)).collect();
    let master = merged.first().cloned().or(sets.master.clone());
    // A folder this machine does not have (the image may carry the migrations of another
    // checkout) cannot be linted here; the runner lints what it applies.
    let lint_sets: Vec<super::LintSet> = [("master", &master), ("tenant", &sets.tenant)]
        .into_iter()
        .filter(|(name, dir)| match dir {
            Some(d) if !d.is_dir() && configured => {
                tracing::warn!(
                    "the {name} migrations folder {} is not here; the deploy cannot lint it",
                    d.display()
                );
                false
            }
            Some(d) => d.is_dir(),
            None => true,
        })
        .filter_map(|(name, dir)| {
            let also = if name == "master" && merged.len() > 1 { merged[1..].to_vec() } else { Vec::new() };
            dir.clone().map(|dir| super::LintSet {
                name,
                dir,
                read: crate::migrate::source::ReadOptions { also, ..read.clone() },
            })
        })
        .collect();
    if !lint_sets.is_empty() {
        cfg.lint = Some((lint_sets, super::lint_settings(Some(&project))?));
    }
    // Secret-looking values are masked in everything shipgate prints from here on.
    for value in cfg.secret_values() {
        crate::redact::register(value);
    }
    Ok(cfg)
}

/// A variable whose value must never be printed. One that names a secret (`…_ARN`, `…_ID`,
/// `…_NAME`: `DATABASE_SECRET_ARN`) is not one: an ARN is not a secret, its value is, and a
/// masked ARN hides which secret failed.
pub fn secret_like(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if ["_ARN", "_ID", "_NAME"].iter().any(|end| upper.ends_with(end)) {
        return false;
    }
    ["PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE", "_KEY"].iter().any(|w| upper.contains(w))
        || upper == "KEY"
}

/// The pure part of [`env_config`]: `is_file` stands in for the file system.
pub fn validate(
    project: &Project,
    name: &str,
    vars: BTreeMap<String, String>,
    has_tenant_set: bool,
    is_file: &dyn Fn(&Path) -> bool,
) -> Result<EnvConfig> {
    let file = project.path.display().to_string();
    let Some(section) = project.file.env.get(name) else {
        let known: Vec<&String> = project.file.env.keys().collect();
        let err = Error::input(format!("{file}: there is no [env.{name}]"));
        let closest = known.iter().find(|k| strsim::levenshtein(k, name) <= 2);
        return Err(match (closest, known.is_empty()) {
            (Some(k), _) => err.hint(format!("did you mean `--env {k}`?")),
            (None, true) => err.hint("add an [env.NAME] section (see the README's shipgate.toml reference)"),
            (None, false) => err.hint(format!(
                "the environments are: {}",
                known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )),
        });
    };
    let key = |k: &str| format!("{file}: env.{name}.{k}");
    let EnvSection {
        platform,
        region,
        cluster,
        network_from_service,
        subnets,
        security_groups,
        assign_public_ip,
        capacity_provider,
        platform_version,
        migration_task,
        services,
        tenant_shards,
        keep_revisions,
        tenants,
        vars: defaults,
    } = section.clone();
    let platform = platform.unwrap_or_default();
    let cluster = match cluster.filter(|c| !c.trim().is_empty()) {
        Some(c) => c,
        None if platform == Platform::Local => "local".to_string(),
        None => {
            return Err(Error::input(format!("{}: the cluster is missing", key("cluster")))
                .hint(format!("add `cluster = \"NAME\"` to [env.{name}], or `platform = \"local\"`")));
        }
    };
    if platform == Platform::Local && migration_task.is_none() {
        return Err(Error::input(format!(
            "{file}: env.{name} has platform = \"local\" but no migration_task: the local platform runs only the migration task"
        ))
        .hint("add migration_task = { template = \"aws/migration-task.json\" }"));
    }
    let region = region.filter(|r| !r.trim().is_empty());
    let network = match (network_from_service, subnets) {
        (Some(_), Some(_)) => {
            return Err(Error::input(format!(
                "{file}: env.{name} has both network_from_service and subnets; choose one"
            )));
        }
        (Some(service), None) => {
            if security_groups.is_some() || assign_public_ip.is_some() {
                return Err(Error::input(format!(
                    "{file}: env.{name}: security_groups and assign_public_ip go with subnets, \
                     not with network_from_service (the service's are copied)"
                )));
            }
            Network::FromService { service, capacity_provider, platform_version }
        }
        (None, Some(subnets)) if !subnets.is_empty() => Network::Explicit(Placement {
            subnets,
            security_groups: security_groups.unwrap_or_default(),
            assign_public_ip: assign_public_ip.unwrap_or(false),
            launch_type: None,
            capacity_providers: capacity_provider.into_iter().map(|p| (p, 1, 0)).collect(),
            platform_version,
            ..Placement::default()
        }),
        (None, _) if migration_task.is_none() || platform == Platform::Local => {
            Network::Explicit(Placement::default())
        }
        (None, _) => {
            return Err(Error::input(format!("{file}: env.{name} has no network for the migration task"))
                .hint(
                    "set network_from_service = \"SERVICE\", or subnets = [...] and security_groups = [...]",
                ));
        }
    };
    let base = project.base();
    let source = |k: String, path: &Path| -> Result<TemplateSource> {
        let full = base.join(path);
        if !is_file(&full) {
            return Err(Error::input(format!("{}: template {} does not exist", key(&k), full.display()))
                .hint("template paths are relative to the folder of shipgate.toml"));
        }
        Ok(TemplateSource { path: full, vars: vars.clone(), defaults: defaults.clone() })
    };
    let migration = match migration_task {
        Some(m) => {
            let timeout = match &m.timeout {
                Some(text) => Some(
                    duration::parse(text)
                        .map_err(|e| Error::input(format!("{}: {e}", key("migration_task.timeout"))))?,
                ),
                None => None,
            };
            if timeout == Some(Duration::ZERO) {
                return Err(Error::input(format!(
                    "{}: 0 would stop the task at once; leave it out to wait without limit",
                    key("migration_task.timeout")
                )));
            }
            Some(MigrationTask {
                template: source("migration_task.template".into(), &m.template)?,
                container: m.container,
                timeout,
            })
        }
        None => None,
    };
    let mut seen = Vec::new();
    let mut resolved = Vec::new();
    for (i, s) in services.iter().enumerate() {
        if s.name.trim().is_empty() {
            return Err(Error::input(format!(
                "{}: the service name is empty",
                key(&format!("services[{i}].name"))
            )));
        }
        if seen.contains(&s.name) {
            return Err(Error::input(format!(
                "{}: service `{}` is listed twice",
                key(&format!("services[{i}].name")),
                s.name
            )));
        }
        seen.push(s.name.clone());
        resolved.push(Service {
            name: s.name.clone(),
            template: source(format!("services[{i}].template"), &s.template)?,
            force_new_deployment: s.force_new_deployment,
        });
    }
    if migration.is_none() && resolved.is_empty() {
        return Err(Error::input(format!("{file}: env.{name} deploys nothing")).hint(
            "add migration_task = { template = ... } and/or services = [ { name = ..., template = ... } ]",
        ));
    }
    let tenant_shards = tenant_shards.unwrap_or(1);
    if !(1..=MAX_TENANT_SHARDS).contains(&tenant_shards) {
        return Err(Error::input(format!(
            "{}: {tenant_shards} is not between 1 and {MAX_TENANT_SHARDS}",
            key("tenant_shards")
        )));
    }
    if keep_revisions == Some(0) {
        return Err(Error::input(format!(
            "{}: 0 would deregister every revision not in use",
            key("keep_revisions")
        ))
        .hint("keep at least 1 (10 leaves room to go back); leave it out to keep every revision"));
    }
    let tenants = tenants.unwrap_or(has_tenant_set);
    Ok(EnvConfig {
        name: name.to_string(),
        file: project.path.clone(),
        platform,
        region,
        cluster,
        network,
        migration,
        services: resolved,
        tenants,
        tenant_shards,
        keep_revisions,
        lint: None,
    })
}

fn ci(env: &dyn Fn(&str) -> Option<String>, output: OutputFormat) -> CiConfig {
    use std::io::IsTerminal;
    let github = env("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    let file = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    CiConfig {
        github,
        step_summary: if github { file("GITHUB_STEP_SUMMARY") } else { None },
        outputs: if github { file("GITHUB_OUTPUT") } else { None },
        progress: crate::progress::wanted(std::io::stderr().is_terminal(), output == OutputFormat::Text, env),
    }
}

fn run_settings(
    a: crate::cli::RunSettingsArgs,
    output: OutputFormat,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunSettings> {
    let crate::cli::RunSettingsArgs {
        service_timeout,
        poll_interval,
        log_reads_per_second,
        started_by,
        run_id,
    } = a;
    validate_started_by(&started_by)?;
    if poll_interval < Duration::from_millis(100) {
        return Err(Error::input("--poll-interval must be at least 100ms"));
    }
    if service_timeout.is_zero() {
        return Err(Error::input("--service-timeout 0 would fail every rollout at once"));
    }
    crate::config::validate_log_reads(log_reads_per_second)?;
    Ok(RunSettings {
        follow: FollowOptions {
            tick: poll_interval,
            log_reads_per_second,
            canceller: identity::operator(env),
            ..FollowOptions::default()
        },
        service_timeout,
        run_id: identity::run_id(run_id, env),
        started_by,
        ci: ci(env, output),
    })
}

pub fn deploy_config(a: DeployArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<DeployConfig> {
    let mut cfg = env_config(&a.env)?;
    if a.aws.region.is_some() {
        cfg.region = a.aws.region;
    }
    if a.local {
        cfg.platform = Platform::Local;
        if cfg.migration.is_none() {
            return Err(Error::input(format!(
                "{}: env.{} has no migration_task for --local to run",
                cfg.file.display(),
                cfg.name
            )));
        }
    }
    let secrets = local_secrets(&a.secrets, cfg.platform)?;
    if cfg.platform == Platform::Local && a.rollback_on_failure {
        tracing::warn!("--rollback-on-failure does nothing on the local platform: no service is updated");
    }
    Ok(DeployConfig {
        env: cfg,
        secrets,
        dry_run: a.dry_run,
        rollback_on_failure: a.rollback_on_failure,
        skip_post: a.skip_post,
        force_new_deployment: a.force_new_deployment,
        lint: super::lint_switch(a.no_lint, env)?,
        max_parallel: a.max_parallel as usize,
        run: run_settings(a.run, a.aws.output, env)?,
    })
}

/// `--secret NAME=VALUE`, only for the local platform; the values are masked from here on.
fn local_secrets(given: &[String], platform: Platform) -> Result<BTreeMap<String, String>> {
    if !given.is_empty() && platform != Platform::Local {
        return Err(Error::input(
            "--secret is for the local platform: on ECS the task reads its secrets itself",
        )
        .hint("add --local, or set platform = \"local\" in the environment"));
    }
    let mut secrets = BTreeMap::new();
    for item in given {
        let Some((name, value)) = item.split_once('=').filter(|(n, _)| !n.trim().is_empty()) else {
            // Only the name part is quoted: the text may be a value.
            let shown = item.split_once('=').map_or("(no `=`)", |_| "(empty name)");
            return Err(Error::input(format!("--secret {shown}: expected NAME=VALUE")));
        };
        crate::redact::register(value);
        secrets.insert(name.trim().to_string(), value.to_string());
    }
    Ok(secrets)
}

pub fn rollback_config(a: RollbackArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<RollbackConfig> {
    let mut cfg = env_config(&a.env)?;
    if cfg.platform == Platform::Local {
        return Err(Error::input(format!(
            "{}: env.{} has platform = \"local\"; rollback runs on ECS",
            cfg.file.display(),
            cfg.name
        ))
        .hint(
            "against a local database, revert with `shipgate migrate down` (and `shipgate tenants down`)",
        ));
    }
    if a.aws.region.is_some() {
        cfg.region = a.aws.region;
    }
    if cfg.migration.is_none() {
        return Err(Error::input(format!(
            "{}: env.{} has no migration_task to revert migrations with",
            cfg.file.display(),
            cfg.name
        )));
    }
    let to = match (a.steps, a.to) {
        (Some(n), None) => DownTo::Steps(n as usize),
        (None, Some(v)) if v >= 0 => DownTo::Version(v),
        (None, Some(v)) => return Err(Error::input(format!("--to {v}: versions are not negative"))),
        _ => unreachable!("clap requires exactly one of --steps and --to"),
    };
    let target = match (a.to_revision, a.previous) {
        (Some(0), _) => return Err(Error::input("--to-revision 0: revisions start at 1")),
        (Some(n), false) => RevisionTarget::Revision(n),
        _ => RevisionTarget::Previous,
    };
    Ok(RollbackConfig {
        env: cfg,
        target,
        to,
        stop_services: a.stop_services,
        yes: a.yes,
        run: run_settings(a.run, a.aws.output, env)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Project {
        Project {
            path: PathBuf::from("conf/shipgate.toml"),
            file: project::parse(text, Path::new("x")).unwrap(),
        }
    }

    const FULL: &str = r#"
[env.staging]
region = "us-east-1"
cluster = "app-staging"
network_from_service = "api"
migration_task = { template = "aws/migration-task.json", container = "migrate" }
services = [ { name = "api", template = "aws/api-task.json" }, { name = "worker", template = "aws/worker-task.json" } ]
tenant_shards = 4
"#;

    fn check(text: &str, name: &str) -> Result<EnvConfig> {
        let files = ["conf/aws/migration-task.json", "conf/aws/api-task.json", "conf/aws/worker-task.json"];
        validate(&project(text), name, BTreeMap::new(), true, &|p| files.iter().any(|f| Path::new(f) == p))
    }

    #[test]
    fn the_documented_environment_validates() {
        let cfg = check(FULL, "staging").unwrap();
        assert_eq!(cfg.cluster, "app-staging");
        assert_eq!(cfg.tenant_shards, 4);
        assert!(cfg.tenants);
        assert_eq!(cfg.services.len(), 2);
        assert_eq!(cfg.services[1].template.path, Path::new("conf/aws/worker-task.json"));
        assert!(matches!(cfg.network, Network::FromService { ref service, .. } if service == "api"));
        assert_eq!(cfg.templates()[2].0, "env.staging.services[1].template");
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let cases = [
            (FULL, "stagin", "conf/shipgate.toml: there is no [env.stagin]"),
            (
                &FULL.replace("worker-task", "wrker-task"),
                "staging",
                "conf/shipgate.toml: env.staging.services[1].template: template conf/aws/wrker-task.json does not exist",
            ),
            (
                &FULL.replace("cluster = \"app-staging\"\n", ""),
                "staging",
                "conf/shipgate.toml: env.staging.cluster: the cluster is missing",
            ),
            (
                &FULL.replace(
                    "network_from_service = \"api\"",
                    "subnets = [\"s\"]\nnetwork_from_service = \"api\"",
                ),
                "staging",
                "conf/shipgate.toml: env.staging has both network_from_service and subnets",
            ),
            (
                &FULL.replace("network_from_service = \"api\"", ""),
                "staging",
                "conf/shipgate.toml: env.staging has no network for the migration task",
            ),
            (
                &FULL.replace("= 4", "= 0"),
                "staging",
                "conf/shipgate.toml: env.staging.tenant_shards: 0 is not",
            ),
            (
                &FULL.replace("\"worker\"", "\"api\""),
                "staging",
                "conf/shipgate.toml: env.staging.services[1].name: service `api` is listed twice",
            ),
            ("[env.x]\ncluster = \"c\"\n", "x", "conf/shipgate.toml: env.x deploys nothing"),
            (
                &FULL.replace("tenant_shards = 4", "keep_revisions = 0"),
                "staging",
                "conf/shipgate.toml: env.staging.keep_revisions: 0 would deregister every revision not in use",
            ),
        ];
        for (text, env, expected) in cases {
            let err = check(text, env).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.message().starts_with(expected), "{env}: {}", err.message());
        }
        assert_eq!(check(FULL, "stagin").unwrap_err().hint_text(), Some("did you mean `--env staging`?"));
    }

    #[test]
    fn unknown_keys_in_an_environment_are_located() {
        let err = project::parse("[env.staging]\nclustr = \"x\"\n", Path::new("shipgate.toml")).unwrap_err();
        assert!(err.message().starts_with("shipgate.toml:2:1: unknown field `clustr`"), "{}", err.message());
        let err = project::parse(
            "[env.s]\nservices = [ { name = \"api\", templat = \"x\" } ]\n",
            Path::new("shipgate.toml"),
        )
        .unwrap_err();
        assert!(err.message().contains("unknown field `templat`"), "{}", err.message());
    }

    #[test]
    fn secret_looking_variables() {
        for (name, secret) in [
            ("DB_PASSWORD", true),
            ("API_TOKEN", true),
            ("aws_secret", true),
            ("IMAGE_TAG", false),
            ("KEY", true),
            ("DATABASE_SECRET_ARN", false),
            ("DB_SECRET_ID", false),
            ("AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", true),
        ] {
            assert_eq!(secret_like(name), secret, "{name}");
        }
    }
}
