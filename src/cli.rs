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
}

#[derive(Debug, Args)]
pub struct MigrateCmd {
    #[command(flatten)]
    pub common: MigrateArgs,

    #[command(subcommand)]
    pub action: MigrateAction,
}

/// Output format for results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Short lines for people.
    Text,
    /// One JSON object per event, then a summary object (for scripts and the orchestrator).
    Json,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// Options every `migrate` command takes.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL. Without it: DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME, then PGHOST/PGPORT/...
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Folder of migration files.
    #[arg(long, env = "SHIPGATE_SOURCE", default_value = "migrations", global = true, value_name = "DIR")]
    pub source: PathBuf,

    /// Schema that holds the history table and receives unqualified names
    /// [default: the first schema of the connection's search_path].
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

    /// Retries (with backoff) of a migration that hit its lock_timeout.
    #[arg(long, env = "SHIPGATE_LOCK_RETRIES", default_value_t = 5, global = true, value_name = "N")]
    pub lock_retries: u32,

    /// Identifier recorded with every row this run writes [default: GitHub run id, or a timestamp].
    #[arg(long, env = "SHIPGATE_RUN_ID", global = true, value_name = "ID")]
    pub run_id: Option<String>,

    /// Result format on stdout.
    #[arg(long, env = "SHIPGATE_OUTPUT", value_enum, default_value = "text", global = true)]
    pub output: OutputFormat,
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
    Verify,

    /// Record migrations up to VERSION as applied without running them (databases migrated by hand).
    #[command(
        disable_version_flag = true,
        after_help = "Example:\n  shipgate migrate baseline --version 20240301000000"
    )]
    Baseline(BaselineArgs),

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
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Revert every applied migration above this version (0 reverts all).
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
    #[arg(long, value_name = "VERSION")]
    pub version: i64,

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
