//! A task as the decisions see it: plain data copied out of `DescribeTasks`, so outcome,
//! guard and drain logic can be tested with tables instead of SDK builders.

use std::time::SystemTime;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub last_status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskView {
    pub arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    pub last_status: String,
    pub desired_status: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub started_by: Option<String>,
    pub started_at: Option<SystemTime>,
    pub stopped_at: Option<SystemTime>,
    /// Started with ECS Exec enabled.
    pub execute_command: bool,
    pub containers: Vec<ContainerView>,
    pub tags: Vec<(String, String)>,
}

impl TaskView {
    pub fn stopped(&self) -> bool {
        self.last_status == "STOPPED"
    }

    /// The last segment of the ARN, which names log streams and the console page.
    pub fn id(&self) -> &str {
        task_id(&self.arn)
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `family` of the task definition ARN.
    pub fn family(&self) -> &str {
        family_of(&self.task_definition_arn)
    }
}

/// `…:task-definition/family:rev` (or `family:rev`) → `family`.
pub fn family_of(task_definition: &str) -> &str {
    let tail = task_definition.rsplit('/').next().unwrap_or(task_definition);
    tail.split(':').next().unwrap_or(tail)
}

/// `arn:aws:ecs:region:acct:task/cluster/ID` (or the old `task/ID`) → `ID`.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The parts of a task ARN that say where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskArn {
    pub region: String,
    pub cluster: Option<String>,
    pub id: String,
}

/// Parse a task ARN; the cluster is only in the long ARN format.
pub fn parse_task_arn(arn: &str) -> Option<TaskArn> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("ecs"), Some(region), Some(_account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let segments: Vec<&str> = resource.split('/').collect();
    match segments.as_slice() {
        ["task", cluster, id] => {
            Some(TaskArn { region: region.into(), cluster: Some(cluster.to_string()), id: id.to_string() })
        }
        ["task", id] => Some(TaskArn { region: region.into(), cluster: None, id: id.to_string() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_arns() {
        let cases = [
            (
                "arn:aws:ecs:eu-west-1:123456789012:task/prod/0a1b2c",
                Some(TaskArn {
                    region: "eu-west-1".into(),
                    cluster: Some("prod".into()),
                    id: "0a1b2c".into(),
                }),
            ),
            (
                "arn:aws:ecs:us-east-1:123456789012:task/0a1b2c",
                Some(TaskArn { region: "us-east-1".into(), cluster: None, id: "0a1b2c".into() }),
            ),
            ("arn:aws:ecs:us-east-1:123456789012:service/prod/api", None),
            ("0a1b2c", None),
        ];
        for (arn, expected) in cases {
            assert_eq!(parse_task_arn(arn), expected, "{arn}");
        }
        assert_eq!(task_id("arn:aws:ecs:us-east-1:1:task/prod/abc"), "abc");
    }

    #[test]
    fn family_from_task_definition_arn() {
        let t = TaskView {
            task_definition_arn: "arn:aws:ecs:us-east-1:1:task-definition/db-migrate:12".into(),
            ..TaskView::default()
        };
        assert_eq!(t.family(), "db-migrate");
    }
}
