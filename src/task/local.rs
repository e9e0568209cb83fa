//! The local platform: a migration task definition's container run as a process on this
//! machine, so a deploy can be rehearsed against a laptop's database with the same
//! environment, the same log following and the same verdict as on Fargate.
//!
//! The decisions are pure: which command and environment a container definition means
//! ([`plan`]), where a `secrets` entry's value comes from ([`secret_from`]), and what a
//! process exit looks like as a stopped task ([`stopped_task`]) so that `outcome::classify`
//! and the task verdict judge it exactly as they judge an ECS task. [`run`] is the edge.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::follow::{EndedBy, Followed};
use super::view::{ContainerView, TaskView};
use crate::db::secret::SecretRef;
use crate::error::{Error, Result};
use crate::output::Reporter;
use crate::shutdown::Shutdown;

/// What the shipgate image runs when a container definition sets neither `entryPoint` nor
/// `command`: its `ENTRYPOINT ["shipgate"]` and `CMD ["migrate"]`.
pub const IMAGE_DEFAULT_COMMAND: [&str; 2] = ["shipgate", "migrate"];

/// Variables of the operator's environment the process keeps, with every `AWS_*` one. A
/// container starts with none of them; these let the command be found, and let it reach AWS
/// with the operator's credentials where the task role would serve it on ECS.
pub const INHERITED: [&str; 9] =
    ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHIPGATE_LOG"];

/// The variables of this process that [`plan`] passes on.
pub fn inherited_environment() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || INHERITED.contains(&k.as_str())).collect()
}

/// ECS's default `stopTimeout`: how long a stopped container gets between SIGTERM and SIGKILL.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long log lines are still read after the process exited (a child it left behind may
/// hold the pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// One container, ready to run as a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTask {
    pub container: String,
    pub argv: Vec<String>,
    /// The whole environment of the process (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub stop_timeout: Duration,
}

/// Where a container `secrets` entry's `valueFrom` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    /// A Secrets Manager secret, and the JSON key ECS would pick out of it.
    SecretsManager { secret: SecretRef, key: Option<String> },
    /// A Systems Manager parameter, which shipgate does not read.
    Parameter(String),
}

/// The container definition named `name` in a rendered task definition.
pub fn container_definition<'a>(td: &'a Value, name: &str) -> Option<&'a Value> {
    td.get("containerDefinitions")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

/// `secrets` of a container definition: (name, valueFrom).
pub fn secrets_of(container: &Value) -> Vec<(String, String)> {
    pairs(container.get("secrets"), "valueFrom")
}

fn pairs(list: Option<&Value>, value_key: &str) -> Vec<(String, String)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    list.and_then(Value::as_array)
        .map(|items| items.iter().map(|item| (text(item, "name"), text(item, value_key))).collect())
        .unwrap_or_default()
}

/// Parse a `valueFrom`: `arn:…:secretsmanager:…:secret:NAME[:json-key[:version-stage[:version-id]]]`,
/// or anything else (an SSM parameter name or ARN).
pub fn secret_from(value_from: &str) -> Result<SecretFrom> {
    let parts: Vec<&str> = value_from.split(':').collect();
    if parts.len() < 7 || parts[0] != "arn" || parts[2] != "secretsmanager" {
        return Ok(SecretFrom::Parameter(value_from.to_string()));
    }
    let field = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| p.to_string());
    if field(9).is_some() || parts.len() > 10 {
        return Err(Error::input(format!(
            "valueFrom `{value_from}` pins a version id, which the local platform does not read"
        )));
    }
    Ok(SecretFrom::SecretsManager {
        secret: SecretRef { id: parts[..7].join(":"), stage: field(8) },
        key: field(7),
    })
}

/// Pick ECS's JSON key out of a secret's text (the whole text when there is no key).
pub fn secret_value(text: &str, key: Option<&str>, what: &str) -> Result<String> {
    let Some(key) = key else { return Ok(text.to_string()) };
    let parsed: Value = serde_json::from_str(text).map_err(|_| {
        Error::input(format!("{what}: the secret is not a JSON object, so it has no key `{key}`"))
    })?;
    match parsed.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        _ => Err(Error::input(format!("{what}: the secret has no text key `{key}`"))),
    }
}

