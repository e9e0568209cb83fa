//! The migration lint: squawk's rules (`squawk-linter`, the same project as the parser the
//! runner reads with) over the up scripts, with severities that fit a runner which already
//! sets `lock_timeout` and retries, findings placed on the file's line and column, the lock
//! each statement takes, and the two ways to allow one statement.
//!
//! - Lock hazards on an existing table are errors: an index built without CONCURRENTLY, a
//!   constraint or foreign key added without NOT VALID, a column type change, a NOT NULL
//!   column without a default, a unique constraint instead of a unique index built
//!   concurrently, a volatile default, CONCURRENTLY inside a transaction.
//! - Drops and renames are errors: the application version still running during the deploy
//!   reads what they remove.
//! - Style rules are off; so is squawk's timeout rule (the runner sets both timeouts) and its
//!   transaction-nesting rules (the runner's parser refuses transaction control already).
//! - A table created earlier in the same run (an earlier statement or an earlier pending
//!   migration) is not an existing table: it is empty, and nothing reads it yet.
//! - `-- shipgate:allow RULE[, RULE]: reason` on the lines above a statement allows it; the
//!   reason is required and is shown wherever the finding is. squawk's own
//!   `-- squawk-ignore RULE` comments are honoured as squawk honours them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use squawk_linter::{Linter, Rule, Version};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

use crate::error::{Error, Result};
use crate::migrate::locks::{self, Lock, relation_key};
use crate::migrate::phase::Phase;
use crate::migrate::script::{Migration, MigrationSet};
use crate::migrate::sql::line_col_of_byte;

/// How much a rule's finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Off,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Off => "off",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// shipgate's own rule: a statement the linter's parser could not read was not checked.
pub const UNPARSED: &str = "unparsed";

/// The severity of `rule` when `shipgate.toml` does not set one.
pub fn default_severity(rule: Rule) -> Severity {
    use Rule::*;
    match rule {
        RequireConcurrentIndexCreation
        | RequireConcurrentIndexDeletion
        | RequireConcurrentReindex
        | RequireConcurrentPartitionDetach
        | ConstraintMissingNotValid
        | AddingForeignKeyConstraint
        | ChangingColumnType
        | AddingNotNullableField
        | AddingRequiredField
        | AddingSerialPrimaryKeyField
        | DisallowedUniqueConstraint
        | AddingFieldWithDefault
        | BanConcurrentIndexCreationInTransaction => Severity::Error,
        BanDropColumn | BanDropTable | BanDropDatabase | BanDropView | BanDropType | BanDropSchema
        | BanDropSequence | BanDropDomain | BanDropFunction | RenamingColumn | RenamingTable
        | RenamingObject | BanSetSchema => Severity::Error,
        PreferBigintOverInt
        | PreferBigintOverSmallint
        | PreferIdentity
        | PreferTextField
        | PreferTimestampTz
        | BanCharField
        | PreferRobustStmts
        | PreferRepack => Severity::Off,
        RequireTimeoutSettings
        | RequireLockTimeout
        | RequireStatementTimeout
        | TransactionNesting
        | BanUncommittedTransaction => Severity::Off,
        rule if rule.is_opt_in() => Severity::Off,
        _ => Severity::Warning,
    }
}

/// Rules about what the running application version still uses: errors in a pre migration
/// (the old version runs beside the new schema until the rollout ends), allowed in a post one.
fn breaks_the_old_version(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        BanDropColumn
            | BanDropTable
            | BanDropView
            | BanDropType
            | BanDropSchema
            | BanDropSequence
            | BanDropDomain
            | BanDropFunction
            | RenamingColumn
            | RenamingTable
            | RenamingObject
            | BanSetSchema
    )
}

/// Rules whose finding in a pre migration also says to move the statement to a post one: the
/// drops and renames, a type change and `SET NOT NULL` (the old version may write what the
/// new type or constraint refuses).
fn belongs_in_post(rule: Rule) -> bool {
    breaks_the_old_version(rule) || matches!(rule, Rule::ChangingColumnType | Rule::AddingNotNullableField)
}

/// Rules whose finding is about an existing relation: none when the statement's relation was
/// created earlier in the same run.
fn about_existing_relation(rule: Rule) -> bool {
    !matches!(
        rule,
        Rule::BanConcurrentIndexCreationInTransaction
            | Rule::TransactionNesting
            | Rule::BanUncommittedTransaction
            | Rule::IdentifierTooLong
            | Rule::UnusedIgnore
            | Rule::BanDropDatabase
    )
}

/// `[lint]` of `shipgate.toml`, validated.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    overrides: HashMap<Rule, Severity>,
    unparsed: Option<Severity>,
    pg_version: Option<Version>,
    exclude_set: Option<globset::GlobSet>,
    /// Migrations up to and including this version are not linted (they ran before the
    /// lint was adopted).
    pub baseline: Option<i64>,
}

impl Settings {
    /// Validate the `[lint]` keys; errors name the key.
    pub fn new(
        rules: &BTreeMap<String, Severity>,
        pg_version: Option<&str>,
        exclude: &[String],
        baseline: Option<i64>,
    ) -> std::result::Result<Settings, String> {
        let mut settings = Settings { baseline, ..Settings::default() };
        for (name, severity) in rules {
            if name == UNPARSED {
                settings.unparsed = Some(*severity);
                continue;
            }
            let rule: Rule = name.parse().map_err(|_| unknown_rule(name))?;
            settings.overrides.insert(rule, *severity);
            for alias in rule.expands_to() {
                settings.overrides.insert(*alias, *severity);
            }
        }
        if let Some(version) = pg_version {
            settings.pg_version =
                Some(version.parse().map_err(|_| {
                    format!("pg_version `{version}` is not a version like \"16\" or \"15.4\"")
                })?);
        }
        if !exclude.is_empty() {
            let mut builder = globset::GlobSetBuilder::new();
            for pattern in exclude {
                builder.add(globset::Glob::new(pattern).map_err(|e| format!("exclude `{pattern}`: {e}"))?);
            }
            settings.exclude_set = Some(builder.build().map_err(|e| format!("exclude: {e}"))?);
        }
        Ok(settings)
    }

