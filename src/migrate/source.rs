//! Reading a migrations folder into a validated, ordered set, in the layout of the tool it
//! came from.
//!
//! Every layout is read natively, so a project switches without renaming a file: sqlx's
//! `<version>_<description>.sql` (and `.up.sql`/`.down.sql`, the default, and shipgate's
//! own), golang-migrate's `.up.sql`/`.down.sql` pairs, drizzle-kit's folders
//! (`migrate::drizzle`), Prisma's and diesel's folder per migration (`migrate::folders`),
//! dbmate's and goose's up and down sections in one file (`migrate::sections`). Which layout
//! a folder has is detected, or forced with `--format`.
//!
//! Every problem in the folder is collected and reported at once, before any connection is
//! opened: a deploy should fail on the first run with the whole list, not once per typo. And a
//! folder is never read partly: a `.sql` file anywhere under it that the layout did not read
//! is an input error naming it, as is a folder with no migration at all, because "nothing to
//! do" must never be the answer to "I could not read your files".

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use crate::migrate::script::{
    Format, Loaded, Migration, MigrationSet, Problem, Script, files_under, is_dir, loaded, one_per_version,
    read_regular, read_regular_head, text_of,
};
use crate::migrate::{drizzle, flyway, folders, sections};

/// Which role a file plays, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `V_desc.sql`: up only.
    Simple,
    /// `V_desc.up.sql`.
    Up,
    /// `V_desc.down.sql`.
    Down,
}

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub version: i64,
    pub description: String,
    pub role: Role,
}

/// What a directory entry's name says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A migration file.
    Migration(FileName),
    /// Not a `.sql` file: ignored with a warning.
    NotSql,
    /// Hidden files (`.gitkeep`): ignored silently.
    Hidden,
}

