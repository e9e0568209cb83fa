//! Deploying an environment: the plain view of a service and its deployments (`view`), the
//! decisions (`rollout`: is this rollout done, failed, rolled back, superseded or stuck?;
//! `shards`: which tasks a tenant run is split into), and what a deploy reports to CI
//! (`report`: GitHub Actions commands, the step summary, step outputs). The pipeline that
//! ties them to AWS is `commands::deploy`.

pub mod report;
pub mod rollout;
pub mod view;
