//! What a deploy tells CI: the record of each phase, GitHub Actions workflow commands, the
//! step summary (Markdown), step outputs, and AWS console links. Pure text; the command
//! writes it where `GITHUB_STEP_SUMMARY` / `GITHUB_OUTPUT` point.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::view::revision_name;

/// A task definition this deploy registered or reused.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDefRecord {
    /// `migration`, or the service name.
    pub role: String,
    pub family: String,
    pub task_definition_arn: String,
    pub new: bool,
}

/// One migration task (master, tenants, or one shard of tenants).
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub phase: String,
    pub task_arn: Option<String>,
    pub succeeded: bool,
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub duration_ms: Option<u128>,
    /// (group, stream, region) of the watched container's log.
    pub log: Option<(String, String, String)>,
    /// `pre` or `post` in a deploy (before or after the rollout); none in a rollback.
    pub stage: Option<&'static str>,
    /// When it ended (with `duration_ms`, where it sits in the summary's timeline).
    #[serde(skip)]
    pub ended_at: Option<SystemTime>,
}

/// What became of a deploy's post phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostRecord {
    pub state: PostState,
    pub detail: String,
}

/// The post phase's end, as the `post-phase` output and `deploy_summary` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostState {
    Ran,
    /// Every pre task reported that nothing waits.
    NotNeeded,
    /// `--skip-post`.
    Deferred,
    /// A step before it did not complete (the rollout).
    NotRun,
    Failed,
}

impl PostState {
    pub fn name(self) -> &'static str {
        match self {
            PostState::Ran => "ran",
            PostState::NotNeeded => "not-needed",
            PostState::Deferred => "deferred",
            PostState::NotRun => "not-run",
            PostState::Failed => "failed",
        }
    }
}

/// How a deploy ended: the `result` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Success,
    Failure,
    /// SIGINT/SIGTERM: its tasks were told to stop.
    Cancelled,
}

impl Ended {
    /// The `result` output: `success`, `failure` or `cancelled`.
    pub fn name(self) -> &'static str {
        match self {
            Ended::Success => "success",
            Ended::Failure => "failure",
            Ended::Cancelled => "cancelled",
        }
    }
}

/// One service rollout.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecord {
    pub service: String,
    pub task_definition_arn: String,
    pub previous_task_definition_arn: String,
    pub deployment_id: Option<String>,
    pub succeeded: bool,
    pub result: String,
    pub duration_ms: u128,
    /// When it ended (with `duration_ms`, where it sits in the summary's timeline).
    #[serde(skip)]
    pub ended_at: Option<SystemTime>,
}

/// Everything a deploy did, for the summary, the outputs and `--output json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployRecord {
    pub command: &'static str,
    pub env: String,
    pub cluster: String,
    pub region: String,
    pub dry_run: bool,
    pub task_definitions: Vec<TaskDefRecord>,
    pub tasks: Vec<TaskRecord>,
    pub services: Vec<ServiceRecord>,
    /// Services put back on their previous task definition after a failure.
    pub rollbacks: Vec<ServiceRecord>,
    /// A deploy's post phase (none for a rollback, or a deploy without a migration task).
    pub post: Option<PostRecord>,
    pub succeeded: bool,
    /// Ended by SIGINT/SIGTERM (a cancelled CI job): its tasks were told to stop.
    pub cancelled: bool,
    pub message: String,
    pub duration_ms: u128,
}

impl DeployRecord {
    pub fn result(&self) -> Ended {
        match (self.succeeded, self.cancelled) {
            (true, _) => Ended::Success,
            (false, true) => Ended::Cancelled,
            (false, false) => Ended::Failure,
        }
    }
}

/// `::error title=...::message`.
pub fn error_annotation(title: &str, message: &str) -> String {
    crate::output::workflow_command("error", &[("title", title.to_string())], message)
}

/// The console page of a task.
pub fn task_url(region: &str, cluster: &str, task_arn: &str) -> String {
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    let id = task_arn.rsplit('/').next().unwrap_or(task_arn);
    format!("https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster}/tasks/{id}?region={region}")
}

