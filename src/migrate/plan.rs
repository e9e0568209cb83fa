//! Pure decisions: what state each migration is in, what `up` and `down` would do, and
//! whether a run must be refused. No I/O here; every rule is a table test below.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::migrate::checksum;
pub use crate::migrate::phase::Selected;
use crate::migrate::phase::{self, RunPhase};
use crate::migrate::source::{Migration, MigrationSet};

/// Where a history row came from.
pub const ORIGIN_APPLY: &str = "apply";
pub const ORIGIN_BASELINE: &str = "baseline";
pub const ORIGIN_REPAIR: &str = "repair";
/// Recorded by `migrate adopt` from another tool's history.
pub const ORIGIN_ADOPT: &str = "adopt";
/// Recorded by `migrate adopt` for a Knex migration folded into a baseline: no file, ever.
pub const ORIGIN_ADOPT_NO_SOURCE: &str = "adopt-no-source";

/// One row of `shipgate_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRow {
    pub version: i64,
    pub description: String,
    pub checksum: Vec<u8>,
    pub checksum_normalized: Vec<u8>,
    pub success: bool,
    pub applied_at: DateTime<Utc>,
    pub execution_ms: i64,
    pub run_id: String,
    pub applied_by: String,
    pub origin: String,
    /// Statements of a no-transaction migration completed so far (`None`: not recorded).
    pub statements_done: Option<i32>,
    /// The phase it was applied in (`None`: rows written before phases were recorded).
    pub phase: Option<String>,
}

/// A migration's state, reconciling the directory with the history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Applied,
    Pending,
    /// Applied, but the file's checksum differs (raw and normalized).
    Modified,
    /// Applied, but no file has its version.
    Missing,
    /// A no-transaction migration started and did not finish (dirty).
    Failed,
    /// A no-transaction migration that stopped part-way, with its completed statements
    /// recorded and its file unchanged: `up` resumes it after them.
    Partial,
    /// Adopted from Knex with no file of its own (folded into a baseline); never run again.
    Retired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Modified => "modified",
            State::Missing => "missing",
            State::Failed => "failed",
            State::Partial => "partial",
            State::Retired => "retired",
        }
    }
}

/// One version, seen from both sides.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub version: i64,
    pub state: State,
    pub local: Option<&'a Migration>,
    pub applied: Option<&'a AppliedRow>,
    /// Pending, yet older than the newest applied migration (a branch merged late).
    pub late: bool,
}

impl Entry<'_> {
    pub fn description(&self) -> &str {
        self.local
            .map(|m| m.description.as_str())
            .or(self.applied.map(|a| a.description.as_str()))
            .unwrap_or_default()
    }
}

/// Checksums match when either the raw bytes or the normalized text agree.
pub fn checksum_matches(local: &Migration, row: &AppliedRow) -> bool {
    row.checksum == local.up.checksum || row.checksum_normalized == local.up.checksum_normalized()
}

/// Reconcile files and history into one list ordered by version.
/// The newest successfully applied version.
pub fn current_version(history: &[AppliedRow]) -> Option<i64> {
    history.iter().filter(|r| r.success).map(|r| r.version).max()
}

pub fn reconcile<'a>(set: &'a MigrationSet, applied: &'a [AppliedRow]) -> Vec<Entry<'a>> {
    let newest_applied = applied.iter().filter(|r| r.success).map(|r| r.version).max();
    let mut entries: Vec<Entry<'a>> = Vec::with_capacity(set.migrations.len());
    // A map, not a search per file: a thousand files against a thousand rows is half a
    // million comparisons in a run with nothing to do.
    let mut by_version: std::collections::HashMap<i64, &'a AppliedRow> =
        std::collections::HashMap::with_capacity(applied.len());
    for r in applied {
        by_version.entry(r.version).or_insert(r);
    }
    for m in &set.migrations {
        let row = by_version.get(&m.version).copied();
        let state = match row {
            None => State::Pending,
            Some(r) if !r.success && r.statements_done.is_some() && checksum_matches(m, r) => State::Partial,
            Some(r) if !r.success => State::Failed,
            Some(r) if !checksum_matches(m, r) => State::Modified,
            Some(_) => State::Applied,
        };
        let late = state == State::Pending && newest_applied.is_some_and(|n| m.version < n);
        entries.push(Entry { version: m.version, state, local: Some(m), applied: row, late });
    }
    for r in applied {
        if set.get(r.version).is_none() {
            let state = match (r.success, r.origin.as_str()) {
                (false, _) => State::Failed,
                (true, ORIGIN_ADOPT_NO_SOURCE) => State::Retired,
                (true, _) => State::Missing,
            };
            entries.push(Entry { version: r.version, state, local: None, applied: Some(r), late: false });
        }
    }
    entries.sort_by_key(|e| e.version);
    entries
}