/// The process a container definition means.
///
/// The command is `entryPoint` followed by `command`, or the shipgate image's own when the
/// definition sets neither; `shipgate` is this very binary. The environment is the inherited
/// few, then the definition's `environment`, then its `secrets` (values given), then the
/// step's variables (`MIGRATION_TYPE`, `SHIPGATE_SHARD`), later ones winning as ECS's
/// overrides do.
pub fn plan(
    container: &Value,
    secrets: &BTreeMap<String, String>,
    step_env: &[(String, String)],
    inherited: &[(String, String)],
    this_binary: &Path,
) -> Result<LocalTask> {
    let name = container.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let strings = |key: &str| -> Vec<String> {
        container
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut argv = strings("entryPoint");
    argv.extend(strings("command"));
    if argv.is_empty() {
        argv = IMAGE_DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect();
    }
    if argv[0] == "shipgate" {
        argv[0] = this_binary.display().to_string();
    }
    let mut env: BTreeMap<String, String> = inherited.iter().cloned().collect();
    for (key, value) in pairs(container.get("environment"), "value") {
        env.insert(key, value);
    }
    for (key, _) in secrets_of(container) {
        let value = secrets.get(&key).ok_or_else(|| {
            Error::input(format!("container `{name}`: secret {key} has no value"))
                .hint(format!("pass --secret {key}=VALUE"))
        })?;
        env.insert(key, value.clone());
    }
    for (key, value) in step_env {
        env.insert(key.clone(), value.clone());
    }
    let stop_timeout = container
        .get("stopTimeout")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs);
    Ok(LocalTask { container: name, argv, env: env.into_iter().collect(), stop_timeout })
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It could not be started at all.
    NotStarted,
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

/// A process's end as the stopped ECS task it stands for. `stopped_by_us` is the StopTask of
/// a timeout or a cancel.
pub fn stopped_task(
    id: &str,
    container: &str,
    exit: Exit,
    spawn_error: Option<&str>,
    stopped_by_us: Option<&str>,
) -> TaskView {
    let (exit_code, reason) = match exit {
        Exit::NotStarted => (None, spawn_error.map(|e| format!("CannotStartContainerError: {e}"))),
        Exit::Code(code) => (Some(code), None),
        // Docker's convention, which ECS reports: 128 + the signal.
        Exit::Signal(sig) => (Some(128 + sig), Some(format!("killed by signal {sig}"))),
    };
    let (stop_code, stopped_reason) = match (exit, stopped_by_us) {
        (Exit::NotStarted, _) => ("TaskFailedToStart", reason.clone().unwrap_or_default()),
        (_, Some(why)) => ("UserInitiated", why.to_string()),
        _ => ("EssentialContainerExited", "Essential container in task exited".to_string()),
    };
    let now = SystemTime::now();
    TaskView {
        arn: format!("local/{id}"),
        cluster_arn: "local".into(),
        task_definition_arn: String::new(),
        last_status: "STOPPED".into(),
        desired_status: "STOPPED".into(),
        stop_code: Some(stop_code.into()),
        stopped_reason: Some(stopped_reason),
        started_by: Some("shipgate".into()),
        started_at: (exit != Exit::NotStarted).then_some(now),
        stopped_at: Some(now),
        execute_command: false,
        containers: vec![ContainerView {
            name: container.to_string(),
            exit_code,
            reason,
            last_status: Some("STOPPED".into()),
        }],
        tags: Vec::new(),
    }
}

/// Run the process in `cwd`, printing every line it writes (stdout and stderr) as log lines
/// of its container, until it exits. A timeout or a signal stops it as ECS stops a task:
/// SIGTERM to its process group, SIGKILL after the container's `stopTimeout`.
pub async fn run(
    task: &LocalTask,
    cwd: &Path,
    timeout: Option<Duration>,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Followed {
    let mut command = tokio::process::Command::new(&task.argv[0]);
    command
        .args(&task.argv[1..])
        .env_clear()
        .envs(task.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a Ctrl-C at the terminal reaches shipgate, which stops the process
        // the way ECS would, with the stop timeout.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let why = format!("cannot run `{}`: {e}", task.argv[0]);
            tracing::error!("{why}");
            let view = stopped_task("not-started", &task.container, Exit::NotStarted, Some(&why), None);
            return Followed { task: view, ended_by: EndedBy::Stopped, lines: 0, streams: 0 };
        }
    };
    let pid = child.id().unwrap_or_default();
    tracing::info!(
        "started local process {pid}: {} (watching container `{}`)",
        task.argv.join(" "),
        task.container
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    for pipe in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
        tokio::spawn(forward_lines(pipe, tx.clone()));
    }
    drop(tx);

    let mut lines = 0u64;
    let mut emit = |line: String| {
        lines += 1;
        out.log_lines(None, &[(Some(chrono::Utc::now().timestamp_millis()), line)]);
    };
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut ended_by = EndedBy::Stopped;
    // Set once shipgate stopped the process (a timeout or a signal); it is stopped only once.
    let mut stop_reason: Option<String> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        let kill_timer = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(line) = rx.recv() => emit(line),
            status = child.wait() => break status,
            () = &mut deadline, if stop_reason.is_none() => {
                ended_by = EndedBy::TimedOut;
                stop_reason = Some(format!("Task stopped by shipgate: timed out after {}", crate::duration::human(timeout.unwrap_or_default())));
                kill_at = Some(terminate(pid, task.stop_timeout));
            }
            signal = shutdown.wait(), if stop_reason.is_none() => {
                ended_by = EndedBy::Cancelled(signal);
                stop_reason = Some(format!("Task stopped by shipgate: {} received", signal.name()));
                kill_at = Some(terminate(pid, task.stop_timeout));
            }
            () = kill_timer => {
                tracing::warn!("local process {pid} outlived its stop timeout; sending SIGKILL");
                let _ = child.start_kill();
                kill_at = None;
            }
        }
    };
    let drain = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(drain);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => emit(line),
                None => break,
            },
            () = &mut drain => {
                tracing::warn!("local process {pid} exited but something still holds its output open; not reading further");
                break;
            }
        }
    }
    let exit = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Code(1),
            }
        }
        Err(e) => {
            tracing::error!("cannot wait for local process {pid}: {e}");
            Exit::Code(1)
        }
    };
    let view = stopped_task(&format!("pid-{pid}"), &task.container, exit, None, stop_reason.as_deref());
    Followed { task: view, ended_by, lines, streams: 1 }
}

