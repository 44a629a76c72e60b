//! `ConfigSync.Sync`: each data plane says hello with the revision it holds, then receives
//! what changed since (the whole configuration if the control plane no longer remembers that
//! revision, nothing if it is current), then every newer revision as a delta. One revision is in
//! flight at a time: the next is sent after the data plane's ACK or NACK, and bursts of changes
//! coalesce into the newest revision, so nothing is lost and nothing queues up.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use gatehouse_proto::v1::{self as pb, sync_request::Message};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use std::collections::HashMap;

use crate::gateways::{Gateways, Reported};
use crate::model::Revision;
use crate::snapshot::PublishedRef;
use crate::store::Store;
use crate::tokens::{Caller, TokenId, Tokens};

/// The `ConfigSync` gRPC service: one sync stream per connected data plane.
pub struct ConfigSyncService {
    store: Arc<Store>,
    gateways: Arc<Gateways>,
    tokens: Arc<Tokens>,
    /// Open streams per token, so one token cannot hold unbounded sessions.
    streams: Arc<std::sync::Mutex<HashMap<TokenId, usize>>>,
    max_streams_per_token: usize,
}

/// Most open sync streams one gateway token may hold at once, by default.
pub const MAX_STREAMS_PER_TOKEN: usize = 256;
/// Bounds on what a data plane says about itself.
const MAX_NAME_CHARS: usize = 128;
const MAX_FIELD_CHARS: usize = 64;
const MAX_LISTEN_ADDRESSES: usize = 8;
/// NACK reasons longer than this are cut (and marked).
const MAX_REASON_CHARS: usize = 1024;
const MAX_RESOURCE_IDS: usize = 32;

impl ConfigSyncService {
    /// At most `max_streams_per_token` open streams per gateway token.
    pub fn new(store: Arc<Store>, gateways: Arc<Gateways>, tokens: Arc<Tokens>, max_streams_per_token: usize) -> Self {
        Self { store, gateways, tokens, streams: Arc::default(), max_streams_per_token }
    }
}

/// Refuses hello fields that are too long or carry control characters (they reach logs and
/// `gateway list`).
fn check_hello(hello: &pb::Hello) -> Result<(), Status> {
    let plain = |field: &str, value: &str, limit: usize| {
        if value.chars().count() > limit || value.chars().any(char::is_control) {
            Err(Status::invalid_argument(format!(
                "Hello.{field} must be at most {limit} characters, without control characters"
            )))
        } else {
            Ok(())
        }
    };
    if hello.name.is_empty() {
        return Err(Status::invalid_argument("Hello.name is required"));
    }
    plain("name", &hello.name, MAX_NAME_CHARS)?;
    plain("version", &hello.version, MAX_FIELD_CHARS)?;
    plain("instance_id", &hello.instance_id, MAX_FIELD_CHARS)?;
    plain("backend_ca_fingerprint", &hello.backend_ca_fingerprint, MAX_FIELD_CHARS)?;
    if hello.listen_addresses.len() > MAX_LISTEN_ADDRESSES {
        return Err(Status::invalid_argument(format!("Hello.listen_addresses has more than {MAX_LISTEN_ADDRESSES}")));
    }
    for address in &hello.listen_addresses {
        plain("listen_addresses", address, MAX_FIELD_CHARS)?;
    }
    Ok(())
}

/// At most `limit` characters of `text`, marked when cut.
fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}... (truncated)", &text[..end]),
        None => text.to_string(),
    }
}

/// Counts a token's open stream; the count drops with the guard.
struct StreamSlot {
    streams: Arc<std::sync::Mutex<HashMap<TokenId, usize>>>,
    token: TokenId,
}

