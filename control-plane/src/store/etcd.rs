//! The configuration in etcd, shared by several control planes. Records are the same
//! protobuf entries sled holds, under `PREFIX/config/`; `meta/revision` is the global revision,
//! and every commit is one transaction comparing it with the revision the write was validated
//! at. Each control plane watches the prefix and installs what the others commit, in etcd's
//! order; a watch that breaks resumes after the last batch it installed, and one that lost its
//! place to a compaction reloads everything at one revision.

use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, WatchOptions};
use gatehouse_shared::sealed::SealingKey;

use super::backend::{Backend, Op};
use super::records::{KEY_CHECK_KEY, key_check};
use super::{Store, StoreError, records};
use crate::model::{Revision, State};

/// Set while `gatehouse-cp migrate` copies a store in: no control plane starts on a half copy.
pub(super) const MIGRATING_KEY: &str = "meta/migrating";
/// Entries read per range request when loading everything.
const PAGE: i64 = 500;

/// How a control plane reaches etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Client URLs of the members (`http://` or `https://`).
    pub endpoints: Vec<String>,
    /// Key prefix all of Gatehouse's keys live under, e.g. `/gatehouse`.
    pub prefix: String,
    /// CA certificate (PEM) to verify the members with (https endpoints).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) for etcd's client-certificate authentication.
    pub client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// etcd user and the file holding its password.
    pub user: Option<(String, std::path::PathBuf)>,
    /// Longest wait for one request (and for a connection).
    pub timeout: Duration,
}

/// A connection to etcd under Gatehouse's prefix, shared by the store, the tokens and the
/// fleet registry.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Why etcd cannot be used: unreachable (no connection, no leader, a timeout), or a refusal
/// to fix in the configuration (permissions, a request too large).
pub fn unavailable(error: etcd_client::Error) -> StoreError {
    let reason = describe(&error);
    let unreachable = match &error {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
        ),
        _ => true,
    };
    match unreachable {
        true => StoreError::Unavailable { store: "etcd", reason },
        false => StoreError::BackendRefused { store: "etcd", reason },
    }
}

/// One line for an etcd client error: the status message and its causes, without the debug
/// dump the client's own text carries.
pub fn describe(error: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return gatehouse_shared::error_chain(error);
    };
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Etcd {
    /// Connects to the members. Requests need a leader, so a member cut off from the others
    /// fails them (and drops watches) instead of answering from a stale copy.
    pub async fn connect(options: &EtcdOptions) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::Unavailable { store: "etcd", reason };
        let mut connect = etcd_client::ConnectOptions::new()
            .with_timeout(options.timeout)
            .with_connect_timeout(options.timeout)
            .with_keep_alive(Duration::from_secs(2), options.timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let https = options.endpoints.iter().any(|url| url.starts_with("https://"));
        if https || options.ca_file.is_some() || options.client_identity.is_some() {
            // Without --etcd-ca-file, the system roots (etcd-client trusts none by itself).
            let mut tls = match options.ca_file {
                None => etcd_client::TlsOptions::new().with_native_roots(),
                Some(_) => etcd_client::TlsOptions::new(),
            };
            if let Some(ca) = &options.ca_file {
                let pem = std::fs::read(ca).map_err(|e| invalid(format!("cannot read {}: {e}", ca.display())))?;
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &options.client_identity {
                let cert = std::fs::read(cert).map_err(|e| invalid(format!("cannot read {}: {e}", cert.display())))?;
                let key = std::fs::read(key).map_err(|e| invalid(format!("cannot read {}: {e}", key.display())))?;
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(tls);
        }
        if let Some((user, password_file)) = &options.user {
            let password = std::fs::read_to_string(password_file)
                .map_err(|e| invalid(format!("cannot read {}: {e}", password_file.display())))?;
            connect = connect.with_user(user.clone(), password.trim_end_matches(['\r', '\n']).to_string());
        }
        let client = Client::connect(&options.endpoints, Some(connect)).await.map_err(unavailable)?;
        Ok(Self { client, prefix: options.prefix.trim_end_matches('/').to_string(), timeout: options.timeout })
    }

    /// The full key of `rest` (e.g. `config/api/x`) under the prefix.
    pub fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}/{rest}", self.prefix).into_bytes()
    }

    /// A client to send requests with (cheap: it shares the connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Every key and value under `rest` at one revision, read in pages, with that revision.
    pub async fn get_all(&self, rest: &str) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>), StoreError> {
        let prefix = self.key(rest);
        let end = range_end(&prefix);
        let mut client = self.client();
        let mut entries = Vec::new();
        let mut from = prefix.clone();
        let mut at = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if at != 0 {
                options = options.with_revision(at);
            }
            let response = client.get(from.clone(), Some(options)).await.map_err(unavailable)?;
            if at == 0 {
                at = response.header().map_or(0, |h| h.revision());
            }
            let more = response.more();
            for kv in response.kvs() {
                entries.push((kv.key()[prefix.len()..].to_vec(), kv.value().to_vec()));
            }
            match (more, response.kvs().last()) {
                (true, Some(last)) => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((at, entries)),
            }
        }
    }
}