/// The console page of a log stream. The console double-encodes path parts (`/` is `$252F`).
pub fn log_url(region: &str, group: &str, stream: &str) -> String {
    const PART: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, PART).to_string().replace('%', "$25");
    format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}",
        enc(group),
        enc(stream)
    )
}

/// A measured duration: `12.3s`, `4m05s`.
pub fn elapsed(ms: u128) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn ms(d: Option<u128>) -> String {
    d.map_or("–".into(), elapsed)
}

/// The closing lines of a deploy in text mode.
pub fn text_summary(r: &DeployRecord) -> String {
    let mut s = format!(
        "{} {} {} in {}: {}",
        r.command,
        r.env,
        match r.result() {
            Ended::Success => "succeeded",
            Ended::Cancelled => "CANCELLED",
            Ended::Failure => "FAILED",
        },
        elapsed(r.duration_ms),
        r.message
    );
    for t in &r.tasks {
        let task = t
            .task_arn
            .as_deref()
            .map_or("not started".to_string(), |a| format!("task {}", a.rsplit('/').next().unwrap_or(a)));
        s.push_str(&format!("\n  migration {:<14} {} ({task}, {})", t.phase, t.outcome, ms(t.duration_ms)));
    }
    for (what, list) in [("service", &r.services), ("rolled back", &r.rollbacks)] {
        for v in list {
            s.push_str(&format!(
                "\n  {what} {:<12} {} ({} -> {}{}, {})",
                v.service,
                v.result,
                revision_name(&v.previous_task_definition_arn),
                revision_name(&v.task_definition_arn),
                v.deployment_id.as_deref().map_or(String::new(), |d| format!(", deployment {d}")),
                elapsed(v.duration_ms)
            ));
        }
    }
    if let Some(post) = &r.post {
        s.push_str(&format!("\n  post phase {:<10} {}", post.state.name(), post.detail));
    }
    s
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown written to `$GITHUB_STEP_SUMMARY`.
pub fn step_summary(r: &DeployRecord) -> String {
    let mut s = format!(
        "## shipgate {} `{}` {}\n\n{}\n\n",
        r.command,
        r.env,
        match r.result() {
            Ended::Success => "✅",
            Ended::Cancelled => "⏹️ cancelled",
            Ended::Failure => "❌",
        },
        cell(&r.message)
    );
    s.push_str(&format!(
        "Cluster `{}` in `{}`, {} in all.\n\n",
        r.cluster,
        r.region,
        ms(Some(r.duration_ms))
    ));
    if !r.task_definitions.is_empty() {
        s.push_str("### Task definitions\n\n| for | task definition | |\n|---|---|---|\n");
        for t in &r.task_definitions {
            let what = if t.new { "registered" } else { "unchanged, reused" };
            s.push_str(&format!("| {} | `{}` | {what} |\n", t.role, revision_name(&t.task_definition_arn)));
        }
        s.push('\n');
    }
    // A deploy's three stages: migrations before the rollout, the rollout, after it.
    let staged = r.post.is_some();
    let pre: Vec<&TaskRecord> = r.tasks.iter().filter(|t| t.stage != Some("post")).collect();
    let post: Vec<&TaskRecord> = r.tasks.iter().filter(|t| t.stage == Some("post")).collect();
    let title = if staged { "1. Migrations before the rollout (pre)" } else { "Migrations" };
    task_table(&mut s, title, &pre, r);
    let rollouts = if staged { "2. Service rollouts" } else { "Service rollouts" };
    for (title, list) in [(rollouts, &r.services), ("Rolled back", &r.rollbacks)] {
        if list.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "### {title}\n\n| service | task definition | deployment | duration | result |\n"
        ));
        s.push_str("|---|---|---|---|---|\n");
        for v in list {
            s.push_str(&format!(
                "| {} | `{}` → `{}` | {} | {} | {} {} |\n",
                v.service,
                revision_name(&v.previous_task_definition_arn),
                revision_name(&v.task_definition_arn),
                v.deployment_id.as_deref().map_or("–".to_string(), |d| format!("`{d}`")),
                ms(Some(v.duration_ms)),
                if v.succeeded { "✅" } else { "❌" },
                cell(&v.result),
            ));
        }
        s.push('\n');
    }
    if let Some(p) = &r.post {
        let title = "3. Migrations after the rollout (post)";
        if post.is_empty() {
            s.push_str(&format!("### {title}\n\n{}: {}\n\n", p.state.name(), cell(&p.detail)));
        } else {
            task_table(&mut s, title, &post, r);
        }
    }
    if let Some(chart) = timeline(r) {
        s.push_str(&chart);
    }
    s
}

