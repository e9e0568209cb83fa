//! Old task definition revisions deregistered after a successful deploy (`keep_revisions`):
//! each family this deploy used keeps its newest N revisions and every revision still in use
//! here (what the services run now and ran before, which `shipgate rollback` goes back to,
//! and the migration task's). ECS keeps running tasks and services of a deregistered
//! revision; it only refuses to start new ones from it.

use std::collections::BTreeSet;

use crate::aws::{Aws, ecs};
use crate::deploy::report::DeployRecord;
use crate::task::view::family_of;

/// The revisions of one family to deregister: `revisions` newest first, the first `keep`
/// kept, and none that is `in_use`.
pub fn stale(revisions: &[String], keep: usize, in_use: &BTreeSet<String>) -> Vec<String> {
    revisions.iter().skip(keep).filter(|arn| !in_use.contains(*arn)).cloned().collect()
}

/// Every task definition a deploy's record names: registered or reused, run by its tasks,
/// and each service's new and previous one.
pub fn in_use(record: &DeployRecord) -> BTreeSet<String> {
    let mut arns: BTreeSet<String> =
        record.task_definitions.iter().map(|t| t.task_definition_arn.clone()).collect();
    arns.extend(record.services.iter().map(|s| s.task_definition_arn.clone()));
    arns.extend(record.services.iter().map(|s| s.previous_task_definition_arn.clone()));
    arns.extend(record.rollbacks.iter().map(|s| s.task_definition_arn.clone()));
    arns.retain(|a| !a.is_empty());
    arns
}

/// Deregister the stale revisions of every family in the record. The deploy has succeeded
/// by now: a failure here is a warning (with what to grant), never a failed deploy. Returns
/// the revisions deregistered.
pub async fn prune(aws: &Aws, record: &DeployRecord, keep: u32) -> Vec<String> {
    let in_use = in_use(record);
    let families: BTreeSet<&str> = in_use.iter().map(|a| family_of(a)).collect();
    let mut gone = Vec::new();
    for family in families {
        let revisions = match ecs::revisions(&aws.ecs, family).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("keep_revisions: cannot list the revisions of `{family}`: {}", e.message());
                continue;
            }
        };
        let stale = stale(&revisions, keep as usize, &in_use);
        for arn in &stale {
            if let Err(e) = ecs::deregister(&aws.ecs, arn).await {
                tracing::warn!(
                    "keep_revisions: cannot deregister {}: {} (the deploy role needs ecs:DeregisterTaskDefinition)",
                    crate::deploy::view::revision_name(arn),
                    e.message()
                );
                break;
            }
            gone.push(arn.clone());
        }
        let done = gone.iter().filter(|a| family_of(a) == family).count();
        if done > 0 {
            tracing::info!(
                "keep_revisions: deregistered {done} old revision{} of `{family}` (kept the newest {keep} and those in use)",
                if done == 1 { "" } else { "s" }
            );
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_and_those_in_use_are_kept() {
        let rev = |n: u32| format!("arn:aws:ecs:us-east-1:1:task-definition/api:{n}");
        let newest_first: Vec<String> = (1..=8).rev().map(rev).collect();
        let used = |ns: &[u32]| ns.iter().map(|&n| rev(n)).collect::<BTreeSet<_>>();
        // (keep, in use) -> deregistered
        let cases: Vec<(usize, BTreeSet<String>, Vec<u32>)> = vec![
            (10, used(&[8, 7]), vec![]),
            (8, used(&[]), vec![]),
            (5, used(&[8, 7]), vec![3, 2, 1]),
            (1, used(&[8, 7]), vec![6, 5, 4, 3, 2, 1]),
            // A service still on an old revision keeps it.
            (3, used(&[8, 2]), vec![5, 4, 3, 1]),
            (0, used(&[8]), vec![7, 6, 5, 4, 3, 2, 1]),
        ];
        for (keep, in_use, want) in cases {
            let want: Vec<String> = want.into_iter().map(rev).collect();
            assert_eq!(stale(&newest_first, keep, &in_use), want, "keep {keep}");
        }
    }
}
