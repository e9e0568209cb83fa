//! Expand / contract: a migration runs before the services roll out (`pre`, the default) or
//! after they did (`post`: drops, renames, anything the running application version still
//! uses). A file says `-- shipgate:phase post` in its header, or its folder is marked
//! `post` in shipgate.toml. `migrate up --phase pre` applies the pending pre migrations and
//! stops at the first post one; a pending pre migration after a pending post one is refused,
//! never reordered, since it may depend on it. `--phase post` (and `all`) apply everything
//! pending in version order, as GitLab's post-deployment migrations do.
//!
//! A pre run ends with one structured line, [`Report`], that the orchestrator reads from the
//! task's logs to decide whether a post task is needed. Pure; tables below.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::migrate::script::Migration;

/// When a migration runs relative to the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the new application version: additive, compatible with the old one.
    #[default]
    Pre,
    /// After every service rolled out: what only the old version still needed goes.
    Post,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        match text.trim() {
            "pre" => Some(Phase::Pre),
            "post" => Some(Phase::Post),
            _ => None,
        }
    }
}

/// Which migrations a run applies: `--phase` / `MIGRATION_PHASE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunPhase {
    Pre,
    Post,
    /// Every pending migration (what `migrate up` always did).
    #[default]
    All,
}

impl RunPhase {
    pub const VALUES: &'static str = "pre, post, all";

    pub fn name(self) -> &'static str {
        match self {
            RunPhase::Pre => "pre",
            RunPhase::Post => "post",
            RunPhase::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<RunPhase> {
        match text.trim() {
            "pre" => Some(RunPhase::Pre),
            "post" => Some(RunPhase::Post),
            "all" => Some(RunPhase::All),
            _ => None,
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pending migrations a run applies, and the post migrations it leaves for later.
#[derive(Debug, Clone, Default)]
pub struct Selected<'a> {
    pub todo: Vec<&'a Migration>,
    pub waiting: Vec<&'a Migration>,
}

/// Choose from `pending` (in version order) what `phase` applies. A pre run stops at the
/// first post migration; a pre migration after it would run before a migration it may
/// depend on, so it is refused with both named.
pub fn select<'a>(pending: Vec<&'a Migration>, phase: RunPhase) -> Result<Selected<'a>> {
    if phase != RunPhase::Pre {
        return Ok(Selected { todo: pending, waiting: Vec::new() });
    }
    let Some(first_post) = pending.iter().position(|m| m.phase() == Phase::Post) else {
        return Ok(Selected { todo: pending, waiting: Vec::new() });
    };
    let (todo, rest) = pending.split_at(first_post);
    let post = rest[0];
    let behind: Vec<&Migration> = rest.iter().copied().filter(|m| m.phase() == Phase::Pre).collect();
    if let Some(pre) = behind.first() {
        let others = match behind.len() {
            1 => String::new(),
            n => format!(" ({} more pre migrations after it)", n - 1),
        };
        return Err(Error::failed(format!(
            "pre migration {} ({}) comes after post migration {} ({}), which is pending too{others}: the pre phase \
             would apply it before a migration it may depend on; nothing was run",
            pre.version, pre.description, post.version, post.description
        ))
        .hint(format!(
            "deploy them separately (first the post migration, with its rollout), or mark {} post \
             (`-- shipgate:phase post`); `--phase all` applies both in version order",
            pre.version
        )));
    }
    Ok(Selected { todo: todo.to_vec(), waiting: rest.to_vec() })
}

/// What a pre run leaves behind, in the line the orchestrator reads from the task's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub phase: String,
    /// `master`, or `tenants` for a fleet run.
    pub set: String,
    pub applied: usize,
    /// Post migrations still pending (summed over the tenants of a fleet run).
    pub waiting: usize,
}

/// The text form's prefix: `shipgate:phase-report {"phase":"pre",...}`.
pub const MARKER: &str = "shipgate:phase-report ";

impl Report {
    /// The line in text output.
    pub fn line(&self) -> String {
        format!("{MARKER}{}", serde_json::to_string(self).expect("reports serialize"))
    }

    /// A report from one log line: the text form, or the `phase_report` event of
    /// `--output json`. Anything else is not one.
    pub fn parse(line: &str) -> Option<Report> {
        let line = line.trim();
        if let Some(json) = line.strip_prefix(MARKER) {
            return serde_json::from_str(json).ok();
        }
        if line.starts_with('{') && line.contains("\"phase_report\"") {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            if value.get("event")?.as_str()? == "phase_report" {
                return serde_json::from_value(value).ok();
            }
        }
        None
    }

    /// Whether a log line may be a report (cheap; [`Report::parse`] decides).
    pub fn may_be(line: &str) -> bool {
        line.contains(MARKER.trim_end()) || line.contains("\"phase_report\"")
    }
}

