//! What every layout's loader builds and shares: the layout (`Format`), a script and its
//! parsed statements, a migration, the set, the problems found in files, and the few file
//! helpers every loader reads with. `source` detects the layout and dispatches to a loader
//! (`source` itself for sqlx and golang-migrate, `drizzle`, `folders`, `sections`, `flyway`);
//! the loaders import this module, never `source`, so the dispatch points one way.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::migrate::checksum;
use crate::migrate::directives::{self, Directives};
use crate::migrate::sql::{self, Effect};

/// What drizzle-orm writes to `__drizzle_migrations` for one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrizzleEntry {
    /// The journal's `tag` (0.x) or the folder name (v1); v1 stores it in the `name` column.
    pub name: String,
    /// `created_at`: the journal's `when`, or the folder's timestamp in epoch milliseconds.
    pub created_at: i64,
    /// `hash`: lowercase hex SHA-256 of the whole file.
    pub hash: String,
}

/// How a migrations folder is laid out: which tool wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<version>_<description>.sql` files (sqlx's layout, and shipgate's own).
    Sqlx,
    /// `<version>_<title>.up.sql` with `.down.sql` (golang-migrate): the file's own
    /// transaction control runs as written.
    GolangMigrate,
    /// A drizzle-kit output folder: `meta/_journal.json` with `NNNN_tag.sql` files (0.x),
    /// or `<timestamp>_<name>/migration.sql` folders with `snapshot.json` (v1).
    Drizzle,
    /// `<name>/migration.sql` folders with `migration_lock.toml` (Prisma Migrate).
    Prisma,
    /// `<version>_<name>/up.sql` and `down.sql` folders (diesel).
    Diesel,
    /// `<version>_<name>.sql` with `-- migrate:up` and `-- migrate:down` sections (dbmate).
    Dbmate,
    /// `<version>_<name>.sql` with `-- +goose Up` and `-- +goose Down` sections (goose).
    Goose,
    /// `V<version>__<description>.sql` with `U...` undo scripts, at any depth (Flyway).
    Flyway,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Sqlx => "sqlx",
            Format::GolangMigrate => "golang-migrate",
            Format::Drizzle => "drizzle",
            Format::Prisma => "prisma",
            Format::Diesel => "diesel",
            Format::Dbmate => "dbmate",
            Format::Goose => "goose",
            Format::Flyway => "flyway",
        }
    }

    /// Whether the layout's own tool runs each file inside a transaction it opened. Where it
    /// does not (Prisma, golang-migrate), a file's `BEGIN`/`COMMIT` are the author's and run
    /// as written; where it does, they would end that transaction half-way, so they are refused.
    pub fn wraps_in_transaction(self) -> bool {
        !matches!(self, Format::Prisma | Format::GolangMigrate)
    }

    /// How a file of this layout says "run me without a transaction".
    pub fn no_transaction_marker(self) -> &'static str {
        match self {
            Format::Sqlx | Format::GolangMigrate | Format::Drizzle | Format::Prisma => {
                "put `-- no-transaction` (or `-- shipgate:no-transaction`) on the file's first line"
            }
            Format::Diesel => "put `run_in_transaction = false` in the migration folder's metadata.toml",
            Format::Dbmate => "write the section marker as `-- migrate:up transaction:false`",
            Format::Goose => "put `-- +goose NO TRANSACTION` at the top of the file",
            Format::Flyway => "put `executeInTransaction=false` in a `<file>.conf` beside it",
        }
    }

    /// Whether the layout's tool runs a file of statements PostgreSQL refuses in a transaction
    /// outside one by itself (Flyway detects them).
    pub fn detects_no_transaction(self) -> bool {
        self == Format::Flyway
    }

    /// Whether migrations of this layout can have down scripts at all.
    pub fn has_downs(self) -> bool {
        !matches!(self, Format::Drizzle | Format::Prisma)
    }
}