    /// The PostgreSQL version the rules assume, when `pg_version` does not say: the server's.
    pub fn with_server_version(mut self, version_num: Option<u32>) -> Settings {
        if self.pg_version.is_none()
            && let Some(num) = version_num
        {
            self.pg_version = format!("{}.{}", num / 10000, num % 10000).parse().ok();
        }
        self
    }

    pub fn severity(&self, rule: Rule) -> Severity {
        self.overrides.get(&rule).copied().unwrap_or_else(|| default_severity(rule))
    }

    /// The severity of `rule` in a migration of `phase`: a drop or rename is allowed in a
    /// post migration unless `[lint] rules` sets it.
    pub fn severity_in(&self, rule: Rule, phase: Phase) -> Severity {
        match self.overrides.get(&rule) {
            Some(severity) => *severity,
            None if phase == Phase::Post && breaks_the_old_version(rule) => Severity::Off,
            None => default_severity(rule),
        }
    }

    fn unparsed_severity(&self) -> Severity {
        self.unparsed.unwrap_or(Severity::Error)
    }

    fn enabled(&self) -> Vec<Rule> {
        enum_iterator::all::<Rule>()
            .filter(|r| r.expands_to().is_empty() && self.severity(*r) != Severity::Off)
            .collect()
    }

    /// Whether the lint leaves migration `m` of the set in `dir` out: at or before
    /// `baseline`, or excluded.
    fn skips(&self, dir: &Path, m: &Migration) -> bool {
        self.baseline.is_some_and(|b| m.version <= b) || self.excluded(dir, &m.up.path)
    }

    /// Whether `path` (inside `dir`) is left out by `exclude`.
    fn excluded(&self, dir: &Path, path: &Path) -> bool {
        self.exclude_set.as_ref().is_some_and(|set| set.is_match(path.strip_prefix(dir).unwrap_or(path)))
    }
}

fn unknown_rule(name: &str) -> String {
    let known: Vec<String> = enum_iterator::all::<Rule>().map(|r| r.to_string()).collect();
    let near = known
        .iter()
        .min_by_key(|k| strsim::levenshtein(k, name))
        .filter(|k| strsim::levenshtein(k, name) <= 3);
    match near {
        Some(near) => format!("unknown lint rule `{name}` (did you mean `{near}`?)"),
        None => format!(
            "unknown lint rule `{name}`; the rules are squawk's (https://squawkhq.com/docs/rules) and `{UNPARSED}`"
        ),
    }
}

/// One finding, where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub version: i64,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// The statement's first line.
    pub statement: String,
    /// The locks it takes: `SHARE on orders (scans the table)`.
    pub lock: Option<String>,
    /// The reason given by a `-- shipgate:allow` above the statement: the finding is shown,
    /// and does not fail the run.
    pub allowed: Option<String>,
    /// The relation the statement works on, for its size with a database.
    #[serde(skip)]
    pub relation: Option<String>,
    /// `orders: 41 GB, about 380M rows`, with a database.
    pub size: Option<String>,
}

impl Finding {
    /// Whether it fails the run: an error nobody allowed.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Error && self.allowed.is_none()
    }
}

/// What linting a set found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Migrations whose up script was linted.
    pub linted: usize,
    /// Migrations left out by `baseline` or `exclude`.
    pub skipped: usize,
    /// Every statement of the migrations given, linted or left out, with the lock it takes.
    pub plan: Vec<StatementLock>,
}

impl Report {
    /// Add another set's report to this one.
    pub fn absorb(&mut self, other: Report) {
        self.linted += other.linted;
        self.skipped += other.skipped;
        self.findings.extend(other.findings);
        self.plan.extend(other.plan);
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.blocks()).count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Warning && f.allowed.is_none()).count()
    }

    pub fn allowed(&self) -> usize {
        self.findings.iter().filter(|f| f.allowed.is_some()).count()
    }
}

/// Which migrations run together, so that what one creates is new to the ones after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// All of them, in order: the pending migrations of one schema.
    Together,
    /// Each on its own: without a database nobody knows which are applied already, so a
    /// table is new only to the rest of the file that creates it.
    EachFile,
}

/// Lint every migration of a folder read without a database: each file is its own run.
pub fn lint_set(set: &MigrationSet, settings: &Settings) -> Result<Report> {
    let all: Vec<&Migration> = set.migrations.iter().collect();
    lint(&set.dir, &all, settings, Run::EachFile)
}

/// Lint the up scripts of `migrations` in the order they would run. `dir` is the set's
/// folder, for `exclude`. Errors are for an allow comment that names no rule.
///
/// Each file is parsed once, on every core ([`examine`]); what one migration creates is new
/// to the ones after it, so that part runs in order over what the files gave. The report
/// carries the lock plan of every migration given, linted or not, so nothing parses twice.
pub fn lint(dir: &Path, migrations: &[&Migration], settings: &Settings, run: Run) -> Result<Report> {
    let rules = Rules { enabled: settings.enabled(), pg_version: settings.pg_version.unwrap_or_default() };
    let examined = crate::parallel::map(migrations.to_vec(), |m| {
        let lints = !settings.skips(dir, m);
        (m, lints, examine(&m.up, lints.then_some(&rules)))
    });
    let mut report = Report::default();
    // Relations created so far in this run, with the migration and statement that made them.
    let mut created: HashMap<String, (usize, usize)> = HashMap::new();
    for (mi, (m, lints, file)) in examined.into_iter().enumerate() {
        report.plan.extend(file.plan(&m.up, m.version));
        if !lints {
            report.skipped += 1;
            continue;
        }
        report.linted += 1;
        if run == Run::EachFile {
            created.clear();
        }
        let allows = file.allows.as_ref().map_err(Error::clone)?;
        for (si, stmt) in file.stmts.iter().enumerate() {
            let renamed: Vec<&String> = stmt
                .renames
                .iter()
                .filter(|(old, _)| created.contains_key(&relation_key(old)))
                .map(|(_, new)| new)
                .collect();
            for name in stmt.creates.iter().chain(renamed) {
                created.entry(relation_key(name)).or_insert((mi, si));
            }
        }
        let shown = m.up.path.display().to_string();
        if let Some(error) = &file.unparsed {
            let mut finding =
                file.finding(&shown, m.version, &error.at, UNPARSED, settings.unparsed_severity());
            finding.message =
                format!("the linter cannot read this statement ({}); it was not checked", error.message);
            finding.help = Some(format!(
                "check it by hand; if it is safe, write `-- shipgate:allow {UNPARSED}: <why>` above it"
            ));
            report.findings.push(with_allow(finding, error.at.statement, allows));
        }
        for v in &file.violations {
            if about_existing_relation(v.rule)
                && let Some(si) = v.at.statement
            {
                let relations = &file.stmts[si].subjects;
                let new_in_run = !relations.is_empty()
                    && relations
                        .iter()
                        .all(|r| created.get(&relation_key(r)).is_some_and(|&at| at < (mi, si)));
                if new_in_run {
                    continue;
                }
            }
            let severity = settings.severity_in(v.rule, m.phase());
            if severity == Severity::Off {
                continue;
            }
            let mut finding = file.finding(&shown, m.version, &v.at, &v.rule.to_string(), severity);
            finding.message = v.message.clone();
            finding.help = v.help.clone();
            if m.phase() == Phase::Pre && belongs_in_post(v.rule) {
                finding.message.push_str(
                    " In a pre migration the running application version still uses it; move it to a post migration.",
                );
                let post = "put it in its own migration headed `-- shipgate:phase post`: that runs after every \
                            service rolled out";
                finding.help = Some(match finding.help.take() {
                    Some(help) => format!("{help}; or {post}"),
                    None => post.to_string(),
                });
            }
            report.findings.push(with_allow(finding, v.at.statement, allows));
        }
    }
    Ok(report)
}

