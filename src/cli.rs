//! The command line: clap types only. Nothing here does I/O; `config` turns these into one
//! validated configuration that the commands receive.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::duration;
use crate::error::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(
    name = "shipgate",
    version,
    about = "The deploy gate for AWS ECS/Fargate: runs PostgreSQL migrations safely and gates rollouts on them",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). SHIPGATE_LOG=<filter> overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply, revert and inspect versioned SQL migrations (the container's entrypoint).
    Migrate(MigrateCmd),

    /// Migrate every tenant schema of a multi-tenant database (master schema + one per tenant).
    Tenants(TenantsCmd),

    /// Render and register ECS task definitions from JSON templates.
    Taskdef(TaskdefCmd),

    /// Run a task on ECS/Fargate and follow it to the end, with its complete logs.
    Task(TaskCmd),

    /// Check the database connection: credentials, TLS, server, migration history.
    Db(DbCmd),

    /// Deploy one environment of shipgate.toml: register task definitions that changed, run the
    /// migration task(s), and only if they succeeded roll the services out and follow them.
    #[command(after_help = "Examples:\n  \
        shipgate deploy --env production --var IMAGE_TAG=$GITHUB_SHA\n  \
        shipgate deploy --env staging --vars-file aws/staging.vars --dry-run\n  \
        shipgate deploy --env production --var IMAGE_TAG=$GITHUB_SHA --rollback-on-failure --output json\n\n\
        Exit 0 when every migration task succeeded and every rollout completed; 1 when a migration failed\n\
        (no service was touched) or a rollout failed, was rolled back or is stuck; 2 for a bad\n\
        shipgate.toml, template or variable (found before any AWS call); 3 when AWS is unreachable or\n\
        another migration task is running.")]
    Deploy(Box<DeployArgs>),

    /// The emergency path: optionally stop the services, revert migrations with the migration
    /// task, and put the services back on an earlier task definition revision.
    #[command(
        group(ArgGroup::new("revision").required(true).args(["to_revision", "previous"])),
        group(ArgGroup::new("how_far").required(true).args(["steps", "to"])),
        after_help = "Examples:\n  \
        shipgate rollback --env staging --previous --steps 1 --stop-services\n  \
        shipgate rollback --env production --to-revision 41 --to 20240301000000 --yes"
    )]
    Rollback(Box<RollbackArgs>),

    /// Check shipgate.toml offline, or print its reference and JSON Schema.
    Config(ConfigCmd),

    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        shipgate completions bash > ~/.local/share/bash-completion/completions/shipgate\n  \
        shipgate completions zsh > ~/.zfunc/_shipgate\n  \
        shipgate completions fish > ~/.config/fish/completions/shipgate.fish")]
    Completions(CompletionsArgs),

    /// Print the man page, or write one per command into a folder.
    #[command(after_help = "Examples:\n  \
        shipgate man | man -l -\n  \
        shipgate man --dir /usr/local/share/man/man1")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write shipgate.1 and shipgate-COMMAND.1 for every command into this folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl Cli {
    /// The result format the command asked for (errors are reported in it too).
    /// The command `migrate up --then -- CMD ARGS...` hands the process to after success.
    pub fn then_command(&self) -> Option<Vec<String>> {
        match &self.command {
            Command::Migrate(MigrateCmd { action: Some(MigrateAction::Up(a)), .. }) if a.then => {
                Some(a.command.clone())
            }
            _ => None,
        }
    }

    pub fn output(&self) -> OutputFormat {
        match &self.command {
            Command::Migrate(c) => c.common.output,
            Command::Tenants(c) => c.common.output,
            Command::Db(c) => c.common.output,
            Command::Taskdef(c) => match &c.action {
                TaskdefAction::Render(_) => OutputFormat::Text,
                TaskdefAction::Register(a) => a.aws.output,
            },
            Command::Task(c) => match &c.action {
                TaskAction::Run(a) => a.aws.output,
                TaskAction::Attach(a) => a.aws.output,
                TaskAction::Logs(a) => a.aws.output,
                TaskAction::Exec(a) => a.aws.output,
            },
            Command::Deploy(a) => a.aws.output,
            Command::Rollback(a) => a.aws.output,
            Command::Config(_) | Command::Completions(_) | Command::Man(_) => OutputFormat::Text,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without a command, MIGRATION_TYPE chooses one (the container entrypoint contract):\n  \
    (unset)           migrate up (master, then tenants, when both sets exist)\n  \
    master            migrate up --set master\n  \
    tenants           tenants up\n  \
    provision         tenants provision $TENANT_ID (or $CLERK_ORG_ID)\n  \
    rollback-master   migrate down --set master\n  \
    rollback-tenants  tenants down\n\
    Rollbacks revert what the last run applied, or SHIPGATE_ROLLBACK_STEPS=N / SHIPGATE_ROLLBACK_TO=V."
)]
pub struct MigrateCmd {
    #[command(flatten)]
    pub common: MigrateArgs,

