//! Results on stdout: short lines for people, or one JSON object per event for machines
//! (`--output json`), always ending with a summary (or error) object a script can parse.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::fleet::state::{Outcome, Tally};
use crate::redact;

/// One step of a plan, for `--dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    pub version: i64,
    pub description: String,
    pub file: String,
    pub no_transaction: bool,
    pub lock_timeout: String,
    pub statement_timeout: String,
    pub late: bool,
    /// `pre` or `post` (see `migrate::phase`).
    pub phase: &'static str,
    /// Each statement with the lock it takes (`migrate up --dry-run`'s lock plan).
    pub statements: Vec<crate::migrate::lint::StatementLock>,
}

/// One failed tenant in a fleet summary.
#[derive(Debug, Clone, Serialize)]
pub struct TenantFailure {
    pub tenant: String,
    pub version: Option<i64>,
    pub reason: String,
}

/// Everything a migrate command reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Which folder was read, in which layout, and how much of it (text output has the same
    /// as a log line on stderr).
    Source {
        dir: String,
        layout: &'static str,
        detected: bool,
        files_read: usize,
        migrations: usize,
    },
    Plan {
        schema: String,
        direction: &'static str,
        dry_run: bool,
        migrations: Vec<PlanItem>,
        /// Post migrations a `--phase pre` run leaves for the post phase.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        waiting: Vec<i64>,
    },
    /// The line a `--phase pre` run ends with; the deploy reads it from the task's logs to
    /// decide whether a post task runs.
    PhaseReport(crate::migrate::phase::Report),
    Applied {
        version: i64,
        description: String,
        duration_ms: u128,
        no_transaction: bool,
        late: bool,
    },
    Reverted {
        version: i64,
        description: String,
        duration_ms: u128,
    },
    Baselined {
        version: i64,
        description: String,
    },
    /// One line of `migrate adopt`'s mapping: their row -> our version.
    Adopt {
        tool: crate::migrate::adopt::Tool,
        #[serde(flatten)]
        line: crate::migrate::adopt::Line,
    },
    Repaired {
        version: i64,
        action: &'static str,
    },
    Created {
        path: String,
    },
    Summary {
        command: &'static str,
        schema: Option<String>,
        changed: usize,
        duration_ms: u128,
        version: Option<i64>,
        message: String,
    },
    /// A task definition was registered, or an identical revision reused.
    Registered {
        family: String,
        task_definition_arn: String,
        new: bool,
        diff: Option<String>,
    },
    TaskStarted {
        task_arn: String,
        cluster: String,
        task_definition_arn: String,
        attempt: u32,
    },
    /// `--detach`: the task runs on; this is how to follow it again.
    Detached {
        task_arn: String,
        attach: String,
    },
    Log {
        container: Option<String>,
        timestamp: Option<i64>,
        message: String,
    },
    TaskStopped {
        task_arn: String,
        succeeded: bool,
        outcome: String,
        exit_code: Option<i32>,
        stop_code: Option<String>,
        stopped_reason: Option<String>,
        lines: u64,
        streams: usize,
    },
    /// What a fleet run did to one tenant.
    Tenant {
        command: &'static str,
        tenant: String,
        #[serde(flatten)]
        outcome: Outcome,
        duration_ms: u128,
    },
    /// The end of a fleet run: counts, and every failed tenant with its reason.
    FleetSummary {
        command: &'static str,
        #[serde(flatten)]
        tally: Tally,
        failures: Vec<TenantFailure>,
        duration_ms: u128,
        message: String,
    },
    Error {
        exit_code: u8,
        message: String,
        hint: Option<String>,
    },
    /// A deploy phase started or ended (`state`: started, succeeded, failed, skipped).
    Phase {
        phase: String,
        state: &'static str,
        message: String,
    },
    /// `deploy --dry-run`: one thing the deploy would do (`action`: register, reuse, run,
    /// update, unchanged), with the task definition diff for `register`.
    Planned {
        action: &'static str,
        target: String,
        detail: Option<String>,
    },
    /// A service rollout changed state.
    Rollout {
        service: String,
        deployment_id: Option<String>,
        state: String,
        message: String,
    },
    /// A new service event, or the stopped reason of one of the new deployment's tasks.
    ServiceMessage {
        service: String,
        message: String,
    },
    /// The end of a deploy or rollback.
    DeploySummary(crate::deploy::report::DeployRecord),
    /// Before a run: a session that holds a lock a pending statement will wait for.
    Blocker {
        pid: i32,
        user: String,
        application: String,
        state: String,
        /// How long its transaction has been open.
        open_s: u64,
        /// The first word of its query (the text may hold values, so it is not shown).
        query: String,
        holds: String,
        relation: String,
        needs: &'static str,
    },
    /// One lint finding.
    Finding(crate::migrate::lint::Finding),
    /// `--explain`: the lock one statement takes.
    StatementLock(crate::migrate::lint::StatementLock),
    /// The end of a lint: counts per severity.
    LintSummary {
        sets: Vec<String>,
        linted: usize,
        skipped: usize,
        errors: usize,
        warnings: usize,
        allowed: usize,
        message: String,
    },
}

