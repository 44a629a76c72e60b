//! Durable configuration, in sled (one control plane) or etcd (several). Every write is
//! validated against the current state and committed as one atomic batch (records plus the new
//! revision) that compares the revision it was validated at; only once the backend has it
//! durably is it made visible and published: an acknowledged write survives SIGKILL. With etcd,
//! what other control planes commit arrives through a watch and is installed the same way.

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
use backend::{Backend, Op};

mod apis;
pub mod apply;
mod backend;
pub mod backup;
mod certificate_sources;
mod certificates;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
mod hostnames;
#[cfg(feature = "etcd")]
pub mod migrate;
mod named_value_sources;
mod named_values;
mod records;
mod rules;
mod subscriptions;

pub use certificate_sources::RefreshOutcome;
pub use error::{ResourceKind, StoreError};
pub use named_values::{MAX_VALUE_BYTES, check_named_value};
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
    put_named_values: Vec<crate::model::NamedValue>,
    remove_named_values: Vec<String>,
    put_named_value_sources: Vec<(String, crate::model::NamedValueSource)>,
    remove_named_value_sources: Vec<String>,
}

/// What a write decided, given the state it read: [`Store::write`] commits it, and runs the
/// plan again on the newer state if another control plane committed in between.
pub(super) enum Plan<T> {
    /// Commit the change with the next revision, then answer `T`.
    Commit(Change, T),
    /// Record what data planes never see (a source's last read) without a new revision.
    Record(Change, T),
    /// Nothing to write: answer `T`.
    Done(T),
}

// === impl Store ===

/// The configuration store: the current [`State`], its revision history, and every write.
pub struct Store {
    backend: Backend,
    /// Seals private keys and secrets before they reach the disk.
    key: SealingKey,
    /// Random id of this configuration store: revisions compare only within one.
    config_id: String,
    state: ArcSwap<State>,
    /// One writer at a time on this control plane: validation and commit see the same state.
    writer: Mutex<()>,
    /// Held while a committed batch is installed into `state`.
    installing: std::sync::Mutex<()>,
    /// The backend position of the last batch installed. With etcd only the watch installs,
    /// in etcd's order, this control plane's own commits included: none is installed twice,
    /// none out of order, none skipped.
    installed: watch::Sender<i64>,
    published: watch::Sender<PublishedRef>,
    /// Recent revisions, oldest first, so a reconnecting data plane can get only what changed.
    history: std::sync::Mutex<std::collections::VecDeque<PublishedRef>>,
}

/// How many recent revisions are kept for incremental sync (unchanged entries are shared).
const HISTORY: usize = 32;