/// The end of the range of every key starting with `prefix`.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The store's side of etcd: commits over `PREFIX/config/`.
pub(super) struct EtcdBackend {
    etcd: Etcd,
    /// How long a commit that surely did not reach a leader is sent again.
    retry_for: Duration,
}

impl EtcdBackend {
    fn config_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.etcd.key("config/");
        full.extend_from_slice(key);
        full
    }

    /// The global revision as etcd holds it now (a linearizable read).
    pub(super) async fn revision(&self) -> Result<Revision, StoreError> {
        let key = self.config_key(records::REVISION_KEY.as_bytes());
        let response = self.etcd.client().get(key, None).await.map_err(unavailable)?;
        Ok(response.kvs().first().and_then(|kv| <[u8; 8]>::try_from(kv.value()).ok()).map_or(0, u64::from_be_bytes))
    }

    /// Commits `ops` if `meta/revision` still holds `base`; returns etcd's revision of the
    /// commit. A request that never reached a member with a leader is sent again (the
    /// comparison makes that safe) until the request timeout has passed once more.
    pub(super) async fn commit(&self, base: Revision, ops: &[Op]) -> Result<i64, StoreError> {
        let revision_key = self.config_key(records::REVISION_KEY.as_bytes());
        let operations: Vec<TxnOp> = ops
            .iter()
            .map(|op| match op {
                Op::Put(key, value) => TxnOp::put(self.config_key(key), value.clone(), None),
                Op::Delete(key) => TxnOp::delete(self.config_key(key), None),
            })
            .collect();
        let txn = Txn::new()
            .when([Compare::value(revision_key.clone(), CompareOp::Equal, base.to_be_bytes().to_vec())])
            .and_then(operations)
            .or_else([TxnOp::get(revision_key, None)]);
        let mut client = self.etcd.client();
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let response = loop {
            match client.txn(txn.clone()).await {
                Ok(response) => break response,
                Err(error) if never_applied(&error) && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = describe(&error), "etcd request not applied; sending it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) if describe(&error).contains("too many operations") => {
                    return Err(StoreError::BackendRefused {
                        store: "etcd",
                        reason: format!(
                            "this change writes {} records in one transaction, more than etcd takes \
                             (--max-txn-ops, 128 by default): raise it on every etcd member, or apply in parts",
                            ops.len() + 1
                        ),
                    });
                }
                Err(error) => return Err(unavailable(error)),
            }
        };
        let position = response.header().map_or(0, |h| h.revision());
        if response.succeeded() {
            return Ok(position);
        }
        let revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            })
            .and_then(|value| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        Err(StoreError::Moved { revision })
    }
}

/// Whether the request surely did not change anything: it found no connection, or the
/// member had no leader. A timeout after sending is not such a case.
fn never_applied(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) => true,
        // No connection could be made, or the member refused before proposing (no leader).
        // Anything else (a timeout, a member stopping) may have been applied.
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable
                && (status.message().contains("connect") || status.message() == "etcdserver: no leader")
        }
        _ => false,
    }
}