/// Classify a file name. Pure.
pub fn parse_name(name: &str) -> Result<NameKind, String> {
    if name.starts_with('.') {
        return Ok(NameKind::Hidden);
    }
    let (stem, role) = if let Some(s) = name.strip_suffix(".up.sql") {
        (s, Role::Up)
    } else if let Some(s) = name.strip_suffix(".down.sql") {
        (s, Role::Down)
    } else if let Some(s) = name.strip_suffix(".sql") {
        (s, Role::Simple)
    } else {
        return Ok(NameKind::NotSql);
    };
    let expected = "expected <version>_<description>.sql, .up.sql or .down.sql, \
                    with a non-negative integer version (e.g. 20240101120000_create_users.sql)";
    let Some((version, description)) = stem.split_once('_') else {
        return Err(format!("unparseable name: {expected}"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unparseable name: version `{version}` is not a number; {expected}"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| format!("unparseable name: version `{version}` is too large for a 64-bit integer"))?;
    if description.is_empty() {
        return Err(format!("unparseable name: the description is empty; {expected}"));
    }
    Ok(NameKind::Migration(FileName { version, description: description.replace('_', " "), role }))
}

/// A file as read from disk, before validation.
#[derive(Debug, Clone)]
pub struct RawFile {
    pub path: PathBuf,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Validate and assemble a sqlx or golang-migrate folder's files into migrations. Pure; all
/// problems are returned together. The second value lists files ignored because they are
/// not `.sql`.
pub fn assemble(files: Vec<RawFile>, format: Format) -> Loaded {
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let mut ups: BTreeMap<i64, Vec<(FileName, Script)>> = BTreeMap::new();
    let mut downs: BTreeMap<i64, Vec<(FileName, Script)>> = BTreeMap::new();

    let mut named = Vec::new();
    for file in files {
        let problem = |message: String| Problem { path: file.path.clone(), message };
        let name = match parse_name(&file.name) {
            Ok(NameKind::Migration(name)) => name,
            Ok(NameKind::NotSql) => {
                ignored.push(file.path.clone());
                continue;
            }
            Ok(NameKind::Hidden) => continue,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        if format == Format::GolangMigrate && name.role == Role::Simple {
            problems.push(problem(
                "golang-migrate names every file <version>_<title>.up.sql or .down.sql".to_string(),
            ));
            continue;
        }
        named.push((name, file));
    }
    // Parsing is most of what a run with nothing to do costs: the files are parsed on every core.
    let scripts = crate::parallel::map(named, |(name, file)| {
        let script = Script::new(file.path.clone(), file.bytes).and_then(|s| s.settle(format));
        (name, file.path, script)
    });
    for (name, path, script) in scripts {
        let script = match script {
            Ok(script) => script,
            Err(message) => {
                problems.push(Problem { path, message });
                continue;
            }
        };
        let bucket = if name.role == Role::Down { &mut downs } else { &mut ups };
        bucket.entry(name.version).or_default().push((name, script));
    }

    for (version, files) in ups.iter().chain(downs.iter()) {
        if files.len() > 1 {
            for (_, script) in files {
                let others: Vec<String> = files
                    .iter()
                    .filter(|(_, s)| s.path != script.path)
                    .map(|(_, s)| file_name(&s.path))
                    .collect();
                problems.push(Problem {
                    path: script.path.clone(),
                    message: format!(
                        "duplicate version {version} (also used by {}); give one of them a new version",
                        others.join(", ")
                    ),
                });
            }
        }
    }

    let mut migrations = Vec::new();
    for (version, mut up_files) in ups {
        if up_files.len() > 1 {
            continue;
        }
        let (name, up) = up_files.remove(0);
        let down = match downs.remove(&version) {
            None => None,
            Some(d) if d.len() > 1 => continue,
            Some(mut d) => {
                let (down_name, down) = d.remove(0);
                if name.role == Role::Simple {
                    problems.push(Problem {
                        path: down.path.clone(),
                        message: format!(
                            "a .down.sql needs its up script named .up.sql, but version {version} is {}; rename it to {}",
                            file_name(&up.path),
                            file_name(&up.path).replace(".sql", ".up.sql")
                        ),
                    });
                    continue;
                }
                if down_name.description != name.description {
                    problems.push(Problem {
                        path: down.path.clone(),
                        message: format!(
                            "description `{}` does not match its up script {}",
                            down_name.description,
                            file_name(&up.path)
                        ),
                    });
                    continue;
                }
                Some(down)
            }
        };
        migrations.push(Migration { version, description: name.description, up, down, drizzle: None });
    }
    for (version, files) in downs {
        if files.len() == 1 {
            problems.push(Problem {
                path: files[0].1.path.clone(),
                message: format!("a .down.sql without its .up.sql (no up script has version {version})"),
            });
        }
    }

    if problems.is_empty() {
        Ok((migrations, ignored))
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        problems.dedup();
        Err(problems)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// How to read a migrations folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// The layout, when forced with `--format`; detected when `None`.
    pub format: Option<Format>,
    /// `--allow-unread` patterns (relative to the folder): `.sql` files the layout may leave
    /// unread without it being an error.
    pub allow_unread: Vec<String>,
    /// `--allow-empty`: a folder with no migration at all is what the user means.
    pub allow_empty: bool,
    /// Further folders of the same set (`--source A --source B`): one version order, one history.
    pub also: Vec<PathBuf>,
    /// Folders whose migrations are in the post phase unless their header says otherwise
    /// (`[migrations] phase = { "db/post" = "post" }`).
    pub post: Vec<PathBuf>,
}

impl ReadOptions {
    /// Mark the migrations of a folder shipgate.toml puts in the post phase.
    fn phase_of(&self, dir: &Path, migrations: &mut [Migration]) {
        if !self.post.iter().any(|p| crate::project::same_folder(p, dir)) {
            return;
        }
        for m in migrations {
            m.up.directives.phase.get_or_insert(crate::migrate::phase::Phase::Post);
        }
    }
}

/// Which layout `dir` has, from its files: drizzle-kit's journal or snapshot folders,
/// Prisma's lock file or `migration.sql` folders, diesel's `up.sql` folders, dbmate's or
/// goose's section markers in a top-level file, and otherwise sqlx. golang-migrate folders
/// look like sqlx ones and are read as such unless `--format golang-migrate` says otherwise.
pub fn detect(dir: &Path) -> Format {
    if dir.join(drizzle::JOURNAL).is_file() {
        return Format::Drizzle;
    }
    if dir.join(folders::PRISMA_LOCK).is_file() {
        return Format::Prisma;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Format::Sqlx };
    let mut found = None;
    let mut opened = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if is_dir(&entry) {
            if path.join("up.sql").is_file() {
                return Format::Diesel;
            }
            if path.join("migration.sql").is_file() {
                let drizzle = path.join("snapshot.json").is_file();
                found = Some(if drizzle { Format::Drizzle } else { Format::Prisma });
            }
        } else if found.is_none()
            && path.file_name().is_some_and(|n| {
                matches!(flyway::parse_name(&n.to_string_lossy()), flyway::Name::Versioned { .. })
            })
        {
            found = Some(Format::Flyway);
        } else if found.is_none() && path.extension().is_some_and(|x| x == "sql") && opened < 3 {
            // dbmate and goose put their marker before any SQL, so a file's head tells, and a
            // few files are enough. Only a plain file is opened: reading a FIFO would block.
            opened += 1;
            found = read_regular_head(&path, 8192)
                .ok()
                .and_then(|head| sections::format_of(&String::from_utf8_lossy(&head)));
        }
    }
    found.unwrap_or(Format::Sqlx)
}

/// Read and validate a folder, and the further folders of the same set, into one set. A
/// version in two folders is an input error naming both files.
pub fn load(dir: &Path, options: &ReadOptions) -> Result<MigrationSet> {
    if options.also.is_empty() {
        let mut set = load_one(dir, options)?;
        options.phase_of(dir, &mut set.migrations);
        return Ok(set);
    }
    let each = ReadOptions { also: Vec::new(), allow_empty: true, ..options.clone() };
    let mut set = load_one(dir, &each)?;
    options.phase_of(dir, &mut set.migrations);
    for other in &options.also {
        let mut more = load_one(other, &each)?;
        options.phase_of(other, &mut more.migrations);
        set.files_read += more.files_read;
        set.migrations.extend(more.migrations);
    }
    set.migrations.sort_by_key(|m| m.version);
    let clashes: Vec<String> = set
        .migrations
        .windows(2)
        .filter(|pair| pair[0].version == pair[1].version)
        .map(|pair| {
            format!(
                "  - version {}: {} and {}",
                pair[0].version,
                pair[0].up.path.display(),
                pair[1].up.path.display()
            )
        })
        .collect();
    if !clashes.is_empty() {
        return Err(Error::input(format!(
            "{} version{} used in two --source folders; nothing was run:\n{}",
            clashes.len(),
            if clashes.len() == 1 { " is" } else { "s are" },
            clashes.join("\n")
        ))
        .hint("the folders are one set with one history: give one of each pair a new version"));
    }
    if set.migrations.is_empty() && !options.allow_empty {
        return Err(empty_error(dir, set.format));
    }
    Ok(set)
}

/// Read and validate one folder in the given layout or the detected one. Any problem, a
/// `.sql` file the layout did not read, or a folder without migrations is an input error
/// (exit 2) listing them all.
fn load_one(dir: &Path, options: &ReadOptions) -> Result<MigrationSet> {
    let started = std::time::Instant::now();
    let allow = allow_set(&options.allow_unread)?;
    // Every file under the folder, for the unread check, is listed while the layout reads.
    let (listing, loaded) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| crate::migrate::script::listing(dir));
        let loaded = read_layout(dir, options);
        (listing.join().expect("the listing thread panicked"), loaded)
    });
    let (format, (migrations, ignored)) = loaded?;
    for path in ignored {
        tracing::warn!("ignoring {}: not a .sql migration file", path.display());
    }
    // By their bytes: both sides are paths read_dir made under `dir`, and comparing
    // `Path`s component by component was a tenth of a run with nothing to do.
    let read: HashSet<&OsStr> = migrations
        .iter()
        .flat_map(|m| std::iter::once(&m.up).chain(&m.down))
        .map(|s| s.path.as_os_str())
        .collect();
    let unread = unread_files(dir, listing?, &read, &allow);
    if !unread.is_empty() {
        let list: Vec<String> = unread.iter().map(|p| format!("  - {}", p.display())).collect();
        return Err(Error::input(format!(
            "{} .sql file{} in {} {} not read by the {} layout; nothing was run:\n{}",
            unread.len(),
            if unread.len() == 1 { "" } else { "s" },
            dir.display(),
            if unread.len() == 1 { "is" } else { "are" },
            format.name(),
            list.join("\n")
        ))
        .hint(format!(
            "{}; if these files are not migrations, pass --allow-unread GLOB (e.g. --allow-unread 'seeds/**')",
            if options.format.is_some() {
                "check --format: another layout may read them"
            } else {
                "pass --format NAME if the layout was detected wrongly (sqlx, golang-migrate, drizzle, prisma, \
                 diesel, dbmate, goose, flyway)"
            }
        )));
    }
    if migrations.is_empty() && !options.allow_empty {
        return Err(empty_error(dir, format));
    }
    let detected = options.format.is_none();
    let bytes: usize = migrations.iter().map(|m| m.up.sql.len()).sum();
    let parsed = migrations.iter().filter(|m| m.up.parsed.complete).count();
    // bench/migrate.py reads this line: the cost of reading and parsing, without the database.
    tracing::debug!(
        "read and parsed {} .sql files ({bytes} bytes; {parsed} up scripts needed the parser) in {:.1} ms",
        read.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    tracing::info!(
        "{}: {} layout ({}), {} .sql file{} read, {} migration{}",
        dir.display(),
        format.name(),
        if detected { "detected" } else { "--format" },
        read.len(),
        if read.len() == 1 { "" } else { "s" },
        migrations.len(),
        if migrations.len() == 1 { "" } else { "s" },
    );
    Ok(MigrationSet { dir: dir.to_path_buf(), format, detected, files_read: read.len(), migrations })
}

/// What a loader read: the migrations, and the files it ignored.
type Read = (Vec<Migration>, Vec<PathBuf>);

/// The layout (given or detected) and what its loader read, or every problem as one error.
fn read_layout(dir: &Path, options: &ReadOptions) -> Result<(Format, Read)> {
    let format = options.format.unwrap_or_else(|| detect(dir));
    let loaded = match format {
        Format::Sqlx | Format::GolangMigrate => {
            let (files, mut problems) = read_files(dir)?;
            match assemble(files, format) {
                Ok(loaded) if problems.is_empty() => Ok(loaded),
                Ok(_) => Err(problems),
                Err(more) => {
                    problems.extend(more);
                    problems.sort_by(|a, b| a.path.cmp(&b.path));
                    Err(problems)
                }
            }
        }
        Format::Drizzle => drizzle::load(dir)?,
        Format::Prisma => folders::load_prisma(dir)?,
        Format::Diesel => folders::load_diesel(dir)?,
        Format::Dbmate | Format::Goose => sections::load(dir, format)?,
        Format::Flyway => flyway::load(dir)?,
    }
    .map_err(|problems| problems_error(dir, format, &problems))?;
    Ok((format, loaded))
}

fn empty_error(dir: &Path, format: Format) -> Error {
    Error::input(format!(
        "no migrations found in {} (read as {} layout); nothing was run",
        dir.display(),
        format.name()
    ))
    .hint(
        "point --source (or SHIPGATE_SOURCE) at the folder that holds the migrations, or pass --allow-empty \
             if an empty folder is what you mean",
    )
}

fn allow_set(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut set = globset::GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern).literal_separator(true).build().map_err(|e| {
            Error::input(format!("--allow-unread `{pattern}` is not a glob: {e}"))
                .hint("use a pattern relative to the migrations folder, e.g. 'seeds/**' or '*.test.sql'")
        })?;
        set.add(glob);
    }
    set.build().map_err(|e| Error::input(format!("--allow-unread: {e}")))
}

/// Every `.sql` file under `dir` (at any depth; hidden entries and symlinked folders aside)
/// that is not in `read` and not allowed by a pattern, sorted.
fn unread_files(
    dir: &Path,
    listing: Vec<PathBuf>,
    read: &HashSet<&OsStr>,
    allow: &globset::GlobSet,
) -> Vec<PathBuf> {
    let unread = listing.into_iter().filter(|path| {
        let is_sql = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("sql"));
        is_sql && !read.contains(path.as_os_str()) && !allow.is_match(path.strip_prefix(dir).unwrap_or(path))
    });
    let mut unread: Vec<PathBuf> = unread.collect();
    unread.sort();
    unread
}

