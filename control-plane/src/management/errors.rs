//! Domain errors become gRPC statuses here, at the edge, with the code that carries their
//! meaning.

use crate::certificate::CertificateError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, PreconditionViolation, StatusExt};

use crate::store::StoreError;

/// The `google.rpc.PreconditionFailure` violation type for a resource that APIs or hostnames
/// still use.
pub const IN_USE: &str = "IN_USE";
/// ... for a certificate that APIs pin by thumbprint.
pub const PINNED: &str = "PINNED_BY_THUMBPRINT";
/// ... for a certificate upload that the hostnames served with it could not use.
pub const BREAKS_HOSTNAME: &str = "BREAKS_HOSTNAME";
/// ... for a certificate that cannot serve TLS for a hostname.
pub const NOT_SERVER_CERTIFICATE: &str = "NOT_SERVER_CERTIFICATE";
/// ... for a second default hostname.
pub const DEFAULT_HOSTNAME_TAKEN: &str = "DEFAULT_HOSTNAME_TAKEN";
/// ... for an API that subscriptions are scoped to (subject `subscriptions/NAME`).
pub const SUBSCRIBED: &str = "SUBSCRIBED";

/// A violation by API `api` (subject `apis/ID`).
fn api_violation(kind: &str, api: &str) -> PreconditionViolation {
    PreconditionViolation::new(kind, format!("apis/{api}"), format!("API '{api}' uses it"))
}

/// A violation by hostname `name` (subject `hostnames/NAME`).
fn hostname_violation(kind: &str, name: &str, description: String) -> PreconditionViolation {
    PreconditionViolation::new(kind, format!("hostnames/{name}"), description)
}

/// FAILED_PRECONDITION naming, as structured details, every API (`apis/ID`) and hostname
/// (`hostnames/NAME`) that blocks the write, so clients never parse the message's English.
fn blocked_by(error: &StoreError, violations: Vec<PreconditionViolation>) -> Status {
    Status::with_error_details(
        Code::FailedPrecondition,
        error.to_string(),
        ErrorDetails::with_precondition_failure(violations),
    )
}

/// The APIs and hostnames that use a resource, as IN_USE violations.
fn in_use(apis: &[String], hostnames: &[String]) -> Vec<PreconditionViolation> {
    let apis = apis.iter().map(|api| api_violation(IN_USE, api));
    let hostnames = hostnames.iter().map(|name| hostname_violation(IN_USE, name, format!("hostname '{name}' uses it")));
    apis.chain(hostnames).collect()
}

/// A refused declaration: one BadRequest field violation per refused resource (field
/// `KIND/ID`); FAILED_PRECONDITION when any refusal is one, else INVALID_ARGUMENT.
fn declaration_refused(error: &StoreError, errors: &[(crate::store::ResourceKind, String, StoreError)]) -> Status {
    let mut details = ErrorDetails::new();
    let mut code = Code::InvalidArgument;
    for (kind, id, refusal) in errors {
        let field = format!("{}/{id}", kind.as_str().replace(' ', "-").to_ascii_lowercase());
        details.add_bad_request_violation(field, refusal.to_string());
        if matches!(
            refusal,
            StoreError::CertificateInUse { .. }
                | StoreError::CaInUse { .. }
                | StoreError::HostnameInUse { .. }
                | StoreError::NamedValueInUse { .. }
                | StoreError::ApiHasSubscriptions { .. }
                | StoreError::PinnedByThumbprint { .. }
                | StoreError::BreaksHostnames { .. }
                | StoreError::Expired { .. }
        ) {
            code = Code::FailedPrecondition;
        }
    }
    Status::with_error_details(code, error.to_string(), details)
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Declaration(errors) => declaration_refused(&error, errors),
            StoreError::DeclaredThumbprint { .. } => Status::failed_precondition(error.to_string()),
            StoreError::Unreadable { .. } => Status::invalid_argument(error.to_string()),
            StoreError::NotFound { .. } | StoreError::ThumbprintNotFound(_) => Status::not_found(error.to_string()),
            StoreError::PathTaken { .. } | StoreError::Exists { .. } => Status::already_exists(error.to_string()),
            StoreError::CertificateInUse { apis, hostnames, .. } | StoreError::CaInUse { apis, hostnames, .. } => {
                blocked_by(&error, in_use(apis, hostnames))
            }
            StoreError::HostnameInUse { apis, .. } => blocked_by(&error, in_use(apis, &[])),
            StoreError::ApiHasSubscriptions { subscriptions, .. } => blocked_by(
                &error,
                subscriptions
                    .iter()
                    .map(|name| {
                        let description = format!("subscription '{name}' is scoped to it");
                        PreconditionViolation::new(SUBSCRIBED, format!("subscriptions/{name}"), description)
                    })
                    .collect(),
            ),
            StoreError::PinnedByThumbprint { apis, .. } => {
                blocked_by(&error, apis.iter().map(|api| api_violation(PINNED, api)).collect())
            }
            StoreError::BreaksHostnames { hostnames, .. } => blocked_by(
                &error,
                hostnames
                    .iter()
                    .map(|(name, reason)| hostname_violation(BREAKS_HOSTNAME, name, reason.to_string()))
                    .collect(),
            ),
            StoreError::NotServerCertificate { id, reason, .. } => blocked_by(
                &error,
                vec![PreconditionViolation::new(
                    NOT_SERVER_CERTIFICATE,
                    format!("certificates/{id}"),
                    reason.to_string(),
                )],
            ),
            StoreError::DefaultHostnameTaken { default, .. } => blocked_by(
                &error,
                vec![hostname_violation(
                    DEFAULT_HOSTNAME_TAKEN,
                    default,
                    format!("hostname '{default}' is the default"),
                )],
            ),
            StoreError::NotLinked { .. } => Status::failed_precondition(error.to_string()),
            StoreError::Expired { .. } | StoreError::EtagMismatch { .. } | StoreError::EtagOnMissing { .. } => {
                Status::failed_precondition(error.to_string())
            }
            StoreError::InvalidId { .. }
            | StoreError::InvalidHostname { .. }
            | StoreError::InvalidSubscriptionKeyHeader { .. }
            | StoreError::Definition(_)
            | StoreError::CertificateOverPlainHttp(_)
            | StoreError::NoTrustedRoots
            | StoreError::Unmask(_) => Status::invalid_argument(error.to_string()),
            StoreError::InvalidNamedValue { .. }
            | StoreError::NamedValueUnresolved(_)
            | StoreError::NamedValueBreaksApi { .. } => Status::invalid_argument(error.to_string()),
            StoreError::NamedValueInUse { apis, .. } => blocked_by(&error, in_use(apis, &[])),
            StoreError::Unavailable { .. } => Status::unavailable(error.to_string()),
            StoreError::Moved { .. } => Status::aborted(error.to_string()),
            StoreError::Storage(_)
            | StoreError::Corrupt { .. }
            | StoreError::Watermark(_)
            | StoreError::BackendRefused { .. }
            | StoreError::UnfinishedMigration { .. }
            | StoreError::WrongMasterKey => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "store failure");
                Status::internal(error.to_string())
            }
        }
    }
}

pub(super) fn certificate_status(error: CertificateError) -> Status {
    Status::invalid_argument(format!("certificate refused: {error}"))
}