    /// Which migration set: master, tenant (every tenant, or the one named by --schema), or
    /// all (master, then every tenant) [default: all for `up` when both sets exist, else the one set].
    #[arg(long, env = "SHIPGATE_SET", value_enum, global = true)]
    pub set: Option<SetChoice>,

    #[command(subcommand)]
    pub action: Option<MigrateAction>,
}

/// A project's migration sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SetChoice {
    Master,
    Tenant,
    All,
}

#[derive(Debug, Args)]
pub struct TenantsCmd {
    #[command(flatten)]
    pub common: MigrateArgs,

    #[command(subcommand)]
    pub action: TenantsAction,
}

#[derive(Debug, Args)]
pub struct DbCmd {
    #[command(flatten)]
    pub common: MigrateArgs,

    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Pre-flight: resolve the credentials, connect (with the retry policy), and report the
    /// server version, TLS in use, and the migration history (exit 0; 2 for bad settings; 3 when unreachable).
    #[command(after_help = "Examples:\n  \
        shipgate db check\n  \
        DB_SECRET_ID=prod/db DB_HOST=db.example.internal shipgate db check --output json\n  \
        shipgate db check --sslmode verify-full --ssl-root-cert ca.pem")]
    Check,
}

#[derive(Debug, Subcommand)]
pub enum TenantsAction {
    /// Apply pending tenant migrations to every tenant, in parallel, and report each one.
    #[command(after_help = "Examples:\n  \
        shipgate tenants up\n  \
        shipgate tenants up --concurrency 4 --canary 5 --fail-fast\n  \
        shipgate tenants up --only tenant_a,tenant_b\n  \
        shipgate tenants up --shard 2/4   # one of four tasks sharing the fleet")]
    Up(TenantsUpArgs),

    /// Revert tenant migrations across the fleet, newest first.
    #[command(
        group(ArgGroup::new("how_far").required(true).args(["to", "steps", "last_run"])),
        after_help = "Examples:\n  shipgate tenants down --steps 1\n  shipgate tenants down --to 20240101120000"
    )]
    Down(TenantsDownArgs),

    /// Fleet view: tenants per version, and which are behind, failed, dirty or drifted.
    #[command(
        after_help = "Examples:\n  shipgate tenants status\n  shipgate tenants status --output json | jq '.summary'"
    )]
    Status,

    /// Exit 0 only if every tenant has every migration up to VERSION (the gate an app deploy waits on).
    #[command(after_help = "Example:\n  shipgate tenants verify --at-least 20240301000000")]
    Verify(TenantsVerifyArgs),

    /// Create a tenant: its schema, its row (provision_sql), all tenant migrations. Idempotent.
    #[command(after_help = "Example:\n  shipgate tenants provision tenant_acme")]
    Provision(ProvisionArgs),

    /// Record what another tool applied to each tenant schema as shipgate history, running nothing.
    #[command(after_help = "Examples:\n  \
        shipgate tenants adopt --from knex --table knex_migrations_tenant --dry-run\n  \
        shipgate tenants adopt --from knex --table knex_migrations_tenant --concurrency 4")]
    Adopt(AdoptArgs),
}

#[derive(Debug, Args)]
pub struct TenantsUpArgs {
    /// Apply pending migrations up to and including this version.
    #[arg(long, value_name = "VERSION")]
    pub target: Option<i64>,

    /// Refuse pending migrations older than a tenant's newest applied one instead of applying them.
    #[arg(long)]
    pub strict_order: bool,

    /// Do not fail a tenant when an applied migration has no file any more.
    #[arg(long)]
    pub ignore_missing: bool,

    /// Which pending migrations run: `pre` (before the rollout; stops at the first post
    /// migration), `post` or `all` [env: MIGRATION_PHASE] [default: all].
    #[arg(long, value_enum)]
    pub phase: Option<PhaseArg>,
}

/// `--phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    Pre,
    Post,
    All,
}

#[derive(Debug, Args)]
pub struct TenantsDownArgs {
    /// Revert every applied migration above this version (0 reverts all, a version 0 too).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,

    /// Revert each tenant's newest N applied migrations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: Option<u32>,

    /// Revert what the most recent run applied to each tenant.
    #[arg(long)]
    pub last_run: bool,
}

