//! Who is running: the run id recorded with every history row, the `application_name` that
//! makes our sessions recognisable in `pg_stat_activity`, and `applied_by` (the ECS task ARN
//! inside a task, otherwise user@host).

use std::time::Duration;

/// The run id given (`--run-id`, `SHIPGATE_RUN_ID`), or [`default_run_id`] when it is unset or blank.
pub fn run_id(given: Option<String>, env: &dyn Fn(&str) -> Option<String>) -> String {
    given.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| default_run_id(env))
}

/// The GitHub run (and attempt) when in Actions, else a UTC timestamp with a random suffix.
pub fn default_run_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    match (env("GITHUB_RUN_ID"), env("GITHUB_RUN_ATTEMPT")) {
        (Some(id), Some(attempt)) if !id.is_empty() => format!("gh-{id}-{attempt}"),
        (Some(id), _) if !id.is_empty() => format!("gh-{id}"),
        _ => format!("{}-{:06x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), fastrand::u32(..0x100_0000)),
    }
}

/// `shipgate <version> <run id>`, cut to PostgreSQL's 63-byte limit on a char boundary.
pub fn application_name(run_id: &str) -> String {
    let mut name = format!("shipgate {} {run_id}", env!("CARGO_PKG_VERSION"));
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// The ECS task ARN from the task metadata endpoint, or `user@host`.
pub async fn applied_by() -> String {
    if let Some(base) = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok().filter(|v| !v.is_empty()) {
        let fetched = tokio::task::spawn_blocking(move || fetch_task_metadata(&base)).await;
        match fetched {
            Ok(Ok(body)) => match task_arn(&body) {
                Some(arn) => return arn,
                None => tracing::warn!("the ECS task metadata has no TaskARN; recording user@host instead"),
            },
            Ok(Err(e)) => {
                tracing::warn!("could not read the ECS task metadata ({e}); recording user@host instead")
            }
            Err(e) => {
                tracing::warn!("could not read the ECS task metadata ({e}); recording user@host instead")
            }
        }
    }
    user_at_host()
}

fn fetch_task_metadata(base: &str) -> Result<String, ureq::Error> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    agent.get(&format!("{}/task", base.trim_end_matches('/'))).call()?.body_mut().read_to_string()
}

/// `TaskARN` from a task metadata v4 `/task` document.
pub fn task_arn(body: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    doc.get("TaskARN")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Who is behind this run, for StopTask reasons: the GitHub Actions run URL, or user@host.
pub fn operator(env: &dyn Fn(&str) -> Option<String>) -> String {
    match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
        (Some(server), Some(repo), Some(run)) if !run.is_empty() => {
            format!("{server}/{repo}/actions/runs/{run}")
        }
        _ => user_at_host(),
    }
}

fn user_at_host() -> String {
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        let gh = |k: &str| match k {
            "GITHUB_RUN_ID" => Some("123".to_string()),
            "GITHUB_RUN_ATTEMPT" => Some("2".to_string()),
            _ => None,
        };
        assert_eq!(default_run_id(&gh), "gh-123-2");
        let local = default_run_id(&|_| None);
        assert_eq!(local.len(), "20261121T120000Z-abcdef".len(), "{local}");
    }

    #[test]
    fn application_name_fits_postgres() {
        let long = "r".repeat(100);
        assert!(application_name(&long).len() <= 63);
        assert!(application_name("abc").ends_with(" abc"));
    }

    #[test]
    fn task_arn_from_metadata() {
        let cases = [
            (
                r#"{"Cluster":"c","TaskARN":"arn:aws:ecs:us-east-1:1:task/c/abc"}"#,
                Some("arn:aws:ecs:us-east-1:1:task/c/abc"),
            ),
            (r#"{"Cluster":"c"}"#, None),
            ("not json", None),
        ];
        for (body, expected) in cases {
            assert_eq!(task_arn(body).as_deref(), expected);
        }
    }
}
