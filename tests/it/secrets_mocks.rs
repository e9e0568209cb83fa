//! Reading a secret against `aws-smithy-mocks` answers: the failures the emulator cannot
//! produce (access denied, a KMS key we may not use, a binary secret, throttling) and what
//! each one says and exits with.

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::operation::get_secret_value::{GetSecretValueError, GetSecretValueOutput};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::error::{DecryptionFailure, ResourceNotFoundException};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use shipgate::db::Credentials;
use shipgate::db::target::{self, Flags};

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";

fn credentials(rules: &[Rule]) -> Credentials {
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, rules, |c| c.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(std::time::Duration::from_millis(1))
    ));
    let flags = Flags { db_secret: Some(ARN.into()), ..Flags::default() };
    let settings = target::settings(&flags, &|_| None).unwrap();
    Credentials::with_client(settings, Some(client))
}

fn service_error(code: &str, message: &str) -> GetSecretValueError {
    GetSecretValueError::generic(ErrorMetadata::builder().code(code).message(message).build())
}

#[tokio::test]
async fn every_way_a_read_fails_is_named_with_its_exit_code() {
    let denied = "User: arn:aws:sts::123456789012:assumed-role/app-task/abc is not authorized to perform: secretsmanager:GetSecretValue on resource: prod/db";
    type Case = (&'static str, Rule, u8, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            "access denied",
            mock!(aws_sdk_secretsmanager::Client::get_secret_value)
                .then_error(move || service_error("AccessDeniedException", denied)),
            3,
            &[
                "lacks secretsmanager:GetSecretValue",
                "grant secretsmanager:GetSecretValue on arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf to the task role",
                "assumed-role/app-task",
            ],
        ),
        (
            "not found",
            mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .message("Secrets Manager can't find the specified secret.")
                        .build(),
                )
            }),
            2,
            &["does not exist, or has no version labelled AWSCURRENT", "the ARN's region"],
        ),
        (
            "KMS",
            mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
                GetSecretValueError::DecryptionFailure(
                    DecryptionFailure::builder().message("Access to KMS is not allowed").build(),
                )
            }),
            3,
            &["could not decrypt", "kms:Decrypt"],
        ),
        (
            "binary",
            mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(|| {
                GetSecretValueOutput::builder()
                    .arn(ARN)
                    .secret_binary(Blob::new(b"\x00\x01".to_vec()))
                    .build()
            }),
            2,
            &["holds binary data (SecretBinary)"],
        ),
        (
            "expired credentials",
            mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
                service_error(
                    "ExpiredTokenException",
                    "The security token included in the request is expired",
                )
            }),
            3,
            &["credentials are invalid or expired"],
        ),
    ];
    for (name, rule, code, needles) in cases {
        let err = credentials(&[rule]).target().await.unwrap_err();
        assert_eq!(err.exit_code(), code, "{name}: {err}");
        for needle in needles {
            assert!(err.to_string().contains(needle), "{name}: missing {needle}: {err}");
        }
    }
}

#[tokio::test]
async fn throttling_is_retried_and_the_secret_is_read_once_for_every_connection() {
    let value =
        r#"{"username":"app","password":"pw-mock-1","host":"db.internal","port":5432,"dbname":"app"}"#;
    let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .sequence()
        .error(|| service_error("ThrottlingException", "Rate exceeded"))
        .output(move || {
            GetSecretValueOutput::builder().arn(ARN).version_id("v1").secret_string(value).build()
        })
        .build();
    let creds = credentials(std::slice::from_ref(&rule));
    let other = creds.clone();
    let (a, b) = tokio::join!(creds.target(), other.target());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.host(), a.port(), a.user(), a.database()),
        ("db.internal".into(), 5432, "app".into(), "app".into())
    );
    assert_eq!(b.secret_version.as_deref(), Some("v1"));
    assert!(a.password_from_secret);
    assert_eq!(rule.num_calls(), 2, "one throttled call, one answer, shared by both connections");
    assert!(!format!("{a:?} {a} {creds:?}").contains("pw-mock-1"));
}
