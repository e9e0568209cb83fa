//! The AWS edge: loading credentials and region the standard way, building clients, and the
//! thin calls the commands make. Decisions about what the answers mean live in `task` and
//! `taskdef`; this module only talks to AWS and copies results into plain data.
//!
//! Credentials come from the default chain (environment, profile, SSO, web identity for
//! GitHub OIDC, container and instance roles). `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_ECS` / `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` / `AWS_ENDPOINT_URL_SECRETS_MANAGER`
//! are honoured by the SDK itself,
//! which is how the tests point the real binary at an emulator.

pub mod attempts;
pub mod budget;
pub mod ecs;
pub mod error;
pub mod logs;
pub mod poll;
pub mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

use crate::error::{Error, Result};

/// HTTPS with rustls and ring: the one TLS stack of the binary (sqlx uses it too).
pub fn http_client() -> aws_sdk_ecs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// The standard configuration (environment, profile, SSO, web identity, container role),
/// with our HTTP client, timeouts and retry policy. `region` wins over the environment.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                // A hung connection must become a retried attempt, not a follower stuck forever.
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if std::env::var_os("AWS_RETRY_MODE").is_none() && std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
        // Adaptive: throttling slows the client down instead of failing the deploy.
        loader = loader.retry_config(
            RetryConfig::adaptive().with_max_attempts(8).with_max_backoff(Duration::from_secs(20)),
        );
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader.load().await
}

/// Clients for one run. Logs clients are per region, because a container's `awslogs-region`
/// may differ from the cluster's.
#[derive(Clone)]
pub struct Aws {
    pub ecs: aws_sdk_ecs::Client,
    pub region: String,
    /// The one `DescribeTasks` schedule of every task this process follows.
    pub tasks: poll::TaskPoller,
    /// The one budget of every `GetLogEvents` call of this process.
    pub log_reads: Arc<budget::Budget>,
    base: Option<SdkConfig>,
    default_logs: aws_sdk_cloudwatchlogs::Client,
    logs_by_region: Arc<Mutex<HashMap<String, aws_sdk_cloudwatchlogs::Client>>>,
}

impl Aws {
    /// Load the standard configuration. `region` (from `--region`) wins over the environment
    /// and profile; without any, the error says how to set one.
    pub async fn load(region: Option<&str>) -> Result<Aws> {
        let config = sdk_config(region).await;
        let Some(region) = config.region().map(|r| r.to_string()).filter(|r| !r.trim().is_empty()) else {
            return Err(Error::input("no AWS region is configured")
                .hint("pass --region, set AWS_REGION, or set `region` in your AWS profile"));
        };
        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(&config).interceptor(attempts::Attempts).build(),
        );
        let default_logs = aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(&config).interceptor(attempts::Attempts).build(),
        );
        Ok(Aws::assemble(ecs, default_logs, region, Some(config)))
    }

    /// Wrap ready-made clients (tests with `aws-smithy-mocks`): one logs client for every region.
    pub fn from_clients(ecs: aws_sdk_ecs::Client, logs: aws_sdk_cloudwatchlogs::Client) -> Aws {
        Aws::assemble(ecs, logs, "us-east-1".into(), None)
    }

    /// The clients, with the process's shared `DescribeTasks` rounds and logs budget.
    fn assemble(
        ecs: aws_sdk_ecs::Client,
        default_logs: aws_sdk_cloudwatchlogs::Client,
        region: String,
        base: Option<SdkConfig>,
    ) -> Aws {
        Aws {
            tasks: poll::TaskPoller::new(ecs.clone()),
            ecs,
            region,
            log_reads: Arc::new(budget::Budget::new(budget::DEFAULT_PER_SECOND)),
            base,
            default_logs,
            logs_by_region: Arc::default(),
        }
    }

    /// The same clients, with `per_second` as the budget of `GetLogEvents` calls.
    pub fn with_log_reads(mut self, per_second: f64) -> Aws {
        self.log_reads = Arc::new(budget::Budget::new(per_second));
        self
    }

    /// The logs client for a container's `awslogs-region` (the default region when unset).
    pub fn logs(&self, region: Option<&str>) -> aws_sdk_cloudwatchlogs::Client {
        let (Some(base), Some(region)) = (&self.base, region) else { return self.default_logs.clone() };
        if region == self.region {
            return self.default_logs.clone();
        }
        let mut cache = self.logs_by_region.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_cloudwatchlogs::config::Builder::from(base)
                    .region(aws_config::Region::new(region.to_string()))
                    .interceptor(attempts::Attempts)
                    .build();
                aws_sdk_cloudwatchlogs::Client::from_conf(conf)
            })
            .clone()
    }
}
