//! A line for every attempt the SDK makes again: while it retries a call that AWS answered
//! with a server error or throttling, or that got no answer at all, the user reads "AWS
//! answered HTTP 500 to ecs:RunTask (attempt 3 of 8); trying again" instead of waiting in
//! silence for the last attempt's error.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;

/// The interceptor every client of the process carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempts;

/// What an attempt's end says, when another attempt follows: `status` is the HTTP status AWS
/// answered with (none: no answer). Nothing for an answer no retry follows.
pub fn retry_line(action: &str, status: Option<u16>, attempt: u32, max: u32) -> Option<String> {
    if attempt >= max {
        return None;
    }
    let what = match status {
        Some(status) if status >= 500 || status == 429 => format!("AWS answered HTTP {status} to {action}"),
        Some(_) => return None,
        None => format!("no answer from AWS for {action}"),
    };
    Some(format!("{what} (attempt {attempt} of {max}); trying again"))
}

/// `ecs:RunTask` from the SDK's operation metadata: IAM's service prefix.
fn action(meta: Option<&Metadata>) -> String {
    let Some(meta) = meta else { return "an AWS call".into() };
    // "ECS", "CloudWatch Logs", "Secrets Manager" as the SDK names them.
    let service = match meta.service().to_ascii_lowercase().as_str() {
        "cloudwatch logs" => "logs".to_string(),
        other => other.replace(' ', ""),
    };
    format!("{service}:{}", meta.name())
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "shipgate::Attempts"
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let status = ctx.response().map(|r| r.status().as_u16());
        // A call that worked, or failed for a reason no retry changes, says nothing here.
        if status.is_some_and(|s| s < 500 && s != 429) {
            return Ok(());
        }
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let max = cfg.load::<RetryConfig>().map_or(1, RetryConfig::max_attempts);
        if let Some(line) = retry_line(&action(cfg.load::<Metadata>()), status, attempt, max) {
            tracing::warn!("{line}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_retried_attempt_says_what_aws_answered() {
        let cases = [
            (Some(500), 3, 8, Some("AWS answered HTTP 500 to ecs:RunTask (attempt 3 of 8); trying again")),
            (Some(503), 1, 8, Some("AWS answered HTTP 503 to ecs:RunTask (attempt 1 of 8); trying again")),
            (Some(429), 2, 8, Some("AWS answered HTTP 429 to ecs:RunTask (attempt 2 of 8); trying again")),
            (None, 1, 8, Some("no answer from AWS for ecs:RunTask (attempt 1 of 8); trying again")),
            // The last attempt's failure is the call's error, said once by the caller.
            (Some(500), 8, 8, None),
            (Some(400), 1, 8, None),
            (Some(200), 1, 8, None),
        ];
        for (status, attempt, max, want) in cases {
            assert_eq!(
                retry_line("ecs:RunTask", status, attempt, max).as_deref(),
                want,
                "{status:?} {attempt}"
            );
        }
    }
}
