//! The ECS calls shipgate makes, each copying its answer into plain data.
//!
//! Task definitions are registered from the rendered template's JSON as is: ECS speaks JSON on
//! the wire, and the template *is* that request (what `aws ecs register-task-definition
//! --cli-input-json` sends), so the body is sent verbatim instead of being rebuilt field by
//! field through the SDK's types, which would silently drop any field newer than this build.
//! For the same reason the registered revision is compared as the raw JSON ECS returned.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecs::error::BoxError;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerDefinition,
    ContainerOverride, DesiredStatus, KeyValuePair, LaunchType, NetworkConfiguration, Tag, Task,
    TaskDefinitionField, TaskField, TaskOverride,
};
use aws_smithy_types::body::SdkBody;
use serde_json::Value;

use super::error::{Failure, describe, failure};
use crate::deploy::view::{DeploymentView, ServiceEvent, ServiceView};
use crate::error::{Error, Result};
use crate::task::spec::{Placement, RunSpec};
use crate::task::view::{ContainerView, TaskView};
use crate::taskdef::{ContainerInfo, LogDriver};

/// A failed call on `cluster`: an unknown cluster is named, with the region it was looked for
/// in (clusters are per region, and the region is the usual mistake).
fn on_cluster(ecs: &Client, cluster: &str) -> impl Fn(Error) -> Error {
    // Called as `Client::config`: the IAM policy test reads every method call on the client as
    // an API call.
    let region = Client::config(ecs).region().map_or_else(|| "no region".to_string(), |r| r.to_string());
    let cluster = cluster.to_string();
    move |e: Error| {
        if e.message().contains("ClusterNotFoundException") {
            e.map_message(|m| format!("{m} (cluster `{cluster}` in region {region})"))
        } else {
            e
        }
    }
}

/// [`on_cluster`] for a call a loop may retry.
fn failure_on(ecs: &Client, cluster: &str) -> impl Fn(Failure) -> Failure {
    let named = on_cluster(ecs, cluster);
    move |f: Failure| Failure { transient: f.transient, expired: f.expired, error: named(f.error) }
}

fn time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Copy a described task into plain data.
pub fn view(task: &Task) -> TaskView {
    TaskView {
        arn: task.task_arn().unwrap_or_default().to_string(),
        cluster_arn: task.cluster_arn().unwrap_or_default().to_string(),
        task_definition_arn: task.task_definition_arn().unwrap_or_default().to_string(),
        last_status: task.last_status().unwrap_or_default().to_string(),
        desired_status: task.desired_status().unwrap_or_default().to_string(),
        stop_code: task.stop_code().map(|c| c.as_str().to_string()),
        stopped_reason: task.stopped_reason().filter(|r| !r.is_empty()).map(str::to_string),
        started_by: task.started_by().map(str::to_string),
        started_at: time(task.started_at()),
        stopped_at: time(task.stopped_at()),
        execute_command: task.enable_execute_command(),
        containers: task
            .containers()
            .iter()
            .map(|c| ContainerView {
                name: c.name().unwrap_or_default().to_string(),
                exit_code: c.exit_code(),
                reason: c.reason().map(str::to_string),
                last_status: c.last_status().map(str::to_string),
            })
            .collect(),
        tags: task
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
            .collect(),
    }
}

/// `DescribeTasks` for one task; `None` when ECS no longer knows it (`MISSING`).
pub async fn describe_task(ecs: &Client, cluster: &str, arn: &str) -> Result<Option<TaskView>, Failure> {
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(arn)
        .include(TaskField::Tags)
        .send()
        .await
        .map_err(|e| failure_on(ecs, cluster)(failure("ecs:DescribeTasks", &e)))?;
    Ok(out.tasks().iter().find(|t| t.task_arn() == Some(arn)).or(out.tasks().first()).map(view))
}

/// The most ARNs (or task ids) one `DescribeTasks` call takes.
pub const DESCRIBE_BATCH: usize = 100;

/// `DescribeTasks` for up to [`DESCRIBE_BATCH`] tasks of one cluster: each as ECS knows it, in
/// the order asked, `None` for one it does not (`MISSING`). An id matches its task's ARN.
pub async fn describe_tasks(
    ecs: &Client,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<Option<TaskView>>, Failure> {
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns.to_vec()))
        .include(TaskField::Tags)
        .send()
        .await
        .map_err(|e| failure_on(ecs, cluster)(failure("ecs:DescribeTasks", &e)))?;
    let found: Vec<TaskView> = out.tasks().iter().map(view).collect();
    Ok(arns.iter().map(|asked| found.iter().find(|t| same_task(&t.arn, asked)).cloned()).collect())
}

