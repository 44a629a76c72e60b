//! The configuration as the store keeps it (in sled or etcd): protobuf-encoded records under
//! `cert/`, `ca/`, `api/`, `host/`, `sub/` and `nv/` keys (the sources of linked ones under
//! `certsrc/`, `casrc/` and `nvsrc/`), private keys and secrets sealed under the master key, and
//! the revision, configuration id and master key check under `meta/`. Encoding for a commit and loading at start
//! live here; the rules a write must pass live in `rules.rs`.

mod api;
mod certificate;
mod client_certificate;
mod hostname;
mod named_value;
mod source;
mod subscription;

use gatehouse_shared::sealed::SealingKey;

use super::StoreError;
use crate::certificate::ClientCertificate;
use crate::model::{Hostname, State, StoredCaCertificate, StoredCertificate};

pub(super) use api::{api_entry, api_key};
pub(super) use certificate::{ca_entry, ca_key, certificate_entry, certificate_key};
pub(super) use hostname::{hostname_entry, hostname_key};
pub(super) use named_value::{named_value_entry, named_value_key, named_value_source_entry, named_value_source_key};
pub(super) use source::{ca_source_entry, ca_source_key, source_entry, source_key};
pub(super) use subscription::{subscription_entry, subscription_key};

use api::ApiRecord;
use certificate::{CaRecord, CertificateRecord};
use hostname::HostnameRecord;
use named_value::{NamedValueRecord, NamedValueSourceRecord};
use source::SourceRecord;
use subscription::SubscriptionRecord;

const KEY_CONTEXT: &[u8] = b"gatehouse-cp-private-key-v1";
const SECRET_CONTEXT: &[u8] = b"gatehouse-cp-secret-v1";

const CERT_PREFIX: &str = "cert/";
const SOURCE_PREFIX: &str = "certsrc/";
const CA_SOURCE_PREFIX: &str = "casrc/";
const CA_PREFIX: &str = "ca/";
const API_PREFIX: &str = "api/";
const HOSTNAME_PREFIX: &str = "host/";
const SUBSCRIPTION_PREFIX: &str = "sub/";
const NAMED_VALUE_PREFIX: &str = "nv/";
const NAMED_VALUE_SOURCE_PREFIX: &str = "nvsrc/";
pub(super) const REVISION_KEY: &str = "meta/revision";
pub(super) const CONFIG_ID_KEY: &str = "meta/config-id";
/// Sealed with the master key when the store is made; a master key that does not open it is
/// refused before any record is read (sled and etcd; a backup carries one too).
pub(super) const KEY_CHECK_KEY: &str = "meta/key-check";
const KEY_CHECK_CONTEXT: &[u8] = b"gatehouse-cp-key-check-v1";
const KEY_CHECK_TEXT: &[u8] = b"gatehouse";

/// The key check for `key`: what a control plane with another key cannot open.
pub(super) fn key_check(key: &SealingKey) -> Vec<u8> {
    key.seal(KEY_CHECK_CONTEXT, KEY_CHECK_TEXT)
}

/// Whether `check` is a key check made with `key`.
pub(super) fn opens_key_check(key: &SealingKey, check: &[u8]) -> bool {
    key.open(KEY_CHECK_CONTEXT, check).ok().as_deref() == Some(KEY_CHECK_TEXT)
}

pub(super) fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the whole configuration from sled.
pub(super) fn load(db: &sled::Db, seal: &SealingKey) -> Result<State, StoreError> {
    let mut state = State::default();
    for item in db.iter() {
        let (key, value) = item?;
        apply(&mut state, &key, Some(&value), seal)?;
    }
    Ok(state)
}