/// One SQL script (an up or a down): a whole file, or one section of it.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    /// The whole file: positions in messages are the file's, whichever part runs.
    pub sql: String,
    /// The byte range of `sql` that runs (the whole file, or one section).
    pub part: Range<usize>,
    /// Byte ranges of `sql` sent one after the other inside the migration's transaction: the
    /// part that runs, or its pieces between drizzle-kit's `--> statement-breakpoint` markers.
    pub statements: Vec<Range<usize>>,
    /// The parser's statements of the part that runs; a no-transaction script runs them one
    /// by one. A script whose words cannot change the transaction is not parsed (see
    /// `sql::needs_parse`) unless it runs without one.
    pub parsed: sql::Parsed,
    pub directives: Directives,
    pub checksum: Vec<u8>,
    /// See [`Script::checksum_normalized`]: made when first asked for, since a run with nothing
    /// to do compares it only for a file whose raw checksum differs.
    pub(crate) normalized: std::sync::OnceLock<Vec<u8>>,
}

/// A file's bytes as text, or why they are not.
pub fn text_of(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("not valid UTF-8 (first bad byte at offset {at}); save the file as UTF-8")
    })
}

impl Script {
    /// Read a whole file's text into a script run as one statement batch. Errors are for the file.
    pub fn new(path: PathBuf, bytes: Vec<u8>) -> Result<Script, String> {
        let sql = text_of(bytes)?;
        let whole = 0..sql.len();
        Script::part(path, sql, whole)
    }

    /// The script that runs `part` of a file's text (a section of a dbmate or goose file).
    /// The checksums are the whole file's: editing either section modifies the migration.
    pub fn part(path: PathBuf, sql: String, part: Range<usize>) -> Result<Script, String> {
        let mut directives = directives::parse(&sql[part.clone()])?;
        if part.start > 0 {
            // The file's own header (above a section marker) is the section's too: a
            // `shipgate:phase post` there must not be skipped.
            directives = directives.or(directives::parse(&sql[..part.start])?);
        }
        let mut script = Script {
            path,
            checksum: checksum::raw(sql.as_bytes()),
            normalized: std::sync::OnceLock::new(),
            part: part.clone(),
            statements: vec![part.clone()],
            parsed: sql::Parsed::default(),
            sql,
            directives,
        };
        if sql::needs_parse(&script.sql[part]) {
            script.parse()?;
        }
        Ok(script)
    }

    /// The whole file's checksum with checkout noise (BOM, CRLF, trailing blanks) taken out.
    pub fn checksum_normalized(&self) -> &[u8] {
        self.normalized.get_or_init(|| checksum::normalized(&self.sql))
    }

    /// Run the parser over the part that runs (once).
    fn parse(&mut self) -> Result<(), String> {
        if self.parsed.complete {
            return Ok(());
        }
        let part = self.part.clone();
        let mut parsed = sql::parse(&self.sql[part.clone()]).map_err(|refusal| {
            let (line, col) = sql::line_col_of_byte(&self.sql, part.start + refusal.at);
            format!("line {line}:{col}: {}", refusal.message)
        })?;
        for statement in &mut parsed.statements {
            statement.range = statement.range.start + part.start..statement.range.end + part.start;
        }
        parsed.unrecognised_at = parsed.unrecognised_at.map(|at| at + part.start);
        if let Some(at) = parsed.unrecognised_at {
            let (line, col) = sql::line_col_of_byte(&self.sql, at);
            tracing::debug!(
                "{}:{line}:{col}: syntax the parser does not know; the statement is sent as written and the server decides",
                self.path.display()
            );
        }
        self.parsed = parsed;
        Ok(())
    }