/// The stages as a Mermaid `gantt` chart (GitHub renders it in the step summary): each
/// migration task and rollout as a bar from its start to its end, a failed one marked
/// `crit`. Nothing when no step has both an end and a duration.
pub fn timeline(r: &DeployRecord) -> Option<String> {
    let bar = |label: &str, ended: Option<SystemTime>, ms: Option<u128>, ok: bool| {
        let (ended, ms) = (ended?, ms?);
        let end = ended.duration_since(UNIX_EPOCH).ok()?;
        let start = end.saturating_sub(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)));
        // A colon ends a Mermaid task's name, a `#` starts a comment.
        let name: String =
            label.chars().map(|c| if matches!(c, ':' | '#' | ';') { ' ' } else { c }).collect();
        let state = if ok { "done" } else { "crit" };
        let (start, end) = (start.as_millis(), end.as_millis().max(start.as_millis() + 1));
        Some(format!("    {name} :{state}, {start}, {end}\n"))
    };
    let mut sections: Vec<(&str, Vec<String>)> = Vec::new();
    let tasks = |stage: Option<&str>| -> Vec<String> {
        r.tasks
            .iter()
            .filter(|t| (t.stage == Some("post")) == (stage == Some("post")))
            .filter_map(|t| bar(&t.phase, t.ended_at, t.duration_ms, t.succeeded))
            .collect()
    };
    sections.push(("migrations before the rollout", tasks(None)));
    let services = |list: &[ServiceRecord]| -> Vec<String> {
        list.iter()
            // A service left alone did not roll out: no bar.
            .filter(|v| !v.result.starts_with("unchanged"))
            .filter_map(|v| bar(&v.service, v.ended_at, Some(v.duration_ms), v.succeeded))
            .collect()
    };
    sections.push(("service rollouts", services(&r.services)));
    sections.push(("rolled back", services(&r.rollbacks)));
    sections.push(("migrations after the rollout", tasks(Some("post"))));
    sections.retain(|(_, bars)| !bars.is_empty());
    if sections.is_empty() {
        return None;
    }
    let mut chart =
        String::from("### Timeline\n\n```mermaid\ngantt\n    dateFormat x\n    axisFormat %H:%M:%S\n");
    for (title, bars) in sections {
        chart.push_str(&format!("    section {title}\n"));
        for b in bars {
            chart.push_str(&b);
        }
    }
    chart.push_str("```\n\n");
    Some(chart)
}

/// One table of migration tasks under `title` (nothing when there are none).
fn task_table(s: &mut String, title: &str, tasks: &[&TaskRecord], r: &DeployRecord) {
    if !tasks.is_empty() {
        s.push_str(&format!(
            "### {title}\n\n| phase | task | duration | exit code | result | stop reason | logs |\n"
        ));
        s.push_str("|---|---|---|---|---|---|---|\n");
        for t in tasks {
            let task = match &t.task_arn {
                // The local platform's processes have no console page.
                Some(id) if !id.starts_with("arn:") => id.rsplit('/').next().unwrap_or(id).to_string(),
                Some(arn) => format!(
                    "[{}]({})",
                    arn.rsplit('/').next().unwrap_or(arn),
                    task_url(&r.region, &r.cluster, arn)
                ),
                None => "not started".into(),
            };
            let logs = match &t.log {
                Some((group, stream, region)) => format!("[log stream]({})", log_url(region, group, stream)),
                None => "–".into(),
            };
            s.push_str(&format!(
                "| {} | {task} | {} | {} | {} {} | {} | {logs} |\n",
                t.phase,
                ms(t.duration_ms),
                t.exit_code.map_or("–".into(), |c| c.to_string()),
                if t.succeeded { "✅" } else { "❌" },
                cell(&t.outcome),
                cell(t.stopped_reason.as_deref().unwrap_or("–")),
            ));
        }
        s.push('\n');
    }
}

