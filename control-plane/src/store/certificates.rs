//! Writes of client and CA certificates: upload (a rotation when the id exists) and delete,
//! each refused while it would leave an API or a hostname without what it uses.

use crate::certificate::{ClientCertificate, Crl};

use super::rules::{check_etag, check_not_expired, existing, hostnames_broken_by, validate_id};
use super::{Change, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{Binding, Revision, StoredCaCertificate, StoredCertificate};
use gatehouse_shared::CertificateInfo;

impl Store {
    /// Stores a certificate under `id`, rotating it if the id exists. A rotation is refused when
    /// it would leave APIs pinned to the old thumbprint without a certificate, or when the new
    /// certificate could not serve a hostname served with this id.
    pub async fn upload_certificate(
        &self,
        id: &str,
        certificate: ClientCertificate,
        options: &WriteOptions,
    ) -> Result<StoredCertificate, StoreError> {
        validate_id(ResourceKind::Certificate, id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        let existing = state.certificates.get(id);
        check_etag(ResourceKind::Certificate, id, existing.map(|c| c.revision), &options.if_match)?;
        if let Some(existing) = existing {
            if existing.certificate.info.thumbprint != certificate.info.thumbprint {
                let pinned: Vec<String> = state
                    .orphaned_without(id)
                    .into_iter()
                    .filter(|api| matches!(state.apis[api].policy.certificate, Binding::Thumbprint(_)))
                    .collect();
                if !pinned.is_empty() {
                    return Err(StoreError::PinnedByThumbprint {
                        id: id.to_string(),
                        thumbprint: existing.certificate.info.thumbprint.clone(),
                        apis: pinned,
                    });
                }
            }
            let broken = hostnames_broken_by(&state, id, &certificate);
            if !broken.is_empty() {
                return Err(StoreError::BreaksHostnames { id: id.to_string(), hostnames: broken });
            }
            let in_use = !state.used_by(id).is_empty() || !state.hostnames_using(id).is_empty();
            if in_use && !options.allow_expired {
                check_not_expired(id, &certificate.info)?;
            }
        }
        let stored = StoredCertificate { id: id.to_string(), certificate, revision: state.revision + 1 };
        self.commit(&state, Change { put_certificates: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    /// Deletes a certificate no API would be left without and no hostname is served with;
    /// returns the new revision.
    pub async fn delete_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing(ResourceKind::Certificate, id, &state.certificates, |c| c.revision, &options.if_match)?;
        let apis = state.orphaned_without(id);
        let hostnames = state.hostnames_using(id);
        if !apis.is_empty() || !hostnames.is_empty() {
            return Err(StoreError::CertificateInUse { id: id.to_string(), apis, hostnames });
        }
        self.commit(&state, Change { remove_certificates: vec![id.to_string()], ..Change::default() }).await
    }

    /// Stores a CA certificate (already checked to be a CA) under `id`, with its CRL (already
    /// checked to be the CA's) if there is one.
    pub async fn upload_ca_certificate(
        &self,
        id: &str,
        der: Vec<u8>,
        info: CertificateInfo,
        crl: Option<Crl>,
        options: &WriteOptions,
    ) -> Result<StoredCaCertificate, StoreError> {
        validate_id(ResourceKind::CaCertificate, id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        check_etag(
            ResourceKind::CaCertificate,
            id,
            state.ca_certificates.get(id).map(|c| c.revision),
            &options.if_match,
        )?;
        let stored = StoredCaCertificate { id: id.to_string(), der, info, crl, revision: state.revision + 1 };
        self.commit(&state, Change { put_cas: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    /// Deletes a CA certificate no API trusts for its backend and no hostname for client
    /// certificates; returns the new revision.
    pub async fn delete_ca_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing(ResourceKind::CaCertificate, id, &state.ca_certificates, |c| c.revision, &options.if_match)?;
        let apis = state.ca_used_by(id);
        let hostnames = state.ca_used_by_hostnames(id);
        if !apis.is_empty() || !hostnames.is_empty() {
            return Err(StoreError::CaInUse { id: id.to_string(), apis, hostnames });
        }
        self.commit(&state, Change { remove_cas: vec![id.to_string()], ..Change::default() }).await
    }
}
