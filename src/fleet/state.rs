//! Pure decisions about a fleet: where each tenant stands against the tenant set, whether it
//! passes `tenants verify`, and how a run's per-tenant outcomes add up to its summary and exit
//! code. No I/O; every rule has a table test below.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::migrate::source::MigrationSet;

/// The part of a history row that status needs (the whole row is read only for one schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
    pub checksum_normalized: Vec<u8>,
}

/// The versions of `set` that at least one tenant has still to apply: every version when a
/// tenant has no history yet, else those missing (or failed) in some tenant's facts. Pure.
pub fn pending_anywhere(
    set: &MigrationSet,
    tenants_without_history: usize,
    facts: &BTreeMap<String, Vec<Fact>>,
    tenants_with_history: usize,
) -> BTreeSet<i64> {
    let all: BTreeSet<i64> = set.migrations.iter().map(|m| m.version).collect();
    if tenants_without_history > 0 || facts.len() < tenants_with_history {
        return all;
    }
    // How many tenants have each version applied: one pass over every row.
    let mut applied_in: BTreeMap<i64, usize> = BTreeMap::new();
    for rows in facts.values() {
        let done: BTreeSet<i64> = rows.iter().filter(|f| f.success).map(|f| f.version).collect();
        for v in done {
            *applied_in.entry(v).or_default() += 1;
        }
    }
    all.into_iter().filter(|v| applied_in.get(v).copied().unwrap_or(0) < facts.len()).collect()
}

/// A tenant's history compared with the tenant set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// Newest successfully applied version.
    pub version: Option<i64>,
    /// Versions in the set with no row.
    pub pending: Vec<i64>,
    /// Rows of no-transaction migrations that did not finish.
    pub dirty: Vec<i64>,
    /// Applied, but the file changed since.
    pub modified: Vec<i64>,
    /// Applied, but no file has the version.
    pub missing: Vec<i64>,
}

impl Standing {
    pub fn of(set: &MigrationSet, facts: &[Fact]) -> Standing {
        let mut s = Standing {
            version: facts.iter().filter(|f| f.success).map(|f| f.version).max(),
            ..Standing::default()
        };
        let applied: BTreeMap<i64, &Fact> = facts.iter().map(|f| (f.version, f)).collect();
        for m in &set.migrations {
            match applied.get(&m.version) {
                None => s.pending.push(m.version),
                Some(f) if !f.success => s.dirty.push(m.version),
                Some(f)
                    if f.checksum != m.up.checksum && f.checksum_normalized != m.up.checksum_normalized() =>
                {
                    s.modified.push(m.version)
                }
                Some(_) => {}
            }
        }
        for f in facts {
            if set.get(f.version).is_none() {
                if f.success { s.missing.push(f.version) } else { s.dirty.push(f.version) }
            }
        }
        s.dirty.sort_unstable();
        s
    }

    /// Why this tenant is not at `at_least` or later; `None` when it is. Every migration of
    /// the set up to `at_least` must be applied, not only the newest: a branch merged late can
    /// leave an older one pending under a newer version.
    pub fn short_of(&self, at_least: i64) -> Option<String> {
        if let Some(v) = self.dirty.first() {
            return Some(format!("migration {v} is marked as failed (dirty)"));
        }
        let below: Vec<i64> = self.pending.iter().copied().filter(|&v| v <= at_least).collect();
        if let Some(first) = below.first() {
            let at = self.version.map_or("no migration applied".to_string(), |v| format!("at {v}"));
            return Some(format!(
                "{at}; {} migration{} up to {at_least} pending (first: {first})",
                below.len(),
                if below.len() == 1 { "" } else { "s" }
            ));
        }
        match self.version {
            Some(v) if v >= at_least => None,
            Some(v) => Some(format!("at {v}")),
            None => Some("no migration applied".into()),
        }
    }
}

/// What a fleet run did to one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Migrations were applied (or reverted).
    Changed { from: Option<i64>, to: Option<i64>, count: usize },
    /// Nothing to do.
    Current { version: Option<i64> },
    /// A migration (or a check before it) failed; migrations before it stay applied.
    Failed { version: Option<i64>, at: Option<i64>, reason: String },
    /// Not touched: an invalid name, a missing schema.
    Skipped { reason: String },
    /// Not started: `--fail-fast`, a failed canary, or a signal.
    NotAttempted { reason: String },
}

