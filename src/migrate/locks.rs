//! Which table-level lock a statement takes, on which relation, and whether it rewrites or
//! scans the table while holding it: the lock plan of `migrate up --dry-run` and `migrate
//! lint --explain`, and what the blocker check looks for before a run.
//!
//! The modes and which commands take them are PostgreSQL's documentation, "Explicit Locking",
//! 13.3.1 Table-Level Locks (<https://www.postgresql.org/docs/current/explicit-locking.html>),
//! with ALTER TABLE's subcommands from its Notes (<https://www.postgresql.org/docs/current/sql-altertable.html>):
//! most subcommands take ACCESS EXCLUSIVE; a statement with several takes the strongest of
//! them. Pure: statements in, locks out.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

/// A table-level lock mode, weakest first (the order PostgreSQL numbers them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl Mode {
    /// As the documentation writes it: `ACCESS EXCLUSIVE`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::AccessShare => "ACCESS SHARE",
            Mode::RowShare => "ROW SHARE",
            Mode::RowExclusive => "ROW EXCLUSIVE",
            Mode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Mode::Share => "SHARE",
            Mode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Mode::Exclusive => "EXCLUSIVE",
            Mode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// As `pg_locks.mode` names it: `AccessExclusiveLock`.
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            Mode::AccessShare => "AccessShareLock",
            Mode::RowShare => "RowShareLock",
            Mode::RowExclusive => "RowExclusiveLock",
            Mode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Mode::Share => "ShareLock",
            Mode::ShareRowExclusive => "ShareRowExclusiveLock",
            Mode::Exclusive => "ExclusiveLock",
            Mode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Every mode this one waits for (Table 13.2, "Conflicting Lock Modes").
    pub fn conflicts(self) -> &'static [Mode] {
        use Mode::*;
        match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => {
                &[ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            Share => &[RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareRowExclusive => {
                &[RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            Exclusive => &[
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            AccessExclusive => &[
                AccessShare,
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
        }
    }

    /// What the application cannot do while the lock is held.
    pub fn blocks(self) -> &'static str {
        match self {
            Mode::AccessExclusive => "blocks reads and writes",
            Mode::Exclusive | Mode::ShareRowExclusive | Mode::Share => "blocks writes",
            Mode::ShareUpdateExclusive => "blocks other schema changes and vacuum, not reads or writes",
            Mode::RowExclusive | Mode::RowShare | Mode::AccessShare => "blocks only schema changes",
        }
    }
}

/// What the statement does to the table's rows while it holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    /// Catalog only: the lock is held for as long as it takes to get it.
    Catalog,
    /// Reads every row (a constraint checked, an index built): held for the table's size.
    Scans,
    /// Writes a new copy of the table and its indexes: held for the table's size, and more.
    Rewrites,
}

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Work::Catalog => "catalog only",
            Work::Scans => "scans the table",
            Work::Rewrites => "rewrites the table",
        }
    }
}

/// One lock a statement takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub mode: Mode,
    /// The relation as written (`orders`, `app.orders`).
    pub relation: String,
    pub work: Work,
}

