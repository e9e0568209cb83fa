//! The project file, `shipgate.toml`, and where a project's migration sets live.
//!
//! The file is optional: a project with `migrations/*.sql` needs none. It is found in the
//! current directory or given with `--config`; its paths are relative to the file itself, so
//! the same file works from a laptop at the repo root and in CI. Unknown keys are errors, not
//! warnings: a typo in `tenants_query` must not silently migrate every tenant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "shipgate.toml";

/// The default `tenants_query`: every row of a `tenants` table in the master schema.
pub const DEFAULT_TENANTS_QUERY: &str = "SELECT schema_name FROM tenants";

/// The default `provision_sql`; `$1` is the new tenant's schema name.
pub const DEFAULT_PROVISION_SQL: &str =
    "INSERT INTO tenants (schema_name) VALUES ($1) ON CONFLICT DO NOTHING";

/// `shipgate.toml`, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// Where the migration sets are and how to find the tenants.
    #[serde(default)]
    pub migrations: MigrationsSection,
    /// Deploy environments: `[env.staging]`, `[env.production]`.
    #[serde(default)]
    pub env: BTreeMap<String, EnvSection>,
    /// The migration lint (`migrate lint`, and the gate before `migrate up` and `deploy`).
    #[serde(default)]
    pub lint: LintSection,
}

/// `[lint]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    /// Severity per rule, `error`, `warning` or `off` (squawk's rule names, and `unparsed`),
    /// e.g. { "prefer-bigint-over-int" = "warning", "ban-drop-constraint" = "off" }
    /// [default: lock hazards, drops and renames are errors; style rules off].
    #[serde(default)]
    pub rules: BTreeMap<String, crate::migrate::lint::Severity>,
    /// The PostgreSQL version the rules assume, e.g. "16" [default: the server's when
    /// connected, else 15].
    pub pg_version: Option<String>,
    /// Migration files left out of the lint (globs relative to the set's folder).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Migrations up to and including this version are not linted: they were applied before
    /// the lint was adopted.
    pub baseline: Option<i64>,
}

/// `[env.NAME]`: where and what `shipgate deploy --env NAME` deploys.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSection {
    /// Where the migration task runs: `ecs` (Fargate) or `local` (its container command as a
    /// process on this machine; services are skipped) [default: ecs].
    pub platform: Option<Platform>,
    /// AWS region [default: the environment's or profile's].
    pub region: Option<String>,
    /// The ECS cluster (required unless platform = "local").
    pub cluster: Option<String>,
    /// Copy the migration task's network (and capacity) from this service.
    pub network_from_service: Option<String>,
    /// Subnets of the migration task (instead of network_from_service).
    pub subnets: Option<Vec<String>>,
    /// Security groups of the migration task, with subnets [default: the VPC's default].
    pub security_groups: Option<Vec<String>>,
    /// Give the migration task a public IP, with subnets [default: false].
    pub assign_public_ip: Option<bool>,
    /// Run the migration task on this capacity provider (e.g. FARGATE_SPOT).
    pub capacity_provider: Option<String>,
    /// Fargate platform version of the migration task [default: LATEST].
    pub platform_version: Option<String>,
    /// The migration task: `{ template = "...", container = "...", timeout = "..." }`.
    pub migration_task: Option<MigrationTaskSection>,
    /// The services rolled out after the migrations: `[{ name = "...", template = "..." }]`.
    #[serde(default)]
    pub services: Vec<ServiceSection>,
    /// Fargate tasks the tenant migration is split across (1 to 50).
    #[schemars(range(min = 1, max = 50))]
    pub tenant_shards: Option<u32>,
    /// After a successful deploy, deregister older revisions of every task definition family
    /// it used, keeping the newest N and any still in use [default: keep every revision].
    #[schemars(range(min = 1))]
    pub keep_revisions: Option<u32>,
    /// Whether a tenant run follows the master one [default: when the project has a tenant set].
    pub tenants: Option<bool>,
    /// Template variables for this environment (`--vars-file` and `--var` win).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// `platform = "..."` of an environment.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// On ECS/Fargate.
    #[default]
    Ecs,
    /// As a process on this machine.
    Local,
}

/// `migration_task = { template = "...", container = "..." }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationTaskSection {
    /// The task definition template, relative to shipgate.toml.
    pub template: PathBuf,
    /// The container whose exit decides [default: the only essential one].
    pub container: Option<String>,
    /// Stop a migration task after this long (e.g. "2h") [default: no limit].
    pub timeout: Option<String>,
}