/// How `up` may proceed.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub target: Option<i64>,
    pub strict_order: bool,
    pub ignore_missing: bool,
    /// `--phase` / `MIGRATION_PHASE`: which of the pending migrations run.
    pub phase: RunPhase,
}

/// Refuse when history is dirty, when an applied file changed, when one disappeared
/// (unless `ignore_missing`), or when `strict` forbids late migrations. Shared by `up`,
/// `down` and `verify`, so all three agree on what "consistent" means.
pub fn check_consistency(entries: &[Entry], dir: &str, ignore_missing: bool) -> Result<()> {
    let failed: Vec<&Entry> = entries.iter().filter(|e| e.state == State::Failed).collect();
    if let Some(first) = failed.first() {
        let row = first.applied.expect("failed entries have a row");
        // A recorded progress whose file changed: where to resume is no longer known.
        let progress = match (row.statements_done, first.local) {
            (Some(done), Some(m)) => format!(
                "; its first {done} statement{} completed, but {} changed since, so shipgate cannot tell where to \
                 resume",
                if done == 1 { "" } else { "s" },
                m.up.path.display()
            ),
            _ => String::new(),
        };
        return Err(Error::failed(format!(
            "migration {} ({}) is marked as failed: it ran without a transaction (run {}, by {}, at {}) \
             and did not finish, so its changes may be partly applied{progress}{}",
            first.version,
            first.description(),
            row.run_id,
            row.applied_by,
            row.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
            more(failed.len())
        ))
        .hint(format!(
            "check the schema by hand (e.g. an INVALID index left by CREATE INDEX CONCURRENTLY). If all of \
             its changes are present run `shipgate migrate repair --version {v} --mark-applied`; if you \
             undid them run `shipgate migrate repair --version {v} --remove` and deploy again",
            v = first.version
        )));
    }
    let modified: Vec<String> = entries
        .iter()
        .filter(|e| e.state == State::Modified)
        .map(|e| {
            let local = e.local.expect("modified entries have a file");
            let row = e.applied.expect("modified entries have a row");
            format!(
                "  - {} ({}): checksum in database {}, file now {}",
                local.up.path.display(),
                e.version,
                checksum::short(&row.checksum),
                checksum::short(&local.up.checksum)
            )
        })
        .collect();
    if !modified.is_empty() {
        return Err(Error::failed(format!(
            "{} applied migration{} changed since {} applied; nothing was run:\n{}",
            modified.len(),
            if modified.len() == 1 { " was" } else { "s were" },
            if modified.len() == 1 { "it was" } else { "they were" },
            modified.join("\n")
        ))
        .hint(
            "restore the file as it was applied (e.g. `git checkout`) and put the change in a new \
             migration (`shipgate migrate new NAME`); if the database already matches the edited file, \
             `shipgate migrate repair --version V --mark-applied` records the new checksum",
        ));
    }
    let missing: Vec<String> = entries
        .iter()
        .filter(|e| e.state == State::Missing)
        .map(|e| format!("  - {} ({})", e.version, e.description()))
        .collect();
    if !missing.is_empty() && !ignore_missing {
        return Err(Error::failed(format!(
            "{} applied migration{} no file in {dir}; nothing was run:\n{}",
            missing.len(),
            if missing.len() == 1 { " has" } else { "s have" },
            missing.join("\n")
        ))
        .hint("restore the files (is --source pointing at the right folder?), or pass --ignore-missing"));
    }
    Ok(())
}

fn more(count: usize) -> String {
    if count > 1 { format!(" ({} more failed migrations after it)", count - 1) } else { String::new() }
}