impl Store {
    /// Opens the configuration kept in etcd under `etcd`'s prefix (making the store's id,
    /// revision and key check on first use), and watches it for what other control planes
    /// commit. Fails with [`StoreError::WrongMasterKey`] when `key` is not the store's key.
    pub async fn open_etcd(etcd: Etcd, key: SealingKey) -> Result<Arc<Self>, StoreError> {
        let config = |rest: &str| etcd.key(&format!("config/{rest}"));
        let init = Txn::new()
            .when([
                Compare::version(config(records::CONFIG_ID_KEY), CompareOp::Equal, 0),
                Compare::version(config(MIGRATING_KEY), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(config(records::CONFIG_ID_KEY), records::random_id(), None),
                TxnOp::put(config(records::REVISION_KEY), 0u64.to_be_bytes().to_vec(), None),
                TxnOp::put(config(KEY_CHECK_KEY), key_check(&key), None),
            ]);
        etcd.client().txn(init).await.map_err(unavailable)?;
        let (position, entries) = etcd.get_all("config/").await?;
        let find = |wanted: &str| entries.iter().find(|(k, _)| k == wanted.as_bytes()).map(|(_, v)| v.clone());
        if find(MIGRATING_KEY).is_some() {
            return Err(StoreError::UnfinishedMigration { prefix: etcd.prefix.clone() });
        }
        let check = find(KEY_CHECK_KEY).unwrap_or_default();
        if !records::opens_key_check(&key, &check) {
            return Err(StoreError::WrongMasterKey);
        }
        let config_id = String::from_utf8_lossy(&find(records::CONFIG_ID_KEY).unwrap_or_default()).into_owned();
        let state = state_of(&entries, &key)?;
        tracing::info!(revision = state.revision, position, %config_id, "configuration loaded from etcd");
        let store = Arc::new(Self::with_state(
            Backend::Etcd(Box::new(EtcdBackend { etcd: etcd.clone(), retry_for: etcd.timeout })),
            key,
            config_id,
            state,
            position,
        ));
        tokio::spawn(follow(Arc::downgrade(&store), etcd, position + 1));
        Ok(store)
    }
}

/// The state the entries (relative keys) describe.
fn state_of(entries: &[(Vec<u8>, Vec<u8>)], key: &SealingKey) -> Result<State, StoreError> {
    let mut state = State::default();
    for (name, value) in entries {
        records::apply(&mut state, name, Some(value), key)?;
    }
    Ok(state)
}

/// Installs every batch committed under `PREFIX/config/` from etcd revision `next` on, until
/// the store is dropped. A broken watch resumes after the last batch installed (never from a
/// revision it did not see); a compacted one reloads everything at one revision.
async fn follow(store: Weak<Store>, etcd: Etcd, mut next: i64) {
    let prefix = etcd.key("config/");
    let mut backoff = Duration::from_millis(100);
    loop {
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let mut stream = match etcd.client().watch(prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(error = describe(&error), next, "cannot watch etcd; trying again");
                if store.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = describe(&error), next, "the etcd watch broke; resuming");
                    break;
                }
            };
            let Some(store) = store.upgrade() else { return };
            backoff = Duration::from_millis(100);
            if response.compact_revision() > 0 {
                tracing::warn!(
                    compacted = response.compact_revision(),
                    next,
                    "etcd compacted past this watch; reloading everything"
                );
                match etcd.get_all("config/").await {
                    Ok((position, entries)) => match state_of(&entries, &store.key) {
                        Ok(state) => {
                            store.install_all(position, state);
                            next = position + 1;
                        }
                        Err(error) => {
                            tracing::error!(error = %gatehouse_shared::error_chain(&error), "cannot load the configuration from etcd")
                        }
                    },
                    Err(error) => {
                        tracing::warn!(error = %gatehouse_shared::error_chain(&error), "cannot reload from etcd; trying again")
                    }
                }
                break;
            }
            if response.canceled() {
                tracing::warn!(reason = response.cancel_reason(), "etcd canceled the watch; resuming");
                break;
            }
            let mut batch: Option<(i64, Vec<Op>)> = None;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let name = kv.key().get(prefix.len()..).unwrap_or_default().to_vec();
                let op = match event.event_type() {
                    EventType::Put => Op::Put(name, kv.value().to_vec()),
                    EventType::Delete => Op::Delete(name),
                };
                match &mut batch {
                    Some((position, ops)) if *position == kv.mod_revision() => ops.push(op),
                    _ => {
                        if let Some((position, ops)) = batch.take() {
                            install(&store, position, ops);
                            next = position + 1;
                        }
                        batch = Some((kv.mod_revision(), vec![op]));
                    }
                }
            }
            if let Some((position, ops)) = batch {
                install(&store, position, ops);
                next = position + 1;
            }
        }
        if store.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Installs one batch seen through the watch.
fn install(store: &Store, position: i64, ops: Vec<Op>) {
    if let Err(error) = store.install(Some(position), ops) {
        tracing::error!(
            position,
            error = %gatehouse_shared::error_chain(&error),
            "a batch committed by another control plane cannot be installed"
        );
    }
}
