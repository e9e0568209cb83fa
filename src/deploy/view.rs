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
    /// `deploymentController.type`: ECS (also when absent), CODE_DEPLOY or EXTERNAL.
    pub controller: Option<String>,
}

impl ServiceView {
    /// Whether `UpdateService` can move it to a new task definition: not when CodeDeploy or
    /// an external controller owns its deployments. Checked before anything changes, so a
    /// deploy never migrates a schema and then finds its services cannot follow.
    pub fn updatable(&self, cluster: &str) -> crate::error::Result<()> {
        let controller = self.controller.as_deref().unwrap_or("ECS");
        let how = match controller {
            "CODE_DEPLOY" => {
                "a CodeDeploy deployment (aws deploy create-deployment with an AppSpec) changes it"
            }
            "EXTERNAL" => "its external controller changes it (through task sets)",
            _ => return Ok(()),
        };
        Err(crate::error::Error::input(format!(
            "service `{}` in cluster `{cluster}` uses the {controller} deployment controller: UpdateService cannot \
             change its task definition ({how}); nothing was changed",
            self.name
        ))
        .hint(
            "remove it from `services` in shipgate.toml and deploy it with its own controller after shipgate's \
             migrations, or move the service to the ECS controller",
        ))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ecs_controlled_service_can_be_updated() {
        let cases = [
            (None, None),
            (Some("ECS"), None),
            (Some("CODE_DEPLOY"), Some("uses the CODE_DEPLOY deployment controller")),
            (Some("EXTERNAL"), Some("uses the EXTERNAL deployment controller")),
        ];
        for (controller, refused) in cases {
            let view = ServiceView {
                name: "api".into(),
                controller: controller.map(str::to_string),
                ..ServiceView::default()
            };
            match (view.updatable("prod"), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => {
                    assert_eq!(e.exit_code(), 2);
                    assert!(
                        e.message().contains(needle) && e.message().ends_with("nothing was changed"),
                        "{e}"
                    );
                }
                (got, _) => panic!("{controller:?}: {got:?}"),
            }
        }
    }
}
