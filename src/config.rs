//! Turning parsed arguments and the environment into one validated job description.
//!
//! Everything that can be checked without touching the database is checked here, so a bad
//! flag or variable fails with exit 2 before any connection is opened.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, MigrateAction, MigrateArgs, OutputFormat};
use crate::db::target::{self, DbTarget};
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::exec::Limits;
use crate::migrate::plan::{DownTo, UpOptions};

/// Settings shared by every migrate command that talks to the database.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub source: PathBuf,
    pub target: DbTarget,
    pub schema: Option<String>,
    pub connect_timeout: Duration,
    pub lock_timeout: Duration,
    pub limits: Limits,
    pub run_id: String,
    pub application_name: String,
    pub output: OutputFormat,
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
    Up { options: UpOptions, dry_run: bool },
    Down { to: DownTo, dry_run: bool },
    Status,
    Verify,
    Baseline { version: i64, force: bool },
    Repair { version: i64, resolution: Resolution },
}

/// Everything `main` can be asked to do.
#[derive(Debug, Clone)]
pub enum Job {
    Migrate(Box<MigrateConfig>, MigrateJob),
    NewMigration { dir: PathBuf, name: String, reversible: bool },
}

/// Validate the command line against the environment.
pub fn from_cli(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Job> {
    let Command::Migrate(cmd) = cli.command;
    let job = match cmd.action {
        MigrateAction::New(args) => {
            return Ok(Job::NewMigration {
                dir: cmd.common.source,
                name: args.name,
                reversible: args.reversible,
            });
        }
        MigrateAction::Up(a) => MigrateJob::Up {
            options: UpOptions {
                target: a.target,
                strict_order: a.strict_order,
                ignore_missing: a.ignore_missing,
            },
            dry_run: a.dry_run,
        },
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
        MigrateAction::Status => MigrateJob::Status,
        MigrateAction::Verify => MigrateJob::Verify,
        MigrateAction::Baseline(a) => MigrateJob::Baseline { version: a.version, force: a.force },
        MigrateAction::Repair(a) => MigrateJob::Repair {
            version: a.version,
            resolution: if a.mark_applied { Resolution::MarkApplied } else { Resolution::Remove },
        },
    };
    Ok(Job::Migrate(Box::new(migrate_config(cmd.common, env)?), job))
}

fn migrate_config(args: MigrateArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<MigrateConfig> {
    let target = target::resolve(args.database_url.as_deref(), env)?;
    if let Some(schema) = &args.schema {
        validate_schema(schema)?;
    }
    let run_id =
        args.run_id.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| identity::default_run_id(env));
    let application_name = identity::application_name(&run_id);
    Ok(MigrateConfig {
        source: args.source,
        target,
        schema: args.schema,
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
    })
}

/// PostgreSQL identifiers are at most 63 bytes and cannot contain NUL; anything else is
/// quoted, never interpolated.
pub fn validate_schema(name: &str) -> Result<()> {
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
        Some(p) => Err(Error::input(format!("--schema `{}` {p}", name.escape_debug()))),
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
        let Job::Migrate(cfg, _) =
            job(&["migrate", "up", "--lock-timeout", "2s", "--ddl-lock-timeout", "250ms", "--run-id", "r-1"])
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(cfg.lock_timeout, Duration::from_secs(2));
        assert_eq!(cfg.limits.lock_timeout, Duration::from_millis(250));
        assert_eq!(cfg.run_id, "r-1");
        assert!(cfg.application_name.starts_with("shipgate ") && cfg.application_name.ends_with(" r-1"));
        assert_eq!(cfg.target.host(), "db.example");
    }
}
