//! The runner's reading of a migration's SQL, by squawk's PostgreSQL parser (`squawk-syntax`):
//! where each statement starts and ends, and which statements change the transaction the
//! runner wraps a file in, or cannot run inside one.
//!
//! The parser decides boundaries and kinds; nothing here splits text by itself. It is
//! deliberately lenient: syntax it does not know (a newer PostgreSQL's, an extension's) is not
//! refused, because PostgreSQL is the judge of what it accepts. Such a statement still ends at
//! the parser's next `;` boundary and is sent as written. Only input no server could run as a
//! file is refused here: a NUL byte, psql meta-commands (`\connect`, `\i`), and
//! `COPY ... FROM STDIN`, whose data rows are psql's protocol, not SQL.

use std::ops::Range;

use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

/// One statement: its byte range in the file (up to and including its `;`) and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub range: Range<usize>,
    pub effect: Effect,
}

/// What a statement does beyond its own work, as far as the runner cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Plain,
    /// Opens, ends or nests a transaction (`BEGIN`, `COMMIT`, `SAVEPOINT`, ...): inside the
    /// runner's own transaction it would commit or discard part of the file on its own.
    TransactionControl(&'static str),
    /// PostgreSQL refuses it inside a transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
    OutsideTransaction(&'static str),
}

/// A file read into statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub statements: Vec<Statement>,
    /// Where the parser first met syntax it does not know between statements (a byte offset),
    /// if anywhere; errors inside a statement the parser recognised are not searched for, to
    /// keep reading to one pass. Not an error: the server decides.
    pub unrecognised_at: Option<usize>,
    /// Whether the parser ran; when it did not ([`needs_parse`] said so), `statements` is
    /// empty and every statement is plain.
    pub complete: bool,
}

impl Parsed {
    /// The first statement whose effect `want` picks.
    pub fn first(&self, want: fn(Effect) -> bool) -> Option<&Statement> {
        self.statements.iter().find(|s| want(s.effect))
    }
}

/// Input that cannot run as a migration file, at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub at: usize,
    pub message: String,
}

/// The words that start or mark a statement with a transaction effect, or that `parse`
/// refuses (`copy`): lowercase.
const WORDS: [&str; 15] = [
    "abort",
    "begin",
    "commit",
    "concurrently",
    "copy",
    "database",
    "end",
    "prepare",
    "release",
    "rollback",
    "savepoint",
    "start",
    "system",
    "tablespace",
    "vacuum",
];

/// Whether `text` needs the parser to be run safely: it has one of [`WORDS`] outside
/// strings and comments, a character the lexer does not know (a psql backslash), or a NUL
/// byte. Otherwise every statement in it is plain, whatever its boundaries, and a script that
/// runs in a transaction is sent whole. Pure; a lexer pass, several times faster than a parse.
pub fn needs_parse(text: &str) -> bool {
    if !might_need_parse(text.as_bytes()) {
        return false;
    }
    let mut at = 0;
    for token in squawk_lexer::tokenize(text) {
        let len = token.len as usize;
        let word = &text[at..at + len];
        at += len;
        match token.kind {
            squawk_lexer::TokenKind::Ident if WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)) => {
                return true;
            }
            squawk_lexer::TokenKind::Unknown => return true,
            _ => {}
        }
    }
    text.contains('\0')
}

/// Whether the lexer must look: false only for text that cannot hold one of [`WORDS`] (not
/// even as a substring, in any case), nor a character the lexer does not know (a backslash, a
/// control character, anything outside ASCII), nor a NUL. A byte scan, several times faster
/// than the lexer, that half of a typical folder passes.
fn might_need_parse(bytes: &[u8]) -> bool {
    let plain = |b: &u8| matches!(b, b' '..=b'~' | b'\t' | b'\n' | b'\r') && *b != b'\\';
    if !bytes.iter().all(plain) {
        return true;
    }
    // All ASCII by now, so the lowercased copy is text, and `str::contains` is a fast search.
    let lower = String::from_utf8(bytes.to_ascii_lowercase()).unwrap_or_default();
    WORDS.iter().any(|w| lower.contains(w))
}

