//! Two migration tasks of one family must never run at once, and a retried CI step must not
//! start a second one.
//!
//! Before `RunTask` the follower lists the cluster's tasks that shipgate started (`startedBy`)
//! and are still meant to run. One of the same family is either this very run retried (it
//! carries our client token as a tag: attach to it) or another deploy (refuse, or wait). The
//! client token passed to `RunTask` makes the call itself idempotent for the same reason.

use sha2::{Digest, Sha256};

use super::view::TaskView;

/// Tag that carries the client token of the run that started a task.
pub const TOKEN_TAG: &str = "shipgate:client-token";
/// Tag that carries the run id (GitHub run and attempt, or `--run-id`).
pub const RUN_ID_TAG: &str = "shipgate:run-id";
/// Tag shared by the tasks one deploy starts together (the shards of a tenant run): they
/// are siblings, not a concurrent deploy.
pub const GROUP_TAG: &str = "shipgate:group";

/// What the in-flight tasks mean for a new run.
#[derive(Debug, PartialEq, Eq)]
pub enum Guard<'a> {
    /// Nothing of this family is running: go ahead.
    Clear,
    /// Our own earlier attempt of this very run: follow it instead of starting another.
    Ours(&'a TaskView),
    /// Another run's task of this family is pending or running.
    Busy(&'a TaskView),
}

/// Decide from the tasks `ListTasks(startedBy, desiredStatus=RUNNING)` returned.
/// `cluster` is a name or an ARN; `ListTasks` filters by it, but emulators match loosely.
/// Tasks tagged with `group` (when given) are this run's siblings and ignored.
pub fn check<'a>(
    in_flight: &'a [TaskView],
    cluster: &str,
    family: &str,
    token: &str,
    group: Option<&str>,
) -> Guard<'a> {
    let cluster_name = cluster.rsplit('/').next().unwrap_or(cluster);
    let tasks: Vec<&TaskView> = in_flight
        .iter()
        .filter(|t| {
            t.family() == family
                && !t.stopped()
                && (t.cluster_arn.is_empty() || t.cluster_arn.rsplit('/').next() == Some(cluster_name))
                && (group.is_none() || t.tag(GROUP_TAG) != group || t.tag(TOKEN_TAG) == Some(token))
        })
        .collect();
    if let Some(ours) = tasks.iter().find(|t| t.tag(TOKEN_TAG) == Some(token)) {
        return Guard::Ours(ours);
    }
    match tasks.first() {
        Some(busy) => Guard::Busy(busy),
        None => Guard::Clear,
    }
}

/// The `RunTask` client token: the same task definition, overrides and run id give the same
/// token (a retried step is a no-op); each start retry gets its own.
pub fn client_token(task_definition_arn: &str, overrides: &str, run_id: &str, attempt: u32) -> String {
    let mut hash = Sha256::new();
    for part in [task_definition_arn, overrides, run_id, &attempt.to_string()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    // RunTask accepts at most 64 characters.
    hex::encode(hash.finalize())[..64].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arn: &str, family: &str, status: &str, cluster: &str, token: Option<&str>) -> TaskView {
        TaskView {
            arn: arn.into(),
            cluster_arn: format!("arn:aws:ecs:us-east-1:1:cluster/{cluster}"),
            task_definition_arn: format!("arn:aws:ecs:us-east-1:1:task-definition/{family}:3"),
            last_status: status.into(),
            tags: token.map(|t| vec![(TOKEN_TAG.to_string(), t.to_string())]).unwrap_or_default(),
            ..TaskView::default()
        }
    }

    #[test]
    fn guard_table() {
        let other = task("t/other", "migrate", "RUNNING", "prod", Some("tok-b"));
        let ours = task("t/ours", "migrate", "PENDING", "prod", Some("tok-a"));
        let app = task("t/app", "api", "RUNNING", "prod", None);
        let done = task("t/done", "migrate", "STOPPED", "prod", None);
        let elsewhere = task("t/else", "migrate", "RUNNING", "prod-eu", None);
        let mut sibling = task("t/sibling", "migrate", "RUNNING", "prod", Some("tok-c"));
        sibling.tags.push((GROUP_TAG.into(), "gh-1-1/tenants".into()));
        let cases: Vec<(Vec<TaskView>, Option<&str>, &str)> = vec![
            (vec![], None, "clear"),
            (vec![app.clone(), done.clone(), elsewhere.clone()], None, "clear"),
            (vec![other.clone()], None, "busy t/other"),
            (vec![other.clone(), ours.clone()], None, "ours t/ours"),
            (vec![sibling.clone()], Some("gh-1-1/tenants"), "clear"),
            (vec![sibling.clone()], Some("gh-1-2/tenants"), "busy t/sibling"),
            (vec![sibling.clone()], None, "busy t/sibling"),
        ];
        for (tasks, group, expected) in cases {
            let got = match check(&tasks, "prod", "migrate", "tok-a", group) {
                Guard::Clear => "clear".to_string(),
                Guard::Ours(t) => format!("ours {}", t.arn),
                Guard::Busy(t) => format!("busy {}", t.arn),
            };
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn client_tokens_are_stable_and_distinct_per_input() {
        let base = client_token("td:1", "{}", "gh-1-1", 0);
        assert_eq!(base.len(), 64);
        assert_eq!(base, client_token("td:1", "{}", "gh-1-1", 0));
        for other in [
            client_token("td:2", "{}", "gh-1-1", 0),
            client_token("td:1", "{\"x\":1}", "gh-1-1", 0),
            client_token("td:1", "{}", "gh-1-2", 0),
            client_token("td:1", "{}", "gh-1-1", 1),
        ] {
            assert_ne!(base, other);
        }
    }
}