    /// Decide how the script runs in `format`, from what its statements do: a transaction-
    /// control statement or one PostgreSQL refuses in a transaction is refused where the
    /// layout's tool wraps files in a transaction (it would commit part of the file on its
    /// own, or fail), and makes the file run as written, without ours, where it does not.
    pub fn settle(mut self, format: Format) -> Result<Script, String> {
        if self.directives.no_transaction {
            // Its statements are sent one by one: the parser must have said where they end.
            self.parse()?;
            return Ok(self);
        }
        let control = self.parsed.first(|e| matches!(e, Effect::TransactionControl(_)));
        let outside = self.parsed.first(|e| matches!(e, Effect::OutsideTransaction(_)));
        let Some(found) = control.or(outside) else {
            return Ok(self);
        };
        let detected = control.is_none() && format.detects_no_transaction();
        if !format.wraps_in_transaction() || detected {
            self.directives.no_transaction = true;
            return Ok(self);
        }
        let (line, col) = sql::line_col_of_byte(&self.sql, found.range.start);
        let marker = format.no_transaction_marker();
        Err(match found.effect {
            Effect::TransactionControl(what) => format!(
                "line {line}:{col}: `{what}` inside a migration that runs in a transaction would commit or \
                 discard part of it on its own (and a rerun would apply that part twice); remove it (the \
                 whole file already runs in one transaction), or {marker} to run the file as written, \
                 statement by statement"
            ),
            Effect::OutsideTransaction(what) => format!(
                "line {line}:{col}: `{what}` cannot run inside a transaction block; {marker} (its \
                 statements then run one by one, each committed on its own)"
            ),
            Effect::Plain => unreachable!("only statements with an effect are found"),
        })
    }

    /// The byte ranges sent to the server, in order: the batches inside the transaction, or
    /// each parsed statement for a script that runs without one.
    pub fn units(&self) -> Vec<Range<usize>> {
        if self.directives.no_transaction {
            self.parsed.statements.iter().map(|s| s.range.clone()).collect()
        } else {
            self.statements.clone()
        }
    }
}

/// One versioned migration, with its optional down script.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    pub up: Script,
    pub down: Option<Script>,
    /// What drizzle-orm records for this migration, when it comes from a drizzle-kit folder.
    pub drizzle: Option<DrizzleEntry>,
}

impl Migration {
    /// When it runs relative to the rollout: its header's phase, else its folder's, else pre.
    pub fn phase(&self) -> crate::migrate::phase::Phase {
        self.up.directives.phase.unwrap_or_default()
    }
}

/// A directory's migrations in version order.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub dir: PathBuf,
    pub format: Format,
    /// Whether `format` was detected (rather than forced with `--format`).
    pub detected: bool,
    /// How many files the layout read (migration files, journals, metadata).
    pub files_read: usize,
    pub migrations: Vec<Migration>,
}

impl MigrationSet {
    /// Refuse `down` on a layout whose tool writes no down scripts, before anything is planned.
    pub fn require_downs(&self) -> Result<()> {
        if self.format.has_downs() {
            return Ok(());
        }
        let tool = match self.format {
            Format::Prisma => "Prisma",
            _ => "drizzle-kit",
        };
        Err(Error::input(format!(
            "{tool} migrations have no down scripts, so {} cannot be migrated down; nothing was reverted",
            self.dir.display()
        ))
        .hint(format!(
            "write a new migration that undoes the change and run `shipgate migrate up`, as {tool} itself expects"
        )))
    }

    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.binary_search_by_key(&version, |m| m.version).ok().map(|i| &self.migrations[i])
    }
}

/// A problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// A folder's migrations in version order, and the files ignored in it; or every problem.
pub type Loaded = std::result::Result<(Vec<Migration>, Vec<PathBuf>), Vec<Problem>>;