#[derive(Debug, Args)]
pub struct TenantsVerifyArgs {
    /// The version every tenant must have reached.
    #[arg(long, value_name = "VERSION")]
    pub at_least: i64,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The new tenant's schema name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// The layout of a migrations folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceFormat {
    /// <version>_<description>.sql (and .up.sql/.down.sql) files.
    Sqlx,
    /// <version>_<title>.up.sql and .down.sql files; a file's own BEGIN/COMMIT run as written.
    GolangMigrate,
    /// A drizzle-kit output folder (meta/_journal.json, or <timestamp>_<name>/migration.sql).
    Drizzle,
    /// Prisma Migrate's <name>/migration.sql folders (prisma/migrations).
    Prisma,
    /// diesel's <version>_<name>/up.sql and down.sql folders.
    Diesel,
    /// dbmate's files with `-- migrate:up` and `-- migrate:down` sections.
    Dbmate,
    /// goose's files with `-- +goose Up` and `-- +goose Down` sections.
    Goose,
    /// Flyway's V<version>__<description>.sql files (U... undo scripts), at any depth.
    Flyway,
}

/// Output format for results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Short lines for people.
    Text,
    /// One JSON object per event, then a summary object (for scripts and the orchestrator).
    Json,
    /// GitHub Actions annotations on the files' lines (`migrate lint`; other commands print text).
    Github,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Applied migrations with no file here are not a mismatch (two folders that share one
    /// history table, each verified on its own).
    #[arg(long)]
    pub ignore_missing: bool,
}

/// Options every `migrate` command takes.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Folder of migration files; with master/ and tenant/ inside, the two sets
    /// [default: shipgate.toml's [migrations], else ./migrations]. Repeated (or
    /// comma-separated), the folders are one set: merged into one version order, one history.
    #[arg(long, env = "SHIPGATE_SOURCE", global = true, value_name = "DIR", value_delimiter = ',')]
    pub source: Vec<PathBuf>,

    /// How the migrations folder is laid out, i.e. which tool wrote it [default: detected from
    /// the folder: drizzle-kit's journal or snapshots, Prisma's lock file or <name>/migration.sql
    /// folders, diesel's up.sql folders, dbmate's or goose's section markers, else sqlx].
    #[arg(long, env = "SHIPGATE_FORMAT", value_enum, global = true)]
    pub format: Option<SourceFormat>,

    /// A .sql file under the migrations folder that the layout may leave unread (a glob relative
    /// to the folder, e.g. 'seeds/**'); without it any unread .sql file is an error. Repeatable.
    #[arg(long, global = true, value_name = "GLOB")]
    pub allow_unread: Vec<String>,

    /// A migrations folder without any migration is not an error (it is by default: an empty
    /// or mistyped --source must not pass as "up to date").
    #[arg(long, env = "SHIPGATE_ALLOW_EMPTY", global = true)]
    pub allow_empty: bool,

    /// The project file [default: ./shipgate.toml when it exists].
    #[arg(long, env = "SHIPGATE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Schema that holds the history table and receives unqualified names; for fleet runs
    /// (tenants commands, --set all) the master schema [default: the first schema of the
    /// connection's search_path].
    #[arg(long, env = "SHIPGATE_SCHEMA", global = true, value_name = "NAME")]
    pub schema: Option<String>,

    /// How long to keep retrying an unreachable database (e.g. 60s, 5min).
    #[arg(long, env = "SHIPGATE_CONNECT_TIMEOUT", default_value = "60s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// How long to wait for another run to release the migration lock.
    #[arg(long, env = "SHIPGATE_LOCK_TIMEOUT", default_value = "300s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub lock_timeout: Duration,

    /// lock_timeout for each migration's transaction; a file's `-- shipgate:lock-timeout=` overrides it.
    #[arg(long, env = "SHIPGATE_DDL_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub ddl_lock_timeout: Duration,

    /// statement_timeout for each migration ("off" = none); `-- shipgate:statement-timeout=` overrides it.
    #[arg(long, env = "SHIPGATE_STATEMENT_TIMEOUT", default_value = "off", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub statement_timeout: Duration,

    /// Before a run, list the sessions whose transaction has been open this long and holds a
    /// lock a pending statement will wait for.
    #[arg(long, env = "SHIPGATE_BLOCKER_AGE", default_value = "5s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub blocker_age: Duration,

    /// Retries (with backoff) of a migration that hit its lock_timeout.
    #[arg(long, env = "SHIPGATE_LOCK_RETRIES", default_value_t = 5, global = true, value_name = "N")]
    pub lock_retries: u32,

    /// Identifier recorded with every row this run writes [default: GitHub run id, or a timestamp].
    #[arg(long, env = "SHIPGATE_RUN_ID", global = true, value_name = "ID")]
    pub run_id: Option<String>,

    /// Result format on stdout.
    #[arg(long, env = "SHIPGATE_OUTPUT", value_enum, default_value = "text", global = true)]
    pub output: OutputFormat,

    /// Apply pending migrations without linting them first: for an emergency, and the summary
    /// says so [env: SHIPGATE_LINT=off].
    #[arg(long, global = true)]
    pub no_lint: bool,

    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// Where the database is and how to reach it. The variables are read in `db::target`, not by
