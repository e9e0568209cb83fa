//! The AWS emulator for whole-flow tests: moto in server mode, started by `scripts/test`
//! (tests/moto/server.py teaches it how tasks end). Tests talk to it with the real SDK and run
//! the real binary configured only by environment variables.
//!
//! Every test works in its own cluster and task family, so tests share one server and still
//! run in parallel; nothing is reset between them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;

use super::shipgate;

/// A running emulator, or `None` (after saying the test is skipped) without one.
pub(crate) struct Moto {
    pub endpoint: String,
    control: PathBuf,
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Environment variables that would send the binary to a real account.
const HOST_AWS_VARS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_RETRY_MODE",
    "SHIPGATE_CLUSTER",
];

pub(crate) async fn moto(test: &str) -> Option<Moto> {
    let (Ok(endpoint), Ok(control)) =
        (std::env::var("SHIPGATE_MOTO_ENDPOINT"), std::env::var("SHIPGATE_MOTO_CONTROL"))
    else {
        eprintln!("skipped {test}: no AWS emulator (SHIPGATE_MOTO_ENDPOINT unset; scripts/test starts one)");
        return None;
    };
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shipgate::aws::http_client())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecs::config::Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await;
    Some(Moto {
        ecs: aws_sdk_ecs::Client::new(&conf),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
        secrets: aws_sdk_secretsmanager::Client::new(&conf),
        endpoint,
        control: PathBuf::from(control),
    })
}

/// A name no other test (or earlier run against the same server) uses.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{:012x}", (nanos as u64 ^ fastrand::u64(..)) & 0xffff_ffff_ffff)
}

impl Moto {
    /// `shipgate` configured for the emulator by environment variables only.
    pub(crate) fn shipgate(&self, args: &[&str]) -> Command {
        let mut cmd = shipgate(args);
        for var in HOST_AWS_VARS {
            cmd.env_remove(var);
        }
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // moto answers HTTP 500 to a few malformed requests; fail fast instead of retrying.
            .env("AWS_MAX_ATTEMPTS", "2");
        cmd
    }

    /// Create a secret (a name no other test uses) holding `value`; returns its name and ARN.
    pub(crate) async fn create_secret(&self, value: &str) -> (String, String) {
        let name = unique("it/db");
        let out = self
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
        (name, out.arn().expect("secret ARN").to_string())
    }

    /// A new version of the secret, labelled `stages` (AWSCURRENT when empty).
    pub(crate) async fn put_secret(&self, name: &str, value: &str, stages: &[&str]) {
        let mut put = self.secrets.put_secret_value().secret_id(name).secret_string(value);
        for stage in stages {
            put = put.version_stages(*stage);
        }
        put.send().await.expect("put secret value");
    }

    pub(crate) async fn create_cluster(&self, name: &str) {
        self.ecs.create_cluster().cluster_name(name).send().await.expect("create cluster");
    }

    /// One of the default VPC's subnets (moto recreates them with new ids on reset).
    pub(crate) async fn default_subnet(&self) -> String {
        let endpoint = self.endpoint.clone();
        tokio::task::spawn_blocking(move || {
            let body = ureq::post(&endpoint)
                // moto routes by the credential scope; it does not check the signature.
                .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
                .content_type("application/x-www-form-urlencoded")
                .send("Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=default-for-az&Filter.1.Value.1=true")
                .expect("DescribeSubnets")
                .body_mut()
                .read_to_string()
                .expect("body");
            let start = body.find("<subnetId>").expect("a default subnet") + "<subnetId>".len();
            body[start..].split('<').next().unwrap().to_string()
        })
        .await
        .unwrap()
    }

    /// A file the emulator writes in its control folder (`describe-tasks.log`, `calls.log`).
    pub(crate) fn control_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.control.join(name)).unwrap_or_default()
    }

    /// Make the task stop with this exit code (`None`: its container never ran).
    pub(crate) fn stop(&self, task_arn: &str, spec: serde_json::Value) {
        let id = task_arn.rsplit('/').next().unwrap();
        let tmp = self.control.join(format!("{id}.tmp"));
        std::fs::write(&tmp, spec.to_string()).unwrap();
        std::fs::rename(tmp, self.control.join(format!("{id}.json"))).unwrap();
    }

    pub(crate) async fn create_log_group(&self, group: &str) {
        self.logs.create_log_group().log_group_name(group).send().await.expect("create log group");
    }

    /// Put `lines` (in order, one millisecond apart from `first_ms`) into a stream, creating it
    /// on the first call.
    pub(crate) async fn put_lines(
        &self,
        group: &str,
        stream: &str,
        lines: std::ops::Range<usize>,
        first_ms: i64,
    ) {
        let _ = self.logs.create_log_stream().log_group_name(group).log_stream_name(stream).send().await;
        let all: Vec<usize> = lines.collect();
        for chunk in all.chunks(1000) {
            let events = chunk
                .iter()
                .map(|i| {
                    InputLogEvent::builder()
                        .timestamp(first_ms + *i as i64)
                        .message(format!("line {i:06}"))
                        .build()
                        .unwrap()
                })
                .collect();
            self.logs
                .put_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await
                .expect("put log events");
        }
    }

    /// The ARN of the one task running in `cluster`, waiting for it to appear.
    pub(crate) async fn running_task(&self, cluster: &str) -> String {
        self.new_task(cluster, &[]).await
    }

    /// The ARN of a task in `cluster` that is not one of `known`, waiting for it to appear.
    pub(crate) async fn new_task(&self, cluster: &str, known: &[&str]) -> String {
        for _ in 0..600 {
            let out = self.ecs.list_tasks().cluster(cluster).send().await.expect("list tasks");
            let fresh = out
                .task_arns()
                .iter()
                .find(|a| a.contains(&format!("/{cluster}/")) && !known.contains(&a.as_str()));
            if let Some(arn) = fresh {
                return arn.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new task started in {cluster}");
    }
}

/// A Fargate migration task definition template with an awslogs container.
pub(crate) fn template(family: &str, group: &str) -> String {
    format!(
        r#"{{
  "family": "{family}",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [{{
    "name": "migrate",
    "image": "example.com/app:${{IMAGE_TAG}}",
    "memory": 512,
    "essential": true,
    "environment": [{{"name": "MIGRATION_TYPE", "value": "${{MIGRATION_TYPE:-master}}"}}],
    "logConfiguration": {{
      "logDriver": "awslogs",
      "options": {{"awslogs-group": "{group}", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "db", "mode": "blocking"}}
    }}
  }}]
}}
"#
    )
}

/// Register a task definition from its JSON (as `aws ecs register-task-definition
/// --cli-input-json` would); returns its ARN.
pub(crate) async fn register_json(moto: &Moto, json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect("task definition JSON");
    shipgate::aws::ecs::register(&moto.ecs, &value).await.expect("register task definition")
}