/// The migrations `up` applies, in order, after the consistency checks, and the post
/// migrations a pre run leaves waiting.
pub fn plan_up<'a>(entries: &[Entry<'a>], dir: &str, opts: &UpOptions) -> Result<Selected<'a>> {
    if let Some(target) = opts.target
        && !entries.iter().any(|e| e.version == target && e.local.is_some())
    {
        return Err(Error::input(format!("--target {target} is not the version of any migration in {dir}"))
            .hint("run `shipgate migrate status` to list the versions"));
    }
    check_consistency(entries, dir, opts.ignore_missing)?;
    let late: Vec<String> = entries
        .iter()
        .filter(|e| e.late && opts.target.is_none_or(|t| e.version <= t))
        .map(|e| format!("  - {} ({})", e.version, e.description()))
        .collect();
    if opts.strict_order && !late.is_empty() {
        return Err(Error::failed(format!(
            "--strict-order: {} pending migration{} older than the newest applied one; nothing was run:\n{}",
            late.len(),
            if late.len() == 1 { " is" } else { "s are" },
            late.join("\n")
        ))
        .hint("give them versions after the newest applied migration, or run without --strict-order"));
    }
    let pending = entries
        .iter()
        .filter(|e| {
            matches!(e.state, State::Pending | State::Partial) && opts.target.is_none_or(|t| e.version <= t)
        })
        .filter_map(|e| e.local)
        .collect();
    phase::select(pending, opts.phase)
}

/// What `down` reverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTo {
    /// Revert every applied migration with a version above this one. 0 is everything, a
    /// version-0 migration (diesel's setup, `0_init.sql`) too: what `diesel migration revert
    /// --all` and `--to 0` in every other tool mean.
    Version(i64),
    /// Revert the newest N applied migrations.
    Steps(usize),
    /// Revert what the most recent `up` run applied.
    LastRun,
}

/// The applied migrations to revert, newest first, each guaranteed to have a down script.
pub fn plan_down<'a>(entries: &[Entry<'a>], dir: &str, to: DownTo) -> Result<Vec<&'a Migration>> {
    check_consistency(entries, dir, true)?;
    if let Some(e) = entries.iter().find(|e| e.state == State::Partial) {
        let done = e.applied.and_then(|r| r.statements_done).unwrap_or(0);
        return Err(Error::failed(format!(
            "migration {} ({}) stopped part-way ({done} statement{} completed); nothing was reverted",
            e.version,
            e.description(),
            if done == 1 { "" } else { "s" }
        ))
        .hint(format!(
            "finish it with `shipgate migrate up` (it resumes there), or settle it with `shipgate migrate repair \
             --version {} --mark-applied` or `--remove`",
            e.version
        )));
    }
    let applied: Vec<&Entry<'a>> =
        entries.iter().rev().filter(|e| matches!(e.state, State::Applied | State::Missing)).collect();
    let chosen: Vec<&Entry<'a>> = match to {
        DownTo::Version(v) => {
            if v != 0 && !entries.iter().any(|e| e.version == v) {
                return Err(Error::input(format!(
                    "--to {v} is not the version of any migration (use 0 to revert all)"
                ))
                .hint("run `shipgate migrate status` to list the versions"));
            }
            applied.into_iter().filter(|e| e.version > v || v == 0).collect()
        }
        DownTo::Steps(n) => applied.into_iter().take(n).collect(),
        DownTo::LastRun => {
            let last = applied
                .iter()
                .filter_map(|e| e.applied)
                .filter(|r| r.origin == ORIGIN_APPLY)
                .max_by_key(|r| (r.applied_at, r.version));
            match last {
                None => Vec::new(),
                Some(last) => applied
                    .into_iter()
                    .filter(|e| {
                        e.applied.is_some_and(|r| r.run_id == last.run_id && r.origin == ORIGIN_APPLY)
                    })
                    .collect(),
            }
        }
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for e in chosen {
        match e.local {
            None => problems.push(format!("  - {} ({}): no file in {dir}", e.version, e.description())),
            Some(m) if m.down.is_none() => problems.push(format!(
                "  - {} ({}): no .down.sql next to {}",
                e.version,
                e.description(),
                m.up.path.display()
            )),
            Some(m) => out.push(m),
        }
    }
    if !problems.is_empty() {
        return Err(Error::input(format!(
            "cannot revert {} migration{}; nothing was reverted:\n{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n")
        ))
        .hint("a reversible migration is a <version>_<name>.up.sql with a matching .down.sql"));
    }
    Ok(out)
}