/// An allow comment above statement `si` that names the finding's rule applies to it; one
/// without a reason does not, and the finding says so.
fn with_allow(mut finding: Finding, si: Option<usize>, allows: &[Allow]) -> Finding {
    let Some(allow) =
        si.and_then(|si| allows.iter().find(|a| a.statement == si && a.rules.contains(&finding.rule)))
    else {
        return finding;
    };
    match &allow.reason {
        Some(reason) => finding.allowed = Some(reason.clone()),
        None => {
            finding.message.push_str(&format!(
                " (the `shipgate:allow {}` on line {} has no reason, so it does not apply)",
                finding.rule, allow.line
            ));
            finding.help = Some(format!(
                "write the reason after a colon: `-- shipgate:allow {}: <why it is safe>`",
                finding.rule
            ));
        }
    }
    finding
}

/// A `-- shipgate:allow RULE[, RULE]: reason` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allow {
    /// The statement it stands above.
    statement: usize,
    rules: Vec<String>,
    reason: Option<String>,
    line: usize,
}

/// The rules a file is linted with.
struct Rules {
    enabled: Vec<Rule>,
    pg_version: Version,
}

/// A place in a file: line and column of the whole file, and the statement it falls in.
#[derive(Debug, Clone)]
struct At {
    line: usize,
    column: usize,
    statement: Option<usize>,
}

/// What a statement is to the lint and the lock plan.
#[derive(Debug)]
struct Stmt {
    line: usize,
    /// The first line of its text.
    text: String,
    locks: Vec<Lock>,
    /// The relations it changes ([`subjects`]).
    subjects: Vec<String>,
    /// What it creates ([`created_by`]).
    creates: Vec<String>,
    /// `(old, new)` for each rename: the new name is new to the run when the old one was.
    renames: Vec<(String, String)>,
}

#[derive(Debug)]
struct Violation {
    rule: Rule,
    at: At,
    message: String,
    help: Option<String>,
}

#[derive(Debug)]
struct Unparsed {
    at: At,
    message: String,
}

/// One up script, parsed once and read into owned facts, so that files are read on every
/// core and the syntax tree (which stays on its thread) is gone before the run-wide pass.
#[derive(Debug)]
struct Examined {
    stmts: Vec<Stmt>,
    /// The first thing the parser could not read.
    unparsed: Option<Unparsed>,
    /// squawk's findings, when the file is linted.
    violations: Vec<Violation>,
    /// The allow comments, each tied to the statement below it; an error for one that names
    /// an unknown rule.
    allows: Result<Vec<Allow>>,
}

/// Parse the part of `script` that runs and read what the lint and the lock plan need; with
/// `rules`, lint it too.
fn examine(script: &crate::migrate::script::Script, rules: Option<&Rules>) -> Examined {
    let sql = script.sql.as_str();
    let part = script.part.clone();
    let text = &sql[part.clone()];
    let parse = SourceFile::parse(text);
    let tree = parse.tree();
    let nodes: Vec<ast::Stmt> = tree.stmts().collect();
    let starts: Vec<usize> = nodes.iter().map(|s| usize::from(s.syntax().text_range().start())).collect();
    // The statement at byte `at` of the part: the last one that starts at or before it.
    let statement_at =
        |at: usize| starts.iter().rposition(|&s| s <= at).or_else(|| (!starts.is_empty()).then_some(0));
    let at = |byte: usize| {
        let (line, column) = line_col_of_byte(sql, part.start + byte);
        At { line, column, statement: statement_at(byte) }
    };
    let stmts = nodes
        .iter()
        .zip(&starts)
        .map(|(node, &start)| Stmt {
            line: line_col_of_byte(sql, part.start + start).0,
            text: first_line(&node.syntax().text().to_string()),
            locks: locks::locks(node),
            subjects: subjects(node),
            creates: created_by(node),
            renames: renames(node),
        })
        .collect();
    let unparsed = parse.errors().into_iter().next().map(|error| Unparsed {
        at: at(usize::from(error.range().start())),
        message: error.message().to_string(),
    });
    let (violations, allows) = match rules {
        Some(rules) => {
            let mut linter = Linter::from(rules.enabled.iter().copied());
            linter.settings.pg_version = rules.pg_version;
            linter.settings.assume_in_transaction = !script.directives.no_transaction;
            let violations = linter
                .lint(&parse, text)
                .into_iter()
                .map(|v| Violation {
                    rule: v.code,
                    at: at(usize::from(v.text_range.start())),
                    message: v.message,
                    help: v.help,
                })
                .collect();
            (violations, allows(sql, &part, &starts, &nodes, &script.path))
        }
        None => (Vec::new(), Ok(Vec::new())),
    };
    Examined { stmts, unparsed, violations, allows }
}