/// Whether `asked` (an ARN or a task id) names the task with ARN `arn`.
fn same_task(arn: &str, asked: &str) -> bool {
    arn == asked || arn.rsplit('/').next() == Some(asked)
}

/// The outcome of `RunTask`: a task, or the `failures[]` ECS answered with instead.
#[derive(Debug)]
pub enum Started {
    Task(Box<TaskView>),
    Refused(Vec<String>),
}

pub async fn run_task(ecs: &Client, spec: &RunSpec) -> Result<Started> {
    let p = &spec.placement;
    let o = &spec.overrides;
    let container =
        ContainerOverride::builder()
            .name(&o.container)
            .set_environment((!o.env.is_empty()).then(|| {
                o.env.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect()
            }))
            .set_command(o.command.clone())
            .build();
    let overrides = TaskOverride::builder()
        .container_overrides(container)
        .set_cpu(o.cpu.clone())
        .set_memory(o.memory.clone());
    let mut req = ecs
        .run_task()
        .cluster(&spec.cluster)
        .task_definition(&spec.task_definition_arn)
        .count(1)
        .overrides(overrides.build())
        .started_by(&spec.started_by)
        .client_token(&spec.client_token)
        .set_platform_version(p.platform_version.clone())
        .set_enable_execute_command(p.execute_command.then_some(true))
        .set_enable_ecs_managed_tags(p.managed_tags.then_some(true))
        .set_propagate_tags(p.propagate_tags.then_some(aws_sdk_ecs::types::PropagateTags::TaskDefinition))
        .set_tags(Some(spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()));
    if !p.subnets.is_empty() {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(p.subnets.clone()))
            .set_security_groups((!p.security_groups.is_empty()).then(|| p.security_groups.clone()))
            .assign_public_ip(if p.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| Error::input(format!("invalid network configuration: {e}")))?;
        req = req.network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
    }
    if p.capacity_providers.is_empty() {
        req = req.launch_type(LaunchType::from(p.launch_type.as_deref().unwrap_or("FARGATE")));
    } else {
        for (provider, weight, base) in &p.capacity_providers {
            let item = CapacityProviderStrategyItem::builder()
                .capacity_provider(provider)
                .weight(*weight)
                .base(*base)
                .build()
                .map_err(|e| Error::input(format!("invalid capacity provider strategy: {e}")))?;
            req = req.capacity_provider_strategy(item);
        }
    }
    let out = req.send().await.map_err(|e| on_cluster(ecs, &spec.cluster)(describe("ecs:RunTask", &e)))?;
    if let Some(task) = out.tasks().first() {
        return Ok(Started::Task(Box::new(view(task))));
    }
    let reasons = out
        .failures()
        .iter()
        .map(|f| {
            let mut text = f.reason().unwrap_or("unknown reason").to_string();
            if let Some(detail) = f.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        })
        .collect::<Vec<_>>();
    Ok(Started::Refused(if reasons.is_empty() {
        vec!["RunTask returned no task and no failure".into()]
    } else {
        reasons
    }))
}

pub async fn stop_task(ecs: &Client, cluster: &str, arn: &str, reason: &str) -> Result<(), Failure> {
    // StopTask's reason is limited to 255 characters.
    let reason: String = reason.chars().take(255).collect();
    ecs.stop_task()
        .cluster(cluster)
        .task(arn)
        .reason(reason)
        .send()
        .await
        .map_err(|e| failure_on(ecs, cluster)(failure("ecs:StopTask", &e)))?;
    Ok(())
}

/// Tasks in the cluster started with `started_by` that are still meant to run.
pub async fn in_flight(ecs: &Client, cluster: &str, started_by: &str) -> Result<Vec<TaskView>> {
    tasks_started_by(ecs, cluster, started_by, DesiredStatus::Running).await
}

/// Tasks in the cluster started with `started_by` (a service's tasks carry their deployment
/// id) with the given desired status.
pub async fn tasks_started_by(
    ecs: &Client,
    cluster: &str,
    started_by: &str,
    status: DesiredStatus,
) -> Result<Vec<TaskView>> {
    let mut arns = Vec::new();
    let mut pages = ecs
        .list_tasks()
        .cluster(cluster)
        .started_by(started_by)
        .desired_status(status)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| on_cluster(ecs, cluster)(describe("ecs:ListTasks", &e)))?;
        arns.extend(page.task_arns().iter().cloned());
    }
    let mut tasks = Vec::new();
    // DescribeTasks takes at most 100 tasks per call.
    for chunk in arns.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| on_cluster(ecs, cluster)(describe("ecs:DescribeTasks", &e)))?;
        tasks.extend(out.tasks().iter().map(view));
    }
    Ok(tasks)
}