/// clap, because the precedence between flags and variables is ours to define (and test).
#[derive(Debug, Args)]
#[command(next_help_heading = "Database")]
pub struct DbArgs {
    /// PostgreSQL URL [env: DATABASE_URL]. Without a URL or a secret: DB_HOST/DB_PORT/DB_USER/
    /// DB_PASSWORD/DB_NAME over PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "db_secret")]
    pub database_url: Option<String>,

    /// AWS Secrets Manager secret holding the credentials, as NAME or ARN, optionally
    /// :VERSION-STAGE [env: DB_SECRET_ID]. RDS format, {"url": ...} or a plain URL; DB_* override its fields.
    #[arg(long, global = true, value_name = "ID")]
    pub db_secret: Option<String>,

    /// TLS mode: disable, allow (connects without TLS), prefer, require, verify-ca, verify-full
    /// [env: PGSSLMODE, or DB_SSL=true|false] [default: prefer on loopback and unix sockets, else verify-full].
    #[arg(long, global = true, value_name = "MODE")]
    pub sslmode: Option<String>,

    /// CA certificates (PEM) that verify the server [env: DB_SSL_CERT_PATH, PGSSLROOTCERT]
    /// [default: the built-in Amazon RDS CAs for RDS hosts, else the public web roots].
    #[arg(long, global = true, value_name = "FILE")]
    pub ssl_root_cert: Option<PathBuf>,

    /// Let a server across a network have the password in clear text (its `password`
    /// authentication) on a connection without TLS; refused by default, before it is sent.
    #[arg(long, global = true)]
    pub allow_cleartext_password: bool,
}

/// How the tenant set is found and run across the fleet.
#[derive(Debug, Args)]
#[command(next_help_heading = "Tenants")]
pub struct FleetArgs {
    /// Folder of the tenant migration set [default: <source>/tenant, or shipgate.toml's].
    #[arg(long, env = "SHIPGATE_TENANT_SOURCE", global = true, value_name = "DIR")]
    pub tenant_source: Option<PathBuf>,

    /// SQL returning the tenant schema names (first column), run in the master schema
    /// [default: shipgate.toml's tenants_query, else SELECT schema_name FROM tenants].
    #[arg(long, env = "SHIPGATE_TENANTS_QUERY", global = true, value_name = "SQL")]
    pub tenants_query: Option<String>,

    /// SQL registering a new tenant, $1 = its schema name [default: shipgate.toml's
    /// provision_sql, else INSERT INTO tenants (schema_name) VALUES ($1) ON CONFLICT DO NOTHING].
    #[arg(long, env = "SHIPGATE_PROVISION_SQL", global = true, value_name = "SQL")]
    pub provision_sql: Option<String>,

    /// Tenants migrated at once (each holds one connection).
    #[arg(long, env = "SHIPGATE_CONCURRENCY", default_value_t = 8, global = true, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// Connections a fleet run may open in all: the workers plus one control connection.
    #[arg(long, env = "SHIPGATE_MAX_CONNECTIONS", default_value_t = 10, global = true, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub max_connections: u32,

    /// Migrate the first K tenants (in tenants_query order) first, and stop if any of them fails.
    #[arg(long, env = "SHIPGATE_CANARY", default_value_t = 0, global = true, value_name = "K")]
    pub canary: u32,

    /// Only these tenants (comma-separated; each must be one tenants_query returns).
    #[arg(long, env = "SHIPGATE_ONLY_TENANTS", value_delimiter = ',', global = true, value_name = "T1,T2")]
    pub only: Vec<String>,

    /// Start no further tenant after one fails (those in flight finish).
    #[arg(long, env = "SHIPGATE_FAIL_FAST", global = true)]
    pub fail_fast: bool,

    /// Take only this share of the tenants, I of N, by a stable hash of the schema name.
    #[arg(long, env = "SHIPGATE_SHARD", global = true, value_name = "I/N")]
    pub shard: Option<String>,
}

