//! The one error type every command returns, and the exit-code contract it maps to.
//!
//! Every failure carries what went wrong, where, and (when we know it) what to do next.
//! The exit code is decided here and nowhere else, so the README, `--help` and the
//! orchestrator's interpretation of a runner's exit status cannot drift apart.

use std::fmt;

use crate::shutdown::Signal;

/// The documented exit codes. Shown verbatim in `shipgate --help` and the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    a migration (task, deploy) ran and failed, a task never started or timed out, or a
       pre-flight check refused to run (modified, missing or failed migrations;
       `migrate verify` found a difference; the migration lint found an error)
  2    usage, configuration or bad input (malformed migration files, templates or secrets,
       bad flags, unknown cluster, task definition or secret); nothing changed
  3    could not reach the database or AWS (connection, TLS, credentials, permissions), could
       not take the migration lock in time, or another migration task is running: nothing
       changed. Or the run lost its database session or its migration lock part-way: the
       migration in flight was rolled back (or keeps its recorded progress), nothing after it
       ran; rerun to continue
  130  interrupted by SIGINT; the statement in flight was cancelled and rolled back (a
       followed task was stopped)
  143  interrupted by SIGTERM (ECS StopTask); as for 130
  N    `task run` / `task attach`: the watched container ran and exited with N (its own
       code, passed through; --exit-code classified maps it to 1, keeping 2 and 3)";

/// Which part of the exit-code contract a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work ran and failed, or a check refused to run it: exit 1.
    Failed,
    /// Usage, configuration or input error, found before anything changed: exit 2.
    Input,
    /// Database unreachable or lock not available in time: exit 3.
    Unavailable,
    /// Stopped by a signal: exit 130 or 143.
    Interrupted(Signal),
    /// A followed task's container failed: its own exit code, passed through.
    Exit(u8),
}

/// A classified failure with a human message and an optional hint.
#[derive(Debug, Clone)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), hint: None }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Kind::Input, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, message)
    }

    pub fn interrupted(signal: Signal, message: impl Into<String>) -> Self {
        Self::new(Kind::Interrupted(signal), message)
    }

    /// Attach what the operator should do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same failure (kind and hint) with its message rewritten, e.g. to say where.
    pub fn map_message(self, f: impl FnOnce(&str) -> String) -> Self {
        Error { message: f(&self.message), ..self }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Failed => 1,
            Kind::Input => 2,
            Kind::Unavailable => 3,
            Kind::Interrupted(signal) => signal.exit_code(),
            Kind::Exit(code) => code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let cases = [
            (Error::failed("x"), 1),
            (Error::input("x"), 2),
            (Error::unavailable("x"), 3),
            (Error::interrupted(Signal::Int, "x"), 130),
            (Error::interrupted(Signal::Term, "x"), 143),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err:?}");
        }
    }

    #[test]
    fn readme_documents_the_same_exit_codes_as_help() {
        let readme = include_str!("../README.md");
        assert!(readme.contains(EXIT_CODES_HELP), "README's exit codes differ from EXIT_CODES_HELP");
    }

    #[test]
    fn hint_is_printed_on_its_own_line() {
        let err = Error::failed("migration 3 failed").hint("fix it");
        assert_eq!(err.to_string(), "migration 3 failed\n  hint: fix it");
    }
}