/// Read a file's text into statements. Pure.
pub fn parse(text: &str) -> Result<Parsed, Refusal> {
    if let Some(at) = text.find('\0') {
        return Err(Refusal {
            at,
            message: "contains a NUL byte, which PostgreSQL cannot receive in SQL; is this a text file?"
                .into(),
        });
    }
    let parse = SourceFile::parse(text);
    let root = parse.syntax_node();
    let mut parsed = Parsed { complete: true, ..Parsed::default() };
    // The statement being gathered. Top-level nodes are statements, each with its `;` when it
    // has one; tokens the parser could not place (ERROR) belong to the statement they sit in,
    // which ends at the next `;`.
    let mut open: Option<Statement> = None;
    for element in root.children_with_tokens() {
        let (start, end) =
            (usize::from(element.text_range().start()), usize::from(element.text_range().end()));
        if matches!(element.kind(), SyntaxKind::WHITESPACE | SyntaxKind::COMMENT) {
            continue;
        }
        let effect = match element.as_node() {
            None => {
                parsed.unrecognised_at.get_or_insert(start);
                Effect::Plain
            }
            Some(node) if node.kind() == SyntaxKind::EMPTY_STMT => Effect::Plain,
            Some(node) => {
                if node.kind() == SyntaxKind::COPY && copies_from_stdin(node) {
                    return Err(Refusal {
                        at: start,
                        message: "`COPY ... FROM STDIN` reads its rows from psql's input stream, which a \
                                  migration does not have; write the rows as INSERT statements, or COPY from \
                                  a file the server can read"
                            .into(),
                    });
                }
                if node.kind() == SyntaxKind::ERROR {
                    parsed.unrecognised_at.get_or_insert(start);
                }
                effect(node)
            }
        };
        let is_empty = element.kind() == SyntaxKind::EMPTY_STMT;
        let statement = match open.take() {
            Some(mut s) => {
                s.range.end = end;
                if s.effect == Effect::Plain {
                    s.effect = effect;
                }
                s
            }
            // A lone `;` is no statement.
            None if is_empty => continue,
            None => Statement { range: start..end, effect },
        };
        if element.as_node().is_some() && text[..end].ends_with(';') {
            parsed.statements.push(statement);
        } else {
            open = Some(statement);
        }
    }
    // After COPY (whose `\\.` ends its data): a backslash starting a line is a psql
    // meta-command wherever the parser put it, unless it is inside a string or a comment. The
    // tree is searched only when the text has such a line at all.
    let backslash_line = text.lines().any(|line| line.trim_start().starts_with('\\'));
    let meta = backslash_line.then(|| {
        root.descendants_with_tokens().find_map(|e| {
            let token = e.into_token()?;
            let at = usize::from(token.text_range().start());
            (token.text().starts_with('\\') && starts_line(text, at)).then_some(at)
        })
    });
    if let Some(at) = meta.flatten() {
        return Err(meta_command(text, at));
    }
    parsed.statements.extend(open);
    Ok(parsed)
}

fn meta_command(text: &str, at: usize) -> Refusal {
    let word: String = text[at + 1..].chars().take_while(|c| !c.is_whitespace()).collect();
    Refusal {
        at,
        message: format!(
            "`\\{word}` is a psql meta-command, not SQL; the runner sends SQL to the server, so write it \
             as SQL (or run this file with psql yourself)"
        ),
    }
}

fn starts_line(text: &str, at: usize) -> bool {
    text[..at].rsplit('\n').next().is_none_or(|before| before.trim().is_empty())
}

fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.descendants_with_tokens().any(|e| e.kind() == kind)
}

fn copies_from_stdin(node: &SyntaxNode) -> bool {
    has_token(node, SyntaxKind::FROM_KW) && has_token(node, SyntaxKind::STDIN_KW)
}

