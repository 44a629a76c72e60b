//! Certificates and CA certificates as sled stores them: a certificate's chain with its private key
//! sealed under the master key, a CA's DER with its CRL.

use gatehouse_shared::sealed::SealingKey;

use super::{CA_PREFIX, CERT_PREFIX, KEY_CONTEXT};
use crate::model::{Revision, StoredCaCertificate, StoredCertificate};

/// On-disk forms, protobuf-encoded so fields can be added compatibly. Defaults (false, empty)
/// always mean the safe choice.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct CertificateRecord {
    #[prost(string, tag = "1")]
    pub(super) id: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(super) chain: Vec<Vec<u8>>,
    // Tag 3 would be a plaintext key: never written.
    #[prost(uint64, tag = "4")]
    pub(super) revision: u64,
    /// PKCS#8 key sealed under the master key.
    #[prost(bytes = "vec", tag = "5")]
    pub(super) sealed_private_key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct CaRecord {
    #[prost(string, tag = "1")]
    pub(super) id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) der: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub(super) revision: u64,
    /// The CA's CRL, DER; empty: none.
    #[prost(bytes = "vec", tag = "4")]
    pub(super) crl: Vec<u8>,
}

/// The batch entry (key, value) for a certificate at `revision`, its key sealed.
pub(in crate::store) fn certificate_entry(
    cert: &StoredCertificate,
    revision: Revision,
    seal: &SealingKey,
) -> (Vec<u8>, Vec<u8>) {
    let record = CertificateRecord {
        id: cert.id.clone(),
        chain: cert.certificate.chain.clone(),
        sealed_private_key: seal.seal(KEY_CONTEXT, &cert.certificate.private_key),
        revision,
    };
    (certificate_key(&cert.id), prost::Message::encode_to_vec(&record))
}

/// The batch entry for a CA certificate at `revision`.
pub(in crate::store) fn ca_entry(ca: &StoredCaCertificate, revision: Revision) -> (Vec<u8>, Vec<u8>) {
    let crl = ca.crl.as_ref().map(|crl| crl.der.clone()).unwrap_or_default();
    let record = CaRecord { id: ca.id.clone(), der: ca.der.clone(), revision, crl };
    (ca_key(&ca.id), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn certificate_key(id: &str) -> Vec<u8> {
    format!("{CERT_PREFIX}{id}").into_bytes()
}

pub(in crate::store) fn ca_key(id: &str) -> Vec<u8> {
    format!("{CA_PREFIX}{id}").into_bytes()
}