/// The tool `migrate adopt` reads the history of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdoptFrom {
    /// knex_migrations (names matched to .sql files by stem).
    Knex,
    /// drizzle.__drizzle_migrations (matched to the drizzle-kit journal, hashes verified).
    Drizzle,
    /// _sqlx_migrations (matched by version, SHA-384 checksums verified).
    Sqlx,
    /// _prisma_migrations (matched by folder name, SHA-256 checksums verified).
    Prisma,
    /// __diesel_schema_migrations (matched by version).
    Diesel,
    /// schema_migrations of dbmate (matched by version).
    Dbmate,
    /// schema_migrations of golang-migrate (everything up to its version; a dirty row is refused).
    GolangMigrate,
    /// goose_db_version (matched by version, the newest row per version deciding).
    Goose,
    /// flyway_schema_history (matched by version, Flyway's CRC32 checksums verified).
    Flyway,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The tool whose history table to read.
    #[arg(long, value_enum)]
    pub from: AdoptFrom,

    /// Their history table, [SCHEMA.]NAME; unqualified names are looked up in --schema
    /// [default: knex_migrations, drizzle.__drizzle_migrations, _sqlx_migrations,
    /// _prisma_migrations, __diesel_schema_migrations, schema_migrations, goose_db_version,
    /// flyway_schema_history].
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,

    /// Knex only: this file stands for the Knex migrations that have no .sql file of their
    /// own; it and they are recorded as applied.
    #[arg(long, value_name = "VERSION")]
    pub baseline: Option<i64>,

    /// Print the mapping (their row -> our version, match/mismatch/unmatched) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations in version order, each in its own transaction.
    #[command(after_help = "Examples:\n  \
        shipgate migrate up --database-url postgres://app@db:5432/app\n  \
        DB_HOST=db DB_USER=app DB_PASSWORD=... DB_NAME=app shipgate migrate up --source db/migrations\n  \
        shipgate migrate up --dry-run --output json")]
    Up(UpArgs),

    /// Revert applied migrations with their .down.sql files, newest first.
    #[command(
        group(ArgGroup::new("how_far").required(true).args(["to", "steps", "last_run"])),
        after_help = "Examples:\n  shipgate migrate down --steps 1\n  shipgate migrate down --to 20240101120000\n  shipgate migrate down --last-run"
    )]
    Down(DownArgs),

    /// Show every migration: applied, pending, modified, missing or failed.
    #[command(
        after_help = "Examples:\n  shipgate migrate status\n  shipgate migrate status --output json | jq '.summary'"
    )]
    Status,

    /// Exit 0 only when files and history agree and nothing is pending (a CI / pre-flight check).
    #[command(after_help = "Example:\n  shipgate migrate verify && echo \"database is current\"")]
    Verify(VerifyArgs),

    /// Record migrations up to VERSION as applied without running them (databases migrated by hand).
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  shipgate migrate baseline --from-schema\n  shipgate migrate baseline --version 20240301000000"
    )]
    Baseline(BaselineArgs),

    /// Record what Knex, Drizzle or sqlx already applied as shipgate history, running nothing.
    #[command(after_help = "Examples:\n  \
        shipgate migrate adopt --from knex --dry-run\n  \
        shipgate migrate adopt --from drizzle --source drizzle\n  \
        shipgate migrate adopt --from sqlx\n  \
        shipgate migrate adopt --from knex --table knex_migrations_master --baseline 20240601000000")]
    Adopt(AdoptArgs),

    /// Lint migrations for statements that lock or break production before they run: an index
    /// without CONCURRENTLY, a constraint without NOT VALID, a column type change, a drop or a
    /// rename (exit 1 on an error finding).
    #[command(after_help = "Examples:\n  \
        shipgate migrate lint\n  \
        shipgate migrate lint --explain\n  \
        shipgate migrate lint --pending --output json\n  \
        shipgate migrate lint --output github   # the default under GITHUB_ACTIONS=true\n\n\
        Allow one statement with a comment on the line above it (the reason is required):\n  \
        -- shipgate:allow require-concurrent-index-creation: audit_log has 40 rows")]
    Lint(LintArgs),

    /// Create a new, empty migration file named <UTC timestamp>_<name>.sql.
    #[command(
        after_help = "Examples:\n  shipgate migrate new add_users_table\n  shipgate migrate new add_orders --reversible"
    )]
    New(NewArgs),

    /// Resolve a failed (or intentionally edited) migration after checking the schema by hand.
    #[command(
        disable_version_flag = true,
        group(ArgGroup::new("resolution").required(true).args(["mark_applied", "remove"])),
        after_help = "Examples:\n  shipgate migrate repair --version 20240301000000 --mark-applied\n  shipgate migrate repair --version 20240301000000 --remove"
    )]
    Repair(RepairArgs),
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Lint only what the database has not applied (connects; one set: the master, or
    /// --set tenant --schema NAME), and show each table's size.
    #[arg(long)]
    pub pending: bool,

    /// Also print every statement's lock: its mode, on which relation, and whether it scans
    /// or rewrites the table.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Apply pending migrations up to and including this version.
    #[arg(long, value_name = "VERSION")]
    pub target: Option<i64>,

    /// Print the plan without changing anything (read-only connection, no lock).
    #[arg(long)]
    pub dry_run: bool,

    /// Refuse pending migrations older than the newest applied one instead of applying them.
    #[arg(long)]
    pub strict_order: bool,

    /// Do not stop when an applied migration has no file any more.
    #[arg(long)]
    pub ignore_missing: bool,

    /// Which pending migrations run: `pre` (before the rollout; stops at the first post
    /// migration), `post` or `all` [env: MIGRATION_PHASE] [default: all].
    #[arg(long, value_enum)]
    pub phase: Option<PhaseArg>,

    /// After a successful run, replace this process with CMD (same PID, so signals reach the
    /// application); when migrations fail, CMD is never started.
    #[arg(long, requires = "command", conflicts_with = "dry_run")]
    pub then: bool,

    /// The application to start with --then: `-- CMD ARGS...`.
    #[arg(last = true, value_name = "CMD", requires = "then")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Revert every applied migration above this version (0 reverts all, a version 0 too).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,

    /// Revert the newest N applied migrations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: Option<u32>,

    /// Revert everything the most recent `up` applied.
    #[arg(long)]
    pub last_run: bool,

    /// Print what would be reverted without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Every migration up to and including this version is recorded as applied.
    #[arg(
        long,
        value_name = "VERSION",
        required_unless_present = "from_schema",
        conflicts_with = "from_schema"
    )]
    pub version: Option<i64>,

    /// Find the version instead: replay the migrations in a scratch schema (rolled back) and
    /// compare tables, columns and indexes with the live schema; records nothing.
    #[arg(long)]
    pub from_schema: bool,

    /// Also when the history already has rows (rows already present are kept as they are).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the migration does, e.g. add_users_table.
    pub name: String,

    /// Create a .up.sql and a .down.sql instead of a single .sql.
    #[arg(long)]
    pub reversible: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The migration to repair.
    #[arg(long, value_name = "VERSION")]
    pub version: i64,

    /// Its changes are in the database: record it as applied, with the file's current checksum.
    #[arg(long)]
    pub mark_applied: bool,

    /// Its changes are not in the database: delete the row so the next `up` runs it again.
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct TaskdefCmd {
    #[command(subcommand)]
    pub action: TaskdefAction,
}