/// The ARN of a task definition and what the follower needs about its containers.
pub async fn task_definition(ecs: &Client, id: &str) -> Result<(String, Vec<ContainerInfo>)> {
    let out = ecs.describe_task_definition().task_definition(id).send().await.map_err(|e| {
        describe("ecs:DescribeTaskDefinition", &e).hint(format!("is `{id}` registered in this region?"))
    })?;
    let td = out
        .task_definition()
        .ok_or_else(|| Error::failed(format!("no task definition returned for `{id}`")))?;
    let containers = td.container_definitions().iter().map(container_info).collect();
    Ok((td.task_definition_arn().unwrap_or(id).to_string(), containers))
}

fn container_info(c: &ContainerDefinition) -> ContainerInfo {
    let log = match c.log_configuration() {
        None => LogDriver::None,
        Some(conf) => LogDriver::from_config(Some(conf.log_driver().as_str()), |k| {
            conf.options().and_then(|o| o.get(k)).cloned()
        }),
    };
    ContainerInfo {
        name: c.name().unwrap_or_default().to_string(),
        essential: c.essential().unwrap_or(true),
        log,
    }
}

/// Keeps the raw JSON body of a response, for comparisons the typed output cannot make.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "shipgate::CaptureBody"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(bytes) = ctx.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// The family's latest ACTIVE revision as ECS returned it (its `taskDefinition` object with
/// `tags` added), or `None` when the family has none.
pub async fn latest_revision(ecs: &Client, family: &str) -> Result<Option<(String, Value)>> {
    let capture = CaptureBody::default();
    let result = ecs
        .describe_task_definition()
        .task_definition(family)
        .include(TaskDefinitionField::Tags)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await;
    match result {
        Ok(out) => {
            let arn =
                out.task_definition().and_then(|t| t.task_definition_arn()).unwrap_or_default().to_string();
            let raw = capture.0.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
            let doc: Value = serde_json::from_slice(&raw).map_err(|e| {
                Error::failed(format!("ecs:DescribeTaskDefinition returned unreadable JSON: {e}"))
            })?;
            let mut td = doc.get("taskDefinition").cloned().unwrap_or(Value::Null);
            if let (Value::Object(map), Some(tags)) = (&mut td, doc.get("tags")) {
                map.insert("tags".into(), tags.clone());
            }
            Ok(Some((arn, td)))
        }
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError;
                matches!(s, DescribeTaskDefinitionError::ClientException(c)
                    if c.message().is_some_and(|m| m.contains("Unable to describe")))
            }) =>
        {
            Ok(None)
        }
        Err(e) => Err(describe("ecs:DescribeTaskDefinition", &e)),
    }
}

/// Register the rendered template verbatim; returns the new revision's ARN.
pub async fn register(ecs: &Client, rendered: &Value) -> Result<String> {
    let body = serde_json::to_vec(rendered).expect("values serialize");
    let family = crate::taskdef::family(rendered).to_string();
    let out = ecs
        .register_task_definition()
        .family(&family)
        .container_definitions(ContainerDefinition::builder().build())
        .customize()
        .mutate_request(move |req| {
            req.headers_mut().insert("content-length", body.len().to_string());
            *req.body_mut() = SdkBody::from(body.clone());
        })
        .send()
        .await
        .map_err(|e| describe("ecs:RegisterTaskDefinition", &e))?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_string)
        .ok_or_else(|| Error::failed("ecs:RegisterTaskDefinition returned no ARN"))
}

/// Copy network, launch type or capacity providers and platform version from a service.
pub async fn service_placement(ecs: &Client, cluster: &str, service: &str) -> Result<Placement> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| on_cluster(ecs, cluster)(describe("ecs:DescribeServices", &e)))?;
    let Some(s) = out.services().first() else {
        return Err(Error::input(format!("service `{service}` was not found in cluster `{cluster}`")).hint(
            "--network-from-service names an existing service whose network settings the task copies",
        ));
    };
    let vpc = s.network_configuration().and_then(|n| n.awsvpc_configuration());
    Ok(Placement {
        subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
        security_groups: vpc.map(|v| v.security_groups().to_vec()).unwrap_or_default(),
        assign_public_ip: vpc.and_then(|v| v.assign_public_ip()) == Some(&AssignPublicIp::Enabled),
        launch_type: s.launch_type().map(|l| l.as_str().to_string()),
        capacity_providers: s
            .capacity_provider_strategy()
            .iter()
            .map(|c| (c.capacity_provider().to_string(), c.weight(), c.base()))
            .collect(),
        platform_version: s.platform_version().filter(|v| *v != "LATEST").map(str::to_string),
        execute_command: s.enable_execute_command(),
        propagate_tags: s.propagate_tags() == Some(&aws_sdk_ecs::types::PropagateTags::TaskDefinition),
        managed_tags: s.enable_ecs_managed_tags(),
    })
}