/// What one top-level statement does to the transaction around it.
fn effect(node: &SyntaxNode) -> Effect {
    use Effect::{OutsideTransaction as Outside, Plain, TransactionControl as Control};
    let concurrently = || has_token(node, SyntaxKind::CONCURRENTLY_KW);
    match node.kind() {
        SyntaxKind::BEGIN => Control("BEGIN / START TRANSACTION"),
        SyntaxKind::COMMIT_TRANSACTION if has_token(node, SyntaxKind::PREPARED_KW) => {
            Outside("COMMIT PREPARED")
        }
        SyntaxKind::COMMIT_TRANSACTION => Control("COMMIT / END"),
        SyntaxKind::ROLLBACK_TRANSACTION if has_token(node, SyntaxKind::PREPARED_KW) => {
            Outside("ROLLBACK PREPARED")
        }
        SyntaxKind::ROLLBACK_TRANSACTION => Control("ROLLBACK / ABORT"),
        SyntaxKind::COMMIT_PREPARED => Outside("COMMIT PREPARED"),
        SyntaxKind::ROLLBACK_PREPARED => Outside("ROLLBACK PREPARED"),
        SyntaxKind::ROLLBACK_TO_SAVEPOINT => Control("ROLLBACK TO SAVEPOINT"),
        SyntaxKind::SAVEPOINT_CREATE => Control("SAVEPOINT"),
        SyntaxKind::RELEASE_SAVEPOINT => Control("RELEASE SAVEPOINT"),
        SyntaxKind::PREPARE_TRANSACTION => Control("PREPARE TRANSACTION"),
        SyntaxKind::CREATE_INDEX if concurrently() => Outside("CREATE INDEX CONCURRENTLY"),
        SyntaxKind::DROP_INDEX if concurrently() => Outside("DROP INDEX CONCURRENTLY"),
        SyntaxKind::REINDEX if concurrently() => Outside("REINDEX CONCURRENTLY"),
        SyntaxKind::ALTER_TABLE if concurrently() && has_token(node, SyntaxKind::DETACH_KW) => {
            Outside("DETACH PARTITION ... CONCURRENTLY")
        }
        SyntaxKind::VACUUM => Outside("VACUUM"),
        SyntaxKind::ALTER_SYSTEM => Outside("ALTER SYSTEM"),
        SyntaxKind::CREATE_DATABASE => Outside("CREATE DATABASE"),
        SyntaxKind::DROP_DATABASE => Outside("DROP DATABASE"),
        SyntaxKind::CREATE_TABLESPACE => Outside("CREATE TABLESPACE"),
        SyntaxKind::DROP_TABLESPACE => Outside("DROP TABLESPACE"),
        _ => Plain,
    }
}