/// The outputs every deploy may set; `action.yml` declares each of them. Besides these, one
/// `task-definition-arn-<service>` per service, which an action cannot declare ahead.
pub const OUTPUT_NAMES: [&str; 8] = [
    "migration-task-arn",
    "migration-exit-code",
    "migration-task-arns",
    "migration-task-definition-arn",
    "task-definition-arns",
    "deployment-ids",
    "post-phase",
    "result",
];

/// The step outputs (`$GITHUB_OUTPUT`), in a stable order.
pub fn outputs(r: &DeployRecord) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(first) = r.tasks.first() {
        out.push(("migration-task-arn".into(), first.task_arn.clone().unwrap_or_default()));
        // The exit code of the first failed task, else of the first task.
        let decisive = r.tasks.iter().find(|t| !t.succeeded).unwrap_or(first);
        out.push(("migration-exit-code".into(), decisive.exit_code.map_or(String::new(), |c| c.to_string())));
        let all: Vec<&str> = r.tasks.iter().filter_map(|t| t.task_arn.as_deref()).collect();
        out.push(("migration-task-arns".into(), all.join(",")));
    }
    for t in &r.task_definitions {
        let name = if t.role == "migration" {
            "migration-task-definition-arn".to_string()
        } else {
            format!("task-definition-arn-{}", output_name(&t.role))
        };
        out.push((name, t.task_definition_arn.clone()));
    }
    if !r.task_definitions.is_empty() {
        let all: BTreeMap<&str, &str> =
            r.task_definitions.iter().map(|t| (t.role.as_str(), t.task_definition_arn.as_str())).collect();
        out.push(("task-definition-arns".into(), serde_json::to_string(&all).expect("strings serialize")));
    }
    if !r.services.is_empty() {
        let ids: BTreeMap<&str, &str> = r
            .services
            .iter()
            .filter_map(|s| Some((s.service.as_str(), s.deployment_id.as_deref()?)))
            .collect();
        out.push(("deployment-ids".into(), serde_json::to_string(&ids).expect("strings serialize")));
    }
    if let Some(post) = &r.post {
        out.push(("post-phase".into(), post.state.name().into()));
    }
    out.push(("result".into(), r.result().name().into()));
    out
}