/// The table-level locks `stmt` takes on existing relations, strongest per relation. Empty for
/// a statement that locks nothing anyone else uses (a `CREATE TABLE` without references, a
/// `CREATE FUNCTION`, a `SELECT`).
pub fn locks(stmt: &ast::Stmt) -> Vec<Lock> {
    let mut out = Locks::default();
    match stmt {
        ast::Stmt::AlterTable(alter) => {
            let Some(table) = alter.table_relation_name().map(|t| relation_name(t.syntax())) else {
                return vec![];
            };
            for action in alter.actions() {
                alter_table_action(&action, &table, &mut out);
            }
        }
        ast::Stmt::CreateIndex(create) => {
            if let Some(table) = create.table_relation_name() {
                let mode = if create.concurrently_token().is_some() {
                    Mode::ShareUpdateExclusive
                } else {
                    Mode::Share
                };
                out.add(mode, relation_name(table.syntax()), Work::Scans);
            }
        }
        ast::Stmt::DropIndex(drop) => {
            let mode = if drop.concurrently_token().is_some() {
                Mode::ShareUpdateExclusive
            } else {
                Mode::AccessExclusive
            };
            for index in drop.index_refs() {
                out.add(mode, relation_name(index.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::Reindex(reindex) => {
            let concurrently = has_keyword(reindex.syntax(), SyntaxKind::CONCURRENTLY_KW);
            let mode = if concurrently { Mode::ShareUpdateExclusive } else { Mode::AccessExclusive };
            if let Some(target) = reindex.reindex_target() {
                // `INDEX name`, `TABLE CONCURRENTLY name`: the name is the last word.
                let text = target.syntax().text().to_string();
                if let Some(name) = text.split_whitespace().last() {
                    out.add(mode, name.to_string(), Work::Rewrites);
                }
            }
        }
        ast::Stmt::CreateTrigger(trigger) => {
            if let Some(on) = trigger.on_relation().and_then(|o| o.relation_name_ref()) {
                out.add(Mode::ShareRowExclusive, relation_name(on.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::DropTrigger(trigger) => {
            if let Some(on) = trigger.on_relation().and_then(|o| o.relation_name_ref()) {
                out.add(Mode::AccessExclusive, relation_name(on.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::DropTable(drop) => {
            for table in drop.table_name_refs() {
                out.add(Mode::AccessExclusive, relation_name(table.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::DropView(drop) => {
            for view in drop.view_refs() {
                out.add(Mode::AccessExclusive, relation_name(view.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::DropMaterializedView(drop) => {
            for view in drop.view_refs() {
                out.add(Mode::AccessExclusive, relation_name(view.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::CreateView(view) if view.or_replace().is_some() => {
            if let Some(name) = view.view() {
                out.add(Mode::AccessExclusive, relation_name(name.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::Truncate(truncate) => {
            for table in truncate.table_list().into_iter().flat_map(|l| l.table_relation_names()) {
                out.add(Mode::AccessExclusive, relation_name(table.syntax()), Work::Rewrites);
            }
        }
        ast::Stmt::Lock(lock) => {
            let mode = lock
                .lock_mode_clause()
                .and_then(|c| c.lock_mode())
                .map_or(Some(Mode::AccessExclusive), |m| mode_named(&m.syntax().text().to_string()));
            if let Some(mode) = mode {
                for table in lock.relation_list().into_iter().flat_map(|l| l.relation_names()) {
                    out.add(mode, relation_name(table.syntax()), Work::Catalog);
                }
            }
        }
        ast::Stmt::Vacuum(vacuum) => {
            let full = vacuum.full_token().is_some()
                || vacuum.vacuum_option_list().is_some_and(|list| {
                    list.vacuum_options().any(|o| {
                        let text = o.syntax().text().to_string().to_ascii_lowercase();
                        text == "full"
                            || text.starts_with("full ") && !text.ends_with("false") && !text.ends_with("off")
                    })
                });
            let (mode, work) = if full {
                (Mode::AccessExclusive, Work::Rewrites)
            } else {
                (Mode::ShareUpdateExclusive, Work::Scans)
            };
            for table in vacuum.table_and_columns_list().into_iter().flat_map(|l| l.table_and_columnss()) {
                if let Some(name) = table.table_relation_name() {
                    out.add(mode, relation_name(name.syntax()), work);
                }
            }
        }
        ast::Stmt::Analyze(analyze) => {
            for table in analyze.table_and_columns_list().into_iter().flat_map(|l| l.table_and_columnss()) {
                if let Some(name) = table.table_relation_name() {
                    out.add(Mode::ShareUpdateExclusive, relation_name(name.syntax()), Work::Scans);
                }
            }
        }
        ast::Stmt::Cluster(cluster) => {
            if let Some(table) = cluster.table_name_ref() {
                out.add(Mode::AccessExclusive, relation_name(table.syntax()), Work::Rewrites);
            }
        }
        ast::Stmt::Refresh(refresh) => {
            let mode =
                if refresh.concurrently_token().is_some() { Mode::Exclusive } else { Mode::AccessExclusive };
            if let Some(view) = refresh.view_ref() {
                out.add(mode, relation_name(view.syntax()), Work::Rewrites);
            }
        }
        ast::Stmt::Insert(insert) => {
            if let Some(table) = insert.relation_name_ref() {
                out.add(Mode::RowExclusive, relation_name(table.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::Update(update) => {
            if let Some(table) = update.relation_name() {
                out.add(Mode::RowExclusive, relation_name(table.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::Delete(delete) => {
            if let Some(table) = delete.relation_name() {
                out.add(Mode::RowExclusive, relation_name(table.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::Merge(merge) => {
            if let Some(table) = merge.table_relation_name() {
                out.add(Mode::RowExclusive, relation_name(table.syntax()), Work::Catalog);
            }
        }
        ast::Stmt::CommentOn(comment) => {
            if let Some(object) = comment.comment_object() {
                let text = object.syntax().text().to_string();
                let mut words = text.split_whitespace();
                if let (Some(kind), Some(name)) = (words.next(), words.next())
                    && (kind.eq_ignore_ascii_case("table") || kind.eq_ignore_ascii_case("column"))
                {
                    let name = if kind.eq_ignore_ascii_case("column") {
                        name.rsplit_once('.').map_or(name, |(table, _)| table)
                    } else {
                        name
                    };
                    out.add(Mode::ShareUpdateExclusive, name.to_string(), Work::Catalog);
                }
            }
        }
        ast::Stmt::CreateTable(create) => {
            // A new table locks nothing anyone uses, except the tables its foreign keys
            // reference.
            for referenced in referenced_tables(create.syntax()) {
                out.add(Mode::ShareRowExclusive, referenced, Work::Catalog);
            }
        }
        _ => {}
    }
    out.0
}

/// The lock one ALTER TABLE subcommand takes on `table` (and on the tables it references).
fn alter_table_action(action: &ast::AlterTableAction, table: &str, out: &mut Locks) {
    use ast::AlterTableAction as A;
    let (mode, work) = match action {
        A::AddColumn(add) => (Mode::AccessExclusive, add_column_work(add)),
        A::AddConstraint(add) => match add.constraint() {
            Some(ast::Constraint::ForeignKeyConstraint(fk)) => {
                if let Some(referenced) = fk.table_name_ref() {
                    out.add(Mode::ShareRowExclusive, relation_name(referenced.syntax()), Work::Catalog);
                }
                let constraint = ast::Constraint::ForeignKeyConstraint(fk);
                (Mode::ShareRowExclusive, if constraint.is_not_valid() { Work::Catalog } else { Work::Scans })
            }
            Some(ast::Constraint::UniqueConstraint(c)) if c.using_index().is_some() => {
                (Mode::AccessExclusive, Work::Catalog)
            }
            Some(ast::Constraint::PrimaryKeyConstraint(c)) if c.using_index().is_some() => {
                (Mode::AccessExclusive, Work::Catalog)
            }
            Some(constraint) => {
                (Mode::AccessExclusive, if constraint.is_not_valid() { Work::Catalog } else { Work::Scans })
            }
            None => (Mode::AccessExclusive, Work::Catalog),
        },
        A::AlterColumn(alter) => match alter.option() {
            Some(ast::AlterColumnOption::SetType(_)) => (Mode::AccessExclusive, Work::Rewrites),
            Some(ast::AlterColumnOption::SetExpression(_)) => (Mode::AccessExclusive, Work::Rewrites),
            Some(ast::AlterColumnOption::SetNotNull(_)) => (Mode::AccessExclusive, Work::Scans),
            Some(ast::AlterColumnOption::SetStatistics(_) | ast::AlterColumnOption::SetOptions(_)) => {
                (Mode::ShareUpdateExclusive, Work::Catalog)
            }
            Some(ast::AlterColumnOption::ResetOptions(_)) => (Mode::ShareUpdateExclusive, Work::Catalog),
            _ => (Mode::AccessExclusive, Work::Catalog),
        },
        A::ValidateConstraint(_) => (Mode::ShareUpdateExclusive, Work::Scans),
        A::SetOptions(_) | A::ResetOptions(_) | A::ClusterOn(_) | A::SetWithoutCluster(_) => {
            (Mode::ShareUpdateExclusive, Work::Catalog)
        }
        A::DisableTrigger(_)
        | A::EnableTrigger(_)
        | A::EnableAlwaysTrigger(_)
        | A::EnableReplicaTrigger(_) => (Mode::ShareRowExclusive, Work::Catalog),
        A::AttachPartition(attach) => {
            if let Some(partition) = attach.table_name_ref() {
                out.add(Mode::AccessExclusive, relation_name(partition.syntax()), Work::Scans);
            }
            (Mode::ShareUpdateExclusive, Work::Catalog)
        }
        A::DetachPartition(detach) => {
            let concurrently = has_keyword(detach.syntax(), SyntaxKind::CONCURRENTLY_KW);
            (if concurrently { Mode::ShareUpdateExclusive } else { Mode::AccessExclusive }, Work::Catalog)
        }
        A::SetLogged(_) | A::SetUnlogged(_) | A::SetAccessMethod(_) | A::SetTablespace(_) => {
            (Mode::AccessExclusive, Work::Rewrites)
        }
        _ => (Mode::AccessExclusive, Work::Catalog),
    };
    out.add(mode, table.to_string(), work);
}

/// Adding a column rewrites the table when its value must be computed per row: a volatile
/// default (PostgreSQL 11+ stores a constant default in the catalog), a serial type (its
/// default is `nextval`), an identity or a stored generated column.
fn add_column_work(add: &ast::AddColumn) -> Work {
    let serial = add.ty().is_some_and(|ty| {
        let ty = ty.syntax().text().to_string().to_ascii_lowercase();
        matches!(ty.as_str(), "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2")
    });
    let computed = add.constraints().any(|c| match c {
        ast::Constraint::GeneratedConstraint(_) => true,
        ast::Constraint::DefaultConstraint(d) => d.expr().is_some_and(|e| is_volatile(e.syntax())),
        _ => false,
    });
    if serial || computed { Work::Rewrites } else { Work::Catalog }
}

/// Whether an expression calls a function that is not known to be stable or immutable: the
/// conservative answer for a name we do not know is "volatile".
fn is_volatile(expr: &SyntaxNode) -> bool {
    const NOT_VOLATILE: &[&str] = &[
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtimestamp",
        "localtime",
        "transaction_timestamp",
        "statement_timestamp",
        "current_user",
        "current_schema",
        "lower",
        "upper",
        "coalesce",
        "to_jsonb",
        "jsonb_build_object",
        "json_build_object",
        "array",
    ];
    expr.descendants().filter(|n| n.kind() == SyntaxKind::CALL_EXPR).any(|call| {
        let name = call.first_child().map(|n| n.text().to_string().to_ascii_lowercase()).unwrap_or_default();
        let name = name.rsplit('.').next().unwrap_or_default().trim().to_string();
        !NOT_VOLATILE.contains(&name.as_str())
    })
}

/// The tables a `CREATE TABLE`'s foreign keys reference.
fn referenced_tables(node: &SyntaxNode) -> Vec<String> {
    node.descendants()
        .filter_map(|n| {
            if let Some(fk) = ast::ForeignKeyConstraint::cast(n.clone()) {
                fk.table_name_ref().map(|t| relation_name(t.syntax()))
            } else {
                ast::ReferencesConstraint::cast(n).and_then(|r| r.table()).map(|t| relation_name(t.syntax()))
            }
        })
        .collect()
}

/// A relation's name as written, without `ONLY` or a trailing `*`.
pub fn relation_name(node: &SyntaxNode) -> String {
    let text = node.text().to_string();
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words.first().is_some_and(|w| w.eq_ignore_ascii_case("only")) {
        words.remove(0);
    }
    words.join(" ").trim_end_matches('*').trim().to_string()
}

/// The key two spellings of one relation share: the last part of the name, case-folded unless
/// quoted (`App.Orders` and `orders` are one table; `"Orders"` is another).
pub fn relation_key(name: &str) -> String {
    let last = name.rsplit('.').next().unwrap_or(name).trim();
    match last.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_ascii_lowercase(),
    }
}

/// `IN SHARE ROW EXCLUSIVE MODE`'s mode.
fn mode_named(text: &str) -> Option<Mode> {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_ascii_uppercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).filter(|w| *w != "IN" && *w != "MODE").collect();
    ALL.into_iter().find(|m| m.name().split(' ').eq(words.iter().copied()))
}

/// The mode `pg_locks.mode` names (`AccessShareLock`).
pub fn mode_of_pg_locks(name: &str) -> Option<Mode> {
    ALL.into_iter().find(|m| m.pg_locks_name() == name)
}

const ALL: [Mode; 8] = [
    Mode::AccessShare,
    Mode::RowShare,
    Mode::RowExclusive,
    Mode::ShareUpdateExclusive,
    Mode::Share,
    Mode::ShareRowExclusive,
    Mode::Exclusive,
    Mode::AccessExclusive,
];

/// Of the locks others hold (`(relation, pg_locks mode)`), the ones a planned lock waits
/// for: the same relation and a conflicting mode. Returns `(holder index, planned index)`.
pub fn blocking(planned: &[Lock], held: &[(String, String)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (hi, (relation, mode)) in held.iter().enumerate() {
        let Some(mode) = mode_of_pg_locks(mode) else { continue };
        if let Some(pi) = planned.iter().position(|p| {
            relation_key(&p.relation) == relation_key(relation) && p.mode.conflicts().contains(&mode)
        }) {
            out.push((hi, pi));
        }
    }
    out
}

fn has_keyword(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.descendants_with_tokens().any(|t| t.kind() == kind)
}

/// The strongest lock per relation of several statements (a run's), in first-seen order.
pub fn strongest(all: impl IntoIterator<Item = Lock>) -> Vec<Lock> {
    let mut out = Locks::default();
    for lock in all {
        out.add(lock.mode, lock.relation, lock.work);
    }
    out.0
}

/// Locks gathered for one statement: one per relation, the strongest mode and work.
#[derive(Default)]
struct Locks(Vec<Lock>);

impl Locks {
    fn add(&mut self, mode: Mode, relation: String, work: Work) {
        let key = relation_key(&relation);
        match self.0.iter_mut().find(|l| relation_key(&l.relation) == key) {
            Some(lock) => {
                lock.mode = lock.mode.max(mode);
                lock.work = lock.work.max(work);
            }
            None => self.0.push(Lock { mode, relation, work }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squawk_syntax::SourceFile;

    fn one(sql: &str) -> Vec<(Mode, String, Work)> {
        let parse = SourceFile::parse(sql);
        let stmt = parse.tree().stmts().next().expect("a statement");
        locks(&stmt).into_iter().map(|l| (l.mode, l.relation, l.work)).collect()
    }

    #[test]
    fn statements_take_the_documented_locks() {
        use Mode::*;
        use Work::*;
        type Expected = &'static [(Mode, &'static str, Work)];
        let cases: &[(&str, Expected)] = &[
            ("CREATE INDEX i ON orders (x);", &[(Share, "orders", Scans)]),
            ("CREATE INDEX CONCURRENTLY i ON orders (x);", &[(ShareUpdateExclusive, "orders", Scans)]),
            ("CREATE UNIQUE INDEX i ON app.orders (x);", &[(Share, "app.orders", Scans)]),
            ("DROP INDEX i;", &[(AccessExclusive, "i", Catalog)]),
            ("DROP INDEX CONCURRENTLY i;", &[(ShareUpdateExclusive, "i", Catalog)]),
            ("REINDEX INDEX i;", &[(AccessExclusive, "i", Rewrites)]),
            ("REINDEX INDEX CONCURRENTLY i;", &[(ShareUpdateExclusive, "i", Rewrites)]),
            ("ALTER TABLE orders ADD COLUMN note text;", &[(AccessExclusive, "orders", Catalog)]),
            (
                "ALTER TABLE orders ADD COLUMN n int NOT NULL DEFAULT 0;",
                &[(AccessExclusive, "orders", Catalog)],
            ),
            (
                "ALTER TABLE orders ADD COLUMN at timestamptz DEFAULT now();",
                &[(AccessExclusive, "orders", Catalog)],
            ),
            (
                "ALTER TABLE orders ADD COLUMN u uuid DEFAULT gen_random_uuid();",
                &[(AccessExclusive, "orders", Rewrites)],
            ),
            ("ALTER TABLE orders ADD COLUMN id2 bigserial;", &[(AccessExclusive, "orders", Rewrites)]),
            (
                "ALTER TABLE orders ADD COLUMN t int GENERATED ALWAYS AS (n * 2) STORED;",
                &[(AccessExclusive, "orders", Rewrites)],
            ),
            ("ALTER TABLE orders ALTER COLUMN n TYPE bigint;", &[(AccessExclusive, "orders", Rewrites)]),
            ("ALTER TABLE orders ALTER COLUMN n SET NOT NULL;", &[(AccessExclusive, "orders", Scans)]),
            ("ALTER TABLE orders ALTER COLUMN n DROP NOT NULL;", &[(AccessExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders ALTER COLUMN n SET DEFAULT 1;", &[(AccessExclusive, "orders", Catalog)]),
            (
                "ALTER TABLE orders ALTER COLUMN n SET STATISTICS 500;",
                &[(ShareUpdateExclusive, "orders", Catalog)],
            ),
            ("ALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0);", &[(AccessExclusive, "orders", Scans)]),
            (
                "ALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0) NOT VALID;",
                &[(AccessExclusive, "orders", Catalog)],
            ),
            ("ALTER TABLE orders VALIDATE CONSTRAINT c;", &[(ShareUpdateExclusive, "orders", Scans)]),
            (
                "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);",
                &[(ShareRowExclusive, "users", Catalog), (ShareRowExclusive, "orders", Scans)],
            ),
            (
                "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;",
                &[(ShareRowExclusive, "users", Catalog), (ShareRowExclusive, "orders", Catalog)],
            ),
            ("ALTER TABLE orders ADD CONSTRAINT u UNIQUE (email);", &[(AccessExclusive, "orders", Scans)]),
            (
                "ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX i;",
                &[(AccessExclusive, "orders", Catalog)],
            ),
            ("ALTER TABLE orders ADD PRIMARY KEY USING INDEX i;", &[(AccessExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders DROP COLUMN note;", &[(AccessExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders RENAME COLUMN a TO b;", &[(AccessExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders RENAME TO purchases;", &[(AccessExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders SET (fillfactor = 70);", &[(ShareUpdateExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders DISABLE TRIGGER t;", &[(ShareRowExclusive, "orders", Catalog)]),
            ("ALTER TABLE orders SET LOGGED;", &[(AccessExclusive, "orders", Rewrites)]),
            ("ALTER TABLE orders SET TABLESPACE fast;", &[(AccessExclusive, "orders", Rewrites)]),
            (
                "ALTER TABLE orders ADD COLUMN a int, ALTER COLUMN n TYPE bigint;",
                &[(AccessExclusive, "orders", Rewrites)],
            ),
            (
                "ALTER TABLE orders VALIDATE CONSTRAINT c, SET (fillfactor = 70);",
                &[(ShareUpdateExclusive, "orders", Scans)],
            ),
            ("ALTER TABLE ONLY orders ALTER COLUMN n SET NOT NULL;", &[(AccessExclusive, "orders", Scans)]),
            (
                "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
                &[(AccessExclusive, "events_2026", Scans), (ShareUpdateExclusive, "events", Catalog)],
            ),
            ("ALTER TABLE events DETACH PARTITION events_2020;", &[(AccessExclusive, "events", Catalog)]),
            (
                "ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;",
                &[(ShareUpdateExclusive, "events", Catalog)],
            ),
            (
                "CREATE TRIGGER t BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f();",
                &[(ShareRowExclusive, "orders", Catalog)],
            ),
            ("DROP TRIGGER t ON orders;", &[(AccessExclusive, "orders", Catalog)]),
            ("DROP TABLE a, b;", &[(AccessExclusive, "a", Catalog), (AccessExclusive, "b", Catalog)]),
            ("DROP VIEW v;", &[(AccessExclusive, "v", Catalog)]),
            ("CREATE OR REPLACE VIEW v AS SELECT 1;", &[(AccessExclusive, "v", Catalog)]),
            ("CREATE VIEW v AS SELECT 1;", &[]),
            ("TRUNCATE orders;", &[(AccessExclusive, "orders", Rewrites)]),
            ("LOCK TABLE orders;", &[(AccessExclusive, "orders", Catalog)]),
            ("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;", &[(ShareRowExclusive, "orders", Catalog)]),
            ("LOCK TABLE orders IN ACCESS SHARE MODE;", &[(AccessShare, "orders", Catalog)]),
            ("VACUUM orders;", &[(ShareUpdateExclusive, "orders", Scans)]),
            ("VACUUM FULL orders;", &[(AccessExclusive, "orders", Rewrites)]),
            ("VACUUM (FULL) orders;", &[(AccessExclusive, "orders", Rewrites)]),
            ("ANALYZE orders;", &[(ShareUpdateExclusive, "orders", Scans)]),
            ("CLUSTER orders USING orders_pkey;", &[(AccessExclusive, "orders", Rewrites)]),
            ("REFRESH MATERIALIZED VIEW mv;", &[(AccessExclusive, "mv", Rewrites)]),
            ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv;", &[(Exclusive, "mv", Rewrites)]),
            ("INSERT INTO orders (n) VALUES (1);", &[(RowExclusive, "orders", Catalog)]),
            ("UPDATE orders SET n = 1;", &[(RowExclusive, "orders", Catalog)]),
            ("DELETE FROM orders WHERE n = 0;", &[(RowExclusive, "orders", Catalog)]),
            ("COMMENT ON TABLE orders IS 'x';", &[(ShareUpdateExclusive, "orders", Catalog)]),
            ("COMMENT ON COLUMN orders.n IS 'x';", &[(ShareUpdateExclusive, "orders", Catalog)]),
            ("CREATE TABLE t (id int);", &[]),
            (
                "CREATE TABLE t (id int, u int REFERENCES users (id));",
                &[(ShareRowExclusive, "users", Catalog)],
            ),
            ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;", &[]),
            ("SELECT 1;", &[]),
        ];
        for (sql, expected) in cases {
            let expected: Vec<(Mode, String, Work)> =
                expected.iter().map(|(m, r, w)| (*m, r.to_string(), *w)).collect();
            assert_eq!(one(sql), expected, "{sql}");
        }
    }

    #[test]
    fn conflicts_follow_the_documented_table() {
        use Mode::*;
        let all = [
            AccessShare,
            RowShare,
            RowExclusive,
            ShareUpdateExclusive,
            Share,
            ShareRowExclusive,
            Exclusive,
            AccessExclusive,
        ];
        // The table is symmetric: a conflicts with b exactly when b conflicts with a.
        for a in all {
            for b in all {
                assert_eq!(a.conflicts().contains(&b), b.conflicts().contains(&a), "{a:?} / {b:?}");
            }
        }
        assert!(!AccessShare.conflicts().contains(&Share));
        assert!(Share.conflicts().contains(&RowExclusive));
        assert!(!Share.conflicts().contains(&Share));
        assert!(ShareUpdateExclusive.conflicts().contains(&ShareUpdateExclusive));
    }

    #[test]
    fn relation_keys_fold_case_unless_quoted() {
        let cases = [
            ("orders", "orders"),
            ("App.Orders", "orders"),
            ("\"Orders\"", "Orders"),
            ("public.\"a\"\"b\"", "a\"b"),
        ];
        for (name, key) in cases {
            assert_eq!(relation_key(name), key, "{name}");
        }
    }

    #[test]
    fn only_conflicting_locks_on_the_same_relation_block() {
        let planned = vec![
            Lock { mode: Mode::AccessExclusive, relation: "orders".into(), work: Work::Rewrites },
            Lock { mode: Mode::ShareUpdateExclusive, relation: "app.Users".into(), work: Work::Scans },
        ];
        let held: Vec<(String, String)> = [
            ("orders", "AccessShareLock"),         // a long SELECT: blocks ACCESS EXCLUSIVE
            ("users", "RowExclusiveLock"),         // a write: does not block SHARE UPDATE EXCLUSIVE
            ("users", "ShareUpdateExclusiveLock"), // a vacuum: does
            ("invoices", "AccessExclusiveLock"),   // another relation
            ("orders", "NoSuchLock"),
        ]
        .iter()
        .map(|(r, m)| (r.to_string(), m.to_string()))
        .collect();
        assert_eq!(blocking(&planned, &held), [(0, 0), (2, 1)]);
    }

    #[test]
    fn lock_modes_read_as_written() {
        assert_eq!(mode_named("IN SHARE ROW EXCLUSIVE MODE"), Some(Mode::ShareRowExclusive));
        assert_eq!(mode_named("share"), Some(Mode::Share));
        assert_eq!(mode_named("IN NOSUCH MODE"), None);
    }
}