/// One entry of `services = [...]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The ECS service.
    pub name: String,
    /// Its task definition template, relative to shipgate.toml.
    pub template: PathBuf,
    /// Start a new deployment of it on every deploy, even when its task definition did not
    /// change (an image tag like `latest` may point to a new image) [default: false].
    #[serde(default)]
    pub force_new_deployment: bool,
}

/// `[migrations]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationsSection {
    /// The master schema's migrations folder [default: migrations/master, or migrations when
    /// it has neither master/ nor tenant/].
    pub master: Option<PathBuf>,
    /// Several folders merged into the one (master) set, with one history, as repeated
    /// `--source` flags do; instead of `master`.
    pub sources: Option<Vec<PathBuf>>,
    /// The migrations folder applied to every tenant schema [default: migrations/tenant].
    pub tenant: Option<PathBuf>,
    /// `.sql` files under the folders that are not migrations (globs relative to the folder,
    /// e.g. "seeds/**"), as `--allow-unread` does; any other unread `.sql` file is refused.
    pub allow_unread: Option<Vec<String>>,
    /// Returns one column: the tenant schema names [default: SELECT schema_name FROM tenants].
    pub tenants_query: Option<String>,
    /// Registers a new tenant; `$1` is its schema name [default: INSERT INTO tenants
    /// (schema_name) VALUES ($1) ON CONFLICT DO NOTHING].
    pub provision_sql: Option<String>,
    /// The phase of every migration in a folder (one of `master`, `sources`, `tenant`), e.g.
    /// { "db/post_migrate" = "post" }; a file's `-- shipgate:phase` header wins [default: pre].
    #[serde(default)]
    pub phase: BTreeMap<PathBuf, crate::migrate::phase::Phase>,
}

/// A loaded project file and the folder its paths are relative to.
#[derive(Debug, Clone)]
pub struct Project {
    pub path: PathBuf,
    pub file: ProjectFile,
}

impl Project {
    /// The folder the file's paths are relative to.
    pub fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Parse the text of a project file; `path` is only for messages.
pub fn parse(text: &str, path: &Path) -> Result<ProjectFile> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(":{line}:{col}")
        });
        Error::input(format!("{}{}: {}", path.display(), at.unwrap_or_default(), e.message().trim_end()))
            .hint("see the README's shipgate.toml reference for the keys of [migrations] and [env.NAME]")
    })
}

/// Load `--config FILE`, or `./shipgate.toml` when it exists.
pub fn load(explicit: Option<&Path>) -> Result<Option<Project>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(FILE_NAME).is_file() => PathBuf::from(FILE_NAME),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::input(format!("cannot read the project file {}: {e}", path.display()))
            .hint("check the --config path (or SHIPGATE_CONFIG)")
    })?;
    Ok(Some(Project { file: parse(&text, &path)?, path }))
}

/// Whether two paths name the same folder: equal once `.` parts are dropped, or the same
/// folder on disk.
pub fn same_folder(a: &Path, b: &Path) -> bool {
    let lexical = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_os_string())
            .collect()
    };
    lexical(a) == lexical(b) || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The folders `[migrations] phase` puts in the post phase, joined to the file's folder.
/// A key that names none of the project's folders is refused: it would mark nothing.
pub fn post_folders(project: Option<&Project>) -> Result<Vec<PathBuf>> {
    let Some(p) = project else { return Ok(Vec::new()) };
    let m = &p.file.migrations;
    let known: Vec<PathBuf> = m
        .master
        .iter()
        .chain(m.sources.iter().flatten())
        .chain(&m.tenant)
        .map(|d| p.base().join(d))
        .collect();
    let mut post = Vec::new();
    for (folder, phase) in &m.phase {
        let dir = p.base().join(folder);
        if !known.iter().any(|k| same_folder(k, &dir)) {
            return Err(Error::input(format!(
                "{}: [migrations] phase names `{}`, which is not one of the project's migration folders",
                p.path.display(),
                folder.display()
            ))
            .hint("use the folder as `master`, `sources` or `tenant` name it (relative to shipgate.toml)"));
        }
        if *phase == crate::migrate::phase::Phase::Post {
            post.push(dir);
        }
    }
    Ok(post)
}

/// The project's migration folders. Either may be absent; at least one is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sets {
    pub master: Option<PathBuf>,
    pub tenant: Option<PathBuf>,
}

