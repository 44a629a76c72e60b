//! Durable configuration in sled. Every write is validated against the current state,
//! applied as one atomic batch (records plus the new revision), flushed to disk, and only then
//! made visible and published: an acknowledged write survives SIGKILL.

use std::sync::Arc;

use crate::policy::UnmaskError;
use arc_swap::ArcSwap;
use gatehouse_shared::Thumbprint;
use gatehouse_shared::sealed::SealingKey;
use tokio::sync::{Mutex, watch};

use crate::certificate::ServerCertificateError;
use crate::model::{
    Api, BackendTls, Binding, CertificateSource, Hostname, Revision, State, StoredCaCertificate, StoredCertificate,
    Subscription, SubscriptionSettings,
};
use crate::snapshot::{Published, PublishedRef};
use crate::watermark::Watermark;

mod apis;
mod certificate_sources;
mod certificates;
mod hostnames;
mod records;
mod rules;
mod subscriptions;

pub use certificate_sources::RefreshOutcome;
pub use rules::is_plain_id;
pub use subscriptions::{CreatedSubscription, SubscriptionDefinition};
#[cfg(test)]
mod tests;

/// The kinds of resource the store keeps, as messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// A client certificate.
    Certificate,
    /// A CA certificate.
    CaCertificate,
    /// An API.
    Api,
    /// A hostname API clients reach over HTTPS.
    Hostname,
    /// A subscription: keys API clients present.
    Subscription,
}