impl Examined {
    fn finding(&self, file: &str, version: i64, at: &At, rule: &str, severity: Severity) -> Finding {
        let stmt = at.statement.map(|si| &self.stmts[si]);
        Finding {
            file: file.to_string(),
            line: at.line,
            column: at.column,
            version,
            rule: rule.to_string(),
            severity,
            message: String::new(),
            help: None,
            statement: stmt.map(|s| s.text.clone()).unwrap_or_default(),
            lock: stmt.and_then(|s| describe_locks(&s.locks)),
            allowed: None,
            relation: stmt.and_then(|s| s.subjects.first().cloned()),
            size: None,
        }
    }

    /// Its statements with the locks they take: its part of the lock plan.
    fn plan(&self, script: &crate::migrate::script::Script, version: i64) -> Vec<StatementLock> {
        let file = script.path.display().to_string();
        self.stmts
            .iter()
            .map(|s| StatementLock {
                file: file.clone(),
                line: s.line,
                version,
                statement: s.text.clone(),
                lock: describe_locks(&s.locks),
                locks: s.locks.clone(),
            })
            .collect()
    }
}

/// The relations `stmt` changes: for ALTER TABLE the table altered (not the one a foreign key
/// references), else every relation it locks.
fn subjects(stmt: &ast::Stmt) -> Vec<String> {
    match stmt {
        ast::Stmt::AlterTable(alter) => {
            return alter
                .table_relation_name()
                .map(|t| locks::relation_name(t.syntax()))
                .into_iter()
                .collect();
        }
        ast::Stmt::AlterType(alter) => {
            return alter.type_name_ref().map(|t| locks::relation_name(t.syntax())).into_iter().collect();
        }
        ast::Stmt::DropType(drop) => {
            return drop.type_name_refs().map(|t| locks::relation_name(t.syntax())).collect();
        }
        _ => {}
    }
    let mut names: Vec<String> = locks::locks(stmt).into_iter().map(|l| l.relation).collect();
    if let ast::Stmt::CreateIndex(create) = stmt
        && names.is_empty()
        && let Some(table) = create.table_relation_name()
    {
        names.push(locks::relation_name(table.syntax()));
    }
    names
}

/// The allow comments of a file's part (`sql[part]`, statements starting at `starts`), each
/// tied to the statement below it. An allow that names an unknown rule is an input error: a
/// typo must not allow nothing silently.
fn allows(
    sql: &str,
    part: &std::ops::Range<usize>,
    starts: &[usize],
    stmts: &[ast::Stmt],
    path: &Path,
) -> Result<Vec<Allow>> {
    let text = &sql[part.clone()];
    let mut found = Vec::new();
    let mut gap_start = 0;
    for (si, (stmt, &start)) in stmts.iter().zip(starts).enumerate() {
        let mut offset = gap_start;
        for line in text[gap_start..start].split_inclusive('\n') {
            let at = offset;
            offset += line.len();
            let Some(comment) = line.trim().strip_prefix("--") else { continue };
            let Some(rest) = comment.trim().strip_prefix("shipgate:allow") else { continue };
            let (line_no, _) = line_col_of_byte(sql, part.start + at);
            let (names, reason) = match rest.split_once(':') {
                Some((names, reason)) => (names, Some(reason.trim().to_string()).filter(|r| !r.is_empty())),
                None => (rest, None),
            };
            let rules: Vec<String> =
                names.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
            if rules.is_empty() {
                return Err(Error::input(format!(
                    "{}:{line_no}: `shipgate:allow` names no rule",
                    path.display()
                ))
                .hint("write `-- shipgate:allow RULE: why it is safe` above the statement"));
            }
            for rule in &rules {
                if rule != UNPARSED && rule.parse::<Rule>().is_err() {
                    return Err(Error::input(format!(
                        "{}:{line_no}: {}",
                        path.display(),
                        unknown_rule(rule)
                    )));
                }
            }
            found.push(Allow { statement: si, rules, reason, line: line_no });
        }
        gap_start = usize::from(stmt.syntax().text_range().end());
    }
    Ok(found)
}

/// `SHARE on orders (scans the table)`, several joined with `; `.
pub fn describe_locks(taken: &[Lock]) -> Option<String> {
    if taken.is_empty() {
        return None;
    }
    let parts: Vec<String> = taken
        .iter()
        .map(|l| match l.work {
            locks::Work::Catalog => format!("{} on {}", l.mode.name(), l.relation),
            work => format!("{} on {} ({})", l.mode.name(), l.relation, work.name()),
        })
        .collect();
    Some(parts.join("; "))
}