/// Which folders hold the master and tenant sets.
///
/// An explicit `--source DIR` (or `SHIPGATE_SOURCE`) wins over the project file: a folder with
/// `master/` and/or `tenant/` inside holds two sets, any other folder is the one (master) set.
/// Without it, the project file's `master`/`tenant` keys decide, and without those,
/// `./migrations` is read the same way as `--source`. `--tenant-source` overrides the tenant
/// folder in every case.
pub fn resolve_sets(
    source: Option<&Path>,
    tenant_source: Option<&Path>,
    project: Option<&Project>,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Sets {
    let split = |dir: &Path| {
        let (master, tenant) = (dir.join("master"), dir.join("tenant"));
        if is_dir(&master) || is_dir(&tenant) {
            Sets { master: is_dir(&master).then_some(master), tenant: is_dir(&tenant).then_some(tenant) }
        } else {
            Sets { master: Some(dir.to_path_buf()), tenant: None }
        }
    };
    let configured =
        project.filter(|p| p.file.migrations.master.is_some() || p.file.migrations.tenant.is_some());
    let mut sets = match (source, configured) {
        (Some(dir), _) => split(dir),
        (None, Some(p)) => Sets {
            master: p.file.migrations.master.as_ref().map(|m| p.base().join(m)),
            tenant: p.file.migrations.tenant.as_ref().map(|t| p.base().join(t)),
        },
        // The default folder sits beside the project file, as its explicit paths do.
        (None, None) => split(&project.map_or(PathBuf::new(), |p| p.base().to_path_buf()).join("migrations")),
    };
    if let Some(t) = tenant_source {
        sets.tenant = Some(t.to_path_buf());
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_keys_parse_and_unknown_ones_are_located() {
        let ok = "[migrations]\nmaster = \"migrations/master\"\ntenant = \"migrations/tenant\"\n\
                  tenants_query = \"SELECT schema_name FROM tenants WHERE status = 'active'\"\n";
        let file = parse(ok, Path::new("shipgate.toml")).unwrap();
        assert_eq!(file.migrations.tenant.as_deref(), Some(Path::new("migrations/tenant")));
        assert_eq!(file.migrations.provision_sql, None);
        assert_eq!(parse("", Path::new("x")).unwrap(), ProjectFile::default());

        let cases = [
            ("[migrations]\ntenant_query = \"x\"\n", "shipgate.toml:2:1: unknown field `tenant_query`"),
            ("[migration]\n", "shipgate.toml:1:2: unknown field `migration`"),
            ("[migrations]\nmaster = 3\n", "shipgate.toml:2:10: invalid type: integer `3`"),
            ("[migrations\n", "shipgate.toml:1:12:"),
        ];
        for (text, expected) in cases {
            let err = parse(text, Path::new("shipgate.toml")).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.message().starts_with(expected), "{text:?} gave: {}", err.message());
        }
    }

    #[test]
    fn sets_come_from_source_then_file_then_the_default_folder() {
        let dirs = [
            "migrations/master",
            "migrations/tenant",
            "flat",
            "db/tenant",
            "conf/m",
            "conf/t",
            "other/migrations",
        ];
        let is_dir = |p: &Path| dirs.iter().any(|d| Path::new(d) == p);
        let project = Project {
            path: PathBuf::from("conf/shipgate.toml"),
            file: parse("[migrations]\nmaster = \"m\"\ntenant = \"t\"\n", Path::new("x")).unwrap(),
        };
        let queries_only = Project {
            path: PathBuf::from("shipgate.toml"),
            file: parse("[migrations]\ntenants_query = \"SELECT 1\"\n", Path::new("x")).unwrap(),
        };
        // `--config other/shipgate.toml` from elsewhere: the default folder is beside the file.
        let elsewhere = Project {
            path: PathBuf::from("other/shipgate.toml"),
            file: parse(
                "[migrations]
tenants_query = \"SELECT 1\"\n",
                Path::new("x"),
            )
            .unwrap(),
        };
        let p = |s: &str| Some(PathBuf::from(s));
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a Project>, Sets);
        let cases: [Case; 8] = [
            (None, None, Some(&elsewhere), Sets { master: p("other/migrations"), tenant: None }),
            (None, None, None, Sets { master: p("migrations/master"), tenant: p("migrations/tenant") }),
            (Some("flat"), None, None, Sets { master: p("flat"), tenant: None }),
            (Some("db"), None, None, Sets { master: None, tenant: p("db/tenant") }),
            (None, None, Some(&project), Sets { master: p("conf/m"), tenant: p("conf/t") }),
            (Some("flat"), None, Some(&project), Sets { master: p("flat"), tenant: None }),
            (Some("flat"), Some("x/t"), None, Sets { master: p("flat"), tenant: p("x/t") }),
            (
                None,
                None,
                Some(&queries_only),
                Sets { master: p("migrations/master"), tenant: p("migrations/tenant") },
            ),
        ];
        for (source, tenant, project, expected) in cases {
            let got = resolve_sets(source.map(Path::new), tenant.map(Path::new), project, &is_dir);
            assert_eq!(got, expected, "{source:?} {tenant:?}");
        }
    }
}