/// Copy a described service into plain data.
pub fn service_view(s: &aws_sdk_ecs::types::Service) -> ServiceView {
    ServiceView {
        name: s.service_name().unwrap_or_default().to_string(),
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired: s.desired_count(),
        running: s.running_count(),
        controller: s.deployment_controller().map(|c| c.r#type().as_str().to_string()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| DeploymentView {
                id: d.id().unwrap_or_default().to_string(),
                status: d.status().unwrap_or_default().to_string(),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                desired: d.desired_count(),
                running: d.running_count(),
                pending: d.pending_count(),
                failed_tasks: d.failed_tasks(),
                created_at: time(d.created_at()),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .map(|e| ServiceEvent {
                id: e.id().unwrap_or_default().to_string(),
                at: time(e.created_at()),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

/// `DescribeServices` for one service; `None` when the cluster has no such service.
pub async fn describe_service(
    ecs: &Client,
    cluster: &str,
    name: &str,
) -> Result<Option<ServiceView>, Failure> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .map_err(|e| failure_on(ecs, cluster)(failure("ecs:DescribeServices", &e)))?;
    Ok(out.services().iter().find(|s| s.status() != Some("INACTIVE")).map(service_view))
}

/// `UpdateService`: a new task definition and/or desired count; returns the service as
/// updated (its PRIMARY deployment is the one this call started).
pub async fn update_service(
    ecs: &Client,
    cluster: &str,
    name: &str,
    task_definition: Option<&str>,
    desired: Option<i32>,
    force_new_deployment: bool,
) -> Result<ServiceView> {
    let out = ecs
        .update_service()
        .cluster(cluster)
        .service(name)
        .set_task_definition(task_definition.map(str::to_string))
        .set_desired_count(desired)
        .set_force_new_deployment(force_new_deployment.then_some(true))
        .send()
        .await
        .map_err(|e| on_cluster(ecs, cluster)(describe("ecs:UpdateService", &e)))?;
    out.service()
        .map(service_view)
        .ok_or_else(|| Error::failed(format!("ecs:UpdateService returned no service for `{name}`")))
}

/// The newest service deployment of a service created at or after `since`
/// (`ListServiceDeployments`); `None` when there is none yet.
pub async fn service_deployment_since(
    ecs: &Client,
    cluster: &str,
    service: &str,
    since: SystemTime,
) -> Result<Option<String>, Failure> {
    let created = aws_sdk_ecs::types::CreatedAt::builder().after(DateTime::from(since)).build();
    let out = ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .created_at(created)
        .send()
        .await
        .map_err(|e| failure("ecs:ListServiceDeployments", &e))?;
    let newest =
        out.service_deployments().iter().max_by_key(|d| d.created_at().map(|t| (t.secs(), t.subsec_nanos())));
    Ok(newest.and_then(|d| d.service_deployment_arn()).map(str::to_string))
}

/// The status of a service deployment (`DescribeServiceDeployments`), e.g. ROLLBACK_IN_PROGRESS.
pub async fn service_deployment_status(ecs: &Client, arn: &str) -> Result<Option<String>, Failure> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .map_err(|e| failure("ecs:DescribeServiceDeployments", &e))?;
    Ok(out.service_deployments().first().and_then(|d| d.status()).map(|s| s.as_str().to_string()))
}

/// The ACTIVE revisions of a task definition family, newest first.
/// Deregister one task definition revision (it becomes INACTIVE; what runs it keeps running).
pub async fn deregister(ecs: &Client, arn: &str) -> Result<()> {
    ecs.deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map_err(|e| describe("ecs:DeregisterTaskDefinition", &e))?;
    Ok(())
}

pub async fn revisions(ecs: &Client, family: &str) -> Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut pages = ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| describe("ecs:ListTaskDefinitions", &e))?;
        arns.extend(page.task_definition_arns().iter().cloned());
    }
    // The prefix matches other families too (`api` and `api-worker`).
    arns.retain(|a| crate::task::view::family_of(a) == family);
    // Emulators ignore `sort`; the revision number decides.
    arns.sort_by_key(|a| std::cmp::Reverse(a.rsplit(':').next().and_then(|r| r.parse::<u32>().ok())));
    Ok(arns)
}
