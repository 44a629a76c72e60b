//! Uploads and deletes of client and CA certificates: files checked here, rules in the store.

use crate::certificate::ClientCertificate;
use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::errors::certificate_status;
use super::views::{ca_view, certificate_view};
use crate::certificate::{SourceContents, SourceError};
use crate::model::{CertificateSource, SourceFiles};
use crate::store::{RefreshOutcome, WriteOptions};

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
    pub(super) async fn link_certificate_inner(
        &self,
        request: Request<pb::LinkCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let request = request.into_inner();
        let files = match request.source.and_then(|s| s.kind) {
            Some(pb::certificate_source::Kind::Pfx(pfx)) if !pfx.path.is_empty() => {
                SourceFiles::Pfx { path: pfx.path, password: pfx.password }
            }
            Some(pb::certificate_source::Kind::Pem(pem))
                if !pem.certificate_path.is_empty() && !pem.key_path.is_empty() =>
            {
                SourceFiles::Pem { certificate_path: pem.certificate_path, key_path: pem.key_path }
            }
            _ => {
                return Err(Status::invalid_argument(
                    "give a source: a PFX path (with its password), or PEM certificate and key paths",
                ));
            }
        };
        check_absolute(&files.paths())?;
        let (max_bytes, max_chain) = (self.limits.max_pfx_bytes, self.limits.max_chain_length);
        let read_files = files.clone();
        // Reading files and decrypting a PFX (PBKDF2) are blocking work.
        let read = tokio::task::spawn_blocking(move || {
            let contents = SourceContents::read(&read_files, max_bytes)?;
            let certificate = contents.parse(&read_files, max_chain)?;
            Ok::<_, SourceError>((contents.hash(), certificate))
        })
        .await
        .map_err(|_| Status::internal("certificate source reading task failed"))?;
        let (content_hash, certificate) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::info!(
                    id = %request.id.escape_debug(),
                    error = %gatehouse_shared::error_chain(&error),
                    "certificate link refused"
                );
                return Err(match error {
                    SourceError::Certificate(error) => certificate_status(error),
                    other => Status::invalid_argument(gatehouse_shared::error_chain(&other)),
                });
            }
        };
        let source = CertificateSource { files, content_hash, last_refresh: None };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let stored = self.store.link_certificate(&request.id, certificate, source, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.certificate.info.thumbprint, revision = stored.revision, "certificate linked to files");
        Ok(Response::new(certificate_view(&self.store.state(), &stored)))
    }

    pub(super) async fn refresh_certificate_inner(
        &self,
        request: Request<pb::RefreshCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let id = request.into_inner().id;
        match crate::sources::refresh(&self.store, &id, &self.limits, true).await? {
            RefreshOutcome::Refused(message) => Err(Status::invalid_argument(message)),
            RefreshOutcome::Rotated(_) | RefreshOutcome::Unchanged => {
                let state = self.store.state();
                let stored = state
                    .certificates
                    .get(&id)
                    .ok_or_else(|| Status::not_found(format!("certificate '{id}' not found")))?;
                Ok(Response::new(certificate_view(&state, stored)))
            }
        }
    }

    pub(super) async fn link_ca_certificate_inner(
        &self,
        request: Request<pb::LinkCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        let request = request.into_inner();
        let files = SourceFiles::Ca { path: request.path };
        check_absolute(&files.paths())?;
        let (read_files, max_bytes) = (files.clone(), self.limits.max_pfx_bytes);
        let read = tokio::task::spawn_blocking(move || {
            let contents = SourceContents::read(&read_files, max_bytes)?;
            let (der, info) = contents.parse_ca()?;
            Ok::<_, SourceError>((contents.hash(), der, info))
        })
        .await
        .map_err(|_| Status::internal("CA certificate source reading task failed"))?;
        let (content_hash, der, info) = read.map_err(|error| match error {
            SourceError::Certificate(error) => Status::invalid_argument(format!("CA certificate refused: {error}")),
            other => Status::invalid_argument(gatehouse_shared::error_chain(&other)),
        })?;
        let source = CertificateSource { files, content_hash, last_refresh: None };
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let stored = self.store.link_ca_certificate(&request.id, der, info, source, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.info.thumbprint, revision = stored.revision, "CA certificate linked to a file");
        Ok(Response::new(ca_view(&self.store.state(), &stored)))
    }

    pub(super) async fn refresh_ca_certificate_inner(
        &self,
        request: Request<pb::RefreshCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        let id = request.into_inner().id;
        match crate::sources::refresh_ca(&self.store, &id, &self.limits, true).await? {
            RefreshOutcome::Refused(message) => Err(Status::invalid_argument(message)),
            RefreshOutcome::Rotated(_) | RefreshOutcome::Unchanged => {
                let state = self.store.state();
                let stored = state
                    .ca_certificates
                    .get(&id)
                    .ok_or_else(|| Status::not_found(format!("CA certificate '{id}' not found")))?;
                Ok(Response::new(ca_view(&state, stored)))
            }
        }
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

/// Source paths are the control plane's: a relative one would depend on where it was started.
pub(super) fn check_absolute(paths: &[&str]) -> Result<(), Status> {
    match paths.iter().find(|p| !std::path::Path::new(p).is_absolute()) {
        Some(relative) => Err(Status::invalid_argument(format!(
            "source path '{}' is relative: give absolute paths on the control plane's host",
            relative.escape_debug()
        ))),
        None => Ok(()),
    }
}