/// Where results go: stdout, or (in tests) a list of lines.
#[derive(Debug, Clone)]
pub struct Reporter {
    format: OutputFormat,
    captured: Option<Arc<Mutex<Vec<String>>>>,
    /// Put before every log line's container (a shard of a tenant run: `tenants 2/4`).
    prefix: Option<String>,
    /// Log lines kept, besides being printed, when `keep` says so (see [`Reporter::tapped`]).
    tap: Option<Tap>,
}

/// Where a tapped reporter keeps the log lines it was asked to.
#[derive(Debug, Clone)]
struct Tap {
    keep: fn(&str) -> bool,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Reporter {
    pub fn new(format: OutputFormat) -> Self {
        Reporter { format, captured: None, prefix: None, tap: None }
    }

    /// A reporter that keeps its lines instead of printing them.
    pub fn capturing(format: OutputFormat) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Reporter { format, captured: Some(lines.clone()), prefix: None, tap: None }, lines)
    }

    /// The same reporter, also keeping the messages of the log lines `keep` accepts: what a
    /// task's runner said for the deploy to read (its phase report).
    pub fn tapped(&self, keep: fn(&str) -> bool) -> (Reporter, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Reporter { tap: Some(Tap { keep, lines: lines.clone() }), ..self.clone() }, lines)
    }

    /// The same reporter, labelling log lines with `prefix` (tasks followed side by side).
    pub fn prefixed(&self, prefix: &str) -> Reporter {
        Reporter { prefix: Some(prefix.to_string()), ..self.clone() }
    }

    /// A line printed as is: a CI workflow command. On stdout in text mode; on stderr with
    /// `--output json`, so stdout stays one JSON object per line.
    pub fn raw(&self, line: &str) {
        self.raw_unredacted(&redact::redact(line));
    }

    /// [`Reporter::raw`] without masking: only for `::add-mask::`, which must carry the value.
    pub fn raw_unredacted(&self, line: &str) {
        if let Some(captured) = &self.captured {
            captured.lock().unwrap_or_else(|e| e.into_inner()).push(line.to_string());
        } else if self.format == OutputFormat::Json {
            crate::progress::suspend(|| eprintln!("{line}"));
        } else {
            crate::progress::suspend(|| println!("{line}"));
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    pub fn emit(&self, event: &Event) {
        if let Some(line) = self.format_event(event) {
            self.print_line(&line);
        }
    }

    /// An event as one line in this reporter's format (none: not shown in text mode).
    fn format_event(&self, event: &Event) -> Option<String> {
        match self.format {
            OutputFormat::Json => Some(serde_json::to_string(event).expect("events serialize")),
            OutputFormat::Text | OutputFormat::Github => text(event),
        }
    }

    /// Log lines of one container, printed as one batch (a page can hold 10,000 lines).
    pub fn log_lines(&self, container: Option<&str>, lines: &[(Option<i64>, String)]) {
        if lines.is_empty() {
            return;
        }
        let label = match (&self.prefix, container) {
            (Some(p), Some(c)) => Some(format!("{p} {c}")),
            (Some(p), None) => Some(p.clone()),
            (None, c) => c.map(str::to_string),
        };
        if let Some(tap) = &self.tap {
            let kept = lines.iter().filter(|(_, m)| (tap.keep)(m)).map(|(_, m)| m.clone());
            tap.lines.lock().unwrap_or_else(|e| e.into_inner()).extend(kept);
        }
        let mut batch = String::new();
        for (timestamp, message) in lines {
            let event =
                Event::Log { container: label.clone(), timestamp: *timestamp, message: message.clone() };
            if let Some(line) = self.format_event(&event) {
                batch.push_str(&line);
                batch.push('\n');
            }
        }
        self.print_line(batch.strip_suffix('\n').unwrap_or(&batch));
    }

    /// A whole document (status): JSON as is, or prepared text.
    pub fn document(&self, json: &serde_json::Value, text: &str) {
        match self.format {
            OutputFormat::Json => self.print_line(&json.to_string()),
            OutputFormat::Text | OutputFormat::Github => self.print_line(text.trim_end()),
        }
    }

    fn print_line(&self, line: &str) {
        let line = redact::redact(line);
        if let Some(captured) = &self.captured {
            let mut lines = captured.lock().unwrap_or_else(|e| e.into_inner());
            lines.extend(line.lines().map(str::to_string));
            return;
        }
        crate::progress::suspend(|| {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not our failure; nothing useful to do about it.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
    }
}

fn ms(d: u128) -> String {
    if d < 1000 { format!("{d} ms") } else { format!("{:.1} s", d as f64 / 1000.0) }
}

/// An error's message on one line, without its hint (summaries list many of them).
fn without_hint(text: &str) -> String {
    let lines: Vec<&str> = text.lines().take_while(|l| !l.starts_with("  hint: ")).map(str::trim).collect();
    lines.join(" ")
}

fn text(event: &Event) -> Option<String> {
    Some(match event {
        Event::Source { .. } => return None,
        Event::Plan { schema, direction, dry_run, migrations, waiting } => {
            let verb = if *direction == "up" { "apply" } else { "revert" };
            let mut s = if migrations.is_empty() {
                format!("nothing to {verb} in schema `{schema}`")
            } else {
                format!(
                    "{}{} migration{} to {verb} in schema `{schema}`:",
                    if *dry_run { "dry run: " } else { "" },
                    migrations.len(),
                    if migrations.len() == 1 { "" } else { "s" }
                )
            };
            for m in migrations {
                let mut flags = vec![
                    format!("lock_timeout={}", m.lock_timeout),
                    format!("statement_timeout={}", m.statement_timeout),
                ];
                if m.no_transaction {
                    flags.insert(0, "no-transaction".into());
                }
                if m.late {
                    flags.push("late: older than the newest applied migration".into());
                }
                if m.phase != "pre" {
                    flags.push(format!("phase {}", m.phase));
                }
                s.push_str(&format!("\n  {:>14}  {}  [{}]", m.version, m.description, flags.join(", ")));
                for st in m.statements.iter().filter(|st| st.lock.is_some()) {
                    s.push_str(&format!(
                        "\n  {:>14}    line {}: {}  {}",
                        "",
                        st.line,
                        st.lock.as_deref().unwrap_or_default(),
                        st.statement
                    ));
                }
            }
            if !waiting.is_empty() {
                let list: Vec<String> = waiting.iter().map(i64::to_string).collect();
                s.push_str(&format!(
                    "\n  {} for the post phase: {}",
                    crate::migrate::phase::waiting_words(waiting.len()),
                    list.join(", ")
                ));
            }
            if *dry_run {
                s.push_str("\n(dry run: nothing was changed)");
            }
            s
        }
        Event::PhaseReport(report) => report.line(),
        Event::Applied { version, description, duration_ms, no_transaction, late } => format!(
            "applied   {version:>14}  {description} ({}){}{}",
            ms(*duration_ms),
            if *no_transaction { " [no-transaction]" } else { "" },
            if *late { " [late: older than the newest applied migration]" } else { "" }
        ),
        Event::Reverted { version, description, duration_ms } => {
            format!("reverted  {version:>14}  {description} ({})", ms(*duration_ms))
        }
        Event::Baselined { version, description } => format!("baselined {version:>14}  {description}"),
        Event::Adopt { tool, line } => {
            let theirs = line.theirs.clone().unwrap_or_else(|| format!("(no {} row)", tool.name()));
            let ours = line.version.map_or("-".to_string(), |v| v.to_string());
            let note = if line.note.is_empty() { String::new() } else { format!("  ({})", line.note) };
            format!("{:<9}  {theirs:<44} -> {ours:>14}  {}{note}", line.verdict.as_str(), line.description)
        }
        Event::Repaired { version, action } => format!("repaired  {version:>14}  ({action})"),
        Event::Created { path } => format!("created {path}"),
        Event::Registered { family, task_definition_arn, new, diff } => {
            let mut s = match (new, diff) {
                (true, Some(diff)) => format!("{diff}registered {task_definition_arn} (new revision)"),
                (true, None) => format!("registered {task_definition_arn} (first revision of `{family}`)"),
                (false, _) => format!("unchanged: reusing {task_definition_arn}"),
            };
            if s.ends_with('\n') {
                s.pop();
            }
            s
        }
        Event::Detached { task_arn, attach } => format!("{task_arn}\n{attach}"),
        Event::Log { container, message, .. } => {
            let message = message.strip_suffix('\n').unwrap_or(message);
            match container {
                Some(c) => format!("[{c}] {message}"),
                None => message.to_string(),
            }
        }
        // Progress and verdicts go to stderr in text mode, so stdout carries only the logs.
        Event::TaskStarted { .. } | Event::TaskStopped { .. } => return None,
        Event::Tenant { command, tenant, outcome, duration_ms } => match outcome {
            Outcome::Changed { to, count, .. } if *command == "adopt-dry-run" => format!(
                "would adopt {tenant}: {count} migration{}, up to {}",
                if *count == 1 { "" } else { "s" },
                to.map_or("no migration".to_string(), |v| v.to_string()),
            ),
            Outcome::Changed { to, count, .. } => format!(
                "{} {tenant}: {count} migration{}, now at {} ({})",
                match *command {
                    "down" => "reverted",
                    "adopt" => "adopted",
                    _ => "migrated",
                },
                if *count == 1 { "" } else { "s" },
                to.map_or("no migration".to_string(), |v| v.to_string()),
                ms(*duration_ms)
            ),
            // Thousands of these would drown the ones that matter; JSON has them all.
            Outcome::Current { .. } => return None,
            Outcome::Failed { reason, .. } => format!("FAILED {tenant}: {}", reason.replace('\n', "\n    ")),
            Outcome::Skipped { reason } => {
                format!("skipped `{}`: {reason}", crate::fleet::names::shown(tenant))
            }
            Outcome::NotAttempted { .. } => return None,
        },
        Event::FleetSummary { message, failures, .. } => {
            let mut s = message.clone();
            for f in failures {
                s.push_str(&format!("\n  {}: {}", f.tenant, without_hint(&f.reason)));
            }
            s
        }
        Event::Summary { message, .. } => message.clone(),
        // Errors go to stderr in text mode (main prints them).
        Event::Error { .. } => return None,
        // Progress goes to stderr in text mode, like a task's.
        Event::Phase { .. } | Event::Rollout { .. } | Event::ServiceMessage { .. } => return None,
        Event::Planned { action, target, detail } => {
            let mut s = format!("{action:<10} {target}");
            if let Some(detail) = detail {
                s.push('\n');
                s.push_str(detail.trim_end());
            }
            s
        }
        Event::DeploySummary(record) => crate::deploy::report::text_summary(record),
        Event::Finding(f) => finding_text(f),
        Event::Blocker { pid, user, application, state, open_s, query, holds, relation, needs } => format!(
            "blocker: pid {pid} ({user}{}, {state}, transaction open {open_s} s{}) holds {holds} on {relation}; \
             a pending statement needs {needs} there and waits for it (lock_timeout, then retries); \
             pg_terminate_backend({pid}) ends it",
            if application.is_empty() { String::new() } else { format!(" via {application}") },
            if query.is_empty() { String::new() } else { format!(", last {query}") },
        ),
        Event::StatementLock(l) => format!(
            "{}:{}: {}  {}",
            l.file,
            l.line,
            l.lock.as_deref().unwrap_or("no lock on an existing relation"),
            l.statement
        ),
        Event::LintSummary { message, .. } => message.clone(),
    })
}

/// `FILE:LINE:COL: severity RULE: message`, then the statement, its lock and the fix.
fn finding_text(f: &crate::migrate::lint::Finding) -> String {
    let verdict = if f.allowed.is_some() { "allowed" } else { f.severity.name() };
    let mut s = format!("{}:{}:{}: {verdict} {}: {}", f.file, f.line, f.column, f.rule, f.message);
    if !f.statement.is_empty() {
        s.push_str(&format!("\n  statement: {}", f.statement));
    }
    if let Some(lock) = &f.lock {
        s.push_str(&format!("\n  lock: {lock}"));
    }
    if let Some(size) = &f.size {
        s.push_str(&format!("\n  size: {size}"));
    }
    match (&f.allowed, &f.help) {
        (Some(reason), _) => s.push_str(&format!("\n  allowed: {reason}")),
        (None, Some(help)) => s.push_str(&format!("\n  help: {help}")),
        (None, None) => {}
    }
    s
}

/// A GitHub Actions workflow command with properties: `::error file=a.sql,line=3::message`.
pub fn workflow_command(command: &str, properties: &[(&str, String)], message: &str) -> String {
    let props: Vec<String> = properties
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_workflow(v).replace(':', "%3A").replace(',', "%2C")))
        .collect();
    let sep = if props.is_empty() { "" } else { " " };
    format!("::{command}{sep}{}::{}", props.join(","), escape_workflow(message))
}

/// Escape a workflow command's data (`%`, CR, LF), as the runner unescapes it.
pub fn escape_workflow(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Append to a file the CI runner reads (`$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT`); failing to
/// is worth a warning, not a failed command.
pub fn append_file(path: &std::path::Path, text: &str, what: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot write {what} ({}): {e}", path.display());
    }
}

/// Write a whole generated document (completions, man page, reference) to stdout. A closed
/// pipe (`| head`) is not a failure.
pub fn document(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}