/// The top-level files of `dir`, and the ones that cannot be read. The files are read on
/// every core: with nothing to apply, the reads are most of a run's cost.
fn read_files(dir: &Path) -> Result<(Vec<RawFile>, Vec<Problem>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::input(format!("cannot read the migrations directory {}: {e}", dir.display()))
            .hint("pass --source DIR (or SHIPGATE_SOURCE) pointing at the folder of .sql files")
    })?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(format!("cannot list {}: {e}", dir.display())))?;
        // Sub-folders are other migration sets (master/, tenant/), or files the unread check
        // names; never read as part of this layout.
        if is_dir(&entry) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = matches!(parse_name(&name), Ok(NameKind::Migration(_)) | Err(_));
        listed.push((entry.path(), name, wanted));
    }
    let read = crate::parallel::map(listed, |(path, name, wanted)| {
        let bytes = if wanted { read_regular(&path) } else { Ok(Vec::new()) };
        (path, name, bytes)
    });
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (path, name, bytes) in read {
        match bytes {
            Ok(bytes) => files.push(RawFile { path, name, bytes }),
            Err(message) => problems.push(Problem { path, message }),
        }
    }
    Ok((files, problems))
}

fn problems_error(dir: &Path, format: Format, problems: &[Problem]) -> Error {
    let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    let hint = match format {
        Format::Sqlx => {
            "fix the files listed above; names are <version>_<description>.sql (or .up.sql/.down.sql); \
             --format NAME reads the folder in another tool's layout"
        }
        Format::GolangMigrate => {
            "fix the files listed above; names are <version>_<title>.up.sql and .down.sql"
        }
        Format::Drizzle => {
            "fix the folder listed above (regenerate it with drizzle-kit, or restore the files its journal names); \
             --format sqlx reads the folder as plain <version>_<description>.sql files instead"
        }
        Format::Prisma => {
            "fix the folders listed above; each is <name>/migration.sql, named so that they sort in order"
        }
        Format::Diesel => "fix the folders listed above; each is <version>_<name>/ with up.sql and down.sql",
        Format::Dbmate => {
            "fix the files listed above; each has a `-- migrate:up` section and an optional `-- migrate:down`"
        }
        Format::Goose => {
            "fix the files listed above; each has a `-- +goose Up` section and an optional `-- +goose Down`"
        }
        Format::Flyway => {
            "fix the files listed above; versioned migrations are V<integer>__<description>.sql"
        }
    };
    Error::input(format!(
        "{} problem{} in the {} migrations folder {}; nothing was run:\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        format.name(),
        dir.display(),
        list.join("\n")
    ))
    .hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, sql: &str) -> RawFile {
        RawFile { path: PathBuf::from(name), name: name.to_string(), bytes: sql.as_bytes().to_vec() }
    }

    #[test]
    fn names() {
        let m = |version, description: &str, role| {
            Ok(NameKind::Migration(FileName { version, description: description.into(), role }))
        };
        let cases = [
            ("1_init.sql", m(1, "init", Role::Simple)),
            ("0_init.sql", m(0, "init", Role::Simple)),
            ("20240101120000_create_users.up.sql", m(20240101120000, "create users", Role::Up)),
            ("0002_drop_x.down.sql", m(2, "drop x", Role::Down)),
            ("README.md", Ok(NameKind::NotSql)),
            (".gitkeep", Ok(NameKind::Hidden)),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_name(name), expected, "{name}");
        }
        for bad in ["init.sql", "v1_init.sql", "12.sql", "1_.sql", "99999999999999999999_x.sql", "-1_x.sql"] {
            assert!(parse_name(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn assembles_in_version_order_with_downs() {
        let (set, ignored) = assemble(
            vec![
                raw("10_b.up.sql", "SELECT 2;"),
                raw("2_a.sql", "-- shipgate:no-transaction\nSELECT 1;"),
                raw("10_b.down.sql", "SELECT 3;"),
                raw("notes.txt", "x"),
            ],
            Format::Sqlx,
        )
        .unwrap();
        assert_eq!(set.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2, 10]);
        assert!(set[0].up.directives.no_transaction);
        assert!(set[0].down.is_none());
        assert_eq!(set[1].down.as_ref().unwrap().sql, "SELECT 3;");
        assert_eq!(ignored, vec![PathBuf::from("notes.txt")]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut bad_utf8 = raw("5_latin1.sql", "");
        bad_utf8.bytes = vec![b'S', 0xff, b'X'];
        let problems = assemble(
            vec![
                raw("1_a.sql", "SELECT 1;"),
                raw("1_b.sql", "SELECT 1;"),
                raw("2_orphan.down.sql", "SELECT 1;"),
                raw("three.sql", "SELECT 1;"),
                raw("4_typo.sql", "-- shipgate:no-transacton\nSELECT 1;"),
                bad_utf8,
                raw("6_c.sql", "SELECT 1;"),
                raw("6_c.down.sql", "SELECT 1;"),
                raw("7_d.up.sql", "SELECT 1;"),
                raw("7_e.down.sql", "SELECT 1;"),
            ],
            Format::Sqlx,
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            ("1_a.sql", "duplicate version 1 (also used by 1_b.sql)"),
            ("1_b.sql", "duplicate version 1 (also used by 1_a.sql)"),
            ("2_orphan.down.sql", "without its .up.sql"),
            ("three.sql", "unparseable name"),
            ("4_typo.sql", "line 1: unknown directive"),
            ("5_latin1.sql", "not valid UTF-8 (first bad byte at offset 1)"),
            ("6_c.down.sql", "rename it to 6_c.up.sql"),
            ("7_e.down.sql", "does not match its up script 7_d.up.sql"),
        ];
        assert_eq!(text.len(), expect.len(), "{text:#?}");
        for (file, needle) in expect {
            assert!(
                text.iter().any(|t| t.starts_with(file) && t.contains(needle)),
                "no problem `{needle}` for {file} in {text:#?}"
            );
        }
    }
}