impl ResourceKind {
    /// How messages name the kind ("certificate", "CA certificate", "API").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::CaCertificate => "CA certificate",
            Self::Api => "API",
            Self::Hostname => "hostname",
            Self::Subscription => "subscription",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a write was refused or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No resource of that kind has that id.
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// The kind asked for.
        kind: ResourceKind,
        /// The id asked for.
        id: String,
    },
    /// Creating a resource under a name that is taken.
    #[error("{kind} '{id}' exists already")]
    Exists {
        /// The kind created.
        kind: ResourceKind,
        /// The name taken.
        id: String,
    },
    /// Deleting an API that subscriptions are scoped to: their keys would open nothing, and a
    /// new API under the same id would inherit them.
    #[error(
        "API '{id}' has subscriptions scoped to it: {}; delete them first (gatehousectl subscription delete NAME)",
        .subscriptions.join(", ")
    )]
    ApiHasSubscriptions {
        /// The API.
        id: String,
        /// The subscriptions scoped to it.
        subscriptions: Vec<String>,
    },
    /// An API's subscription key header that cannot be used.
    #[error("subscription key header '{name}' is invalid: {reason}")]
    InvalidSubscriptionKeyHeader {
        /// The header name given (quoted).
        name: String,
        /// Why it cannot.
        reason: &'static str,
    },
    /// A binding pins a thumbprint no stored certificate has.
    #[error("no certificate has thumbprint {0}")]
    ThumbprintNotFound(Thumbprint),
    /// Another API already has the path prefix on a host this one would answer on (see
    /// [`State::api_with_path`]).
    #[error(
        "path '{path}' is already used by API '{api}'{}; two APIs share a path only when both list hostnames and no hostname is in both",
        on_hostnames(.hostnames)
    )]
    PathTaken {
        /// The path prefix.
        path: String,
        /// The API that has it.
        api: String,
        /// The hostnames both APIs list; empty when one of them lists none (any host).
        hostnames: Vec<String>,
    },
    /// Deleting a certificate that APIs would be left without, or that hostnames are served with.
    #[error("certificate '{id}' is used by {}; remove it from them first", users(.apis, .hostnames))]
    CertificateInUse {
        /// The certificate.
        id: String,
        /// The APIs that would be bound to nothing.
        apis: Vec<String>,
        /// The hostnames served with it.
        hostnames: Vec<String>,
    },
    /// Deleting a CA certificate that APIs trust for their backends or hostnames for clients.
    #[error("CA certificate '{id}' is trusted by {}; remove it from them first", users(.apis, .hostnames))]
    CaInUse {
        /// The CA certificate.
        id: String,
        /// The APIs that trust it.
        apis: Vec<String>,
        /// The hostnames that trust it for client certificates.
        hostnames: Vec<String>,
    },
    /// A hostname that is not a lowercase DNS name, exact or `*.` wildcard.
    #[error("hostname '{name}' is invalid: {reason}")]
    InvalidHostname {
        /// The name given (quoted).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A certificate that cannot serve TLS for the hostname.
    #[error("certificate '{id}' cannot serve hostname '{hostname}': {reason}")]
    NotServerCertificate {
        /// The certificate.
        id: String,
        /// The hostname.
        hostname: String,
        /// Why it cannot.
        reason: ServerCertificateError,
    },
    /// Uploading under a certificate id a certificate that could not serve the hostnames using it.
    #[error(
        "uploading this certificate under '{id}' would break the hostnames served with it: {}; upload a certificate valid for them, or move them to another certificate first",
        broken_hostnames(.hostnames)
    )]
    BreaksHostnames {
        /// The certificate id uploaded to.
        id: String,
        /// Each hostname it would break, and why.
        hostnames: Vec<(String, ServerCertificateError)>,
    },
    /// Making a hostname the default while another one is. Refused rather than moving the
    /// default silently: which hostname clients without SNI reach is a choice to make on purpose.
    #[error(
        "hostname '{default}' is the default already (at most one hostname is); put it again without default first, then '{name}' with default"
    )]
    DefaultHostnameTaken {
        /// The hostname that was to become the default.
        name: String,
        /// The hostname that is the default.
        default: String,
    },
    /// Deleting a hostname that APIs answer on.
    #[error("hostname '{name}' is used by APIs: {}; remove it from them first", .apis.join(", "))]
    HostnameInUse {
        /// The hostname.
        name: String,
        /// The APIs that list it.
        apis: Vec<String>,
    },
    /// Replacing a certificate with another thumbprint while APIs pin the old one.
    #[error(
        "uploading a certificate with another thumbprint under '{id}' would leave APIs pinned to thumbprint {thumbprint} without a certificate: {}; bind them by certificate id or to the new thumbprint first",
        .apis.join(", ")
    )]
    PinnedByThumbprint {
        /// The certificate id uploaded to.
        id: String,
        /// The thumbprint stored there now.
        thumbprint: Thumbprint,
        /// The APIs that pin it.
        apis: Vec<String>,
    },
    /// Refreshing a certificate that is not linked to files.
    #[error(
        "{kind} '{id}' has no source to refresh from: it was uploaded; link it to files first (gatehousectl {} link)",
        if matches!(.kind, ResourceKind::CaCertificate) { "ca" } else { "cert" }
    )]
    NotLinked {
        /// Certificate or CA certificate.
        kind: ResourceKind,
        /// Its id.
        id: String,
    },
    /// Binding an expired certificate without `allow_expired`.
    #[error(
        "certificate '{id}' expired on {not_after}; pass allow_expired (gatehousectl --allow-expired) to use it anyway"
    )]
    Expired {
        /// The certificate.
        id: String,
        /// Its expiry date, YYYY-MM-DD (UTC).
        not_after: String,
    },
    /// `if_match` names another etag than the current one.
    #[error("{kind} '{id}' changed since it was read (etag is now {current}, if_match was {given}); read it again")]
    EtagMismatch {
        /// The resource's kind.
        kind: ResourceKind,
        /// Its id.
        id: String,
        /// Its etag now.
        current: String,
        /// The etag `if_match` gave.
        given: String,
    },
    /// `if_match` given for a resource that does not exist.
    #[error("{kind} '{id}' does not exist, but if_match {given} expected it to")]
    EtagOnMissing {
        /// The resource's kind.
        kind: ResourceKind,
        /// Its id.
        id: String,
        /// The etag `if_match` gave.
        given: String,
    },
    /// An id that [`is_plain_id`] refuses.
    #[error("{kind} id '{id}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.' (not '.' or '..' alone)")]
    InvalidId {
        /// The resource's kind.
        kind: ResourceKind,
        /// The id given.
        id: String,
    },
    /// The path prefix or service URL breaks the API rules.
    #[error(transparent)]
    Definition(#[from] gatehouse_shared::api::ApiDefinitionError),
    /// `http://` with a client certificate: the certificate could never be presented.
    #[error(
        "service URL '{0}' is plain http://, so the API's client certificate could never be presented: use https://, or remove the binding"
    )]
    CertificateOverPlainHttp(String),
    /// Chain validation on, but neither CA ids nor the system roots to validate against.
    #[error("the API trusts no roots: give CA certificate ids, trust the system roots, or turn off chain validation")]
    NoTrustedRoots,
    /// A mask in the policy with nothing stored behind it.
    #[error(transparent)]
    Unmask(#[from] UnmaskError),
    /// sled failed.
    #[error("the configuration store failed")]
    Storage(#[from] sled::Error),
    /// The revision watermark cannot be read or written, or is ahead of the database.
    #[error(transparent)]
    Watermark(#[from] crate::watermark::WatermarkError),
    /// A stored record does not decode or unseal.
    #[error(
        "stored record '{key}' is corrupt: restore DATA_DIR/sled from a backup of the data directory (with the same master key)"
    )]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// "APIs: a, b; hostnames: x", leaving out an empty kind.
fn users(apis: &[String], hostnames: &[String]) -> String {
    let mut parts = Vec::new();
    if !apis.is_empty() {
        parts.push(format!("APIs: {}", apis.join(", ")));
    }
    if !hostnames.is_empty() {
        parts.push(format!("hostnames: {}", hostnames.join(", ")));
    }
    parts.join("; ")
}

/// " on hostnames x, y" for `PathTaken`, or why the APIs meet on every host.
fn on_hostnames(hostnames: &[String]) -> String {
    match hostnames {
        [] => " (an API without hostnames answers on every host)".into(),
        names => format!(" on hostnames {}", names.join(", ")),
    }
}

/// "a.example.com (why), b.example.com (why)".
fn broken_hostnames(hostnames: &[(String, ServerCertificateError)]) -> String {
    hostnames.iter().map(|(name, reason)| format!("{name} ({reason})")).collect::<Vec<_>>().join(", ")
}

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
