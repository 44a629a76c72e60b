//! Where a linked certificate or CA certificate comes from, as sled stores it: its files (a PFX
//! password sealed under the master key) and its last refresh.

use gatehouse_shared::sealed::SealingKey;

use super::{CA_SOURCE_PREFIX, SECRET_CONTEXT, SOURCE_PREFIX};
use crate::model::{CertificateSource, LastRefresh, SourceFiles};

/// Where a linked certificate comes from: its files (the PFX password sealed) and its last read.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SourceRecord {
    #[prost(string, tag = "1")]
    id: String,
    /// 1 PFX, 2 PEM, 3 CA certificate file; anything else does not load.
    #[prost(uint32, tag = "2")]
    kind: u32,
    /// The PFX path, or the PEM certificate path.
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    key_path: String,
    // Tag 5 would be a plaintext password: never written.
    #[prost(bytes = "vec", tag = "6")]
    sealed_password: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    content_hash: Vec<u8>,
    #[prost(bool, tag = "8")]
    refreshed: bool,
    #[prost(int64, tag = "9")]
    refreshed_at: i64,
    #[prost(bool, tag = "10")]
    refresh_ok: bool,
    #[prost(string, tag = "11")]
    refresh_message: String,
}

/// The batch entry for a CA certificate's source.
pub(in crate::store) fn ca_source_entry(id: &str, source: &CertificateSource, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    (ca_source_key(id), source_entry(id, source, seal).1)
}

pub(in crate::store) fn ca_source_key(id: &str) -> Vec<u8> {
    format!("{CA_SOURCE_PREFIX}{id}").into_bytes()
}

/// The batch entry for a certificate's source, its password sealed.
pub(in crate::store) fn source_entry(id: &str, source: &CertificateSource, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    let mut record =
        SourceRecord { id: id.to_string(), content_hash: source.content_hash.clone(), ..SourceRecord::default() };
    match &source.files {
        SourceFiles::Pfx { path, password } => {
            record.kind = 1;
            record.path = path.clone();
            record.sealed_password = seal.seal(SECRET_CONTEXT, password.as_bytes());
        }
        SourceFiles::Ca { path } => {
            record.kind = 3;
            record.path = path.clone();
        }
        SourceFiles::Pem { certificate_path, key_path } => {
            record.kind = 2;
            record.path = certificate_path.clone();
            record.key_path = key_path.clone();
        }
    }
    if let Some(last) = &source.last_refresh {
        record.refreshed = true;
        record.refreshed_at = last.at;
        record.refresh_ok = last.ok;
        record.refresh_message = last.message.clone();
    }
    (source_key(id), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn source_key(id: &str) -> Vec<u8> {
    format!("{SOURCE_PREFIX}{id}").into_bytes()
}

impl SourceRecord {
    pub(super) fn into_source(self, seal: &SealingKey) -> Result<(String, CertificateSource), String> {
        let files = match self.kind {
            1 => {
                let password = seal.open(SECRET_CONTEXT, &self.sealed_password).map_err(|e| e.to_string())?;
                let password = String::from_utf8(password).map_err(|_| "a sealed password is not text".to_string())?;
                SourceFiles::Pfx { path: self.path, password }
            }
            2 => SourceFiles::Pem { certificate_path: self.path, key_path: self.key_path },
            3 => SourceFiles::Ca { path: self.path },
            other => return Err(format!("unknown certificate source kind {other}")),
        };
        let last_refresh = self.refreshed.then_some(LastRefresh {
            at: self.refreshed_at,
            ok: self.refresh_ok,
            message: self.refresh_message,
        });
        Ok((self.id, CertificateSource { files, content_hash: self.content_hash, last_refresh }))
    }
}
