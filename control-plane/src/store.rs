//! Durable configuration in sled. Every write is validated against the current state,
//! applied as one atomic batch (records plus the new revision), flushed to disk, and only then
//! made visible and published: an acknowledged write survives SIGKILL.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_shared::policy::{self, UnmaskError};
use gatehouse_shared::sealed::SealingKey;
use gatehouse_shared::{CertificateInfo, ClientCertificate, Thumbprint};
use tokio::sync::{Mutex, watch};

use crate::watermark::Watermark;
use crate::model::{
    Api, BackendTls, BasicAuth, Binding, ExistsAction, Policy, PublishedRef, Revision, SetHeader, State,
    StoredCaCertificate, StoredCertificate, etag,
};

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
    #[error("CA certificate '{id}' is trusted by APIs: {}; remove it from them first", .apis.join(", "))]
    CaInUse { id: String, apis: Vec<String> },
    #[error(
        "uploading a certificate with another thumbprint under '{id}' would leave APIs pinned to thumbprint {thumbprint} without a certificate: {}; bind them by certificate id or to the new thumbprint first",
        .apis.join(", ")
    )]
    PinnedByThumbprint { id: String, thumbprint: Thumbprint, apis: Vec<String> },
    #[error(
        "certificate '{id}' expired on {not_after}; pass allow_expired (gatehousectl --allow-expired) to use it anyway"
    )]
    Expired { id: String, not_after: String },
    #[error("{kind} '{id}' changed since it was read (etag is now {current}, if_match was {given}); read it again")]
    EtagMismatch { kind: &'static str, id: String, current: String, given: String },
    #[error("{kind} '{id}' does not exist, but if_match {given} expected it to")]
    EtagOnMissing { kind: &'static str, id: String, given: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unmask(#[from] UnmaskError),
    #[error("the configuration store failed")]
    Storage(#[from] sled::Error),
    #[error(transparent)]
    Watermark(#[from] crate::watermark::WatermarkError),
    #[error(
        "stored record '{key}' is corrupt: restore DATA_DIR/sled from a backup of the data directory (with the same master key)"
    )]
    Corrupt {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An API as the operator defines it with PutApi.
#[derive(Clone, Debug)]
pub struct ApiDefinition {
    pub id: String,
    pub display_name: String,
    pub path: String,
    pub service_url: String,
    /// `None` keeps an existing API's binding.
    pub binding: Option<Binding>,
    pub tls: BackendTls,
}

/// Conditions on a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Write only over this etag; "" or "*" is unconditional.
    pub if_match: String,
    /// Allow binding (or rotating into use) an expired certificate.
    pub allow_expired: bool,
}

// === records ===

/// On-disk forms, protobuf-encoded so fields can be added compatibly. Defaults (false, empty)
/// always mean the safe choice.
#[derive(Clone, PartialEq, prost::Message)]
struct CertificateRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    chain: Vec<Vec<u8>>,
    // Tag 3 would be a plaintext key: never written.
    #[prost(uint64, tag = "4")]
    revision: u64,
    /// PKCS#8 key sealed under the master key.
    #[prost(bytes = "vec", tag = "5")]
    sealed_private_key: Vec<u8>,
}

const KEY_CONTEXT: &[u8] = b"gatehouse-cp-private-key-v1";
const SECRET_CONTEXT: &[u8] = b"gatehouse-cp-secret-v1";

#[derive(Clone, PartialEq, prost::Message)]
struct CaRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bytes = "vec", tag = "2")]
    der: Vec<u8>,
    #[prost(uint64, tag = "3")]
    revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HeaderRecord {
    #[prost(string, tag = "1")]
    name: String,
    /// 0 override, 1 skip, 2 append, 3 delete.
    #[prost(uint32, tag = "2")]
    action: u32,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
    #[prost(bool, tag = "4")]
    secret: bool,
    /// For secret headers, the values sealed under the master key (and `values` empty).
    #[prost(bytes = "vec", repeated, tag = "5")]
    sealed_values: Vec<Vec<u8>>,
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
    #[prost(bool, tag = "8")]
    skip_chain_validation: bool,
    #[prost(bool, tag = "9")]
    skip_name_validation: bool,
    #[prost(string, repeated, tag = "10")]
    ca_ids: Vec<String>,
    #[prost(bool, tag = "11")]
    exclude_system_roots: bool,
    #[prost(bool, tag = "12")]
    has_basic: bool,
    #[prost(string, tag = "13")]
    basic_username: String,
    // Tag 14 would be a plaintext password: never written.
    #[prost(message, repeated, tag = "15")]
    headers: Vec<HeaderRecord>,
    #[prost(bytes = "vec", tag = "16")]
    sealed_basic_password: Vec<u8>,
    /// `<forward-request timeout>` in seconds; 0: the data plane's default.
    #[prost(uint32, tag = "17")]
    backend_timeout_seconds: u32,
}

