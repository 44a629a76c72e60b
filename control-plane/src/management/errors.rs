//! Domain errors become gRPC statuses here, at the edge, with the code that carries their
//! meaning.

use crate::certificate::CertificateError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, PreconditionViolation, StatusExt};

use crate::store::StoreError;

/// The `google.rpc.PreconditionFailure` violation type for a resource that APIs still use.
pub const IN_USE: &str = "IN_USE";
/// ... for a certificate that APIs pin by thumbprint.
pub const PINNED: &str = "PINNED_BY_THUMBPRINT";

/// FAILED_PRECONDITION naming, as structured details, every API (`apis/ID`) that blocks the
/// write, so clients never parse the message's English.
fn blocked_by(error: &StoreError, kind: &str, apis: &[String]) -> Status {
    let violations: Vec<PreconditionViolation> = apis
        .iter()
        .map(|api| PreconditionViolation::new(kind, format!("apis/{api}"), format!("API '{api}' uses it")))
        .collect();
    Status::with_error_details(
        Code::FailedPrecondition,
        error.to_string(),
        ErrorDetails::with_precondition_failure(violations),
    )
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } | StoreError::ThumbprintNotFound(_) => Status::not_found(error.to_string()),
            StoreError::PathTaken { .. } => Status::already_exists(error.to_string()),
            StoreError::CertificateInUse { apis, .. } | StoreError::CaInUse { apis, .. } => {
                blocked_by(&error, IN_USE, apis)
            }
            StoreError::PinnedByThumbprint { apis, .. } => blocked_by(&error, PINNED, apis),
            StoreError::Expired { .. } | StoreError::EtagMismatch { .. } | StoreError::EtagOnMissing { .. } => {
                Status::failed_precondition(error.to_string())
            }
            StoreError::InvalidId { .. }
            | StoreError::Definition(_)
            | StoreError::NoTrustedRoots
            | StoreError::Unmask(_) => Status::invalid_argument(error.to_string()),
            StoreError::Storage(_) | StoreError::Corrupt { .. } | StoreError::Watermark(_) => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "store failure");
                Status::internal(error.to_string())
            }
        }
    }
}

pub(super) fn certificate_status(error: CertificateError) -> Status {
    Status::invalid_argument(format!("certificate refused: {error}"))
}