#[derive(Debug, Subcommand)]
pub enum TaskdefAction {
    /// Print the task definition a template renders to (no AWS call).
    #[command(
        after_help = "Templates are RegisterTaskDefinition JSON with ${NAME} and ${NAME:-default} placeholders,\n\
        filled from --var, then --vars-file, then the environment; $${ writes a literal ${.\n\n\
        Example:\n  shipgate taskdef render aws/migration-task.json --var IMAGE_TAG=$GITHUB_SHA"
    )]
    Render(TemplateArgs),

    /// Register a template's task definition unless the family's latest revision is the same.
    #[command(
        after_help = "Example:\n  shipgate taskdef register aws/migration-task.json --var IMAGE_TAG=$GITHUB_SHA --output json"
    )]
    Register(RegisterArgs),
}

/// A template and the values for its placeholders.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The template file.
    #[arg(value_name = "FILE")]
    pub template: PathBuf,

    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct VarArgs {
    /// A placeholder value, NAME=VALUE (repeatable; wins over --vars-file and the environment).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// A file of NAME=VALUE lines (# comments allowed).
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
}

/// Where AWS calls go and how results are printed.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region [default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's region].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Result format on stdout.
    #[arg(long, env = "SHIPGATE_OUTPUT", value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub template: TemplateArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct TaskCmd {
    #[command(subcommand)]
    pub action: TaskAction,
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Run one task, follow it until it stopped with every log line, and exit with its result.
    #[command(
        group(ArgGroup::new("what").required(true).args(["task_definition", "template"])),
        after_help = "Examples:\n  \
          shipgate task run --template aws/migration-task.json --var IMAGE_TAG=$GITHUB_SHA \\\n      \
            --cluster prod --network-from-service api --env MIGRATION_TYPE=master\n  \
          shipgate task run --task-definition db-migrate:12 --cluster prod \\\n      \
            --subnets subnet-1,subnet-2 --security-groups sg-1 --command shipgate migrate up\n\n\
          The exit code is the watched container's own when it ran and failed (--exit-code container),\n\
          1 when the task never started, 3 when another migration task of the family is running."
    )]
    Run(Box<RunArgs>),

    /// Follow a running (or stopped) task again, from the first log line.
    #[command(
        after_help = "Example:\n  shipgate task attach arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd"
    )]
    Attach(AttachArgs),

    /// Print a task's complete logs (every awslogs container) and exit.
    #[command(
        after_help = "Example:\n  shipgate task logs arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd > migrate.log"
    )]
    Logs(LogsArgs),

    /// Open a shell (or run a command) in a running task with ECS Exec: runs
    /// `aws ecs execute-command`, or prints it when the Session Manager plugin is missing.
    #[command(
        after_help = "Examples:\n  shipgate task exec arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd\n  \
          shipgate task exec arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd -- shipgate migrate status"
    )]
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The task's ARN.
    #[arg(value_name = "TASK_ARN")]
    pub task: String,

    /// The cluster [default: from the ARN].
    #[arg(long, env = "SHIPGATE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,

    /// The container [default: the task definition's only essential container].
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// The command to run in it [default: /bin/sh].
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// How a failed task's result becomes shipgate's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExitCodeMode {
    /// The watched container's own exit code when it ran and failed.
    Container,
    /// The 0/1/2/3 contract: container exits 2 and 3 kept, every other failure 1.
    Classified,
}

