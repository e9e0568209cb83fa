//! Per-file directives in a migration's leading comment block.
//!
//! ```sql
//! -- shipgate:no-transaction
//! -- shipgate:lock-timeout=30s
//! -- shipgate:statement-timeout=10min
//! -- shipgate:phase post
//! CREATE INDEX CONCURRENTLY ...
//! ```
//!
//! sqlx's `-- no-transaction` is accepted too, so sqlx projects switch without edits. Unlike
//! sqlx, a BOM or a blank line before the marker does not silently disable it. An unknown
//! `shipgate:` directive is an input error: a typo must not quietly run a migration inside a
//! transaction or without its timeout.

use std::time::Duration;

use crate::duration;
use crate::migrate::phase::Phase;

/// What a file's header asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_transaction: bool,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// `shipgate:phase pre|post`; `None`: the folder's (see `migrate::phase`).
    pub phase: Option<Phase>,
}

impl Directives {
    /// These directives with `header`'s filling what these leave unset: a sectioned file's
    /// header (above `-- migrate:up`) applies to its sections.
    pub fn or(self, header: Directives) -> Directives {
        Directives {
            no_transaction: self.no_transaction || header.no_transaction,
            lock_timeout: self.lock_timeout.or(header.lock_timeout),
            statement_timeout: self.statement_timeout.or(header.statement_timeout),
            phase: self.phase.or(header.phase),
        }
    }
}

/// Read the directives from the comment lines before the first SQL line.
/// Errors carry the 1-based line number.
pub fn parse(sql: &str) -> Result<Directives, String> {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let mut found = Directives::default();
    for (index, line) in sql.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        if comment == "no-transaction" {
            found.no_transaction = true;
            continue;
        }
        let Some(directive) = comment.strip_prefix("shipgate:") else {
            continue;
        };
        // `-- shipgate:allow RULE: reason` is the lint's, above the statement it allows.
        if directive.strip_prefix("allow").is_some_and(|rest| rest.starts_with(char::is_whitespace)) {
            continue;
        }
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            // `shipgate:phase post` reads as the issue and the README write it.
            None => match directive.trim().split_once(char::is_whitespace) {
                Some(("phase", v)) => ("phase", Some(v.trim())),
                _ => (directive.trim(), None),
            },
        };
        match (name, value) {
            ("no-transaction", None) => found.no_transaction = true,
            ("lock-timeout", Some(v)) => {
                found.lock_timeout = Some(duration::parse(v).map_err(|e| format!("line {line_no}: {e}"))?)
            }
            ("statement-timeout", Some(v)) => {
                found.statement_timeout =
                    Some(duration::parse(v).map_err(|e| format!("line {line_no}: {e}"))?)
            }
            ("phase", Some(v)) => {
                found.phase = Some(Phase::parse(v).ok_or_else(|| {
                    format!("line {line_no}: `shipgate:phase {v}`: the phases are `pre` and `post`")
                })?)
            }
            ("lock-timeout" | "statement-timeout" | "phase", None) => {
                return Err(format!(
                    "line {line_no}: `shipgate:{name}` needs a value, e.g. `-- shipgate:{name}=30s`"
                ));
            }
            _ => {
                return Err(format!(
                    "line {line_no}: unknown directive `shipgate:{directive}` \
                     (known: no-transaction, lock-timeout=DURATION, statement-timeout=DURATION, phase pre|post, \
                     allow RULE: REASON)"
                ));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(no_tx: bool, lock_ms: Option<u64>, stmt_ms: Option<u64>) -> Directives {
        Directives {
            no_transaction: no_tx,
            lock_timeout: lock_ms.map(Duration::from_millis),
            statement_timeout: stmt_ms.map(Duration::from_millis),
            phase: None,
        }
    }

    #[test]
    fn reads_the_header_block_only() {
        let cases = [
            ("CREATE TABLE t ();", d(false, None, None)),
            ("-- shipgate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);", d(true, None, None)),
            ("-- no-transaction\nVACUUM;", d(true, None, None)),
            ("\u{feff}\n\n-- no-transaction\nVACUUM;", d(true, None, None)),
            ("-- adds users\n-- shipgate:lock-timeout=30s\nSELECT 1;", d(false, Some(30_000), None)),
            (
                "-- shipgate:statement-timeout=10min\n-- shipgate: lock-timeout = 2s\nSELECT 1;",
                d(false, Some(2_000), Some(600_000)),
            ),
            ("SELECT 1;\n-- shipgate:no-transaction\n", d(false, None, None)),
            ("-- shipgate:statement-timeout=off\nSELECT 1;", d(false, None, Some(0))),
            (
                "-- shipgate:allow ban-drop-column: unused since v41\nALTER TABLE t DROP COLUMN c;",
                d(false, None, None),
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(parse(sql), Ok(expected), "{sql:?}");
        }
        let phases = [
            ("-- shipgate:phase post\nALTER TABLE t DROP COLUMN c;", Some(Phase::Post)),
            ("-- drops c\n-- shipgate:phase=pre\nSELECT 1;", Some(Phase::Pre)),
            ("-- shipgate: phase  post\nSELECT 1;", Some(Phase::Post)),
            ("SELECT 1;\n-- shipgate:phase post\n", None),
        ];
        for (sql, phase) in phases {
            assert_eq!(parse(sql).map(|d| d.phase), Ok(phase), "{sql:?}");
        }
    }

    #[test]
    fn rejects_typos_with_the_line_number() {
        let cases = [
            ("-- shipgate:no-transactoin\nSELECT 1;", "line 1: unknown directive"),
            ("-- ok\n-- shipgate:lock-timeout=5parsecs\n", "line 2:"),
            ("-- shipgate:lock-timeout\n", "needs a value"),
            ("-- shipgate:phase later\nSELECT 1;", "line 1: `shipgate:phase later`: the phases are"),
            ("-- shipgate:phase\nSELECT 1;", "needs a value"),
        ];
        for (sql, needle) in cases {
            let err = parse(sql).unwrap_err();
            assert!(err.contains(needle), "{sql:?}: {err}");
        }
    }
}