/// How many entries are in each state, in `State` order.
pub fn counts(entries: &[Entry]) -> Vec<(State, usize)> {
    [
        State::Applied,
        State::Retired,
        State::Pending,
        State::Partial,
        State::Modified,
        State::Missing,
        State::Failed,
    ]
    .into_iter()
    .map(|state| (state, entries.iter().filter(|e| e.state == state).count()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source::{RawFile, assemble};
    use std::path::PathBuf;

    /// Expected plan: versions, or (exit code, message fragment).
    type Expect = Result<Vec<i64>, (u8, &'static str)>;
    type StateRow = (i64, State, bool);

    fn set(files: &[(&str, &str)]) -> MigrationSet {
        let raw = files
            .iter()
            .map(|(n, s)| RawFile {
                path: PathBuf::from(n),
                name: n.to_string(),
                bytes: s.as_bytes().to_vec(),
            })
            .collect();
        MigrationSet {
            dir: PathBuf::from("m"),
            format: crate::migrate::source::Format::Sqlx,
            detected: true,
            files_read: 0,
            migrations: assemble(raw, crate::migrate::source::Format::Sqlx).unwrap().0,
        }
    }

    fn row(set: &MigrationSet, version: i64, run: &str, minute: u32) -> AppliedRow {
        let m = set.get(version);
        AppliedRow {
            version,
            description: m.map(|m| m.description.clone()).unwrap_or("gone".into()),
            checksum: m.map(|m| m.up.checksum.clone()).unwrap_or_default(),
            checksum_normalized: m.map(|m| m.up.checksum_normalized().to_vec()).unwrap_or_default(),
            success: true,
            applied_at: DateTime::from_timestamp(1_700_000_000 + i64::from(minute) * 60, 0).unwrap(),
            execution_ms: 1,
            run_id: run.into(),
            applied_by: "me@host".into(),
            origin: ORIGIN_APPLY.into(),
            statements_done: None,
            phase: None,
        }
    }

    fn three() -> MigrationSet {
        set(&[
            ("1_a.up.sql", "CREATE TABLE a ();"),
            ("1_a.down.sql", "DROP TABLE a;"),
            ("2_b.up.sql", "CREATE TABLE b ();"),
            ("2_b.down.sql", "DROP TABLE b;"),
            ("3_c.sql", "CREATE TABLE c ();"),
        ])
    }

    fn states(entries: &[Entry]) -> Vec<StateRow> {
        entries.iter().map(|e| (e.version, e.state, e.late)).collect()
    }

    #[test]
    fn reconcile_states() {
        let s = three();
        let mut modified = row(&s, 2, "r1", 1);
        modified.checksum = vec![1];
        modified.checksum_normalized = vec![2];
        let mut crlf = row(&s, 1, "r1", 1);
        crlf.checksum = vec![9]; // raw differs, normalized still matches
        let mut failed = row(&s, 3, "r2", 2);
        failed.success = false;
        let cases: Vec<(Vec<AppliedRow>, Vec<StateRow>)> = vec![
            (
                vec![],
                vec![(1, State::Pending, false), (2, State::Pending, false), (3, State::Pending, false)],
            ),
            (
                vec![row(&s, 1, "r1", 1), row(&s, 3, "r1", 1)],
                vec![(1, State::Applied, false), (2, State::Pending, true), (3, State::Applied, false)],
            ),
            (
                vec![crlf, modified, failed],
                vec![(1, State::Applied, false), (2, State::Modified, false), (3, State::Failed, false)],
            ),
            (
                vec![row(&s, 1, "r1", 1), row(&s, 7, "r1", 1)],
                vec![
                    (1, State::Applied, false),
                    (2, State::Pending, true),
                    (3, State::Pending, true),
                    (7, State::Missing, false),
                ],
            ),
        ];
        for (rows, expected) in cases {
            assert_eq!(states(&reconcile(&s, &rows)), expected);
        }
    }

    fn up(s: &MigrationSet, rows: &[AppliedRow], opts: UpOptions) -> Result<Vec<i64>> {
        plan_up(&reconcile(s, rows), "m", &opts).map(|ms| ms.todo.iter().map(|m| m.version).collect())
    }

    #[test]
    fn up_plans_and_refusals() {
        let s = three();
        let r1 = row(&s, 1, "r1", 1);
        let r3 = row(&s, 3, "r1", 1);
        let mut bad = row(&s, 2, "r1", 1);
        bad.checksum = vec![0];
        bad.checksum_normalized = vec![0];
        let mut dirty = row(&s, 2, "r1", 1);
        dirty.success = false;
        let gone = row(&s, 9, "r1", 1);
        let o = UpOptions::default;
        let cases: Vec<(Vec<AppliedRow>, UpOptions, Expect)> = vec![
            (vec![], o(), Ok(vec![1, 2, 3])),
            (vec![r1.clone()], o(), Ok(vec![2, 3])),
            (vec![], UpOptions { target: Some(2), ..o() }, Ok(vec![1, 2])),
            (vec![], UpOptions { target: Some(5), ..o() }, Err((2, "--target 5 is not"))),
            (vec![r1.clone(), r3.clone()], o(), Ok(vec![2])),
            (
                vec![r1.clone(), r3.clone()],
                UpOptions { strict_order: true, ..o() },
                Err((1, "--strict-order")),
            ),
            (vec![r1.clone(), bad], o(), Err((1, "changed since it was applied"))),
            (vec![r1.clone(), dirty], o(), Err((1, "marked as failed"))),
            (vec![r1.clone(), gone.clone()], o(), Err((1, "no file in m"))),
            (vec![r1.clone(), gone], UpOptions { ignore_missing: true, ..o() }, Ok(vec![2, 3])),
        ];
        for (rows, opts, expected) in cases {
            let got = up(&s, &rows, opts.clone());
            match (&got, &expected) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(e), Err((code, needle))) => {
                    assert_eq!(e.exit_code(), *code, "{e}");
                    assert!(e.to_string().contains(needle), "{e} should contain {needle}");
                }
                _ => panic!("{opts:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn down_selection() {
        let s = three();
        let rows = vec![row(&s, 1, "r1", 1), row(&s, 2, "r2", 2)];
        let mut baseline = row(&s, 1, "r0", 0);
        baseline.origin = ORIGIN_BASELINE.into();
        let with_3 = vec![row(&s, 1, "r1", 1), row(&s, 2, "r2", 2), row(&s, 3, "r2", 2)];
        let cases: Vec<(Vec<AppliedRow>, DownTo, Expect)> = vec![
            (rows.clone(), DownTo::Steps(1), Ok(vec![2])),
            (rows.clone(), DownTo::Steps(5), Ok(vec![2, 1])),
            (rows.clone(), DownTo::Version(1), Ok(vec![2])),
            (rows.clone(), DownTo::Version(0), Ok(vec![2, 1])),
            (rows.clone(), DownTo::Version(4), Err((2, "--to 4 is not"))),
            (rows.clone(), DownTo::LastRun, Ok(vec![2])),
            (vec![baseline, row(&s, 2, "r2", 2)], DownTo::LastRun, Ok(vec![2])),
            (vec![], DownTo::LastRun, Ok(vec![])),
            (with_3.clone(), DownTo::Steps(1), Err((2, "no .down.sql"))),
            (with_3, DownTo::LastRun, Err((2, "no .down.sql"))),
        ];
        // diesel's `00000000000000_diesel_initial_setup` is version 0: `--to 0` reverts it too.
        let zero = set(&[
            ("0_setup.up.sql", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"),
            ("0_setup.down.sql", "DROP FUNCTION f();"),
            ("1_a.up.sql", "CREATE TABLE a ();"),
            ("1_a.down.sql", "DROP TABLE a;"),
        ]);
        let zero_rows = vec![row(&zero, 0, "r1", 1), row(&zero, 1, "r1", 1)];
        let entries = reconcile(&zero, &zero_rows);
        let chosen: Vec<i64> =
            plan_down(&entries, "m", DownTo::Version(0)).unwrap().iter().map(|m| m.version).collect();
        assert_eq!(chosen, [1, 0]);
        let chosen: Vec<i64> =
            plan_down(&entries, "m", DownTo::Steps(1)).unwrap().iter().map(|m| m.version).collect();
        assert_eq!(chosen, [1]);
        for (rows, to, expected) in cases {
            let got = plan_down(&reconcile(&s, &rows), "m", to)
                .map(|ms| ms.iter().map(|m| m.version).collect::<Vec<_>>());
            match (&got, &expected) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{to:?}"),
                (Err(e), Err((code, needle))) => {
                    assert_eq!(e.exit_code(), *code, "{e}");
                    assert!(e.to_string().contains(needle), "{e} should contain {needle}");
                }
                _ => panic!("{to:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
