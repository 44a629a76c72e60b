//! Durable configuration in sled. Every write is validated against the current state,
//! applied as one atomic batch (records plus the new revision), flushed to disk, and only then
//! made visible and published: an acknowledged write survives SIGKILL.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_shared::policy::{self, UnmaskError};
use gatehouse_shared::sealed::SealingKey;
use gatehouse_shared::{CertificateInfo, ClientCertificate, Thumbprint};
use tokio::sync::{Mutex, watch};

use crate::model::{
    Api, BackendTls, Binding, Policy, PublishedRef, Revision, State, StoredCaCertificate, StoredCertificate,
};
use crate::watermark::Watermark;

mod records;
mod rules;
#[cfg(test)]
mod tests;

use rules::{check_binding, check_etag, check_not_expired, check_scheme, check_tls, existing, validate_id};

/// The kinds of resource the store keeps, as messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Certificate,
    CaCertificate,
    Api,
}

impl ResourceKind {
    /// How messages name the kind ("certificate", "CA certificate", "API").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::CaCertificate => "CA certificate",
            Self::Api => "API",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} '{id}' not found")]
    NotFound { kind: ResourceKind, id: String },
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
    EtagMismatch { kind: ResourceKind, id: String, current: String, given: String },
    #[error("{kind} '{id}' does not exist, but if_match {given} expected it to")]
    EtagOnMissing { kind: ResourceKind, id: String, given: String },
    #[error("{kind} id '{id}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.' (not '.' or '..' alone)")]
    InvalidId { kind: ResourceKind, id: String },
    #[error(transparent)]
    Definition(#[from] gatehouse_shared::api::ApiDefinitionError),
    #[error("the API trusts no roots: give CA certificate ids, trust the system roots, or turn off chain validation")]
    NoTrustedRoots,
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
        let stored_id = db.get(records::CONFIG_ID_KEY)?.map(|id| String::from_utf8_lossy(&id).into_owned());
        let state = records::load(&db, &key)?;
        // Before anything is written: a database that lost writes is not written over.
        if let Some(watermark) = &watermark {
            watermark.check(stored_id.as_deref(), state.revision)?;
        }
        let config_id = match stored_id {
            Some(id) => id,
            None => {
                let id = records::random_id();
                db.insert(records::CONFIG_ID_KEY, id.as_bytes())?;
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
        existing(ResourceKind::Certificate, id, &state.certificates, |c| c.revision, &options.if_match)?;
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
        validate_id(ResourceKind::CaCertificate, id)?;
        let _guard = self.writer.lock().await;
        let state = self.state();
        check_etag(ResourceKind::CaCertificate, id, state.ca_certificates.get(id).map(|c| c.revision), &options.if_match)?;
        let stored = StoredCaCertificate { id: id.to_string(), der, info, revision: state.revision + 1 };
        self.commit(&state, Change { put_cas: vec![stored.clone()], ..Change::default() }).await?;
        Ok(stored)
    }

    pub async fn delete_ca_certificate(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let _guard = self.writer.lock().await;
        let state = self.state();
        existing(ResourceKind::CaCertificate, id, &state.ca_certificates, |c| c.revision, &options.if_match)?;
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
        validate_id(ResourceKind::Api, &definition.id)?;
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
        let definition = update(existing(ResourceKind::Api, id, &state.apis, |a| a.revision, &options.if_match)?);
        self.write_api(&state, definition, options).await
    }

    /// Checks and commits an API definition. The caller holds the writer lock.
    async fn write_api(&self, state: &State, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
        let path = gatehouse_shared::api::normalize_path(&definition.path)?;
        gatehouse_shared::api::parse_service_url(&definition.service_url)?;
        let existing = state.apis.get(&definition.id);
        check_etag(ResourceKind::Api, &definition.id, existing.map(|a| a.revision), &options.if_match)?;
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
        existing(ResourceKind::Api, id, &state.apis, |a| a.revision, &options.if_match)?;
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
        let api = existing(ResourceKind::Api, api_id, &state.apis, |a| a.revision, &options.if_match)?;
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
        let api = existing(ResourceKind::Api, api_id, &state.apis, |a| a.revision, &options.if_match)?;
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
            let (key, value) = records::certificate_entry(&cert, revision, &self.key);
            batch.insert(key, value);
            next.certificates.insert(cert.id.clone(), StoredCertificate { revision, ..cert });
        }
        for ca in change.put_cas {
            let (key, value) = records::ca_entry(&ca, revision);
            batch.insert(key, value);
            next.ca_certificates.insert(ca.id.clone(), StoredCaCertificate { revision, ..ca });
        }
        for api in change.put_apis {
            let api = Api { revision, ..api };
            let (key, value) = records::api_entry(&api, &self.key);
            batch.insert(key, value);
            next.apis.insert(api.id.clone(), api);
        }
        for id in change.remove_certificates {
            batch.remove(records::certificate_key(&id));
            next.certificates.remove(&id);
        }
        for id in change.remove_cas {
            batch.remove(records::ca_key(&id));
            next.ca_certificates.remove(&id);
        }
        for id in change.remove_apis {
            batch.remove(records::api_key(&id));
            next.apis.remove(&id);
        }
        batch.insert(records::REVISION_KEY.as_bytes(), revision.to_be_bytes().to_vec());
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

