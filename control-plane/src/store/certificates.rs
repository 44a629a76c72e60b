//! Writes of client and CA certificates: upload (a rotation when the id exists) and delete,
//! each refused while it would leave an API or a hostname without what it uses.

use crate::certificate::{ClientCertificate, Crl};

use super::rules::{check_etag, check_not_expired, existing, hostnames_broken_by, validate_id};
use super::{Change, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{Binding, CertificateSource, Revision, State, StoredCaCertificate, StoredCertificate};
use gatehouse_shared::CertificateInfo;

impl Store {
    /// Stores a certificate under `id`, rotating it if the id exists. A rotation is refused when
    /// it would leave APIs pinned to the old thumbprint without a certificate, or when the new
    /// certificate could not serve a hostname served with this id. An upload drops the id's link
    /// to files, if it had one: the operator's upload is what stays.
    pub async fn upload_certificate(
        &self,
        id: &str,
        certificate: ClientCertificate,
        options: &WriteOptions,
    ) -> Result<StoredCertificate, StoreError> {
        self.write_certificate(id, certificate, None, options).await
    }

    /// Stores a certificate under `id` as an upload does, with the source it was read from
    /// (`source`), or dropping any source (`None`).
    pub(super) async fn write_certificate(
        &self,
        id: &str,
        certificate: ClientCertificate,
        source: Option<CertificateSource>,
        options: &WriteOptions,
    ) -> Result<StoredCertificate, StoreError> {
        validate_id(ResourceKind::Certificate, id)?;
        self.write(|state| {
            check_etag(
                ResourceKind::Certificate,
                id,
                state.certificates.get(id).map(|c| c.revision),
                &options.if_match,
            )?;
            check_rotation(state, id, &certificate, options.allow_expired)?;
            let stored = StoredCertificate {
                id: id.to_string(),
                certificate: certificate.clone(),
                revision: state.revision + 1,
            };
            let mut change = Change { put_certificates: vec![stored.clone()], ..Change::default() };
            match &source {
                Some(source) => change.put_sources.push((id.to_string(), source.clone())),
                None if state.certificate_sources.contains_key(id) => change.remove_sources.push(id.to_string()),
                None => {}
            }
            Ok(Plan::Commit(change, stored))
        })
        .await
    }

    /// Deletes a certificate no API would be left without and no hostname is served with;
    /// returns the new revision.
    pub async fn delete_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::Certificate, id, &state.certificates, |c| c.revision, &options.if_match)?;
            let apis = state.orphaned_without(id);
            let hostnames = state.hostnames_using(id);
            if !apis.is_empty() || !hostnames.is_empty() {
                return Err(StoreError::CertificateInUse { id: id.to_string(), apis, hostnames });
            }
            let mut change = Change { remove_certificates: vec![id.to_string()], ..Change::default() };
            if state.certificate_sources.contains_key(id) {
                change.remove_sources.push(id.to_string());
            }
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }

    /// Stores a CA certificate (already checked to be a CA) under `id`, with its CRL (already
    /// checked to be the CA's) if there is one. Another certificate than the stored one drops
    /// the id's link to a file, if it had one (a new CRL alone keeps it).
    pub async fn upload_ca_certificate(
        &self,
        id: &str,
        der: Vec<u8>,
        info: CertificateInfo,
        crl: Option<Crl>,
        options: &WriteOptions,
    ) -> Result<StoredCaCertificate, StoreError> {
        self.write_ca_certificate(id, der, info, crl, None, options).await
    }

    /// Stores a CA certificate as an upload does, with the file it was read from (`source`), or
    /// dropping the link when the certificate changes (`None`).
    pub(super) async fn write_ca_certificate(
        &self,
        id: &str,
        der: Vec<u8>,
        info: CertificateInfo,
        crl: Option<Crl>,
        source: Option<CertificateSource>,
        options: &WriteOptions,
    ) -> Result<StoredCaCertificate, StoreError> {
        validate_id(ResourceKind::CaCertificate, id)?;
        self.write(|state| {
            check_etag(
                ResourceKind::CaCertificate,
                id,
                state.ca_certificates.get(id).map(|c| c.revision),
                &options.if_match,
            )?;
            let replaced = state.ca_certificates.get(id).is_some_and(|stored| stored.der != der);
            let stored = StoredCaCertificate {
                id: id.to_string(),
                der: der.clone(),
                info: info.clone(),
                crl: crl.clone(),
                revision: state.revision + 1,
            };
            let mut change = Change { put_cas: vec![stored.clone()], ..Change::default() };
            match &source {
                Some(source) => change.put_ca_sources.push((id.to_string(), source.clone())),
                None if replaced && state.ca_sources.contains_key(id) => change.remove_ca_sources.push(id.to_string()),
                None => {}
            }
            Ok(Plan::Commit(change, stored))
        })
        .await
    }

    /// Deletes a CA certificate no API trusts for its backend and no hostname for client
    /// certificates; returns the new revision.
    pub async fn delete_ca_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::CaCertificate, id, &state.ca_certificates, |c| c.revision, &options.if_match)?;
            let apis = state.ca_used_by(id);
            let hostnames = state.ca_used_by_hostnames(id);
            if !apis.is_empty() || !hostnames.is_empty() {
                return Err(StoreError::CaInUse { id: id.to_string(), apis, hostnames });
            }
            let mut change = Change { remove_cas: vec![id.to_string()], ..Change::default() };
            if state.ca_sources.contains_key(id) {
                change.remove_ca_sources.push(id.to_string());
            }
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }
}

/// The rules a new certificate under an existing id must pass, whether uploaded or read from
/// files: APIs pinned to the old thumbprint are not left without a certificate, hostnames served
/// with the id stay servable, and a certificate in use is not replaced by an expired one.
pub(super) fn check_rotation(
    state: &State,
    id: &str,
    certificate: &ClientCertificate,
    allow_expired: bool,
) -> Result<(), StoreError> {
    let Some(existing) = state.certificates.get(id) else {
        return Ok(());
    };
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
    let broken = hostnames_broken_by(state, id, certificate);
    if !broken.is_empty() {
        return Err(StoreError::BreaksHostnames { id: id.to_string(), hostnames: broken });
    }
    let in_use = !state.used_by(id).is_empty() || !state.hostnames_using(id).is_empty();
    if in_use && !allow_expired {
        check_not_expired(id, &certificate.info)?;
    }
    Ok(())
}