/// 1-based line and column of a byte offset (columns count characters).
pub fn line_col_of_byte(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(&str, Effect)> {
        let parsed = parse(sql).unwrap();
        parsed.statements.iter().map(|s| (&sql[s.range.clone()], s.effect)).collect()
    }

    #[test]
    fn statements_end_where_the_parser_says() {
        use Effect::Plain;
        let cases: Vec<(&str, Vec<(&str, Effect)>)> = vec![
            ("", vec![]),
            ("-- only a comment\n", vec![]),
            ("SELECT 1", vec![("SELECT 1", Plain)]),
            ("SELECT 1; SELECT 2;", vec![("SELECT 1;", Plain), ("SELECT 2;", Plain)]),
            (
                "DO $$ BEGIN RAISE NOTICE 'a;b'; COMMIT; END $$;\nSELECT 2;",
                vec![("DO $$ BEGIN RAISE NOTICE 'a;b'; COMMIT; END $$;", Plain), ("SELECT 2;", Plain)],
            ),
            (
                "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;",
                vec![("CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;", Plain)],
            ),
            ("SELECT E'it\\'s; fine';", vec![("SELECT E'it\\'s; fine';", Plain)]),
            ("SELECT 'it''s; fine';", vec![("SELECT 'it''s; fine';", Plain)]),
            (
                "/* outer /* inner; */ still; */ SELECT 1;\n-- x; y\nSELECT 2;",
                vec![("SELECT 1;", Plain), ("SELECT 2;", Plain)],
            ),
            ("SELECT 1;;; SELECT 2", vec![("SELECT 1;", Plain), ("SELECT 2", Plain)]),
            // Syntax the parser does not know still ends at its `;` and goes to the server.
            (
                "FROBNICATE the table;\nSELECT 1;",
                vec![("FROBNICATE the table;", Plain), ("SELECT 1;", Plain)],
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(texts(sql), expected, "{sql:?}");
        }
    }

    #[test]
    fn transaction_effects() {
        use Effect::{OutsideTransaction as Outside, Plain, TransactionControl as Control};
        let cases = [
            ("BEGIN;", Control("BEGIN / START TRANSACTION")),
            ("start transaction isolation level serializable;", Control("BEGIN / START TRANSACTION")),
            ("COMMIT;", Control("COMMIT / END")),
            ("end;", Control("COMMIT / END")),
            ("ROLLBACK;", Control("ROLLBACK / ABORT")),
            ("abort;", Control("ROLLBACK / ABORT")),
            ("SAVEPOINT a;", Control("SAVEPOINT")),
            ("RELEASE SAVEPOINT a;", Control("RELEASE SAVEPOINT")),
            ("ROLLBACK TO a;", Control("ROLLBACK TO SAVEPOINT")),
            ("PREPARE TRANSACTION 'x';", Control("PREPARE TRANSACTION")),
            ("CREATE INDEX CONCURRENTLY i ON t (a);", Outside("CREATE INDEX CONCURRENTLY")),
            (
                "create unique index concurrently if not exists i on t (a);",
                Outside("CREATE INDEX CONCURRENTLY"),
            ),
            ("DROP INDEX CONCURRENTLY i;", Outside("DROP INDEX CONCURRENTLY")),
            ("REINDEX INDEX CONCURRENTLY i;", Outside("REINDEX CONCURRENTLY")),
            ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY;", Outside("DETACH PARTITION ... CONCURRENTLY")),
            ("VACUUM ANALYZE t;", Outside("VACUUM")),
            ("ALTER SYSTEM SET work_mem = '8MB';", Outside("ALTER SYSTEM")),
            ("CREATE DATABASE d;", Outside("CREATE DATABASE")),
            ("CREATE INDEX i ON t (a);", Plain),
            ("ALTER TABLE p DETACH PARTITION c;", Plain),
            ("ALTER TYPE mood ADD VALUE 'meh';", Plain),
            ("SET LOCAL lock_timeout = '1s';", Plain),
            ("SET ROLE app;", Plain),
            ("SET TRANSACTION READ ONLY;", Plain),
            ("DO $$ BEGIN PERFORM 1; END $$;", Plain),
        ];
        for (sql, expected) in cases {
            let got = texts(sql);
            assert_eq!(got.len(), 1, "{sql:?}: {got:?}");
            assert_eq!(got[0].1, expected, "{sql:?}");
        }
    }

    #[test]
    fn refuses_what_no_server_can_run() {
        let cases = [
            ("SELECT 1;\n\\connect other\nSELECT 2;", 10, "`\\connect` is a psql meta-command"),
            ("\\i other.sql\n", 0, "`\\i` is a psql meta-command"),
            ("COPY t (a) FROM stdin;\n1\n\\.\n", 0, "COPY ... FROM STDIN"),
            ("SELECT 1;\0", 9, "NUL byte"),
        ];
        for (sql, at, needle) in cases {
            let refusal = parse(sql).unwrap_err();
            assert_eq!(refusal.at, at, "{sql:?}");
            assert!(refusal.message.contains(needle), "{sql:?}: {}", refusal.message);
        }
        assert!(parse("COPY t TO STDOUT;").is_ok());
        assert!(parse("SELECT '\\connect';").is_ok());
    }

    #[test]
    fn unknown_syntax_is_noted_not_refused() {
        let parsed = parse("SELECT 1;\nFROBNICATE;\n").unwrap();
        assert_eq!(parsed.statements.len(), 2);
        assert_eq!(parsed.unrecognised_at, Some(10));
        assert_eq!(parse("SELECT 1;").unwrap().unrecognised_at, None);
    }

    #[test]
    fn only_files_with_a_word_that_matters_need_the_parser() {
        let cases = [
            ("CREATE TABLE t (a int);", false),
            ("CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;", false),
            ("DO $$ BEGIN COMMIT; END $$;", false),
            ("SELECT 'begin; commit';", false),
            ("-- begin\n/* commit */ SELECT 1;", false),
            ("SELECT \"end\" FROM t;", false),
            ("BEGIN;", true),
            ("select 1; commit;", true),
            ("CREATE INDEX CONCURRENTLY i ON t (a);", true),
            ("SELECT CASE WHEN a THEN 1 END FROM t;", true),
            ("COPY t FROM stdin;", true),
            ("\\connect x", true),
            ("SELECT 1;\0", true),
            ("CREATE TABLE pending_orders (id int);", false),
            ("SELECT 'café';", false),
            ("SELECT\x01 1;", true),
            ("VACUUM t;", true),
            ("vacuum t;", true),
        ];
        for (sql, expected) in cases {
            assert_eq!(needs_parse(sql), expected, "{sql:?}");
        }
    }

    #[test]
    fn the_byte_scan_only_skips_what_the_lexer_would_pass() {
        // Whatever the scan lets through without the lexer, the lexer passes too.
        let cases = [
            "CREATE TABLE t (a int);",
            "ALTER TABLE t ADD COLUMN status text NOT NULL DEFAULT 'draft';",
            "CREATE VIEW v AS SELECT id FROM t ORDER BY id DESC;",
            "CREATE INDEX i ON t (lower(email)) WHERE note IS NOT NULL;",
        ];
        for sql in cases {
            assert!(!might_need_parse(sql.as_bytes()), "{sql}");
            assert!(!needs_parse(sql), "{sql}");
        }
        for sql in ["SELECT 'append';", "SELECT E'a\\'b';", "SELECT 'é';", "BEGIN;"] {
            assert!(might_need_parse(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn byte_offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col_of_byte(text, 0), (1, 1));
        assert_eq!(line_col_of_byte(text, 4), (2, 2));
        assert_eq!(line_col_of_byte(text, 7), (2, 4));
        assert_eq!(line_col_of_byte(text, 8), (3, 1));
    }
}