/// What a statement creates that later statements may work on while it is still new: tables,
/// views, indexes and types.
fn created_by(stmt: &ast::Stmt) -> Vec<String> {
    let name = |node: Option<&squawk_syntax::SyntaxNode>| node.map(locks::relation_name);
    match stmt {
        ast::Stmt::CreateType(t) => name(t.type_name().as_ref().map(|n| n.syntax())).into_iter().collect(),
        ast::Stmt::CreateTable(t) => name(t.table_name().as_ref().map(|n| n.syntax())).into_iter().collect(),
        ast::Stmt::CreateTableAs(t) => {
            name(t.table_name().as_ref().map(|n| n.syntax())).into_iter().collect()
        }
        ast::Stmt::CreateMaterializedView(v) => {
            name(v.view().as_ref().map(|n| n.syntax())).into_iter().collect()
        }
        ast::Stmt::CreateView(v) => name(v.view().as_ref().map(|n| n.syntax())).into_iter().collect(),
        ast::Stmt::CreateIndex(i) => name(i.index().as_ref().map(|n| n.syntax())).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The renames of a type or table in `stmt`, `(old, new)`: the new name of something new to
/// the run is new too (Prisma's enum change renames a type it created).
fn renames(stmt: &ast::Stmt) -> Vec<(String, String)> {
    let renamed_to = |action: &squawk_syntax::SyntaxNode| {
        let text = action.text().to_string();
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [rename, to, new] if rename.eq_ignore_ascii_case("rename") && to.eq_ignore_ascii_case("to") => {
                Some(new.trim_end_matches(';').to_string())
            }
            _ => None,
        }
    };
    match stmt {
        ast::Stmt::AlterType(t) => {
            let old = t.type_name_ref().map(|n| locks::relation_name(n.syntax()));
            match (old, t.action()) {
                (Some(old), Some(action)) => {
                    renamed_to(action.syntax()).map(|new| (old, new)).into_iter().collect()
                }
                _ => Vec::new(),
            }
        }
        ast::Stmt::AlterTable(t) => match t.table_relation_name().map(|n| locks::relation_name(n.syntax())) {
            Some(old) => t
                .actions()
                .filter_map(|a| match a {
                    ast::AlterTableAction::TableRenameTo(r) => {
                        r.table_name().map(|n| (old.clone(), locks::relation_name(n.syntax())))
                    }
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// One statement's lock, for `--explain` and the lock plan of `migrate up --dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLock {
    pub file: String,
    pub line: usize,
    pub version: i64,
    pub statement: String,
    /// `SHARE on orders (scans the table)`; none for a statement that locks nothing in use.
    pub lock: Option<String>,
    #[serde(skip)]
    pub locks: Vec<Lock>,
}

/// Every statement of the up scripts of `migrations`, with the lock it takes.
pub fn lock_plan(migrations: &[&Migration]) -> Vec<StatementLock> {
    crate::parallel::map(migrations.to_vec(), |m| script_locks(&m.up, m.version))
        .into_iter()
        .flatten()
        .collect()
}

/// Put each size on the finding of its relation, in order (`sizes` holds one entry per
/// finding that has a relation): `orders: 41.0 GB, about 380M rows`, and for a fleet the
/// tenant with the largest copy.
pub fn attach_sizes(
    findings: &mut [Finding],
    sizes: impl IntoIterator<Item = Option<(i64, f32, Option<String>)>>,
) {
    let mut sizes = sizes.into_iter();
    for f in findings.iter_mut().filter(|f| f.relation.is_some()) {
        if let Some(Some((bytes, rows, tenant))) = sizes.next() {
            let relation = f.relation.as_deref().unwrap_or_default();
            let at = tenant.map_or(String::new(), |t| format!(" in tenant `{t}`, the largest"));
            f.size = Some(format!("{relation}: {}{at}", describe_size(bytes, rows)));
        }
    }
}

/// The statements of a set that block writes (SHARE or stronger), in the migrations the lint
/// reads (after `baseline`, not excluded): the part of the lock plan a deploy's dry run shows.
pub fn blocking_plan(set: &MigrationSet, settings: &Settings) -> Vec<StatementLock> {
    let linted: Vec<&Migration> = set.migrations.iter().filter(|m| !settings.skips(&set.dir, m)).collect();
    lock_plan(&linted).into_iter().filter(|s| s.locks.iter().any(|l| l.mode >= locks::Mode::Share)).collect()
}

/// Every statement of one script (of migration `version`), with the lock it takes.
pub fn script_locks(script: &crate::migrate::script::Script, version: i64) -> Vec<StatementLock> {
    examine(script, None).plan(script, version)
}

/// A statement's first line, at most 120 characters.
fn first_line(text: &str) -> String {
    let first = text.trim().lines().next().unwrap_or_default().trim().to_string();
    if first.chars().count() > 120 {
        format!("{}…", first.chars().take(119).collect::<String>())
    } else {
        first
    }
}

/// The finding as a GitHub Actions annotation on its line: `::error` for an error, `::warning`,
/// `::notice` for one a comment allowed.
pub fn annotation(f: &Finding) -> String {
    let command = match (f.allowed.is_some(), f.severity) {
        (true, _) => "notice",
        (false, Severity::Error) => "error",
        (false, _) => "warning",
    };
    let mut message = f.message.clone();
    if let Some(lock) = &f.lock {
        message.push_str(&format!("\nLock: {lock}"));
    }
    if let Some(size) = &f.size {
        message.push_str(&format!(" ({size})"));
    }
    match (&f.allowed, &f.help) {
        (Some(reason), _) => message.push_str(&format!("\nAllowed: {reason}")),
        (None, Some(help)) => message.push_str(&format!("\nFix: {help}")),
        (None, None) => {}
    }
    crate::output::workflow_command(
        command,
        &[
            ("file", f.file.clone()),
            ("line", f.line.to_string()),
            ("col", f.column.to_string()),
            ("title", f.rule.clone()),
        ],
        &message,
    )
}

/// The one-line verdict of a lint.
pub fn summary_message(report: &Report) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut s = format!(
        "lint: {}, {}, {} allowed in {}",
        plural(report.errors(), "error"),
        plural(report.warnings(), "warning"),
        report.allowed(),
        plural(report.linted, "migration")
    );
    if report.skipped > 0 {
        s.push_str(&format!(" ({} left out by [lint] baseline or exclude)", report.skipped));
    }
    s
}

/// The step summary of a lint: the verdict and one row per finding.
pub fn step_summary(title: &str, report: &Report) -> String {
    let mut s = format!("### {title}\n\n{}\n", summary_message(report));
    if report.findings.is_empty() {
        return s + "\n";
    }
    s.push_str("\n| | Where | Rule | Statement | Lock |\n|---|---|---|---|---|\n");
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    for f in &report.findings {
        let mark = match (f.allowed.is_some(), f.severity) {
            (true, _) => "✅ allowed",
            (false, Severity::Error) => "❌ error",
            (false, _) => "⚠️ warning",
        };
        let mut rule = format!("`{}`", f.rule);
        if let Some(reason) = &f.allowed {
            rule.push_str(&format!(": {}", cell(reason)));
        }
        s.push_str(&format!(
            "| {mark} | `{}:{}` | {rule} | `{}` | {}{} |\n",
            cell(&f.file),
            f.line,
            cell(&f.statement),
            cell(f.lock.as_deref().unwrap_or("")),
            f.size.as_deref().map(|z| format!(" ({})", cell(z))).unwrap_or_default()
        ));
    }
    s + "\n"
}

/// The hint every lint refusal ends with; `also` adds the way out that fits the command.
const FIX: &str = "make each statement safe (the findings above say how), or allow one that is safe with \
                   `-- shipgate:allow RULE: <why>` on the line above it";

impl Report {
    /// `1 error finding (require-concurrent-index-creation)`: what blocks, for a message.
    pub fn blocking_summary(&self) -> String {
        let n = self.errors();
        let blocking: Vec<Finding> = self.findings.iter().filter(|f| f.blocks()).cloned().collect();
        format!("{n} error finding{} ({})", if n == 1 { "" } else { "s" }, rules_of(&blocking).join(", "))
    }

    /// `Err` when an error finding blocks: `lead` and the summary, then `after`, and the fix
    /// with `also` (the way out that fits the command).
    pub fn refusal(&self, lead: &str, after: &str, also: &str) -> Result<()> {
        if self.errors() == 0 {
            return Ok(());
        }
        Err(Error::failed(format!("{lead}: {}{after}", self.blocking_summary())).hint(format!("{FIX}{also}")))
    }
}

/// Refuse a run with error findings: nothing was applied.
pub fn gate(report: &Report, what: &str) -> Result<()> {
    report.refusal(
        "refused by the migration lint",
        &format!(" in {what}; nothing was applied"),
        ", or in an emergency run with --no-lint (SHIPGATE_LINT=off)",
    )
}

/// `41.2 GB, about 380M rows`: what a finding's table holds. `rows` is the planner's estimate
/// (`pg_class.reltuples`), -1 for a table never analyzed.
pub fn describe_size(bytes: i64, rows: f32) -> String {
    let size = match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} kB", (b + 1023) / 1024),
    };
    let rows = match rows {
        r if r < 0.0 => "rows not counted yet (never analyzed)".to_string(),
        r if r >= 1e9 => format!("about {:.1}B rows", r / 1e9),
        r if r >= 1e6 => format!("about {:.0}M rows", r / 1e6),
        r if r >= 1e4 => format!("about {:.0}k rows", r / 1e3),
        r => format!("about {r:.0} rows"),
    };
    format!("{size}, {rows}")
}

/// Every rule name with its default severity, for the reference and `--help`.
pub fn rule_defaults() -> Vec<(String, Severity)> {
    let mut rules: Vec<(String, Severity)> = enum_iterator::all::<Rule>()
        .filter(|r| r.expands_to().is_empty())
        .map(|r| (r.to_string(), default_severity(r)))
        .collect();
    rules.push((UNPARSED.to_string(), Severity::Error));
    rules
}

/// The names of the rules findings used, deduplicated: for a summary line.
pub fn rules_of(findings: &[Finding]) -> Vec<String> {
    let mut seen = HashSet::new();
    findings.iter().filter(|f| seen.insert(f.rule.clone())).map(|f| f.rule.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::script::{Migration, Script};
    use std::path::PathBuf;

    fn migration(version: i64, sql: &str) -> Migration {
        let up = Script::new(PathBuf::from(format!("m/{version}_x.sql")), sql.as_bytes().to_vec())
            .expect("script");
        Migration { version, description: "x".into(), up, down: None, drizzle: None }
    }

    fn run(files: &[&str], settings: &Settings) -> Result<Report> {
        let ms: Vec<Migration> =
            files.iter().enumerate().map(|(i, sql)| migration(i as i64 + 1, sql)).collect();
        let refs: Vec<&Migration> = ms.iter().collect();
        lint(Path::new("m"), &refs, settings, Run::Together)
    }

    /// The rules that block, and those that only warn, for one file linted on its own.
    fn verdict(sql: &str) -> (Vec<String>, Vec<String>) {
        let report = run(&[sql], &Settings::default()).expect("lint");
        let of = |pred: &dyn Fn(&Finding) -> bool| {
            let mut v: Vec<String> =
                report.findings.iter().filter(|f| pred(f)).map(|f| f.rule.clone()).collect();
            v.sort();
            v.dedup();
            v
        };
        (of(&|f| f.blocks()), of(&|f| f.severity == Severity::Warning && f.allowed.is_none()))
    }

    #[test]
    fn statements_get_the_findings_a_deploy_gate_needs() {
        // (statement, blocking rules, warnings): each hazard next to its safe form.
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("CREATE INDEX i ON orders (x);", &["require-concurrent-index-creation"], &[]),
            (
                "SELECT 1;\nCREATE INDEX CONCURRENTLY i ON orders (x);",
                &["ban-concurrent-index-creation-in-transaction"],
                &[],
            ),
            ("-- no-transaction\nCREATE INDEX CONCURRENTLY i ON orders (x);", &[], &[]),
            ("CREATE UNIQUE INDEX i ON orders (email);", &["require-concurrent-index-creation"], &[]),
            ("DROP INDEX i;", &["require-concurrent-index-deletion"], &[]),
            ("-- no-transaction\nDROP INDEX CONCURRENTLY i;", &[], &[]),
            ("ALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0);", &["constraint-missing-not-valid"], &[]),
            ("ALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0) NOT VALID;", &[], &[]),
            ("ALTER TABLE orders VALIDATE CONSTRAINT c;", &[], &[]),
            (
                "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);",
                &["adding-foreign-key-constraint", "constraint-missing-not-valid"],
                &[],
            ),
            (
                "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;",
                &[],
                &[],
            ),
            ("ALTER TABLE orders ALTER COLUMN n TYPE bigint;", &["changing-column-type"], &[]),
            ("ALTER TABLE orders ADD COLUMN n int NOT NULL;", &["adding-required-field"], &[]),
            ("ALTER TABLE orders ADD COLUMN n int NOT NULL DEFAULT 0;", &[], &[]),
            ("ALTER TABLE orders ADD COLUMN n integer;", &[], &[]),
            (
                "ALTER TABLE orders ADD CONSTRAINT u UNIQUE (email);",
                &["constraint-missing-not-valid", "disallowed-unique-constraint"],
                &[],
            ),
            ("ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX orders_email;", &[], &[]),
            (
                "ALTER TABLE orders ADD COLUMN u uuid DEFAULT gen_random_uuid();",
                &["adding-field-with-default"],
                &[],
            ),
            ("ALTER TABLE orders ADD COLUMN at timestamptz DEFAULT now();", &[], &[]),
            ("ALTER TABLE orders ALTER COLUMN n SET NOT NULL;", &["adding-not-nullable-field"], &[]),
            // Validating in the transaction that added it holds the ADD's ACCESS EXCLUSIVE
            // through the scan; in a later migration it takes SHARE UPDATE EXCLUSIVE.
            (
                "ALTER TABLE orders ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT n_nn;",
                &["constraint-missing-not-valid"],
                &[],
            ),
            (
                "ALTER TABLE orders VALIDATE CONSTRAINT n_nn;\nALTER TABLE orders ALTER COLUMN n SET NOT NULL;",
                &[],
                &[],
            ),
            (
                "ALTER TABLE orders ADD COLUMN id2 bigserial PRIMARY KEY;",
                &["adding-serial-primary-key-field"],
                &[],
            ),
            ("ALTER TABLE orders DROP COLUMN note;", &["ban-drop-column"], &[]),
            ("DROP TABLE orders;", &["ban-drop-table"], &[]),
            ("DROP VIEW v;", &["ban-drop-view"], &[]),
            ("DROP FUNCTION f();", &["ban-drop-function"], &[]),
            ("DROP TYPE e;", &["ban-drop-type"], &[]),
            ("ALTER TABLE orders RENAME COLUMN a TO b;", &["renaming-column"], &[]),
            ("ALTER TABLE orders RENAME TO purchases;", &["renaming-table"], &[]),
            ("ALTER TABLE orders DROP CONSTRAINT c;", &[], &["ban-drop-constraint"]),
            ("TRUNCATE orders CASCADE;", &[], &["ban-truncate-cascade"]),
            ("ALTER TYPE e ADD VALUE 'x';", &[], &["require-enum-value-ordering"]),
            // Style rules are off, and so is the timeout rule: the runner sets both timeouts.
            ("CREATE TABLE x (id int PRIMARY KEY, n varchar(10), t timestamp);", &[], &[]),
            ("ALTER TABLE orders ADD COLUMN c char(3);", &[], &[]),
            // New in this file: not an existing table.
            ("CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);", &[], &[]),
            ("CREATE TABLE t (id int);\nALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);", &[], &[]),
            ("CREATE TABLE t (id int);\nALTER TABLE t ALTER COLUMN id TYPE bigint;", &[], &[]),
            ("CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN n int NOT NULL;", &[], &[]),
            ("CREATE TABLE t (id int REFERENCES orders (id));", &[], &[]),
            ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;", &[], &[]),
            ("INSERT INTO orders (n) VALUES (1);", &[], &[]),
            // Honoured as squawk honours it.
            ("-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX i ON orders (x);", &[], &[]),
            ("SELEC 1;", &["unparsed"], &[]),
        ];
        assert!(cases.len() >= 40);
        for (sql, blocking, warnings) in cases {
            let (b, w) = verdict(sql);
            assert_eq!(b, blocking.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "blocking: {sql}");
            assert_eq!(w, warnings.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "warnings: {sql}");
        }
    }

    #[test]
    fn a_table_made_earlier_in_the_run_is_not_existing() {
        let made = "CREATE TABLE orders (id int, n int);";
        let index = "CREATE INDEX orders_n ON orders (n);";
        // The same run: the second migration works on a table nobody uses yet.
        assert_eq!(run(&[made, index], &Settings::default()).unwrap().errors(), 0);
        // A later run: the table exists (and may be large).
        assert_eq!(run(&[index], &Settings::default()).unwrap().errors(), 1);
        // Made after the statement that uses it: still existing for that statement.
        assert_eq!(run(&[index, made], &Settings::default()).unwrap().errors(), 1);
        // Without a database, which files run together is unknown: each is its own run.
        let (a, b) = (migration(1, made), migration(2, index));
        let each = lint(Path::new("m"), &[&a, &b], &Settings::default(), Run::EachFile).unwrap();
        assert_eq!(each.errors(), 1);
    }

    #[test]
    fn a_type_made_earlier_in_the_run_may_be_renamed_and_dropped() {
        // Prisma's enum change: a new type replaces one the same run created.
        let made = "CREATE TYPE \"Status\" AS ENUM ('A');\nCREATE TABLE \"User\" (status \"Status\");";
        let change = "CREATE TYPE \"Status_new\" AS ENUM ('A', 'B');\nALTER TYPE \"Status\" RENAME TO \"Status_old\";\nALTER TYPE \"Status_new\" RENAME TO \"Status\";\nDROP TYPE \"Status_old\";";
        assert_eq!(run(&[made, change], &Settings::default()).unwrap().errors(), 0);
        // On a database that has the type already, renaming and dropping it are findings.
        let later = run(&[change], &Settings::default()).unwrap();
        let rules: Vec<&str> =
            later.findings.iter().filter(|f| f.blocks()).map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["renaming-object", "ban-drop-type"]);
    }

    #[test]
    fn findings_carry_place_lock_and_statement() {
        let report =
            run(&["-- adds an index\n\nCREATE INDEX orders_n\n  ON orders (n);"], &Settings::default())
                .unwrap();
        let f = &report.findings[0];
        assert_eq!((f.file.as_str(), f.line, f.column, f.version), ("m/1_x.sql", 3, 1, 1));
        assert_eq!(f.statement, "CREATE INDEX orders_n");
        assert_eq!(f.lock.as_deref(), Some("SHARE on orders (scans the table)"));
        assert_eq!(f.relation.as_deref(), Some("orders"));
        assert!(f.help.as_deref().unwrap_or_default().contains("concurrently"), "{:?}", f.help);
    }

    #[test]
    fn an_allow_with_a_reason_allows_one_statement() {
        let sql = "-- shipgate:allow require-concurrent-index-creation: orders has 12 rows\nCREATE INDEX a ON orders (n);\nCREATE INDEX b ON orders (m);";
        let report = run(&[sql], &Settings::default()).unwrap();
        assert_eq!(report.findings.len(), 2);
        assert_eq!(report.findings[0].allowed.as_deref(), Some("orders has 12 rows"));
        assert!(report.findings[1].blocks(), "the allow is for the statement below it only");
        assert_eq!((report.errors(), report.allowed()), (1, 1));
        // Several rules in one comment.
        let sql = "-- shipgate:allow adding-foreign-key-constraint, constraint-missing-not-valid: users is tiny\nALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);";
        assert_eq!(run(&[sql], &Settings::default()).unwrap().errors(), 0);
    }

    #[test]
    fn an_allow_without_a_reason_does_not_apply() {
        let sql = "-- shipgate:allow ban-drop-column\nALTER TABLE orders DROP COLUMN note;";
        let report = run(&[sql], &Settings::default()).unwrap();
        let f = &report.findings[0];
        assert!(f.blocks());
        assert!(f.message.contains("has no reason"), "{}", f.message);
        assert!(f.help.as_deref().unwrap_or_default().contains("ban-drop-column: <why"), "{:?}", f.help);
    }

    #[test]
    fn an_allow_naming_no_known_rule_is_refused() {
        let sql = "SELECT 1;\n-- shipgate:allow ban-drop-colum: typo\nALTER TABLE orders DROP COLUMN note;";
        let err = run(&[sql], &Settings::default()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("m/1_x.sql:2:"), "{}", err.message());
        assert!(err.message().contains("did you mean `ban-drop-column`"), "{}", err.message());
        let err = run(&["-- shipgate:allow : why\nSELECT 1;"], &Settings::default()).unwrap_err();
        assert!(err.message().contains("names no rule"), "{}", err.message());
    }

    #[test]
    fn settings_change_severities_and_skip_files() {
        let rules = BTreeMap::from([
            ("require-concurrent-index-creation".to_string(), Severity::Warning),
            ("prefer-text-field".to_string(), Severity::Error),
        ]);
        let settings = Settings::new(&rules, Some("14"), &["legacy/**".to_string()], Some(1)).unwrap();
        let report = run(
            &[
                "CREATE INDEX i ON orders (x);",
                "CREATE INDEX i ON orders (x);",
                "CREATE TABLE t (n varchar(5));",
            ],
            &settings,
        )
        .unwrap();
        assert_eq!(report.skipped, 1, "version 1 is at the baseline");
        let rules: Vec<(&str, Severity)> =
            report.findings.iter().map(|f| (f.rule.as_str(), f.severity)).collect();
        assert_eq!(
            rules,
            [
                ("require-concurrent-index-creation", Severity::Warning),
                ("prefer-text-field", Severity::Error)
            ]
        );
        assert!(
            Settings::new(&BTreeMap::from([("no-such-rule".to_string(), Severity::Error)]), None, &[], None)
                .unwrap_err()
                .contains("unknown lint rule `no-such-rule`")
        );
        assert!(
            Settings::new(&BTreeMap::new(), Some("sixteen"), &[], None).unwrap_err().contains("pg_version")
        );
        let excluded = Settings::new(&BTreeMap::new(), None, &["*_x.sql".to_string()], None).unwrap();
        assert_eq!(run(&["DROP TABLE t;"], &excluded).unwrap().skipped, 1);
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        let cases = [
            (8192, 0.0, "8 kB, about 0 rows"),
            (24 << 20, 120_000.0, "24.0 MB, about 120k rows"),
            (44_023_414_784, 380_000_000.0, "41.0 GB, about 380M rows"),
            (16384, -1.0, "16 kB, rows not counted yet (never analyzed)"),
        ];
        for (bytes, rows, text) in cases {
            assert_eq!(describe_size(bytes, rows), text);
        }
    }

    #[test]
    fn drops_and_renames_wait_for_the_post_phase() {
        // (file, blocking rules, whether the finding says to move it to a post migration)
        let cases: &[(&str, &[&str], bool)] = &[
            ("ALTER TABLE orders DROP COLUMN note;", &["ban-drop-column"], true),
            ("-- shipgate:phase post\nALTER TABLE orders DROP COLUMN note;", &[], false),
            ("-- shipgate:phase post\nDROP TABLE legacy;", &[], false),
            ("-- shipgate:phase post\nALTER TABLE orders RENAME COLUMN a TO b;", &[], false),
            ("ALTER TABLE orders RENAME COLUMN a TO b;", &["renaming-column"], true),
            ("ALTER TABLE orders ALTER COLUMN n TYPE bigint;", &["changing-column-type"], true),
            // A rewrite under ACCESS EXCLUSIVE is one after the rollout too.
            (
                "-- shipgate:phase post\nALTER TABLE orders ALTER COLUMN n TYPE bigint;",
                &["changing-column-type"],
                false,
            ),
            ("ALTER TABLE orders ALTER COLUMN n SET NOT NULL;", &["adding-not-nullable-field"], true),
            (
                "-- shipgate:phase post\nCREATE INDEX i ON orders (x);",
                &["require-concurrent-index-creation"],
                false,
            ),
        ];
        for (sql, blocking, moves) in cases {
            let report = run(&[sql], &Settings::default()).unwrap();
            let rules: Vec<&str> =
                report.findings.iter().filter(|f| f.blocks()).map(|f| f.rule.as_str()).collect();
            assert_eq!(&rules, blocking, "{sql}");
            let said = report.findings.iter().any(|f| f.message.contains("move it to a post migration"));
            assert_eq!(said, *moves, "{sql}: {:?}", report.findings);
            if *moves {
                assert!(
                    report.findings[0].help.as_deref().unwrap_or_default().contains("-- shipgate:phase post")
                );
            }
        }
        // `[lint] rules` says what it says in both phases.
        let strict = Settings::new(
            &BTreeMap::from([("ban-drop-column".to_string(), Severity::Error)]),
            None,
            &[],
            None,
        )
        .unwrap();
        let report = run(&["-- shipgate:phase post\nALTER TABLE orders DROP COLUMN note;"], &strict).unwrap();
        assert_eq!(report.errors(), 1);
    }

    #[test]
    fn every_rule_has_a_default() {
        let defaults = rule_defaults();
        assert!(
            defaults.iter().any(|(r, s)| r == "require-concurrent-index-creation" && *s == Severity::Error)
        );
        assert!(defaults.iter().any(|(r, s)| r == "prefer-bigint-over-int" && *s == Severity::Off));
        assert!(defaults.iter().any(|(r, s)| r == "require-lock-timeout" && *s == Severity::Off));
        assert!(!defaults.iter().any(|(r, _)| r == "require-timeout-settings"), "an alias, not a rule");
    }
}
