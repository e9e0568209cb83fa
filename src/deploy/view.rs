//! A service as `DescribeServices` reports it, copied into plain data by `aws::ecs`.

use std::time::SystemTime;

/// One entry of a service's `deployments[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    /// PRIMARY (the newest), ACTIVE (being drained) or INACTIVE.
    pub status: String,
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED; absent for services without the ECS rolling
    /// deployment controller.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    pub created_at: Option<SystemTime>,
}

/// One line of a service's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    pub id: String,
    pub at: Option<SystemTime>,
    pub message: String,
}

/// A service and its deployments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceView {
    pub name: String,
    pub arn: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub deployments: Vec<DeploymentView>,
    /// Newest first, as ECS returns them.
    pub events: Vec<ServiceEvent>,
}

impl ServiceView {
    pub fn primary(&self) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }

    pub fn deployment(&self, id: &str) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.id == id)
    }
}

/// `family:revision` of a task definition ARN (the ARN itself when it is not one).
pub fn revision_name(task_definition: &str) -> &str {
    task_definition.rsplit_once(":task-definition/").map_or(task_definition, |(_, name)| name)
}