/// The closing account of a fleet run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub tenants: usize,
    pub changed: usize,
    pub migrations: usize,
    pub current: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_attempted: usize,
}

impl Tally {
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Tally {
        let mut t = Tally::default();
        for o in outcomes {
            t.tenants += 1;
            match o {
                Outcome::Changed { count, .. } => {
                    t.changed += 1;
                    t.migrations += count;
                }
                Outcome::Current { .. } => t.current += 1,
                Outcome::Failed { .. } => t.failed += 1,
                Outcome::Skipped { .. } => t.skipped += 1,
                Outcome::NotAttempted { .. } => t.not_attempted += 1,
            }
        }
        t
    }

    /// One line: "200 tenants: 180 migrated (1800 migrations), 19 already current, 1 failed".
    pub fn line(&self, verb: &str) -> String {
        let mut parts = vec![format!("{} {verb} ({} migrations)", self.changed, self.migrations)];
        parts.push(match verb {
            "migrated" => format!("{} already current", self.current),
            "reverted" => format!("{} with nothing to revert", self.current),
            _ => format!("{} with nothing to adopt", self.current),
        });
        for (n, what) in
            [(self.failed, "failed"), (self.skipped, "skipped"), (self.not_attempted, "not attempted")]
        {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!("{} tenant{}: {}", self.tenants, if self.tenants == 1 { "" } else { "s" }, parts.join(", "))
    }
}

/// How many tenants stand at each version (`None`: nothing applied), newest first.
pub fn histogram(versions: impl IntoIterator<Item = Option<i64>>) -> Vec<(Option<i64>, usize)> {
    let mut counts: BTreeMap<Option<i64>, usize> = BTreeMap::new();
    for v in versions {
        *counts.entry(v).or_default() += 1;
    }
    counts.into_iter().rev().collect()
}

/// Canaries first, in the order `tenants_query` returned them, then everyone else.
pub fn split_canaries<T>(mut tenants: Vec<T>, canary: usize) -> (Vec<T>, Vec<T>) {
    let rest = tenants.split_off(canary.min(tenants.len()));
    (tenants, rest)
}

/// `--only` names that `tenants_query` did not return.
pub fn unknown_only<'a>(only: &'a [String], listed: &BTreeSet<&str>) -> Vec<&'a str> {
    only.iter().map(String::as_str).filter(|n| !listed.contains(n)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pending_anywhere_is_what_any_tenant_still_lacks() {
        use crate::migrate::script::{Migration, Script};
        let m = |v: i64| Migration {
            version: v,
            description: "x".into(),
            up: Script::new(format!("{v}_x.sql").into(), b"SELECT 1;".to_vec()).unwrap(),
            down: None,
            drizzle: None,
        };
        let set = MigrationSet {
            dir: "t".into(),
            format: crate::migrate::source::Format::Sqlx,
            detected: true,
            files_read: 3,
            migrations: vec![m(1), m(2), m(3)],
        };
        let fact = |v: i64, success: bool| Fact {
            version: v,
            success,
            checksum: vec![],
            checksum_normalized: vec![],
        };
        let facts = BTreeMap::from([
            ("a".to_string(), vec![fact(1, true), fact(2, true)]),
            ("b".to_string(), vec![fact(1, true), fact(2, false)]),
        ]);
        assert_eq!(pending_anywhere(&set, 0, &facts, 2), BTreeSet::from([2, 3]));
        // A tenant with no history yet has everything to apply.
        assert_eq!(pending_anywhere(&set, 1, &facts, 2), BTreeSet::from([1, 2, 3]));
        let all_done = BTreeMap::from([("a".to_string(), vec![fact(1, true), fact(2, true), fact(3, true)])]);
        assert_eq!(pending_anywhere(&set, 0, &all_done, 1), BTreeSet::new());
    }

    use super::*;
    use crate::migrate::source::{Migration, Script};
    use std::path::PathBuf;

    fn set(versions: &[i64]) -> MigrationSet {
        let script = |v: i64| Script {
            path: PathBuf::from(format!("{v}_m.sql")),
            sql: String::new(),
            part: 0..0,
            statements: std::iter::once(0..0).collect(),
            parsed: Default::default(),
            directives: Default::default(),
            checksum: vec![v as u8],
            normalized: std::sync::OnceLock::from(vec![v as u8, 0]),
        };
        MigrationSet {
            dir: PathBuf::from("tenant"),
            format: crate::migrate::source::Format::Sqlx,
            detected: true,
            files_read: versions.len(),
            migrations: versions
                .iter()
                .map(|&v| Migration {
                    version: v,
                    description: "m".into(),
                    up: script(v),
                    down: None,
                    drizzle: None,
                })
                .collect(),
        }
    }

    fn fact(version: i64, success: bool, checksum: u8) -> Fact {
        Fact { version, success, checksum: vec![checksum], checksum_normalized: vec![checksum, 1] }
    }

    #[test]
    fn standing_against_the_set() {
        let s = set(&[1, 2, 3]);
        let cases = [
            (vec![], Standing { pending: vec![1, 2, 3], ..Default::default() }),
            (
                vec![fact(1, true, 1), fact(2, true, 2), fact(3, true, 3)],
                Standing { version: Some(3), ..Default::default() },
            ),
            (
                vec![fact(1, true, 1), fact(3, true, 3)],
                Standing { version: Some(3), pending: vec![2], ..Default::default() },
            ),
            (
                vec![fact(1, true, 1), fact(2, false, 2)],
                Standing { version: Some(1), pending: vec![3], dirty: vec![2], ..Default::default() },
            ),
            (
                vec![fact(1, true, 9), fact(2, true, 2), fact(3, true, 3), fact(4, true, 4)],
                Standing { version: Some(4), modified: vec![1], missing: vec![4], ..Default::default() },
            ),
        ];
        for (facts, expected) in cases {
            assert_eq!(Standing::of(&s, &facts), expected, "{facts:?}");
        }
    }

    #[test]
    fn at_least_needs_every_migration_up_to_the_version() {
        let s = set(&[1, 2, 3]);
        let cases = [
            (vec![fact(1, true, 1), fact(2, true, 2)], 2, None),
            (vec![fact(1, true, 1), fact(2, true, 2)], 1, None),
            (
                vec![fact(1, true, 1), fact(2, true, 2)],
                3,
                Some("at 2; 1 migration up to 3 pending (first: 3)"),
            ),
            (
                vec![fact(1, true, 1), fact(3, true, 3)],
                3,
                Some("at 3; 1 migration up to 3 pending (first: 2)"),
            ),
            (vec![fact(1, true, 1), fact(3, true, 3)], 1, None),
            (vec![], 1, Some("no migration applied; 1 migration up to 1 pending (first: 1)")),
            (vec![fact(1, true, 1), fact(2, false, 2)], 1, Some("migration 2 is marked as failed (dirty)")),
        ];
        for (facts, at_least, expected) in cases {
            let got = Standing::of(&s, &facts).short_of(at_least);
            assert_eq!(got.as_deref(), expected, "{facts:?} >= {at_least}");
        }
    }

    #[test]
    fn tally_and_its_line() {
        let outcomes = [
            Outcome::Changed { from: None, to: Some(3), count: 3 },
            Outcome::Changed { from: Some(1), to: Some(3), count: 2 },
            Outcome::Current { version: Some(3) },
            Outcome::Failed { version: Some(1), at: Some(2), reason: "boom".into() },
            Outcome::Skipped { reason: "bad name".into() },
        ];
        let t = Tally::of(&outcomes);
        assert_eq!((t.tenants, t.changed, t.migrations, t.current, t.failed, t.skipped), (5, 2, 5, 1, 1, 1));
        assert_eq!(
            t.line("migrated"),
            "5 tenants: 2 migrated (5 migrations), 1 already current, 1 failed, 1 skipped"
        );
        assert_eq!(
            Tally::of(&[]).line("reverted"),
            "0 tenants: 0 reverted (0 migrations), 0 with nothing to revert"
        );
    }

    #[test]
    fn histogram_canaries_and_only() {
        assert_eq!(histogram([Some(2), None, Some(2), Some(3)]), vec![(Some(3), 1), (Some(2), 2), (None, 1)]);
        assert_eq!(split_canaries(vec![1, 2, 3], 2), (vec![1, 2], vec![3]));
        assert_eq!(split_canaries(vec![1], 5), (vec![1], vec![]));
        let listed: BTreeSet<&str> = ["a", "b"].into_iter().collect();
        assert_eq!(unknown_only(&["a".into(), "z".into()], &listed), vec!["z"]);
    }
}