/// Applies one stored entry to `state`: `value` is the record, or `None` when the key was
/// removed. Keys this module does not own (tokens, metadata) are left alone; the revision key
/// sets the state's revision. Used for a full load (every entry once) and for the changes
/// another control plane committed (etcd).
pub(super) fn apply(state: &mut State, key: &[u8], value: Option<&[u8]>, seal: &SealingKey) -> Result<(), StoreError> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    };
    let Ok(text) = std::str::from_utf8(key) else {
        return Ok(());
    };
    if text == REVISION_KEY {
        if let Some(bytes) = value {
            let raw: [u8; 8] = bytes.try_into().map_err(|_| corrupt("revision is not 8 bytes".into()))?;
            state.revision = u64::from_be_bytes(raw);
        }
        return Ok(());
    }
    if let Some(id) = text.strip_prefix(CERT_PREFIX) {
        let Some(value) = value else {
            state.certificates.remove(id);
            return Ok(());
        };
        let record: CertificateRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        // A key that does not open means the wrong master key (or tampering): say so, load nothing.
        let private_key = seal.open(KEY_CONTEXT, &record.sealed_private_key).map_err(|e| corrupt(e.into()))?;
        let certificate = ClientCertificate::from_parts(record.chain, private_key).map_err(|e| corrupt(e.into()))?;
        state
            .certificates
            .insert(record.id.clone(), StoredCertificate { id: record.id, certificate, revision: record.revision });
    } else if let Some(id) = text.strip_prefix(SOURCE_PREFIX) {
        let Some(value) = value else {
            state.certificate_sources.remove(id);
            return Ok(());
        };
        let record: SourceRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let (id, source) = record.into_source(seal).map_err(|e| corrupt(e.into()))?;
        state.certificate_sources.insert(id, source);
    } else if let Some(id) = text.strip_prefix(CA_SOURCE_PREFIX) {
        let Some(value) = value else {
            state.ca_sources.remove(id);
            return Ok(());
        };
        let record: SourceRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let (id, source) = record.into_source(seal).map_err(|e| corrupt(e.into()))?;
        state.ca_sources.insert(id, source);
    } else if let Some(id) = text.strip_prefix(CA_PREFIX) {
        let Some(value) = value else {
            state.ca_certificates.remove(id);
            return Ok(());
        };
        let record: CaRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let info = gatehouse_shared::certificate::describe_der(&record.der).map_err(|e| corrupt(e.into()))?;
        let crl = match record.crl.is_empty() {
            true => None,
            false => Some(crate::certificate::parse_crl(&record.crl, &record.der).map_err(|e| corrupt(e.into()))?),
        };
        state.ca_certificates.insert(
            record.id.clone(),
            StoredCaCertificate { id: record.id, der: record.der, info, crl, revision: record.revision },
        );
    } else if let Some(id) = text.strip_prefix(API_PREFIX) {
        let Some(value) = value else {
            state.apis.remove(id);
            return Ok(());
        };
        let record: ApiRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let api = record.into_api(seal).map_err(|e| corrupt(e.into()))?;
        state.apis.insert(api.id.clone(), api);
    } else if let Some(name) = text.strip_prefix(HOSTNAME_PREFIX) {
        let Some(value) = value else {
            state.hostnames.remove(name);
            return Ok(());
        };
        let record: HostnameRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let hostname = Hostname {
            name: record.name,
            certificate_id: record.certificate_id,
            default: record.default,
            negotiate_client_certificate: record.negotiate_client_certificate,
            client_ca_ids: record.client_ca_ids,
            revision: record.revision,
        };
        state.hostnames.insert(hostname.name.clone(), hostname);
    } else if let Some(name) = text.strip_prefix(NAMED_VALUE_SOURCE_PREFIX) {
        let Some(value) = value else {
            state.named_value_sources.remove(name);
            return Ok(());
        };
        let record: NamedValueSourceRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let (name, source) = record.into_source();
        state.named_value_sources.insert(name, source);
    } else if let Some(name) = text.strip_prefix(NAMED_VALUE_PREFIX) {
        let Some(value) = value else {
            state.named_values.remove(name);
            return Ok(());
        };
        let record: NamedValueRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let named = record.into_named_value(seal).map_err(corrupt)?;
        state.named_values.insert(named.name.clone(), named);
    } else if let Some(name) = text.strip_prefix(SUBSCRIPTION_PREFIX) {
        let Some(value) = value else {
            state.subscriptions.remove(name);
            return Ok(());
        };
        let record: SubscriptionRecord = prost::Message::decode(value).map_err(|e| corrupt(e.into()))?;
        let subscription = record.into_subscription().map_err(|e| corrupt(e.into()))?;
        state.subscriptions.insert(subscription.name.clone(), subscription);
    }
    Ok(())
}