/// How long a write keeps planning again while other control planes commit first.
const RACE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Opens the configuration in sled's `db` (`key` seals private keys and secrets);
    /// `watermark` (if given) must not be ahead of what the database holds. Fails with
    /// [`StoreError::WrongMasterKey`] when `key` does not open the store's key check (made on
    /// first open).
    pub fn open(db: sled::Db, key: SealingKey, watermark: Option<Watermark>) -> Result<Self, StoreError> {
        let stored_id = db.get(records::CONFIG_ID_KEY)?.map(|id| String::from_utf8_lossy(&id).into_owned());
        // Another master key is named as such, before a record fails to open under it.
        let key_check = db.get(records::KEY_CHECK_KEY)?;
        if key_check.as_ref().is_some_and(|check| !records::opens_key_check(&key, check)) {
            return Err(StoreError::WrongMasterKey);
        }
        let state = records::load(&db, &key)?;
        // Before anything is written: a database that lost writes is not written over.
        if let Some(watermark) = &watermark {
            watermark.check(stored_id.as_deref(), state.revision)?;
        }
        // Stores from before key checks get theirs once every record opened under this key.
        if key_check.is_none() {
            db.insert(records::KEY_CHECK_KEY, records::key_check(&key))?;
            db.flush()?;
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
        Ok(Self::with_state(Backend::Sled { db, watermark }, key, config_id, state, 0))
    }

    /// A store over `backend` holding `state`, loaded at backend position `position`.
    fn with_state(backend: Backend, key: SealingKey, config_id: String, state: State, position: i64) -> Self {
        let first = Arc::new(Published::of(&state, None));
        let history = std::sync::Mutex::new(std::collections::VecDeque::from([first.clone()]));
        let published = watch::Sender::new(first);
        Self {
            backend,
            key,
            config_id,
            state: ArcSwap::from_pointee(state),
            writer: Mutex::new(()),
            installing: std::sync::Mutex::new(()),
            installed: watch::Sender::new(position),
            published,
            history,
        }
    }

    /// Random id of this configuration store: revisions compare only within one.
    pub fn config_id(&self) -> &str {
        &self.config_id
    }

    /// Which store this is, for logs and errors: "sled" or "etcd".
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Whether other control planes write to this store too (etcd): then this one may be
    /// behind a data plane that was connected to another.
    pub fn is_shared(&self) -> bool {
        !matches!(self.backend, Backend::Sled { .. })
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

    /// Waits until everything written is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush().await
    }

    /// Runs `plan` on the current state and commits what it decides. When another control
    /// plane committed first (etcd), waits until its revision is installed here and plans
    /// again: rules and etags are always checked against the state the write lands on.
    pub(super) async fn write<T>(
        &self,
        mut plan: impl FnMut(&State) -> Result<Plan<T>, StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = self.writer.lock().await;
        let deadline = tokio::time::Instant::now() + RACE_FOR;
        let mut attempt: u32 = 1;
        loop {
            let state = self.state();
            let (change, answer, bump) = match plan(&state) {
                Ok(Plan::Commit(change, answer)) => (change, answer, true),
                Ok(Plan::Record(change, answer)) => (change, answer, false),
                // Nothing to commit, so no comparison would catch a stale state: an answer
                // (or a refusal) stands only if no other control plane has committed since.
                done => match (self.backend.newer_revision(state.revision).await, done) {
                    (Ok(Some(revision)), _) if tokio::time::Instant::now() < deadline => {
                        self.caught_up(revision).await?;
                        continue;
                    }
                    // A refusal stands when the store cannot be asked; "nothing to do" does not.
                    (Err(unreachable), Ok(_)) => return Err(unreachable),
                    (_, Ok(Plan::Done(answer))) => return Ok(answer),
                    (_, Ok(_)) => unreachable!("commits and records are handled above"),
                    (_, Err(refusal)) => return Err(refusal),
                },
            };
            match self.commit(&state, change, bump).await {
                Ok(()) => return Ok(answer),
                Err(StoreError::Moved { revision }) if tokio::time::Instant::now() < deadline => {
                    attempt += 1;
                    tracing::debug!(revision, attempt, "another control plane committed first; planning again");
                    self.caught_up(revision).await?;
                    // A control plane writing in a loop would otherwise win every race: it
                    // plans on its own commit at once, the loser only after its watch.
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos();
                    let jitter = u64::from(nanos % 1000) * u64::from(attempt.min(20));
                    tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether `revision` exists, waiting for it to be installed here if another control
    /// plane committed it and this one's watch has not brought it yet.
    pub async fn has_revision(&self, revision: Revision) -> Result<bool, StoreError> {
        let current = self.state().revision;
        if revision <= current {
            return Ok(true);
        }
        match self.backend.newer_revision(current).await? {
            Some(latest) if latest >= revision => {
                self.caught_up(revision).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Waits until `revision` (committed elsewhere) is installed here.
    async fn caught_up(&self, revision: Revision) -> Result<(), StoreError> {
        let mut published = self.subscribe();
        let wait = published.wait_for(|p| p.revision >= revision);
        match tokio::time::timeout(std::time::Duration::from_secs(5), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable {
                store: self.kind(),
                reason: format!("revision {revision} was committed but has not reached this control plane's watch"),
            }),
        }
    }

    /// Encodes the change (with the next revision when `bump`), commits it over the state's
    /// revision, and installs it. The caller holds the writer lock.
    async fn commit(&self, state: &State, change: Change, bump: bool) -> Result<(), StoreError> {
        let revision = state.revision + 1;
        let mut ops = Vec::new();
        for cert in change.put_certificates {
            let (key, value) = records::certificate_entry(&cert, revision, &self.key);
            ops.push(Op::Put(key, value));
        }
        for ca in change.put_cas {
            let (key, value) = records::ca_entry(&ca, revision);
            ops.push(Op::Put(key, value));
        }
        for api in change.put_apis {
            let (key, value) = records::api_entry(&Api { revision, ..api }, &self.key);
            ops.push(Op::Put(key, value));
        }
        for hostname in change.put_hostnames {
            let (key, value) = records::hostname_entry(&Hostname { revision, ..hostname });
            ops.push(Op::Put(key, value));
        }
        for subscription in change.put_subscriptions {
            let (key, value) = records::subscription_entry(&Subscription { revision, ..subscription });
            ops.push(Op::Put(key, value));
        }
        for (id, source) in change.put_sources {
            let (key, value) = records::source_entry(&id, &source, &self.key);
            ops.push(Op::Put(key, value));
        }
        for named in change.put_named_values {
            let (key, value) = records::named_value_entry(&crate::model::NamedValue { revision, ..named }, &self.key);
            ops.push(Op::Put(key, value));
        }
        for (id, source) in change.put_ca_sources {
            let (key, value) = records::ca_source_entry(&id, &source, &self.key);
            ops.push(Op::Put(key, value));
        }
        for (name, source) in change.put_named_value_sources {
            let (key, value) = records::named_value_source_entry(&name, &source);
            ops.push(Op::Put(key, value));
        }
        let removed = [
            change.remove_certificates.iter().map(|id| records::certificate_key(id)).collect::<Vec<_>>(),
            change.remove_cas.iter().map(|id| records::ca_key(id)).collect(),
            change.remove_apis.iter().map(|id| records::api_key(id)).collect(),
            change.remove_hostnames.iter().map(|name| records::hostname_key(name)).collect(),
            change.remove_subscriptions.iter().map(|name| records::subscription_key(name)).collect(),
            change.remove_sources.iter().map(|id| records::source_key(id)).collect(),
            change.remove_ca_sources.iter().map(|id| records::ca_source_key(id)).collect(),
            change.remove_named_values.iter().map(|name| records::named_value_key(name)).collect(),
            change.remove_named_value_sources.iter().map(|name| records::named_value_source_key(name)).collect(),
        ];
        ops.extend(removed.into_iter().flatten().map(Op::Delete));
        if bump {
            ops.push(Op::Put(records::REVISION_KEY.as_bytes().to_vec(), revision.to_be_bytes().to_vec()));
        }
        match self.backend.commit(&self.config_id, state.revision, &ops).await? {
            // sled: this process is the only writer.
            None => self.install(None, ops)?,
            // etcd: committed; the watch installs it in etcd's order.
            Some(position) => self.installed_through(position).await,
        }
        if bump {
            tracing::debug!(revision, "committed");
        }
        Ok(())
    }

    /// Waits until the watch has installed backend position `position` (a commit of this
    /// control plane's), so that what a write returns is what reads here show. The commit is
    /// durable either way: a watch that lags only delays that.
    async fn installed_through(&self, position: i64) {
        let mut installed = self.installed.subscribe();
        let wait = installed.wait_for(|p| *p >= position);
        if tokio::time::timeout(std::time::Duration::from_secs(5), wait).await.is_err() {
            tracing::warn!(position, "committed, but the watch has not brought the commit back within 5 s");
        }
    }

    /// Installs one committed batch at backend position `position` (`None`: the next one, as
    /// sled has no other writer) on top of the current state, and publishes it when it carries
    /// a new revision. A batch at or before the last one installed is skipped (a watch that
    /// resumed may deliver one again).
    pub(super) fn install(&self, position: Option<i64>, ops: Vec<Op>) -> Result<(), StoreError> {
        let _installing = self.installing.lock().expect("install lock");
        let last = *self.installed.borrow();
        let position = position.unwrap_or(last + 1);
        if position <= last {
            return Ok(());
        }
        let current = self.state();
        let mut next = (*current).clone();
        for op in &ops {
            match op {
                Op::Put(key, value) => records::apply(&mut next, key, Some(value), &self.key)?,
                Op::Delete(key) => records::apply(&mut next, key, None, &self.key)?,
            }
        }
        self.replace(&current, next);
        self.installed.send_replace(position);
        Ok(())
    }

    /// Installs a whole state read at backend position `position` (after the watch lost its
    /// place): data planes get only what differs from what they have.
    #[cfg(feature = "etcd")]
    pub(super) fn install_all(&self, position: i64, next: State) {
        let _installing = self.installing.lock().expect("install lock");
        if position <= *self.installed.borrow() {
            return;
        }
        let current = self.state();
        self.replace(&current, next);
        self.installed.send_replace(position);
    }

    /// Makes `next` the state, publishing it if its revision is new. The caller holds the
    /// install lock.
    fn replace(&self, current: &State, next: State) {
        if next.revision == current.revision {
            self.state.store(Arc::new(next));
            return;
        }
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
    }
}