const CERT_PREFIX: &str = "cert/";
const CA_PREFIX: &str = "ca/";
const API_PREFIX: &str = "api/";
const REVISION_KEY: &str = "meta/revision";
const CONFIG_ID_KEY: &str = "meta/config-id";

fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn action_code(action: ExistsAction) -> u32 {
    match action {
        ExistsAction::Override => 0,
        ExistsAction::Skip => 1,
        ExistsAction::Append => 2,
        ExistsAction::Delete => 3,
    }
}

impl ApiRecord {
    fn from_api(api: &Api, key: &SealingKey) -> Self {
        let (binding_kind, binding_value) = match &api.policy.certificate {
            Binding::None => (0, String::new()),
            Binding::CertificateId(id) => (1, id.clone()),
            Binding::Thumbprint(t) => (2, t.to_string()),
        };
        let basic = api.policy.basic.clone();
        Self {
            id: api.id.clone(),
            display_name: api.display_name.clone(),
            path: api.path.clone(),
            service_url: api.service_url.clone(),
            binding_kind,
            binding_value,
            revision: api.revision,
            skip_chain_validation: !api.tls.validate_chain,
            skip_name_validation: !api.tls.validate_name,
            ca_ids: api.tls.ca_ids.clone(),
            exclude_system_roots: !api.tls.system_roots,
            backend_timeout_seconds: api.policy.backend_timeout.unwrap_or(0),
            has_basic: basic.is_some(),
            basic_username: basic.as_ref().map(|b| b.username.clone()).unwrap_or_default(),
            sealed_basic_password: basic.map(|b| key.seal(SECRET_CONTEXT, b.password.as_bytes())).unwrap_or_default(),
            headers: api
                .policy
                .headers
                .iter()
                .map(|h| HeaderRecord {
                    name: h.name.clone(),
                    action: action_code(h.action),
                    values: if h.secret { Vec::new() } else { h.values.clone() },
                    secret: h.secret,
                    sealed_values: if h.secret {
                        h.values.iter().map(|v| key.seal(SECRET_CONTEXT, v.as_bytes())).collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }

    fn into_api(self, key: &SealingKey) -> Result<Api, String> {
        let open = |sealed: &[u8]| -> Result<String, String> {
            let plain = key.open(SECRET_CONTEXT, sealed).map_err(|e| e.to_string())?;
            String::from_utf8(plain).map_err(|_| "a sealed secret is not text".to_string())
        };
        let certificate = match self.binding_kind {
            0 => Binding::None,
            1 => Binding::CertificateId(self.binding_value),
            2 => Binding::Thumbprint(Thumbprint::parse(&self.binding_value).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown binding kind {other}")),
        };
        let headers = self
            .headers
            .into_iter()
            .map(|h| {
                let action = match h.action {
                    0 => ExistsAction::Override,
                    1 => ExistsAction::Skip,
                    2 => ExistsAction::Append,
                    3 => ExistsAction::Delete,
                    other => return Err(format!("unknown header action {other}")),
                };
                let values = if h.secret {
                    h.sealed_values.iter().map(|v| open(v)).collect::<Result<_, _>>()?
                } else {
                    h.values
                };
                Ok(SetHeader { name: h.name, action, values, secret: h.secret })
            })
            .collect::<Result<_, String>>()?;
        let basic = match self.has_basic {
            true => Some(BasicAuth { username: self.basic_username, password: open(&self.sealed_basic_password)? }),
            false => None,
        };
        Ok(Api {
            id: self.id,
            display_name: self.display_name,
            path: self.path,
            service_url: self.service_url,
            policy: Policy {
                certificate,
                basic,
                headers,
                backend_timeout: Some(self.backend_timeout_seconds).filter(|s| *s > 0),
            },
            tls: BackendTls {
                validate_chain: !self.skip_chain_validation,
                validate_name: !self.skip_name_validation,
                ca_ids: self.ca_ids,
                system_roots: !self.exclude_system_roots,
            },
            revision: self.revision,
        })
    }
}

/// One write: records to put and keys to remove, committed with the next revision.
#[derive(Default)]
struct Change {
    put_certificates: Vec<StoredCertificate>,
    put_cas: Vec<StoredCaCertificate>,
    put_apis: Vec<Api>,
    remove_certificates: Vec<String>,
    remove_cas: Vec<String>,
    remove_apis: Vec<String>,
}

// === impl Store ===

pub struct Store {
    db: sled::Db,
    /// Seals private keys and secrets before they reach the disk.
    key: SealingKey,
    /// Random id of this configuration store: revisions compare only within one.
    config_id: String,
    state: ArcSwap<State>,
    /// One writer at a time: validation and commit see the same state.
    writer: Mutex<()>,
    published: watch::Sender<PublishedRef>,
    /// Records each acknowledged revision beside the database.
    watermark: Option<Watermark>,
    /// Recent revisions, oldest first, so a reconnecting data plane can get only what changed.
    history: std::sync::Mutex<std::collections::VecDeque<PublishedRef>>,
}

/// How many recent revisions are kept for incremental sync (unchanged entries are shared).
const HISTORY: usize = 32;

impl Store {
    /// Opens the configuration in `db`; `key` seals private keys and secrets.
    /// Opens the store; `watermark` (if given) must not be ahead of what the database holds.
    pub fn open(db: sled::Db, key: SealingKey, watermark: Option<Watermark>) -> Result<Self, StoreError> {
        let stored_id = db.get(CONFIG_ID_KEY)?.map(|id| String::from_utf8_lossy(&id).into_owned());
        let state = load(&db, &key)?;
        // Before anything is written: a database that lost writes is not written over.
        if let Some(watermark) = &watermark {
            watermark.check(stored_id.as_deref(), state.revision)?;
        }
        let config_id = match stored_id {
            Some(id) => id,
            None => {
                let id = random_id();
                db.insert(CONFIG_ID_KEY, id.as_bytes())?;
                db.flush()?;
                if let Some(watermark) = &watermark {
                    watermark.record(&id, state.revision)?;
                }
                id
            }
        };
        let first = Arc::new(state.publish(None));
        let history = std::sync::Mutex::new(std::collections::VecDeque::from([first.clone()]));
        let published = watch::Sender::new(first);
        Ok(Self {
            db,
            key,
            config_id,
            state: ArcSwap::from_pointee(state),
            writer: Mutex::new(()),
            published,
            history,
            watermark,
        })
    }

    pub fn config_id(&self) -> &str {
        &self.config_id
    }

    /// A recent revision, if it is still remembered.
    pub fn published_at(&self, revision: Revision) -> Option<PublishedRef> {
        self.history.lock().expect("history lock").iter().find(|p| p.revision == revision).cloned()
    }

    pub fn latest(&self) -> PublishedRef {
        self.published.borrow().clone()
    }

    /// When `revision` was committed, if it is still remembered.
    pub fn committed_at(&self, revision: Revision) -> Option<std::time::SystemTime> {
        self.published_at(revision).map(|p| p.committed_at)
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
    pub async fn upload_certificate(
        &self,
        id: &str,
        certificate: ClientCertificate,
        options: &WriteOptions,
    ) -> Result<StoredCertificate, StoreError> {
        validate_id("certificate", id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        let existing = state.certificates.get(id);
        check_etag("certificate", id, existing.map(|c| c.revision), &options.if_match)?;
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
            if !state.used_by(id).is_empty() && !options.allow_expired {
                check_not_expired(id, &certificate.info)?;
            }
        }
        let stored = StoredCertificate { id: id.to_string(), certificate, revision: state.revision + 1 };
        self.commit(&state, Change { put_certificates: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    pub async fn delete_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing("certificate", id, &state.certificates, |c| c.revision, &options.if_match)?;
        let apis = state.orphaned_without(id);
        if !apis.is_empty() {
            return Err(StoreError::CertificateInUse { id: id.to_string(), apis });
        }
        self.commit(&state, Change { remove_certificates: vec![id.to_string()], ..Change::default() }).await
    }

    /// Stores a CA certificate (already checked to be a CA) under `id`.
    pub async fn upload_ca_certificate(
        &self,
        id: &str,
        der: Vec<u8>,
        info: CertificateInfo,
        options: &WriteOptions,
    ) -> Result<StoredCaCertificate, StoreError> {
        validate_id("CA certificate", id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        check_etag("CA certificate", id, state.ca_certificates.get(id).map(|c| c.revision), &options.if_match)?;
        let stored = StoredCaCertificate { id: id.to_string(), der, info, revision: state.revision + 1 };
        self.commit(&state, Change { put_cas: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    pub async fn delete_ca_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing("CA certificate", id, &state.ca_certificates, |c| c.revision, &options.if_match)?;
        let apis = state.ca_used_by(id);
        if !apis.is_empty() {
            return Err(StoreError::CaInUse { id: id.to_string(), apis });
        }
        self.commit(&state, Change { remove_cas: vec![id.to_string()], ..Change::default() }).await
    }

    /// Creates or replaces an API: every field of the definition is written, so what the
    /// request leaves out returns to its default (its binding and the rest of its policy are
    /// kept unless a binding is given). [`Self::update_api`] changes named fields only.
    pub async fn put_api(&self, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
        validate_id("API", &definition.id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        self.write_api(&state, definition, options).await
    }

    /// Changes some fields of an existing API (AIP-134): `update` gets the stored API and
    /// returns the whole new definition, which is then checked exactly as a put is.
    pub async fn update_api(
        &self,
        id: &str,
        update: impl FnOnce(&Api) -> ApiDefinition,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        let definition = update(existing("API", id, &state.apis, |a| a.revision, &options.if_match)?);
        self.write_api(&state, definition, options).await
    }

    /// Checks and commits an API definition. The caller holds the writer lock.
    async fn write_api(&self, state: &State, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
        let path =
            gatehouse_shared::api::normalize_path(&definition.path).map_err(|e| StoreError::Invalid(e.to_string()))?;
        gatehouse_shared::api::parse_service_url(&definition.service_url)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let existing = state.apis.get(&definition.id);
        check_etag("API", &definition.id, existing.map(|a| a.revision), &options.if_match)?;
        if let Some(other) = state.api_with_path(&path, &definition.id) {
            return Err(StoreError::PathTaken { path, api: other.id.clone() });
        }
        check_tls(state, &definition.tls)?;
        let mut policy = existing.map(|a| a.policy.clone()).unwrap_or_default();
        if let Some(binding) = definition.binding {
            if binding != policy.certificate {
                check_binding(state, &binding, options.allow_expired)?;
            }
            policy.certificate = binding;
        }
        check_scheme(&definition.service_url, &policy.certificate)?;
        let api = Api {
            id: definition.id,
            display_name: definition.display_name,
            path,
            service_url: definition.service_url,
            policy,
            tls: definition.tls,
            revision: state.revision + 1,
        };
        self.commit(state, Change { put_apis: vec![api.clone()], ..Change::default() }).await?;
        Ok(api)
    }

    pub async fn delete_api(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing("API", id, &state.apis, |a| a.revision, &options.if_match)?;
        self.commit(&state, Change { remove_apis: vec![id.to_string()], ..Change::default() }).await
    }

    pub async fn set_api_binding(
        &self,
        api_id: &str,
        binding: Binding,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        let api = existing("API", api_id, &state.apis, |a| a.revision, &options.if_match)?;
        check_binding(&state, &binding, options.allow_expired)?;
        check_scheme(&api.service_url, &binding)?;
        let mut api = api.clone();
        api.policy.certificate = binding;
        api.revision = state.revision + 1;
        self.commit(&state, Change { put_apis: vec![api.clone()], ..Change::default() }).await?;
        Ok(api)
    }

    /// Replaces an API's policy. Masked secrets keep their stored values; a policy equal to the
    /// current one writes nothing.
    pub async fn set_api_policy(
        &self,
        api_id: &str,
        policy: Policy,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        let api = existing("API", api_id, &state.apis, |a| a.revision, &options.if_match)?;
        let policy = policy::unmask(policy, &api.policy)?;
        if policy == api.policy {
            return Ok(api.clone());
        }
        if policy.certificate != api.policy.certificate {
            check_binding(&state, &policy.certificate, options.allow_expired)?;
            check_scheme(&api.service_url, &policy.certificate)?;
        }
        let mut api = api.clone();
        api.policy = policy;
        api.revision = state.revision + 1;
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
                sealed_private_key: self.key.seal(KEY_CONTEXT, &cert.certificate.private_key),
                revision,
            };
            batch.insert(format!("{CERT_PREFIX}{}", cert.id).as_bytes(), prost::Message::encode_to_vec(&record));
            next.certificates.insert(cert.id.clone(), StoredCertificate { revision, ..cert });
        }
        for ca in change.put_cas {
            let record = CaRecord { id: ca.id.clone(), der: ca.der.clone(), revision };
            batch.insert(format!("{CA_PREFIX}{}", ca.id).as_bytes(), prost::Message::encode_to_vec(&record));
            next.ca_certificates.insert(ca.id.clone(), StoredCaCertificate { revision, ..ca });
        }
        for api in change.put_apis {
            let api = Api { revision, ..api };
            batch.insert(
                format!("{API_PREFIX}{}", api.id).as_bytes(),
                prost::Message::encode_to_vec(&ApiRecord::from_api(&api, &self.key)),
            );
            next.apis.insert(api.id.clone(), api);
        }
        for id in change.remove_certificates {
            batch.remove(format!("{CERT_PREFIX}{id}").as_bytes());
            next.certificates.remove(&id);
        }
        for id in change.remove_cas {
            batch.remove(format!("{CA_PREFIX}{id}").as_bytes());
            next.ca_certificates.remove(&id);
        }
        for id in change.remove_apis {
            batch.remove(format!("{API_PREFIX}{id}").as_bytes());
            next.apis.remove(&id);
        }
        batch.insert(REVISION_KEY.as_bytes(), revision.to_be_bytes().to_vec());
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;
        // The write is durable now; a watermark that cannot be written only weakens the check
        // at the next start, so it is logged, not turned into a failed (yet committed) write.
        if let Some(watermark) = &self.watermark
            && let Err(error) = watermark.record(&self.config_id, revision)
        {
            tracing::error!(error = %gatehouse_shared::error_chain(&error), "cannot record the committed revision");
        }

        next.revision = revision;
        let published = Arc::new(next.publish(Some(&self.latest())));
        self.state.store(Arc::new(next));
        {
            let mut history = self.history.lock().expect("history lock");
            history.push_back(published.clone());
            while history.len() > HISTORY {
                history.pop_front();
            }
        }
        self.published.send_replace(published);
        tracing::debug!(revision, "committed");
        Ok(revision)
    }
}

/// The resource under `id`, if it exists and `if_match` allows the write.
fn existing<'a, T>(
    kind: &'static str,
    id: &str,
    resources: &'a std::collections::BTreeMap<String, T>,
    revision: impl Fn(&T) -> Revision,
    if_match: &str,
) -> Result<&'a T, StoreError> {
    let found = resources.get(id).ok_or_else(|| StoreError::NotFound { kind, id: id.to_string() })?;
    check_etag(kind, id, Some(revision(found)), if_match)?;
    Ok(found)
}

fn check_etag(kind: &'static str, id: &str, current: Option<Revision>, if_match: &str) -> Result<(), StoreError> {
    if if_match.is_empty() || if_match == "*" {
        return Ok(());
    }
    match current {
        None => Err(StoreError::EtagOnMissing { kind, id: id.to_string(), given: if_match.to_string() }),
        Some(revision) if etag(revision) == if_match => Ok(()),
        Some(revision) => Err(StoreError::EtagMismatch {
            kind,
            id: id.to_string(),
            current: etag(revision),
            given: if_match.to_string(),
        }),
    }
}

fn check_not_expired(id: &str, info: &CertificateInfo) -> Result<(), StoreError> {
    if info.is_expired() {
        return Err(StoreError::Expired { id: id.to_string(), not_after: format_date(info.not_after) });
    }
    Ok(())
}

/// YYYY-MM-DD (UTC), for messages.
fn format_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_else(|_| unix.to_string())
}

fn check_scheme(service_url: &str, binding: &Binding) -> Result<(), StoreError> {
    gatehouse_shared::api::check_certificate_reachable(service_url, *binding != Binding::None)
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

fn check_binding(state: &State, binding: &Binding, allow_expired: bool) -> Result<(), StoreError> {
    let stored = match binding {
        Binding::None => return Ok(()),
        Binding::CertificateId(id) => {
            state.certificates.get(id).ok_or_else(|| StoreError::NotFound { kind: "certificate", id: id.clone() })?
        }
        Binding::Thumbprint(t) => {
            state.certificate_by_thumbprint(t).ok_or_else(|| StoreError::ThumbprintNotFound(t.clone()))?
        }
    };
    if !allow_expired {
        check_not_expired(&stored.id, &stored.certificate.info)?;
    }
    Ok(())
}

fn check_tls(state: &State, tls: &BackendTls) -> Result<(), StoreError> {
    for id in &tls.ca_ids {
        if !state.ca_certificates.contains_key(id) {
            return Err(StoreError::NotFound { kind: "CA certificate", id: id.clone() });
        }
    }
    if tls.validate_chain && !tls.system_roots && tls.ca_ids.is_empty() {
        return Err(StoreError::Invalid(
            "the API trusts no roots: give CA certificate ids, trust the system roots, or turn off chain validation"
                .into(),
        ));
    }
    Ok(())
}

/// Ids appear in URLs, logs and CLI tables: keep them plain.
fn validate_id(kind: &str, id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        let id = gatehouse_shared::api::quote(id);
        Err(StoreError::Invalid(format!(
            "{kind} id '{id}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.' (not '.' or '..' alone)"
        )))
    }
}

fn load(db: &sled::Db, seal: &SealingKey) -> Result<State, StoreError> {
    let corrupt = |key: &[u8], source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    };
    let mut state = State::default();
    if let Some(bytes) = db.get(REVISION_KEY)? {
        let raw: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(REVISION_KEY.as_bytes(), "revision is not 8 bytes".into()))?;
        state.revision = u64::from_be_bytes(raw);
    }
    for item in db.scan_prefix(CERT_PREFIX) {
        let (key, value) = item?;
        let record: CertificateRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        // A key that does not open means the wrong master key (or tampering): say so, load nothing.
        let private_key = seal.open(KEY_CONTEXT, &record.sealed_private_key).map_err(|e| corrupt(&key, e.into()))?;
        let certificate =
            ClientCertificate::from_parts(record.chain, private_key).map_err(|e| corrupt(&key, e.into()))?;
        state
            .certificates
            .insert(record.id.clone(), StoredCertificate { id: record.id, certificate, revision: record.revision });
    }
    for item in db.scan_prefix(CA_PREFIX) {
        let (key, value) = item?;
        let record: CaRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let info = gatehouse_shared::certificate::describe_der(&record.der).map_err(|e| corrupt(&key, e.into()))?;
        state.ca_certificates.insert(
            record.id.clone(),
            StoredCaCertificate { id: record.id, der: record.der, info, revision: record.revision },
        );
    }
    for item in db.scan_prefix(API_PREFIX) {
        let (key, value) = item?;
        let record: ApiRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let api = record.into_api(seal).map_err(|e| corrupt(&key, e.into()))?;
        state.apis.insert(api.id.clone(), api);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_utc_calendar_days() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(format_date(4_102_444_800), "2100-01-01");
    }
}
