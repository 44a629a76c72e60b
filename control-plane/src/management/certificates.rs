//! Uploads and deletes of client and CA certificates: files checked here, rules in the store.

use crate::certificate::ClientCertificate;
use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::errors::certificate_status;
use super::views::{ca_view, certificate_view};
use crate::store::WriteOptions;

impl ManagementService {
    pub(super) async fn upload_certificate_inner(
        &self,
        request: Request<pb::UploadCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let request = request.into_inner();
        // Decrypting a PFX is CPU work (PBKDF2): keep it off the async workers.
        let (pfx, password) = (request.pfx, request.password);
        let (max_bytes, max_chain) = (self.limits.max_pfx_bytes, self.limits.max_chain_length);
        let parsed = tokio::task::spawn_blocking(move || {
            ClientCertificate::from_pkcs12_limited(&pfx, &password, max_bytes, max_chain)
        })
        .await
        .map_err(|_| Status::internal("certificate parsing task failed"))?;
        let certificate = match parsed {
            Ok(c) => c,
            Err(error) => {
                // The caller's id escaped, and the whole cause chain for the operator.
                tracing::info!(
                    id = %request.id.escape_debug(),
                    error = %gatehouse_shared::error_chain(&error),
                    "certificate upload refused"
                );
                return Err(certificate_status(error));
            }
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let stored = self.store.upload_certificate(&request.id, certificate, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.certificate.info.thumbprint, revision = stored.revision, "certificate uploaded");
        Ok(Response::new(certificate_view(&self.store.state(), &stored)))
    }
    pub(super) async fn delete_certificate_inner(
        &self,
        request: Request<pb::DeleteCertificateRequest>,
    ) -> Result<Response<pb::DeleteCertificateResponse>, Status> {
        let request = request.into_inner();
        let id = request.id;
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_certificate(&id, &options).await?;
        tracing::info!(%id, revision, "certificate deleted");
        Ok(Response::new(pb::DeleteCertificateResponse { revision }))
    }
    pub(super) async fn upload_ca_certificate_inner(
        &self,
        request: Request<pb::UploadCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        let request = request.into_inner();
        let mut options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let (der, info) = if request.certificate.is_empty() && !request.crl.is_empty() {
            // A CRL beside the stored certificate: checked against the certificate read here,
            // and written only if that is still the one stored.
            let state = self.store.state();
            let stored = state.ca_certificates.get(&request.id).ok_or_else(|| crate::store::StoreError::NotFound {
                kind: crate::store::ResourceKind::CaCertificate,
                id: request.id.clone(),
            })?;
            if options.if_match.is_empty() {
                options.if_match = crate::model::etag(stored.revision);
            }
            (stored.der.clone(), stored.info.clone())
        } else {
            crate::certificate::parse_ca_certificate(&request.certificate)
                .map_err(|e| Status::invalid_argument(format!("CA certificate refused: {e}")))?
        };
        let crl = match request.crl.is_empty() {
            true => None,
            false => Some(
                crate::certificate::parse_crl(&request.crl, &der)
                    .map_err(|e| Status::invalid_argument(format!("CRL refused: {e}")))?,
            ),
        };
        let stored = self.store.upload_ca_certificate(&request.id, der, info, crl, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.info.thumbprint, revision = stored.revision, "CA certificate uploaded");
        Ok(Response::new(ca_view(&self.store.state(), &stored)))
    }
    pub(super) async fn delete_ca_certificate_inner(
        &self,
        request: Request<pb::DeleteCaCertificateRequest>,
    ) -> Result<Response<pb::DeleteCaCertificateResponse>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_ca_certificate(&request.id, &options).await?;
        tracing::info!(id = %request.id, revision, "CA certificate deleted");
        Ok(Response::new(pb::DeleteCaCertificateResponse { revision }))
    }
}
