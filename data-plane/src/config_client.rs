//! Keeps the routing table current: one long-lived `ConfigSync.Sync` stream to the control
//! plane, reconnected with capped exponential backoff and jitter. While the control plane is
//! away, the last applied table keeps serving.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1::{self as pb, config_sync_client::ConfigSyncClient, sync_request::Message};
use gatehouse_shared::error_chain;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::routes::{Routing, RoutingTable};
use crate::upstream::TrustAnchors;

#[derive(Clone)]
pub struct ConfigClientSettings {
    /// e.g. http://127.0.0.1:7400
    pub control_plane: String,
    /// How this data plane is listed by `gateway list`.
    pub name: String,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// What backends' certificates are checked against.
    pub trust: TrustAnchors,
}

pub struct ConfigClient {
    settings: ConfigClientSettings,
    routing: Arc<Routing>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("invalid control plane URL")]
    Endpoint(#[source] tonic::transport::Error),
    #[error("cannot connect to the control plane")]
    Connect(#[source] tonic::transport::Error),
    #[error("the control plane refused the stream: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the sync stream broke: {}", .0.message())]
    Broken(tonic::Status),
    #[error("the control plane closed the stream")]
    Closed,
}

impl ConfigClient {
    pub fn new(settings: ConfigClientSettings, routing: Arc<Routing>) -> Self {
        Self { settings, routing }
    }

    /// Runs forever: sync, and on any failure wait and reconnect.
    pub async fn run(self) {
        let mut backoff = self.settings.initial_backoff;
        loop {
            let applied_before = self.routing.revision();
            match self.session().await {
                Ok(()) => {}
                Err(error) => tracing::warn!(error = %error_chain(&error), "config sync"),
            }
            if self.routing.revision() != applied_before {
                // The session made progress: the next reconnect starts fast again.
                backoff = self.settings.initial_backoff;
            }
            let wait = jittered(backoff);
            tracing::info!(retry_in = ?wait, "reconnecting to the control plane");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    async fn session(&self) -> Result<(), SessionError> {
        let endpoint = Endpoint::from_shared(self.settings.control_plane.clone())
            .map_err(SessionError::Endpoint)?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(SessionError::Connect)?;
        let mut client = ConfigSyncClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);

        let (tx, rx) = mpsc::channel(16);
        let hello = pb::Hello {
            name: self.settings.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol_version: gatehouse_proto::PROTOCOL_VERSION,
            revision: self.routing.revision(),
        };
        let _ = tx.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await;
        let mut inbound = client.sync(ReceiverStream::new(rx)).await.map_err(SessionError::Refused)?.into_inner();
        tracing::info!(control_plane = %self.settings.control_plane, "config sync connected");

        loop {
            let update = match inbound.message().await {
                Ok(Some(update)) => update,
                Ok(None) => return Err(SessionError::Closed),
                Err(status) => return Err(SessionError::Broken(status)),
            };
            let answer = self.apply(update);
            if tx.send(pb::SyncRequest { message: Some(answer) }).await.is_err() {
                return Err(SessionError::Closed);
            }
        }
    }

    /// Builds the new table off the request path and swaps it in; on failure keeps the last
    /// good table and says why.
    fn apply(&self, update: pb::SyncResponse) -> Message {
        let snapshot = update.snapshot.unwrap_or_default();
        let previous = self.routing.load();
        match RoutingTable::build(update.revision, &snapshot, previous.as_deref(), &self.settings.trust) {
            Ok(table) => {
                let routes = table.len();
                self.routing.swap(table);
                tracing::info!(revision = update.revision, routes, "configuration applied");
                Message::Ack(pb::Ack { revision: update.revision, nonce: update.nonce })
            }
            Err(error) => {
                let reason = error_chain(&error);
                tracing::error!(revision = update.revision, %reason, "configuration rejected; keeping the last good one");
                Message::Nack(pb::Nack {
                    revision: update.revision,
                    nonce: update.nonce,
                    reason,
                    resource_ids: vec![error.api_id().to_string()],
                })
            }
        }
    }
}

/// Full jitter in [d/2, d]: a fleet that lost its control plane does not reconnect in lockstep.
fn jittered(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let half = d / 2;
    half + Duration::from_nanos(random % (half.as_nanos().max(1) as u64))
}