impl StreamSlot {
    fn take(
        streams: &Arc<std::sync::Mutex<HashMap<TokenId, usize>>>,
        token: TokenId,
        limit: usize,
    ) -> Result<Self, Status> {
        let mut map = streams.lock().expect("streams lock");
        let count = map.entry(token).or_default();
        if *count >= limit {
            return Err(Status::resource_exhausted(format!(
                "this gateway token has {limit} open sync streams already (--max-streams-per-token)"
            )));
        }
        *count += 1;
        Ok(Self { streams: streams.clone(), token })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = self.streams.lock().expect("streams lock");
        if let Some(count) = map.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.token);
            }
        }
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::config_sync_server::ConfigSync for ConfigSyncService {
    type SyncStream = SyncStream;

    async fn sync(&self, request: Request<Streaming<pb::SyncRequest>>) -> Result<Response<SyncStream>, Status> {
        let address = request.remote_addr().map(|a: SocketAddr| a.to_string()).unwrap_or_default();
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("missing token: send 'authorization: Bearer <token>'"))?;
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(pb::SyncRequest { message: Some(Message::Hello(hello)) })) => hello,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("the first message on a Sync stream must be Hello")),
        };
        if hello.protocol_version != gatehouse_proto::PROTOCOL_VERSION {
            tracing::warn!(gateway = %hello.name.escape_debug(), theirs = hello.protocol_version, ours = gatehouse_proto::PROTOCOL_VERSION, "refused data plane with incompatible protocol");
            return Err(Status::failed_precondition(format!(
                "data plane speaks ConfigSync protocol {}, this control plane speaks {}: upgrade the older side",
                hello.protocol_version,
                gatehouse_proto::PROTOCOL_VERSION
            )));
        }
        check_hello(&hello)?;
        if !caller.data_plane_names.allows(&hello.name) {
            tracing::warn!(gateway = %hello.name.escape_debug(), token = %caller.token.escape_debug(), %address, "data plane name not allowed for its token");
            return Err(Status::permission_denied(format!(
                "token '{}' may connect data planes named '{}' only, not '{}'",
                caller.token,
                caller.data_plane_names.as_str(),
                hello.name
            )));
        }
        let slot = StreamSlot::take(&self.streams, caller.token_id, self.max_streams_per_token)?;
        let held = if hello.config_id == self.store.config_id() { hello.revision } else { 0 };
        // A data plane ahead of this control plane (it came from another one on the same etcd)
        // would be sent an older configuration: wait until this one has caught up, or send it
        // on to another control plane.
        if self.store.is_shared() && held > self.store.state().revision {
            let mut published = self.store.subscribe();
            let caught_up = published.wait_for(|p| p.revision >= held);
            if tokio::time::timeout(std::time::Duration::from_secs(5), caught_up).await.is_err() {
                let ours = self.store.state().revision;
                tracing::warn!(gateway = %hello.name.escape_debug(), held, ours, "data plane is ahead of this control plane");
                return Err(Status::unavailable(format!(
                    "this control plane is at revision {ours}, behind the data plane's {held}: it cannot reach the store; try another control plane"
                )));
            }
        }
        let reported = Reported {
            version: hello.version.clone(),
            instance_id: hello.instance_id.clone(),
            listen_addresses: hello.listen_addresses.clone(),
            backend_ca_fingerprint: hello.backend_ca_fingerprint.clone(),
        };
        let session = self.gateways.connected(&hello.name, &address, &caller.token, reported, held).map_err(|e| {
            tracing::warn!(gateway = %hello.name.escape_debug(), %address, error = %e, "refused a second data plane under one name");
            Status::already_exists(e.to_string())
        })?;
        tracing::info!(gateway = %hello.name.escape_debug(), %address, version = %hello.version.escape_debug(), held, "data plane connected");

        let (tx, rx) = mpsc::channel(2);
        let acked = if held > 0 { self.store.published_at(held) } else { None };
        let session = Session {
            store: self.store.clone(),
            gateways: self.gateways.clone(),
            tokens: self.tokens.clone(),
            token: caller.token_id,
            _slot: slot,
            name: hello.name,
            session,
            acked,
            in_flight: None,
            rejected: None,
            nonce: 0,
        };
        tokio::spawn(session.run(inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Session {
    store: Arc<Store>,
    gateways: Arc<Gateways>,
    tokens: Arc<Tokens>,
    /// The gateway token the stream was opened with: revoking it ends the stream.
    token: TokenId,
    _slot: StreamSlot,
    name: String,
    session: u64,
    /// What the data plane holds: the base for the next delta. None: it needs everything.
    acked: Option<PublishedRef>,
    in_flight: Option<(String, PublishedRef)>,
    /// The newest revision it rejected: not sent again; a newer one is.
    rejected: Option<Revision>,
    nonce: u64,
}

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<pb::SyncRequest>,
        tx: mpsc::Sender<Result<pb::SyncResponse, Status>>,
    ) {
        let mut revisions = self.store.subscribe();
        let mut revocations = self.tokens.revocations();
        let mut closing = self.gateways.closing();
        loop {
            if self.in_flight.is_none() {
                let latest = revisions.borrow_and_update().clone();
                if let Some(update) = self.next_update(&latest) {
                    tracing::debug!(gateway = %self.name.escape_debug(), revision = update.revision, full = update.full, "sending revision");
                    self.in_flight = Some((update.nonce.clone(), latest));
                    let Ok(permit) = tx.reserve().await else { break };
                    if !self.tokens.send_if_live(&self.token, permit, Ok(update)) {
                        self.end_revoked(&tx).await;
                        break;
                    }
                }
            }
            tokio::select! {
                message = inbound.next() => match message {
                    Some(Ok(message)) => self.answer(message),
                    Some(Err(status)) => {
                        tracing::info!(gateway = %self.name.escape_debug(), error = %status.message(), "sync stream broke");
                        break;
                    }
                    None => break,
                },
                changed = revisions.changed(), if self.in_flight.is_none() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tx.closed() => break,
                _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    let _ = tx.send(Err(Status::unavailable("the control plane is shutting down"))).await;
                    break;
                }
                _ = revocations.changed() => {
                    if !self.tokens.is_live(&self.token) {
                        self.end_revoked(&tx).await;
                        break;
                    }
                }
            }
        }
        self.gateways.disconnected(&self.name, self.session);
        tracing::info!(gateway = %self.name.escape_debug(), "data plane disconnected");
    }

    async fn end_revoked(&self, tx: &mpsc::Sender<Result<pb::SyncResponse, Status>>) {
        tracing::warn!(gateway = %self.name.escape_debug(), "token revoked: ending the sync stream");
        let _ = tx.send(Err(Status::unauthenticated("the gateway token was revoked"))).await;
    }

    /// The update that brings the data plane to `latest`, if it needs one.
    fn next_update(&mut self, latest: &PublishedRef) -> Option<pb::SyncResponse> {
        let behind = match &self.acked {
            Some(base) => latest.revision > base.revision,
            None => true,
        };
        let rejected_already = self.rejected.is_some_and(|r| r >= latest.revision);
        if !behind || rejected_already {
            return None;
        }
        self.nonce += 1;
        let (full, changed, removed, base_revision) = match &self.acked {
            Some(base) => {
                let (changed, removed) = latest.diff(base);
                (false, changed, removed, base.revision)
            }
            None => (true, latest.full(), pb::Removed::default(), 0),
        };
        Some(pb::SyncResponse {
            revision: latest.revision,
            nonce: self.nonce.to_string(),
            full,
            changed: Some(changed),
            removed: Some(removed),
            base_revision,
            config_id: self.store.config_id().to_string(),
        })
    }

    fn answer(&mut self, message: pb::SyncRequest) {
        self.gateways.seen(&self.name, self.session);
        match message.message {
            Some(Message::Ack(ack)) => {
                let Some((_, published)) = self.in_flight.take_if(|(nonce, _)| *nonce == ack.nonce) else {
                    tracing::warn!(gateway = %self.name.escape_debug(), nonce = %ack.nonce.escape_debug(), "ACK for no revision in flight");
                    return;
                };
                tracing::debug!(gateway = %self.name.escape_debug(), revision = published.revision, "ack");
                self.gateways.acked(&self.name, self.session, published.revision);
                let waited = published.committed_at.elapsed().unwrap_or_default();
                crate::metrics::global().ack_latency.observe(waited.as_secs_f64());
                self.acked = Some(published);
            }
            Some(Message::Nack(nack)) => {
                let Some((_, published)) = self.in_flight.take_if(|(nonce, _)| *nonce == nack.nonce) else {
                    tracing::warn!(gateway = %self.name.escape_debug(), nonce = %nack.nonce.escape_debug(), "NACK for no revision in flight");
                    return;
                };
                let reason = truncate(&nack.reason, MAX_REASON_CHARS);
                let resources: Vec<String> =
                    nack.resource_ids.iter().take(MAX_RESOURCE_IDS).map(|id| truncate(id, MAX_NAME_CHARS)).collect();
                tracing::warn!(gateway = %self.name.escape_debug(), revision = published.revision, reason = %reason.escape_debug(), resources = ?resources, "data plane rejected revision; it keeps its last good configuration");
                self.gateways.nacked(&self.name, self.session, published.revision, &reason);
                self.rejected = Some(published.revision);
            }
            _ => {}
        }
    }
}
