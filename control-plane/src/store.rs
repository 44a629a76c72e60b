//! Durable configuration in sled. Every write is validated against the current state,
//! applied as one atomic batch (records plus the new revision), flushed to disk, and only then
//! made visible and published: an acknowledged write survives SIGKILL.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_shared::sealed::SealingKey;
use tokio::sync::{Mutex, watch};

use crate::model::{
    Api, BackendTls, Binding, CertificateSource, Hostname, Revision, State, StoredCaCertificate, StoredCertificate,
    Subscription, SubscriptionSettings,
};
use crate::snapshot::{Published, PublishedRef};
use crate::watermark::Watermark;

mod apis;
mod certificate_sources;
mod certificates;
mod error;
mod hostnames;
mod records;
mod rules;
mod subscriptions;

pub use certificate_sources::RefreshOutcome;
pub use error::{ResourceKind, StoreError};
pub use rules::is_plain_id;
pub use subscriptions::{CreatedSubscription, SubscriptionDefinition};
#[cfg(test)]
mod tests;

/// An API as the operator defines it with PutApi.
#[derive(Clone, Debug)]
pub struct ApiDefinition {
    /// The operator-chosen id.
    pub id: String,
    /// The name shown to operators.
    pub display_name: String,
    /// Path prefix, normalized on write.
    pub path: String,
    /// Backend base URL.
    pub service_url: String,
    /// `None` keeps an existing API's binding.
    pub binding: Option<Binding>,
    /// How the backend's server certificate is checked.
    pub tls: BackendTls,
    /// Names of the hostnames it answers on (each must exist); empty: any host.
    pub hostnames: Vec<String>,
    /// Whether callers need a subscription key, and the header it comes in.
    pub subscription: SubscriptionSettings,
}

/// A hostname as the operator defines it with PutHostname.
#[derive(Clone, Debug)]
pub struct HostnameDefinition {
    /// Exact or `*.` wildcard DNS name; normalized to lowercase on write.
    pub name: String,
    /// The id of the stored certificate to serve.
    pub certificate_id: String,
    /// Serve it to clients that send no SNI or an unknown one.
    pub default: bool,
    /// Ask clients for a certificate during the handshake.
    pub negotiate_client_certificate: bool,
    /// Ids of stored CA certificates client certificates may chain to.
    pub client_ca_ids: Vec<String>,
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
pub(super) struct Change {
    put_certificates: Vec<StoredCertificate>,
    put_cas: Vec<StoredCaCertificate>,
    put_apis: Vec<Api>,
    put_hostnames: Vec<Hostname>,
    put_subscriptions: Vec<Subscription>,
    remove_certificates: Vec<String>,
    remove_cas: Vec<String>,
    remove_apis: Vec<String>,
    remove_hostnames: Vec<String>,
    remove_subscriptions: Vec<String>,
    put_sources: Vec<(String, CertificateSource)>,
    remove_sources: Vec<String>,
    put_ca_sources: Vec<(String, CertificateSource)>,
    remove_ca_sources: Vec<String>,
}

// === impl Store ===

/// The configuration store: the current [`State`], its revision history, and every write.
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
    /// Opens the configuration in `db` (`key` seals private keys and secrets); `watermark` (if given) must not be ahead of what the database holds.
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
        let first = Arc::new(Published::of(&state, None));
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

    /// Random id of this configuration store: revisions compare only within one.
    pub fn config_id(&self) -> &str {
        &self.config_id
    }

    /// A recent revision, if it is still remembered.
    pub fn published_at(&self, revision: Revision) -> Option<PublishedRef> {
        self.history.lock().expect("history lock").iter().find(|p| p.revision == revision).cloned()
    }

    /// The latest committed revision as data planes receive it.
    pub fn latest(&self) -> PublishedRef {
        self.published.borrow().clone()
    }

    /// When `revision` was committed, if it is still remembered.
    pub fn committed_at(&self, revision: Revision) -> Option<std::time::SystemTime> {
        self.published_at(revision).map(|p| p.committed_at)
    }

    /// The current state.
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Every committed revision, latest first; a slow reader skips to the newest.
    pub fn subscribe(&self) -> watch::Receiver<PublishedRef> {
        self.published.subscribe()
    }

    /// Waits until everything written is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Writes the change and the next revision atomically, waits until sled has it on disk,
    /// then makes it visible and publishes it. The caller holds the writer lock.
    pub(super) async fn commit(&self, state: &State, change: Change) -> Result<Revision, StoreError> {
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
        for hostname in change.put_hostnames {
            let hostname = Hostname { revision, ..hostname };
            let (key, value) = records::hostname_entry(&hostname);
            batch.insert(key, value);
            next.hostnames.insert(hostname.name.clone(), hostname);
        }
        for subscription in change.put_subscriptions {
            let subscription = Subscription { revision, ..subscription };
            let (key, value) = records::subscription_entry(&subscription);
            batch.insert(key, value);
            next.subscriptions.insert(subscription.name.clone(), subscription);
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
        for name in change.remove_hostnames {
            batch.remove(records::hostname_key(&name));
            next.hostnames.remove(&name);
        }
        for name in change.remove_subscriptions {
            batch.remove(records::subscription_key(&name));
            next.subscriptions.remove(&name);
        }
        for (id, source) in change.put_sources {
            let (key, value) = records::source_entry(&id, &source, &self.key);
            batch.insert(key, value);
            next.certificate_sources.insert(id, source);
        }
        for id in change.remove_sources {
            batch.remove(records::source_key(&id));
            next.certificate_sources.remove(&id);
        }
        for (id, source) in change.put_ca_sources {
            let (key, value) = records::ca_source_entry(&id, &source, &self.key);
            batch.insert(key, value);
            next.ca_sources.insert(id, source);
        }
        for id in change.remove_ca_sources {
            batch.remove(records::ca_source_key(&id));
            next.ca_sources.remove(&id);
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
        let published = Arc::new(Published::of(&next, Some(&self.latest())));
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
