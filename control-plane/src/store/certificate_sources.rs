//! Certificates linked to files: the link (an upload that remembers its source), and each
//! refresh, which applies a new certificate through the upload's rules or keeps the last good
//! one and records why.

use crate::certificate::ClientCertificate;
use crate::certificate::parse_crl;
use crate::model::{CertificateSource, LastRefresh, Revision, SourceFiles, StoredCaCertificate, StoredCertificate};
use gatehouse_shared::CertificateInfo;

use super::certificates::check_rotation;
use super::rules::check_not_expired;
use super::{Change, Plan, ResourceKind, Store, StoreError, WriteOptions};

/// What a refresh (of a linked certificate, CA certificate or named value) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The files held a new certificate (or value), now stored at this revision.
    Rotated(Revision),
    /// The files hold what is stored already.
    Unchanged,
    /// The files were refused (the message, as an upload or a put would say it); the last good
    /// certificate (or value) stays.
    Refused(String),
}

impl Store {
    /// Stores the certificate read from `source` under `id` (with the rules of an upload) and
    /// remembers the source, so the files are watched from now on.
    pub async fn link_certificate(
        &self,
        id: &str,
        certificate: ClientCertificate,
        mut source: CertificateSource,
        options: &WriteOptions,
    ) -> Result<StoredCertificate, StoreError> {
        source.last_refresh = Some(LastRefresh { at: now(), ok: true, message: String::new() });
        self.write_certificate(id, certificate, Some(source), options).await
    }

    /// Applies one read of `id`'s source `files`: `read` is the certificate the files held, or
    /// why they were refused; `content_hash` identifies what was read. A read of files the id is
    /// no longer linked to (relinked meanwhile) is dropped. A new certificate becomes a
    /// revision if it passes the upload's rules (and is not expired); anything else keeps the
    /// stored certificate and records the failure in `last_refresh`.
    pub async fn refresh_certificate(
        &self,
        id: &str,
        files: &SourceFiles,
        content_hash: Vec<u8>,
        read: Result<ClientCertificate, String>,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(|state| {
            if !state.certificates.contains_key(id) {
                return Err(StoreError::NotFound { kind: ResourceKind::Certificate, id: id.to_string() });
            }
            let Some(source) = state.certificate_sources.get(id) else {
                return Err(StoreError::NotLinked { kind: ResourceKind::Certificate, id: id.to_string() });
            };
            if &source.files != files {
                return Ok(Plan::Done(RefreshOutcome::Unchanged));
            }
            let mut source = CertificateSource { content_hash: content_hash.clone(), ..source.clone() };
            let checked = read.clone().and_then(|certificate| {
                // A refresh never moves to an expired certificate, used or not: it would only be worse.
                check_not_expired(id, &certificate.info).map_err(|e| e.to_string())?;
                check_rotation(state, id, &certificate, false).map_err(|e| e.to_string())?;
                Ok(certificate)
            });
            let sources = |source| Change { put_sources: vec![(id.to_string(), source)], ..Change::default() };
            Ok(match checked {
                Ok(certificate)
                    if state.certificates[id].certificate.info.thumbprint == certificate.info.thumbprint =>
                {
                    source.last_refresh = Some(LastRefresh { at: now(), ok: true, message: String::new() });
                    Plan::Record(sources(source), RefreshOutcome::Unchanged)
                }
                Ok(certificate) => {
                    source.last_refresh = Some(LastRefresh { at: now(), ok: true, message: String::new() });
                    let stored = StoredCertificate { id: id.to_string(), certificate, revision: state.revision + 1 };
                    let change = Change { put_certificates: vec![stored], ..sources(source) };
                    Plan::Commit(change, RefreshOutcome::Rotated(state.revision + 1))
                }
                Err(message) => {
                    source.last_refresh = Some(LastRefresh { at: now(), ok: false, message: message.clone() });
                    Plan::Record(sources(source), RefreshOutcome::Refused(message))
                }
            })
        })
        .await
    }

    /// Stores the CA certificate read from `source` under `id` (keeping its CRL if the stored
    /// one was issued by it) and remembers the source.
    pub async fn link_ca_certificate(
        &self,
        id: &str,
        der: Vec<u8>,
        info: CertificateInfo,
        mut source: CertificateSource,
        options: &WriteOptions,
    ) -> Result<StoredCaCertificate, StoreError> {
        source.last_refresh = Some(LastRefresh { at: now(), ok: true, message: String::new() });
        let crl = self
            .state()
            .ca_certificates
            .get(id)
            .and_then(|c| c.crl.as_ref())
            .and_then(|crl| parse_crl(&crl.der, &der).ok());
        self.write_ca_certificate(id, der, info, crl, Some(source), options).await
    }

    /// As [`Self::refresh_certificate`], for a CA certificate: `read` is the CA certificate
    /// (DER and description) the file held. A new CA is refused while the stored CRL was not
    /// issued by it: revocation checks are never dropped silently.
    pub async fn refresh_ca_certificate(
        &self,
        id: &str,
        files: &SourceFiles,
        content_hash: Vec<u8>,
        read: Result<(Vec<u8>, CertificateInfo), String>,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(|state| {
            let Some(stored) = state.ca_certificates.get(id) else {
                return Err(StoreError::NotFound { kind: ResourceKind::CaCertificate, id: id.to_string() });
            };
            let Some(source) = state.ca_sources.get(id) else {
                return Err(StoreError::NotLinked { kind: ResourceKind::CaCertificate, id: id.to_string() });
            };
            if &source.files != files {
                return Ok(Plan::Done(RefreshOutcome::Unchanged));
            }
            let mut source = CertificateSource { content_hash: content_hash.clone(), ..source.clone() };
            let checked = read.clone().and_then(|(der, info)| {
                if info.is_expired() {
                    return Err(format!("CA certificate refused: it expired on {}", super::rules::format_date(info.not_after)));
                }
                let crl = match &stored.crl {
                    None => None,
                    Some(crl) => Some(parse_crl(&crl.der, &der).map_err(|_| {
                        "CA certificate refused: the CRL stored with this CA was not issued by the new certificate; upload the new CA's CRL with the certificate (gatehousectl ca upload ID --file F --crl C)".to_string()
                    })?),
                };
                Ok((der, info, crl))
            });
            let ok = LastRefresh { at: now(), ok: true, message: String::new() };
            let sources = |source| Change { put_ca_sources: vec![(id.to_string(), source)], ..Change::default() };
            Ok(match checked {
                Ok((der, ..)) if der == stored.der => {
                    source.last_refresh = Some(ok);
                    Plan::Record(sources(source), RefreshOutcome::Unchanged)
                }
                Ok((der, info, crl)) => {
                    source.last_refresh = Some(ok);
                    let stored = StoredCaCertificate { id: id.to_string(), der, info, crl, revision: state.revision + 1 };
                    let change = Change { put_cas: vec![stored], ..sources(source) };
                    Plan::Commit(change, RefreshOutcome::Rotated(state.revision + 1))
                }
                Err(message) => {
                    source.last_refresh = Some(LastRefresh { at: now(), ok: false, message: message.clone() });
                    Plan::Record(sources(source), RefreshOutcome::Refused(message))
                }
            })
        })
        .await
    }
}

/// Now, in Unix seconds.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