/// `1 post migration waits`, `3 post migrations wait`: how every report says it.
pub fn waiting_words(n: usize) -> String {
    match n {
        1 => "1 post migration waits".to_string(),
        n => format!("{n} post migrations wait"),
    }
}

/// What the pre task(s) of a step said about the post phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Every task reported; this many post migrations wait.
    Waiting(usize),
    /// A task said nothing (a runner that is not shipgate, or logs that did not arrive).
    Silent,
}

/// A step's verdict from its tasks' reports: `None` for a task that reported nothing.
pub fn heard(reports: &[Option<Report>]) -> Heard {
    let mut waiting = 0;
    for r in reports {
        match r {
            Some(r) => waiting += r.waiting,
            None => return Heard::Silent,
        }
    }
    Heard::Waiting(waiting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::script::Script;
    use std::path::PathBuf;

    fn m(version: i64, post: bool) -> Migration {
        let header = if post { "-- shipgate:phase post\n" } else { "" };
        let sql = format!("{header}CREATE TABLE t{version} ();");
        let up = Script::new(PathBuf::from(format!("{version}_m.sql")), sql.into_bytes()).unwrap();
        Migration { version, description: format!("m{version}"), up, down: None, drizzle: None }
    }

    #[test]
    fn selection_per_phase() {
        // (pending as version/post, phase, expected todo, expected waiting) or a refusal.
        type Case =
            (&'static [(i64, bool)], RunPhase, std::result::Result<(Vec<i64>, Vec<i64>), &'static str>);
        let cases: &[Case] = &[
            (&[], RunPhase::Pre, Ok((vec![], vec![]))),
            (&[(1, false), (2, false)], RunPhase::Pre, Ok((vec![1, 2], vec![]))),
            (&[(1, false), (2, true)], RunPhase::Pre, Ok((vec![1], vec![2]))),
            (&[(1, false), (2, true), (3, true)], RunPhase::Pre, Ok((vec![1], vec![2, 3]))),
            (&[(2, true)], RunPhase::Pre, Ok((vec![], vec![2]))),
            (
                &[(1, true), (2, false)],
                RunPhase::Pre,
                Err("pre migration 2 (m2) comes after post migration 1 (m1)"),
            ),
            (
                &[(1, false), (2, true), (3, false), (4, false)],
                RunPhase::Pre,
                Err("(1 more pre migrations after it)"),
            ),
            (&[(1, true), (2, false)], RunPhase::Post, Ok((vec![1, 2], vec![]))),
            (&[(1, false), (2, true)], RunPhase::Post, Ok((vec![1, 2], vec![]))),
            (&[(1, true), (2, false)], RunPhase::All, Ok((vec![1, 2], vec![]))),
        ];
        for (pending, phase, expected) in cases {
            let ms: Vec<Migration> = pending.iter().map(|&(v, post)| m(v, post)).collect();
            let got = select(ms.iter().collect(), *phase);
            let versions = |v: &[&Migration]| v.iter().map(|m| m.version).collect::<Vec<_>>();
            match (got, expected) {
                (Ok(s), Ok((todo, waiting))) => {
                    assert_eq!(
                        (&versions(&s.todo), &versions(&s.waiting)),
                        (todo, waiting),
                        "{pending:?} {phase}"
                    );
                }
                (Err(e), Err(needle)) => {
                    assert_eq!(e.exit_code(), 1);
                    assert!(e.message().contains(needle), "{}", e.message());
                    assert!(e.hint_text().unwrap_or_default().contains("deploy them separately"));
                }
                (got, _) => panic!("{pending:?} {phase}: {got:?}"),
            }
        }
    }

    #[test]
    fn reports_round_trip_through_log_lines() {
        let report = Report { phase: "pre".into(), set: "master".into(), applied: 2, waiting: 1 };
        let line = report.line();
        assert_eq!(line, r#"shipgate:phase-report {"phase":"pre","set":"master","applied":2,"waiting":1}"#);
        assert_eq!(Report::parse(&line), Some(report.clone()));
        let json = r#"{"event":"phase_report","phase":"pre","set":"tenants","applied":0,"waiting":3}"#;
        assert_eq!(Report::parse(json).map(|r| r.waiting), Some(3));
        for not in
            ["", "applied 2 migrations", r#"{"event":"summary","phase":"pre"}"#, "shipgate:phase-report {"]
        {
            assert_eq!(Report::parse(not), None, "{not}");
        }
        assert!(Report::may_be(&line) && Report::may_be(json) && !Report::may_be("hello"));
    }

    #[test]
    fn a_step_is_heard_only_when_every_task_reported() {
        let r = |waiting| Some(Report { phase: "pre".into(), set: "tenants".into(), applied: 0, waiting });
        assert_eq!(heard(&[r(0)]), Heard::Waiting(0));
        assert_eq!(heard(&[r(1), r(2)]), Heard::Waiting(3));
        assert_eq!(heard(&[r(1), None]), Heard::Silent);
        assert_eq!(heard(&[]), Heard::Waiting(0));
    }
}
