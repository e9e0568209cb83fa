//! Integration tests: the real `shipgate` binary against a real PostgreSQL.

mod adopt;
mod credentials;
mod deploy_local;
mod deploy_mocks;
mod deploy_moto;
mod layers;
mod layouts;
mod lint;
mod migrate_basics;
mod migrate_input;
mod migrate_safety;
mod packaging;
mod phases;
mod redaction;
mod secrets;
mod secrets_mocks;
mod support;
mod task_mocks;
mod task_moto;
mod tenants;
mod tls;