fn boxed<R: AsyncRead + Unpin + Send + 'static>(r: R) -> Box<dyn AsyncRead + Unpin + Send> {
    Box::new(r)
}

async fn forward_lines(pipe: Box<dyn AsyncRead + Unpin + Send>, tx: mpsc::UnboundedSender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// SIGTERM to the process group; the instant SIGKILL follows.
fn terminate(pid: u32, grace: Duration) -> tokio::time::Instant {
    tracing::info!(
        "stopping local process {pid} (SIGTERM, then SIGKILL after {})",
        crate::duration::human(grace)
    );
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory effects; a group that already exited gives ESRCH.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
    }
    tokio::time::Instant::now() + grace
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::task::outcome::{Outcome, StartFailure, classify};

    #[test]
    fn value_from_forms() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        let sm = |stage: Option<&str>, key: Option<&str>| SecretFrom::SecretsManager {
            secret: SecretRef { id: arn.into(), stage: stage.map(str::to_string) },
            key: key.map(str::to_string),
        };
        let cases = [
            (arn.to_string(), sm(None, None)),
            (format!("{arn}:DATABASE_URL::"), sm(None, Some("DATABASE_URL"))),
            (format!("{arn}:password:AWSPREVIOUS:"), sm(Some("AWSPREVIOUS"), Some("password"))),
            (format!("{arn}::AWSCURRENT:"), sm(Some("AWSCURRENT"), None)),
            ("/prod/db/password".into(), SecretFrom::Parameter("/prod/db/password".into())),
            (
                "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db".into(),
                SecretFrom::Parameter("arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(secret_from(&text).unwrap(), expected, "{text}");
        }
        assert!(secret_from(&format!("{arn}:k::v-1")).unwrap_err().message().contains("version id"));
    }

    #[test]
    fn json_keys_are_picked_like_ecs_does() {
        let text = r#"{"DATABASE_URL":"postgres://h/db","port":5432}"#;
        assert_eq!(secret_value(text, Some("DATABASE_URL"), "s").unwrap(), "postgres://h/db");
        assert_eq!(secret_value(text, Some("port"), "s").unwrap(), "5432");
        assert_eq!(secret_value(text, None, "s").unwrap(), text);
        assert!(secret_value(text, Some("nope"), "s").unwrap_err().message().contains("no text key `nope`"));
        assert!(secret_value("plain", Some("k"), "s").unwrap_err().message().contains("not a JSON object"));
    }

    #[test]
    fn a_container_definition_becomes_a_command_and_an_environment() {
        let exe = Path::new("/opt/shipgate");
        let inherited = [("PATH".to_string(), "/usr/bin".to_string())];
        let secrets = BTreeMap::from([("DATABASE_URL".to_string(), "postgres://x".to_string())]);
        let step = [("MIGRATION_TYPE".to_string(), "master".to_string())];
        let def = json!({
            "name": "migrate",
            "environment": [{"name": "MIGRATION_TYPE", "value": "tenants"}, {"name": "DB_SSL", "value": "true"}],
            "secrets": [{"name": "DATABASE_URL", "valueFrom": "arn:aws:secretsmanager:r:a:secret:s"}],
            "stopTimeout": 120
        });
        let t = plan(&def, &secrets, &step, &inherited, exe).unwrap();
        assert_eq!(t.argv, ["/opt/shipgate", "migrate"]);
        assert_eq!(t.stop_timeout, Duration::from_secs(120));
        let env: BTreeMap<_, _> = t.env.iter().cloned().collect();
        assert_eq!(env["MIGRATION_TYPE"], "master", "the step's variables win over the definition's");
        assert_eq!(env["DATABASE_URL"], "postgres://x");
        assert_eq!(env["DB_SSL"], "true");
        assert_eq!(env["PATH"], "/usr/bin");
        assert!(!env.contains_key("HOME"));

        let cases = [
            (
                json!({"name": "m", "command": ["shipgate", "migrate", "up"]}),
                vec!["/opt/shipgate", "migrate", "up"],
            ),
            (
                json!({"name": "m", "entryPoint": ["sh", "-c"], "command": ["npm run migrate"]}),
                vec!["sh", "-c", "npm run migrate"],
            ),
            (
                json!({"name": "m", "entryPoint": ["shipgate"], "command": ["tenants", "up"]}),
                vec!["/opt/shipgate", "tenants", "up"],
            ),
            (json!({"name": "m", "command": ["node", "migrate.js"]}), vec!["node", "migrate.js"]),
        ];
        for (def, argv) in cases {
            assert_eq!(plan(&def, &BTreeMap::new(), &[], &[], exe).unwrap().argv, argv, "{def}");
        }
        let err = plan(&def, &BTreeMap::new(), &step, &inherited, exe).unwrap_err();
        assert_eq!(err.message(), "container `migrate`: secret DATABASE_URL has no value");
        assert_eq!(err.hint_text(), Some("pass --secret DATABASE_URL=VALUE"));
    }

    /// A local exit is judged by the same classification as an ECS task.
    #[test]
    fn process_exits_classify_like_tasks() {
        let classify_exit = |exit, spawn: Option<&str>, by_us: Option<&str>| {
            classify(&stopped_task("pid-1", "migrate", exit, spawn, by_us), "migrate")
        };
        assert_eq!(classify_exit(Exit::Code(0), None, None), Outcome::Succeeded);
        assert_eq!(
            classify_exit(Exit::Code(2), None, None),
            Outcome::ContainerFailed { container: "migrate".into(), exit_code: 2, reason: None }
        );
        assert_eq!(
            classify_exit(Exit::Signal(9), None, None),
            Outcome::ContainerFailed {
                container: "migrate".into(),
                exit_code: 137,
                reason: Some("killed by signal 9".into())
            }
        );
        assert!(matches!(
            classify_exit(Exit::Signal(15), None, Some("Task stopped by shipgate: timed out after 1s")),
            Outcome::StoppedByUser { .. }
        ));
        assert!(matches!(
            classify_exit(Exit::NotStarted, Some("cannot run `nope`: No such file or directory"), None),
            Outcome::FailedToStart { kind: StartFailure::Other, ref reason } if reason.contains("cannot run `nope`")
        ));
    }
}
