//! Turning AWS SDK errors into shipgate errors: the action that failed, AWS's error code and
//! message, the exit code of the contract, and what to do about it.
//!
//! Configuration mistakes (unknown cluster, family or service, invalid parameters) are exit 2;
//! not being able to use AWS at all (no or expired credentials, access denied, AWS unreachable)
//! is exit 3. Throttling and server errors are transient: the SDK retries them, and a
//! following loop keeps going past them (see [`is_transient`]).

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::error::{Error, Kind};

/// A failed call, and whether trying again later may work.
#[derive(Debug, Clone)]
pub struct Failure {
    pub transient: bool,
    /// The credentials expired (`ExpiredToken`): nothing this process asks AWS will work now,
    /// while what it started keeps running there.
    pub expired: bool,
    pub error: Error,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// Classify a failed call of `action` for a loop that can try again later.
pub fn failure<E, R>(action: &str, err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let expired = match err {
        SdkError::ServiceError(e) => matches!(e.err().code(), Some("ExpiredToken" | "ExpiredTokenException")),
        _ => false,
    };
    Failure { transient: is_transient(err), expired, error: describe(action, err) }
}

/// What a failed call means to the loop that made it.
pub fn is_transient<E: ProvideErrorMetadata, R: std::fmt::Debug>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => transient_code(e.err().code().unwrap_or("")),
        _ => false,
    }
}

fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ServerException"
            | "ServiceUnavailableException"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalServerError"
    )
}

/// Decide the exit code and the message from AWS's error code.
pub fn classify_code(code: &str, message: &str) -> (Kind, Option<&'static str>) {
    match code {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" | "UnauthorizedException" => (
            Kind::Unavailable,
            Some(
                "grant this action to the role or user shipgate runs as (see aws/iam/ for the policies it needs)",
            ),
        ),
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch" => (
            Kind::Unavailable,
            Some(
                "the AWS credentials are invalid or expired: refresh them (aws sso login, a new OIDC token, or new keys)",
            ),
        ),
        "ClusterNotFoundException" => (
            Kind::Input,
            Some("check --cluster and the region (--region or AWS_REGION): clusters are per region"),
        ),
        "ServiceNotFoundException" | "ServiceNotActiveException" => {
            (Kind::Input, Some("check the service name and --cluster"))
        }
        "ClientException" if message.contains("Unable to describe task definition") => (
            Kind::Input,
            Some(
                "check the family name (and revision) and the region; register it with `shipgate taskdef register`",
            ),
        ),
        "ClientException"
        | "InvalidParameterException"
        | "ValidationException"
        | "PlatformUnknownException"
        | "PlatformTaskDefinitionIncompatibilityException" => (Kind::Input, None),
        code if transient_code(code) => {
            (Kind::Unavailable, Some("AWS kept refusing after retries; try again, or raise AWS_MAX_ATTEMPTS"))
        }
        _ => (Kind::Failed, None),
    }
}

/// One clear error for a failed call of `action` (e.g. `ecs:RunTask`).
pub fn describe<E, R>(action: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or("UnknownError");
            let message = e.err().message().unwrap_or("no message");
            let (kind, hint) = classify_code(code, message);
            let error = Error::new(kind, format!("AWS refused {action}: {code}: {message}"));
            match hint {
                Some(h) => error.hint(h),
                None => error,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let text = compact(&DisplayErrorContext(err).to_string());
            if looks_like_credentials(&text) {
                return no_credentials(action, &text);
            }
            Error::unavailable(format!("cannot reach AWS for {action}: {text}")).hint(
                "check the network path to AWS (proxy, VPC endpoints) and AWS_ENDPOINT_URL if you set one",
            )
        }
        _ => {
            let text = compact(&DisplayErrorContext(err).to_string());
            if looks_like_credentials(&text) {
                return no_credentials(action, &text);
            }
            Error::failed(format!("{action} failed: {text}"))
        }
    }
}

/// The readable part of an SDK error chain: without the `Debug` dump the SDK appends, and
/// without the generic "dispatch failure: other:" preamble.
fn compact(text: &str) -> String {
    let cut =
        ["DispatchFailure(", "ConstructionFailure(", "TimeoutError(", "ResponseError(", "ServiceError("]
            .iter()
            .filter_map(|v| text.find(&format!(" ({v}")))
            .min()
            .unwrap_or(text.len());
    let text = text[..cut].trim_end();
    text.strip_prefix("dispatch failure: other: ")
        .or(text.strip_prefix("dispatch failure: "))
        .unwrap_or(text)
        .to_string()
}

fn looks_like_credentials(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("credential") || t.contains("identity")
}

fn no_credentials(action: &str, text: &str) -> Error {
    Error::unavailable(format!("no usable AWS credentials for {action}: {text}")).hint(
        "set AWS_PROFILE (and run `aws sso login`), export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or in GitHub Actions use aws-actions/configure-aws-credentials with OIDC",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_error_chains_are_compacted() {
        let text = "dispatch failure: other: no credentials found in chain. Attempted:\n  Environment: not set (DispatchFailure(DispatchFailure { source: x }))";
        assert_eq!(compact(text), "no credentials found in chain. Attempted:\n  Environment: not set");
        assert_eq!(compact("io error: connection refused"), "io error: connection refused");
    }

    #[test]
    fn codes_map_to_the_exit_code_contract() {
        let cases = [
            ("AccessDeniedException", "", Kind::Unavailable),
            ("ExpiredTokenException", "", Kind::Unavailable),
            ("ClusterNotFoundException", "Cluster not found.", Kind::Input),
            ("ClientException", "Unable to describe task definition.", Kind::Input),
            ("InvalidParameterException", "Network Configuration must be provided", Kind::Input),
            ("ThrottlingException", "Rate exceeded", Kind::Unavailable),
            ("SomethingNew", "", Kind::Failed),
        ];
        for (code, message, kind) in cases {
            assert_eq!(classify_code(code, message).0, kind, "{code}");
        }
        assert!(transient_code("ThrottlingException") && !transient_code("AccessDeniedException"));
    }
}