/// How a followed task is watched and ended.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The container whose exit code decides [default: the only essential container].
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// Stop the task after this long (e.g. 45min) [default: no limit].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,

    /// On SIGINT/SIGTERM, leave the task running instead of stopping it.
    #[arg(long)]
    pub no_stop_on_cancel: bool,

    /// How a failure maps to shipgate's exit code.
    #[arg(long, value_enum, default_value = "container")]
    pub exit_code: ExitCodeMode,

    /// Seconds between DescribeTasks calls while the task runs.
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
    pub poll_interval: Duration,

    /// Most GetLogEvents calls a second, shared by every log stream this process follows
    /// (CloudWatch Logs throttles the API per account and region).
    #[arg(long, env = "SHIPGATE_LOG_READS_PER_SECOND", default_value_t = 5.0, value_name = "N")]
    pub log_reads_per_second: f64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run this registered definition: FAMILY, FAMILY:REVISION or an ARN.
    #[arg(long, value_name = "FAMILY[:REV]|ARN")]
    pub task_definition: Option<String>,

    /// Render and register-if-changed this template, then run it.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,

    #[command(flatten)]
    pub vars: VarArgs,

    /// The ECS cluster.
    #[arg(long, env = "SHIPGATE_CLUSTER", value_name = "NAME")]
    pub cluster: String,

    /// Subnets for the task's network interface (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "IDS", conflicts_with = "network_from_service")]
    pub subnets: Vec<String>,

    /// Security groups (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "IDS", conflicts_with = "network_from_service")]
    pub security_groups: Vec<String>,

    /// Give the task a public IP (needed in public subnets without a NAT gateway to pull images).
    #[arg(long, conflicts_with = "network_from_service")]
    pub assign_public_ip: bool,

    /// Copy network, launch type or capacity providers and platform version from this service.
    #[arg(long, value_name = "SERVICE")]
    pub network_from_service: Option<String>,

    /// Run on this capacity provider (e.g. FARGATE_SPOT) instead of the FARGATE launch type.
    #[arg(long, value_name = "NAME")]
    pub capacity_provider: Option<String>,

    /// Fargate platform version [default: LATEST].
    #[arg(long, value_name = "VERSION")]
    pub platform_version: Option<String>,

    /// An environment variable for the watched container, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Task CPU override (units, e.g. 512).
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<String>,

    /// Task memory override (MiB, e.g. 1024).
    #[arg(long, value_name = "MIB")]
    pub memory: Option<String>,

    /// `startedBy` of the task; the concurrency guard looks for tasks with the same value.
    #[arg(long, default_value = "shipgate", value_name = "TEXT")]
    pub started_by: String,

    /// A tag for the task, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Print the task ARN and how to attach, then exit 0 without following.
    #[arg(long)]
    pub detach: bool,

    /// Start the task again this many times when it fails to start for a transient reason.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub start_retries: u32,

    /// When a task of this family is already running, wait for it to stop instead of refusing.
    #[arg(long)]
    pub wait_for_running: bool,

    /// Start the task with ECS Exec enabled (`shipgate task exec` into it); with
    /// --network-from-service the service's setting is copied anyway.
    #[arg(long)]
    pub enable_execute_command: bool,

    /// Identifier of this run, part of the idempotency token [default: GitHub run id and attempt].
    #[arg(long, env = "SHIPGATE_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,

    #[command(flatten)]
    pub follow: FollowArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Container command override; everything after --command is the command (put it last).
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARGS")]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The task's ARN.
    #[arg(value_name = "TASK_ARN")]
    pub task: String,

    /// The cluster [default: from the ARN].
    #[arg(long, env = "SHIPGATE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,

    #[command(flatten)]
    pub follow: FollowArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task's ARN.
    #[arg(value_name = "TASK_ARN")]
    pub task: String,

    /// The cluster [default: from the ARN].
    #[arg(long, env = "SHIPGATE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,

    /// The task's definition: its streams are found from this definition's log
    /// configuration without asking ECS about the task, which it forgets about an hour after
    /// the task stopped.
    #[arg(long, value_name = "FAMILY:REV|ARN")]
    pub task_definition: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Which environment of which project file, and the template variables.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The environment: a `[env.NAME]` section of shipgate.toml.
    #[arg(long, env = "SHIPGATE_ENV", value_name = "NAME")]
    pub env: String,

    /// The project file [default: ./shipgate.toml].
    #[arg(long, env = "SHIPGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub vars: VarArgs,
}

