//! Durable configuration in sled. Every write is validated against the current state,
//! applied as one atomic batch (records plus the new revision), flushed to disk, and only then
//! made visible and published: an acknowledged write survives SIGKILL.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_shared::{ClientCertificate, Thumbprint};
use tokio::sync::{Mutex, watch};

use crate::model::{Api, Binding, Published, PublishedRef, Revision, State, StoredCertificate};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    #[error("no certificate has thumbprint {0}")]
    ThumbprintNotFound(Thumbprint),
    #[error("path '{path}' is already used by API '{api}'")]
    PathTaken { path: String, api: String },
    #[error("certificate '{id}' is used by APIs: {}; remove it from them first", .apis.join(", "))]
    CertificateInUse { id: String, apis: Vec<String> },
    #[error(
        "uploading a certificate with another thumbprint under '{id}' would leave APIs pinned to thumbprint {thumbprint} without a certificate: {}; bind them by certificate id or to the new thumbprint first",
        .apis.join(", ")
    )]
    PinnedByThumbprint { id: String, thumbprint: Thumbprint, apis: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error("the configuration store failed")]
    Storage(#[from] sled::Error),
    #[error("stored record '{key}' is corrupt")]
    Corrupt { key: String, #[source] source: Box<dyn std::error::Error + Send + Sync> },
}

// === records ===

/// On-disk form of a certificate. Protobuf-encoded so fields can be added compatibly.
#[derive(Clone, PartialEq, prost::Message)]
struct CertificateRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    chain: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "3")]
    private_key: Vec<u8>,
    #[prost(uint64, tag = "4")]
    revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ApiRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    display_name: String,
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    service_url: String,
    /// 0 none, 1 certificate id, 2 thumbprint.
    #[prost(uint32, tag = "5")]
    binding_kind: u32,
    #[prost(string, tag = "6")]
    binding_value: String,
    #[prost(uint64, tag = "7")]
    revision: u64,
}

const CERT_PREFIX: &str = "cert/";
const API_PREFIX: &str = "api/";
const REVISION_KEY: &str = "meta/revision";

impl ApiRecord {
    fn from_api(api: &Api) -> Self {
        let (binding_kind, binding_value) = match &api.binding {
            Binding::None => (0, String::new()),
            Binding::CertificateId(id) => (1, id.clone()),
            Binding::Thumbprint(t) => (2, t.to_string()),
        };
        Self {
            id: api.id.clone(),
            display_name: api.display_name.clone(),
            path: api.path.clone(),
            service_url: api.service_url.clone(),
            binding_kind,
            binding_value,
            revision: api.revision,
        }
    }

