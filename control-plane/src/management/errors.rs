//! Domain errors become gRPC statuses here, at the edge, with the code that carries their
//! meaning.

use gatehouse_shared::CertificateError;
use tonic::Status;

use crate::store::StoreError;

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } | StoreError::ThumbprintNotFound(_) => Status::not_found(error.to_string()),
            StoreError::PathTaken { .. } => Status::already_exists(error.to_string()),
            StoreError::CertificateInUse { .. }
            | StoreError::CaInUse { .. }
            | StoreError::PinnedByThumbprint { .. }
            | StoreError::Expired { .. }
            | StoreError::EtagMismatch { .. }
            | StoreError::EtagOnMissing { .. } => Status::failed_precondition(error.to_string()),
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