/// An output name GitHub accepts: letters, digits, `-` and `_`.
fn output_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// `name=value` lines for `$GITHUB_OUTPUT`.
pub fn output_lines(outputs: &[(String, String)]) -> String {
    outputs.iter().map(|(k, v)| format!("{k}={}\n", v.replace('\n', " "))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(crate::output::escape_workflow("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(
            error_annotation("deploy: migrations", "task abc failed\nexit 1"),
            "::error title=deploy%3A migrations::task abc failed%0Aexit 1"
        );
    }

    #[test]
    fn console_links() {
        assert_eq!(
            task_url(
                "eu-west-1",
                "arn:aws:ecs:eu-west-1:1:cluster/prod",
                "arn:aws:ecs:eu-west-1:1:task/prod/abc123"
            ),
            "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/prod/tasks/abc123?region=eu-west-1"
        );
        assert_eq!(
            log_url("us-east-1", "/ecs/app", "db/migrate/abc"),
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/$252Fecs$252Fapp/log-events/db$252Fmigrate$252Fabc"
        );
    }

    #[test]
    fn the_timeline_puts_each_task_and_rollout_where_it_ran() {
        let at = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s));
        let task = |phase: &str, stage: Option<&'static str>, ok: bool, ended: u64, ms: u128| TaskRecord {
            phase: phase.into(),
            task_arn: None,
            succeeded: ok,
            outcome: String::new(),
            exit_code: None,
            stop_code: None,
            stopped_reason: None,
            duration_ms: Some(ms),
            log: None,
            stage,
            ended_at: at(ended),
        };
        let svc = |name: &str, result: &str, ended: u64, ms: u128| ServiceRecord {
            service: name.into(),
            task_definition_arn: String::new(),
            previous_task_definition_arn: String::new(),
            deployment_id: None,
            succeeded: true,
            result: result.into(),
            duration_ms: ms,
            ended_at: at(ended),
        };
        let r = DeployRecord {
            tasks: vec![
                task("master", Some("pre"), true, 30, 30_000),
                task("tenants 1/2", Some("pre"), true, 50, 20_000),
                task("tenants 2/2", Some("pre"), false, 45, 15_000),
                task("master post", Some("post"), true, 100, 10_000),
            ],
            services: vec![
                svc("api", "completed", 90, 40_000),
                svc("worker", "unchanged: already on it", 50, 3),
            ],
            ..DeployRecord::default()
        };
        let chart = timeline(&r).unwrap();
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(
            lines,
            [
                "### Timeline",
                "",
                "```mermaid",
                "gantt",
                "    dateFormat x",
                "    axisFormat %H:%M:%S",
                "    section migrations before the rollout",
                "    master :done, 1700000000000, 1700000030000",
                "    tenants 1/2 :done, 1700000030000, 1700000050000",
                "    tenants 2/2 :crit, 1700000030000, 1700000045000",
                "    section service rollouts",
                "    api :done, 1700000050000, 1700000090000",
                "    section migrations after the rollout",
                "    master post :done, 1700000090000, 1700000100000",
                "```",
                "",
            ]
        );
        assert!(timeline(&DeployRecord::default()).is_none(), "no chart without a timed step");
        assert!(step_summary(&r).contains("```mermaid\ngantt\n"));
    }

    #[test]
    fn outputs_name_the_decisive_task_and_every_service() {
        let task = |arn: &str, ok: bool, code: i32| TaskRecord {
            phase: "x".into(),
            task_arn: Some(arn.into()),
            succeeded: ok,
            outcome: String::new(),
            exit_code: Some(code),
            stop_code: None,
            stopped_reason: None,
            duration_ms: None,
            log: None,
            stage: None,
            ended_at: None,
        };
        let svc = |name: &str, id: &str| ServiceRecord {
            service: name.into(),
            task_definition_arn: String::new(),
            previous_task_definition_arn: String::new(),
            deployment_id: Some(id.into()),
            succeeded: true,
            result: String::new(),
            duration_ms: 0,
            ended_at: None,
        };
        let r = DeployRecord {
            tasks: vec![task("t/master", true, 0), task("t/s1", true, 0), task("t/s2", false, 4)],
            task_definitions: vec![
                TaskDefRecord {
                    role: "migration".into(),
                    family: "m".into(),
                    task_definition_arn: "m:1".into(),
                    new: true,
                },
                TaskDefRecord {
                    role: "api.v2".into(),
                    family: "a".into(),
                    task_definition_arn: "a:3".into(),
                    new: false,
                },
            ],
            services: vec![svc("worker", "ecs-svc/2"), svc("api.v2", "ecs-svc/1")],
            succeeded: false,
            ..DeployRecord::default()
        };
        let text = output_lines(&outputs(&r));
        assert_eq!(
            text,
            "migration-task-arn=t/master\nmigration-exit-code=4\nmigration-task-arns=t/master,t/s1,t/s2\n\
             migration-task-definition-arn=m:1\ntask-definition-arn-api-v2=a:3\n\
             task-definition-arns={\"api.v2\":\"a:3\",\"migration\":\"m:1\"}\n\
             deployment-ids={\"api.v2\":\"ecs-svc/1\",\"worker\":\"ecs-svc/2\"}\nresult=failure\n"
        );
        for (name, _) in outputs(&r) {
            assert!(
                OUTPUT_NAMES.contains(&name.as_str()) || name.starts_with("task-definition-arn-"),
                "{name}"
            );
        }
    }
}
