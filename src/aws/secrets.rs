//! The Secrets Manager edge: one `GetSecretValue` call, and what its failures mean.
//!
//! The value is returned as text and never logged; what it means is `db::secret`'s business.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use crate::db::secret::SecretRef;
use crate::error::{Error, Kind};

/// A fetched secret value. `Debug` leaves the value out.
pub struct SecretValue {
    pub text: String,
    pub arn: Option<String>,
    pub version_id: Option<String>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({:?}, version {:?})", self.arn, self.version_id)
    }
}

/// A client for the secret's region: the ARN's region when it names one, else the default.
pub async fn client(secret: &SecretRef) -> crate::error::Result<aws_sdk_secretsmanager::Client> {
    let config = super::sdk_config(secret.region()).await;
    if config.region().is_none_or(|r| r.as_ref().trim().is_empty()) {
        return Err(Error::input(format!("no AWS region is configured to read secret {secret} from"))
            .hint("set AWS_REGION, or give the secret's full ARN (it names the region)"));
    }
    Ok(aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config).interceptor(super::attempts::Attempts).build(),
    ))
}

/// `secretsmanager:GetSecretValue`.
pub async fn get(
    client: &aws_sdk_secretsmanager::Client,
    secret: &SecretRef,
) -> crate::error::Result<SecretValue> {
    let out = client
        .get_secret_value()
        .secret_id(&secret.id)
        .set_version_stage(secret.stage.clone())
        .send()
        .await
        .map_err(|e| describe(secret, &e))?;
    let Some(text) = out.secret_string() else {
        return Err(Error::input(format!("secret {secret} holds binary data (SecretBinary), not text"))
            .hint("store the credentials as the secret's string value (SecretString)"));
    };
    Ok(SecretValue {
        text: text.to_string(),
        arn: out.arn().map(str::to_string),
        version_id: out.version_id().map(str::to_string),
    })
}

fn describe<R: std::fmt::Debug>(secret: &SecretRef, err: &SdkError<GetSecretValueError, R>) -> Error {
    let SdkError::ServiceError(service) = err else {
        return super::error::describe("secretsmanager:GetSecretValue", err);
    };
    let e = service.err();
    // The modeled errors carry their code in the type, not always in the metadata.
    let code = match e {
        GetSecretValueError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        GetSecretValueError::DecryptionFailure(_) => "DecryptionFailure",
        GetSecretValueError::InvalidRequestException(_) => "InvalidRequestException",
        GetSecretValueError::InvalidParameterException(_) => "InvalidParameterException",
        GetSecretValueError::InternalServiceError(_) => "InternalServiceError",
        _ => e.code().unwrap_or("UnknownError"),
    };
    let message = e.message().unwrap_or("no message");
    let (kind, text, hint) = classify(code, secret);
    Error::new(kind, format!("{text} ({code}: {message})")).hint(hint)
}

/// What a `GetSecretValue` error code means, and what to do about it.
pub fn classify(code: &str, secret: &SecretRef) -> (Kind, String, String) {
    let stage = secret.stage.as_deref().unwrap_or("AWSCURRENT");
    match code {
        "ResourceNotFoundException" => (
            Kind::Input,
            format!("secret {secret} does not exist, or has no version labelled {stage}"),
            "check --db-secret / DB_SECRET_ID (name or ARN), the version stage and the region \
             (AWS_REGION, or the ARN's region)"
                .into(),
        ),
        "AccessDeniedException" | "AccessDenied" => (
            Kind::Unavailable,
            format!(
                "not allowed to read secret {secret}: the role shipgate runs as lacks secretsmanager:GetSecretValue"
            ),
            format!(
                "grant secretsmanager:GetSecretValue on {} to the task role (not only the execution \
                 role); if the secret is encrypted with a customer managed KMS key, grant kms:Decrypt on it too",
                arn_pattern(secret)
            ),
        ),
        "DecryptionFailure" => (
            Kind::Unavailable,
            format!("could not decrypt secret {secret} with its KMS key"),
            "grant kms:Decrypt on the secret's KMS key to the role shipgate runs as".into(),
        ),
        "InvalidRequestException" => (
            Kind::Input,
            format!("secret {secret} cannot be read now (it may be scheduled for deletion)"),
            "restore it (aws secretsmanager restore-secret) or point DB_SECRET_ID at another secret".into(),
        ),
        "InvalidParameterException" | "ValidationException" => (
            Kind::Input,
            format!("AWS rejected the request for secret {secret}"),
            "check the secret name or ARN and the version stage".into(),
        ),
        other => {
            let (kind, hint) = super::error::classify_code(other, "");
            (
                if kind == Kind::Failed { Kind::Unavailable } else { kind },
                format!("could not read secret {secret}"),
                hint.unwrap_or("try again; if it persists, check the secret in the AWS console").into(),
            )
        }
    }
}

/// The resource to grant: the ARN when we have it, else the pattern that matches the name.
fn arn_pattern(secret: &SecretRef) -> String {
    if secret.id.starts_with("arn:") {
        secret.id.clone()
    } else {
        format!("arn:aws:secretsmanager:REGION:ACCOUNT:secret:{}-*", secret.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_the_exit_code_contract() {
        let by_arn = SecretRef {
            id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf".into(),
            stage: None,
        };
        let by_name = SecretRef { id: "prod/db".into(), stage: Some("AWSPREVIOUS".into()) };
        let cases = [
            ("ResourceNotFoundException", &by_name, Kind::Input, "no version labelled AWSPREVIOUS"),
            ("AccessDeniedException", &by_arn, Kind::Unavailable, "secret:prod/db-AbCdEf to the task role"),
            ("AccessDeniedException", &by_name, Kind::Unavailable, "secret:prod/db-*"),
            ("DecryptionFailure", &by_name, Kind::Unavailable, "kms:Decrypt"),
            ("InvalidRequestException", &by_name, Kind::Input, "restore-secret"),
            ("ExpiredTokenException", &by_name, Kind::Unavailable, "credentials are invalid or expired"),
            ("InternalServiceError", &by_name, Kind::Unavailable, "try again"),
        ];
        for (code, secret, kind, needle) in cases {
            let (k, text, hint) = classify(code, secret);
            assert_eq!(k, kind, "{code}");
            assert!(format!("{text} {hint}").contains(needle), "{code}: {text} / {hint}");
        }
    }
}
