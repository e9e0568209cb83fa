//! What to run and where: the plain description of one `RunTask` call, built from flags (or a
//! service's configuration) by `config` and sent by `aws::ecs::run_task`.

use serde::Serialize;

/// Where the task runs: its network and its capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// `FARGATE` unless a capacity provider strategy is used.
    pub launch_type: Option<String>,
    /// (capacity provider, weight, base)
    pub capacity_providers: Vec<(String, i32, i32)>,
    pub platform_version: Option<String>,
    /// ECS Exec into the task (`enableExecuteCommand`): copied from the service, or
    /// `--enable-execute-command`.
    pub execute_command: bool,
    /// The task definition's tags on the task (`propagateTags`), as the service has them.
    pub propagate_tags: bool,
    /// ECS's own `aws:ecs:*` tags on the task, as the service has them.
    pub managed_tags: bool,
}

/// Changes to the registered definition for this one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    /// The container the overrides apply to and whose exit code decides the outcome.
    pub container: String,
    pub env: Vec<(String, String)>,
    pub command: Option<Vec<String>>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

impl Overrides {
    /// A stable text form, part of the client token.
    pub fn fingerprint(&self) -> String {
        serde_json::to_string(self).expect("overrides serialize")
    }
}

/// One `RunTask` call.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub cluster: String,
    pub task_definition_arn: String,
    pub placement: Placement,
    pub overrides: Overrides,
    pub started_by: String,
    pub tags: Vec<(String, String)>,
    pub client_token: String,
}