/// How `deploy` and `rollback` run their migration tasks and follow their rollouts.
#[derive(Debug, Args)]
pub struct RunSettingsArgs {
    /// A rollout still in progress after this long is a failure.
    #[arg(long, default_value = "30min", value_parser = parse_duration, value_name = "DURATION")]
    pub service_timeout: Duration,

    /// Time between DescribeTasks / DescribeServices calls.
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
    pub poll_interval: Duration,

    /// Most GetLogEvents calls a second, shared by every log stream this process follows
    /// (CloudWatch Logs throttles the API per account and region).
    #[arg(long, env = "SHIPGATE_LOG_READS_PER_SECOND", default_value_t = 5.0, value_name = "N")]
    pub log_reads_per_second: f64,

    /// `startedBy` of the migration tasks; the concurrency guard looks for tasks with it.
    #[arg(long, default_value = "shipgate", value_name = "TEXT")]
    pub started_by: String,

    /// Identifier of this run, part of the idempotency tokens [default: GitHub run id and attempt].
    #[arg(long, env = "SHIPGATE_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// Print the plan (task definitions registered or reused, with diffs; tasks; service
    /// updates) using only read-only AWS calls.
    #[arg(long)]
    pub dry_run: bool,

    /// When a service rollout fails, put every service updated by this deploy back on its
    /// previous task definition (migrations are never reverted automatically).
    #[arg(long)]
    pub rollback_on_failure: bool,

    /// Leave the post migrations (`-- shipgate:phase post`) for a later deploy: the deploy
    /// ends after the rollout, saying how many wait.
    #[arg(long)]
    pub skip_post: bool,

    /// Start a new deployment of every service even when its task definition did not change
    /// (a mutable image tag such as `latest` now names another image); per service:
    /// `force_new_deployment = true` in shipgate.toml.
    #[arg(long)]
    pub force_new_deployment: bool,

    /// Skip the pre-flight lint of the migrations, for emergencies [env: SHIPGATE_LINT=off].
    #[arg(long)]
    pub no_lint: bool,

    /// Services updated and followed at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,

    #[command(flatten)]
    pub run: RunSettingsArgs,

    /// Rehearse on this machine (as `platform = "local"`): run the migration task definition's
    /// container command as a local process; register nothing, update no service. With
    /// --dry-run, print the commands without running them.
    #[arg(long)]
    pub local: bool,

    /// The local platform's value for a `secrets` entry of the migration container, NAME=VALUE
    /// (repeatable) [default: read from Secrets Manager by its valueFrom].
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// Put the services on this revision of their task definition family.
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u32>,

    /// Put the services on the revision before the one they run now.
    #[arg(long)]
    pub previous: bool,

    /// Revert the newest N applied migrations (MIGRATION_TYPE=rollback-*, SHIPGATE_ROLLBACK_STEPS).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: Option<u32>,

    /// Revert every applied migration above this version (SHIPGATE_ROLLBACK_TO).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,

    /// Scale the services to zero before reverting, and back afterwards (no old code writes
    /// to a schema being changed under it).
    #[arg(long)]
    pub stop_services: bool,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub run: RunSettingsArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct ConfigCmd {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate an environment offline: keys, network, templates rendered with the variables.
    #[command(after_help = "Example:\n  shipgate config check --env production --var IMAGE_TAG=test")]
    Check(EnvArgs),

    /// Print the configuration reference as Markdown: every shipgate.toml key and every
    /// environment variable shipgate reads for a flag (the README's copy is this output).
    Reference,

    /// Print the JSON Schema of shipgate.toml (for editors, e.g. taplo / Even Better TOML).
    Schema,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