/// The one migration found for `version`, or `None` and a problem naming every file (or
/// folder, as `path` says) that claims it.
pub fn one_per_version<T>(
    version: i64,
    mut found: Vec<T>,
    path: impl Fn(&T) -> &Path,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    if found.len() == 1 {
        return found.pop();
    }
    let names: Vec<String> = found.iter().map(|f| path(f).display().to_string()).collect();
    problems.push(Problem {
        path: path(&found[1]).to_path_buf(),
        message: format!("version {version} is used by {}; give one of them a new version", names.join(", ")),
    });
    None
}

/// Every file under `dir`, at any depth, sorted; hidden entries are skipped and symlinked
/// folders are not followed.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = listing(dir)?;
    files.sort();
    Ok(files)
}

/// [`files_under`] in the order the directories gave them: sorting a thousand paths
/// component by component costs more than reading the directory did.
pub fn listing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| Error::input(format!("cannot list {}: {e}", folder.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::input(format!("cannot list {}: {e}", folder.display())))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
            if kind.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// A loader's result: its migrations and ignored files, or every problem, sorted by file.
pub fn loaded(migrations: Vec<Migration>, ignored: Vec<PathBuf>, mut problems: Vec<Problem>) -> Loaded {
    if problems.is_empty() {
        return Ok((migrations, ignored));
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Err(problems)
}

/// Read a plain file; anything else (a FIFO, a socket, a device, a symlink to one) is refused
/// before a byte is read, because reading it could block or never end. The file is opened
/// without blocking (a FIFO would block the open itself) and asked what it is through the
/// open descriptor: one status call per file, and no window for a swap between the two.
pub fn read_regular(path: &Path) -> std::result::Result<Vec<u8>, String> {
    read_plain(path, usize::MAX)
}

/// The first `limit` bytes of a plain file (all of a shorter one), refused as
/// [`read_regular`] refuses: enough to tell a layout by a file's head without reading it all.
pub fn read_regular_head(path: &Path, limit: usize) -> std::result::Result<Vec<u8>, String> {
    read_plain(path, limit)
}

fn read_plain(path: &Path, limit: usize) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| format!("cannot read: {e}");
    let mut file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(
            "not a regular file (a FIFO, socket, device or folder); a migration must be a plain file"
                .to_string(),
        );
    }
    // One read() usually suffices: asked for one byte more than the file's size, a regular
    // file answers short, which is its end. A file that grew since answers in full, and the
    // loop reads on to the end. (`read_to_end` would ask the size and position again, and
    // read once more to see the end: three more system calls per file.)
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX).min(limit);
    let mut bytes = vec![0u8; size.saturating_add(1)];
    let mut len = 0;
    while len < limit {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        let n = match file.read(&mut bytes[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cannot(e)),
        };
        len += n;
        if n == 0 || (len == size && len < bytes.len()) {
            break;
        }
    }
    bytes.truncate(len.min(limit));
    Ok(bytes)
}

/// Whether a listed entry is a folder, from the listing itself; only a symlink costs a status
/// call, to see what it points at.
pub fn is_dir(entry: &std::fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if kind.is_symlink() => entry.path().is_dir(),
        Ok(kind) => kind.is_dir(),
        Err(_) => entry.path().is_dir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_reads_every_byte_of_every_size() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 2, 4095, 4096, 4097, 65_536, 1_000_003] {
            let path = dir.path().join(format!("{size}.sql"));
            let text: Vec<u8> = (0..size).map(|i| b"abcdefghij;\n"[i % 12]).collect();
            std::fs::write(&path, &text).unwrap();
            assert_eq!(read_regular(&path).unwrap(), text, "size {size}");
        }
        let big = dir.path().join("1000003.sql");
        assert_eq!(read_regular_head(&big, 8192).unwrap(), read_regular(&big).unwrap()[..8192]);
        assert_eq!(read_regular_head(&dir.path().join("2.sql"), 8192).unwrap(), b"ab");
        assert!(read_regular(dir.path()).unwrap_err().contains("not a regular file"));
        assert!(read_regular(&dir.path().join("missing.sql")).unwrap_err().starts_with("cannot read"));
    }
}
