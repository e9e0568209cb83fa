//! ECS Exec into a running task: `aws ecs execute-command` does the work (it needs the Session
//! Manager plugin, which speaks the session protocol); shipgate checks the task can take it,
//! picks the container, and runs that command, or prints it when the plugin is missing.

use std::path::{Path, PathBuf};

use crate::aws::{Aws, ecs};
use crate::error::{Error, Result};
use crate::task::follow;
use crate::task::verdict;
use crate::task::view::TaskView;

/// Where the Session Manager plugin's installation is explained.
pub const PLUGIN_DOCS: &str = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html";

/// What `task exec` was asked.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub cluster: String,
    pub region: Option<String>,
    pub task: String,
    pub container: Option<String>,
    pub command: Vec<String>,
}

/// The `aws` command line that opens the session.
pub fn execute_command_argv(r: &ExecRequest, task_arn: &str, container: &str) -> Vec<String> {
    let command = match r.command.as_slice() {
        [] => "/bin/sh".to_string(),
        words => shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" ")),
    };
    let mut argv: Vec<String> =
        ["aws", "ecs", "execute-command", "--cluster", &r.cluster, "--task", task_arn]
            .map(String::from)
            .into();
    argv.extend([
        "--container".into(),
        container.to_string(),
        "--interactive".into(),
        "--command".into(),
        command,
    ]);
    if let Some(region) = &r.region {
        argv.extend(["--region".into(), region.clone()]);
    }
    argv
}

/// Whether a task can be exec'd into: running, and started with ECS Exec.
pub fn check(task: &TaskView, cluster: &str) -> Result<()> {
    if task.stopped() {
        return Err(Error::input(format!("task {} has stopped; there is nothing to exec into", task.arn))
            .hint(format!("its logs: shipgate task logs {} --cluster {cluster}", task.arn)));
    }
    if !task.execute_command {
        return Err(Error::input(format!("task {} was started without ECS Exec (enableExecuteCommand)", task.arn))
            .hint(
                "turn on enableExecuteCommand on the service whose network the migration task copies (shipgate \
                 copies it), or start the task with `shipgate task run --enable-execute-command`; the task role \
                 needs the ssmmessages:* actions",
            ));
    }
    Ok(())
}

/// `name` on `PATH`, when it is there.
pub fn on_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The session's command line for `r`, after checking the task and choosing the container
/// (`--container`, else the task definition's only essential one).
pub async fn prepare(aws: &Aws, r: &ExecRequest) -> Result<Vec<String>> {
    let task = ecs::describe_task(&aws.ecs, &r.cluster, &r.task)
        .await?
        .ok_or_else(|| follow::unknown_task(&r.task, &r.cluster))?;
    check(&task, &r.cluster)?;
    let (td, containers) = ecs::task_definition(&aws.ecs, &task.task_definition_arn).await?;
    let container = verdict::watched_container(&containers, r.container.as_deref(), &td)?;
    Ok(execute_command_argv(r, &task.arn, &container))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: &[&str], region: Option<&str>) -> ExecRequest {
        ExecRequest {
            cluster: "prod".into(),
            region: region.map(String::from),
            task: "t".into(),
            container: None,
            command: command.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_session_command_line_quotes_the_command_as_one_argument() {
        let arn = "arn:aws:ecs:us-east-1:1:task/prod/abc";
        let line = |r: &ExecRequest| execute_command_argv(r, arn, "migrate").join(" ");
        assert_eq!(
            line(&request(&[], None)),
            format!(
                "aws ecs execute-command --cluster prod --task {arn} --container migrate --interactive --command /bin/sh"
            )
        );
        assert_eq!(
            line(&request(&["shipgate", "migrate", "status"], Some("eu-west-1"))),
            format!(
                "aws ecs execute-command --cluster prod --task {arn} --container migrate --interactive \
                 --command shipgate migrate status --region eu-west-1"
            )
        );
        let argv = execute_command_argv(&request(&["psql", "-c", "select 1"], None), arn, "migrate");
        assert_eq!(argv[argv.len() - 1], "psql -c 'select 1'");
    }

    #[test]
    fn a_stopped_task_or_one_without_ecs_exec_is_refused_with_the_way_out() {
        let mut task = TaskView { arn: "arn:t".into(), last_status: "RUNNING".into(), ..TaskView::default() };
        assert!(check(&task, "prod").is_err_and(|e| e.message().contains("without ECS Exec")));
        task.execute_command = true;
        assert!(check(&task, "prod").is_ok());
        task.last_status = "STOPPED".into();
        let e = check(&task, "prod").unwrap_err();
        assert!(e.message().contains("has stopped") && e.hint_text().unwrap().contains("task logs"), "{e}");
    }
}