    fn into_api(self) -> Result<Api, String> {
        let binding = match self.binding_kind {
            0 => Binding::None,
            1 => Binding::CertificateId(self.binding_value),
            2 => Binding::Thumbprint(Thumbprint::parse(&self.binding_value).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown binding kind {other}")),
        };
        Ok(Api {
            id: self.id,
            display_name: self.display_name,
            path: self.path,
            service_url: self.service_url,
            binding,
            revision: self.revision,
        })
    }
}

/// One write: records to put and keys to remove, committed with the next revision.
#[derive(Default)]
struct Change {
    put_certificates: Vec<StoredCertificate>,
    put_apis: Vec<Api>,
    remove_certificates: Vec<String>,
    remove_apis: Vec<String>,
}

// === impl Store ===

pub struct Store {
    db: sled::Db,
    state: ArcSwap<State>,
    /// One writer at a time: validation and commit see the same state.
    writer: Mutex<()>,
    published: watch::Sender<PublishedRef>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let state = load(&db)?;
        let published = watch::Sender::new(Arc::new(Published { revision: state.revision, snapshot: state.snapshot() }));
        Ok(Self { db, state: ArcSwap::from_pointee(state), writer: Mutex::new(()), published })
    }

    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Every committed revision, latest first; a slow reader skips to the newest.
    pub fn subscribe(&self) -> watch::Receiver<PublishedRef> {
        self.published.subscribe()
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Stores a certificate under `id`, rotating it if the id exists.
    pub async fn upload_certificate(&self, id: &str, certificate: ClientCertificate) -> Result<StoredCertificate, StoreError> {
        validate_id("certificate", id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        if let Some(existing) = state.certificates.get(id) {
            if existing.certificate.info.thumbprint != certificate.info.thumbprint {
                let pinned: Vec<String> = state
                    .orphaned_without(id)
                    .into_iter()
                    .filter(|api| matches!(state.apis[api].binding, Binding::Thumbprint(_)))
                    .collect();
                if !pinned.is_empty() {
                    return Err(StoreError::PinnedByThumbprint {
                        id: id.to_string(),
                        thumbprint: existing.certificate.info.thumbprint.clone(),
                        apis: pinned,
                    });
                }
            }
        }
        let stored = StoredCertificate { id: id.to_string(), certificate, revision: state.revision + 1 };
        self.commit(&state, Change { put_certificates: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    pub async fn delete_certificate(&self, id: &str) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        if !state.certificates.contains_key(id) {
            return Err(StoreError::NotFound { kind: "certificate", id: id.to_string() });
        }
        let apis = state.orphaned_without(id);
        if !apis.is_empty() {
            return Err(StoreError::CertificateInUse { id: id.to_string(), apis });
        }
        self.commit(&state, Change { remove_certificates: vec![id.to_string()], ..Change::default() }).await
    }

    /// Creates or replaces an API. `binding: None` keeps an existing API's binding.
    pub async fn put_api(
        &self,
        id: &str,
        display_name: &str,
        path: &str,
        service_url: &str,
        binding: Option<Binding>,
    ) -> Result<Api, StoreError> {
        validate_id("API", id)?;
        let path = gatehouse_shared::api::normalize_path(path).map_err(|e| StoreError::Invalid(e.to_string()))?;
        gatehouse_shared::api::parse_service_url(service_url).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        if let Some(other) = state.api_with_path(&path, id) {
            return Err(StoreError::PathTaken { path, api: other.id.clone() });
        }
        let binding = match binding {
            Some(binding) => {
                check_binding(&state, &binding)?;
                binding
            }
            None => state.apis.get(id).map(|api| api.binding.clone()).unwrap_or(Binding::None),
        };
        let api = Api {
            id: id.to_string(),
            display_name: display_name.to_string(),
            path,
            service_url: service_url.to_string(),
            binding,
            revision: state.revision + 1,
        };
        self.commit(&state, Change { put_apis: vec![api.clone()], ..Change::default() }).await?;
        Ok(api)
    }

    pub async fn delete_api(&self, id: &str) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        if !state.apis.contains_key(id) {
            return Err(StoreError::NotFound { kind: "API", id: id.to_string() });
        }
        self.commit(&state, Change { remove_apis: vec![id.to_string()], ..Change::default() }).await
    }

    pub async fn set_api_binding(&self, api_id: &str, binding: Binding) -> Result<Api, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        let Some(api) = state.apis.get(api_id) else {
            return Err(StoreError::NotFound { kind: "API", id: api_id.to_string() });
        };
        check_binding(&state, &binding)?;
        let api = Api { binding, revision: state.revision + 1, ..api.clone() };
        self.commit(&state, Change { put_apis: vec![api.clone()], ..Change::default() }).await?;
        Ok(api)
    }

    /// Writes the change and the next revision atomically, waits until sled has it on disk,
    /// then makes it visible and publishes it. The caller holds the writer lock.
    async fn commit(&self, state: &State, change: Change) -> Result<Revision, StoreError> {
        let revision = state.revision + 1;
        let mut batch = sled::Batch::default();
        let mut next = state.clone();
        for cert in change.put_certificates {
            let record = CertificateRecord {
                id: cert.id.clone(),
                chain: cert.certificate.chain.clone(),
                private_key: cert.certificate.private_key.clone(),
                revision,
            };
            batch.insert(format!("{CERT_PREFIX}{}", cert.id).as_bytes(), prost::Message::encode_to_vec(&record));
            next.certificates.insert(cert.id.clone(), StoredCertificate { revision, ..cert });
        }
        for api in change.put_apis {
            let api = Api { revision, ..api };
            batch.insert(format!("{API_PREFIX}{}", api.id).as_bytes(), prost::Message::encode_to_vec(&ApiRecord::from_api(&api)));
            next.apis.insert(api.id.clone(), api);
        }
        for id in change.remove_certificates {
            batch.remove(format!("{CERT_PREFIX}{id}").as_bytes());
            next.certificates.remove(&id);
        }
        for id in change.remove_apis {
            batch.remove(format!("{API_PREFIX}{id}").as_bytes());
            next.apis.remove(&id);
        }
        batch.insert(REVISION_KEY.as_bytes(), revision.to_be_bytes().to_vec());
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;

        next.revision = revision;
        let snapshot = next.snapshot();
        self.state.store(Arc::new(next));
        self.published.send_replace(Arc::new(Published { revision, snapshot }));
        tracing::debug!(revision, "committed");
        Ok(revision)
    }
}

fn check_binding(state: &State, binding: &Binding) -> Result<(), StoreError> {
    match binding {
        Binding::None => Ok(()),
        Binding::CertificateId(id) if !state.certificates.contains_key(id) => {
            Err(StoreError::NotFound { kind: "certificate", id: id.clone() })
        }
        Binding::Thumbprint(t) if state.certificate_by_thumbprint(t).is_none() => {
            Err(StoreError::ThumbprintNotFound(t.clone()))
        }
        _ => Ok(()),
    }
}

/// Ids appear in URLs, logs and CLI tables: keep them plain.
fn validate_id(kind: &str, id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{kind} id '{id}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn load(db: &sled::Db) -> Result<State, StoreError> {
    let corrupt = |key: &[u8], source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    };
    let mut state = State::default();
    if let Some(bytes) = db.get(REVISION_KEY)? {
        let raw: [u8; 8] = bytes.as_ref().try_into().map_err(|_| corrupt(REVISION_KEY.as_bytes(), "revision is not 8 bytes".into()))?;
        state.revision = u64::from_be_bytes(raw);
    }
    for item in db.scan_prefix(CERT_PREFIX) {
        let (key, value) = item?;
        let record: CertificateRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let certificate = ClientCertificate::from_parts(record.chain, record.private_key).map_err(|e| corrupt(&key, e.into()))?;
        state.certificates.insert(
            record.id.clone(),
            StoredCertificate { id: record.id, certificate, revision: record.revision },
        );
    }
    for item in db.scan_prefix(API_PREFIX) {
        let (key, value) = item?;
        let record: ApiRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let api = record.into_api().map_err(|e| corrupt(&key, e.into()))?;
        state.apis.insert(api.id.clone(), api);
    }
    Ok(state)
}
