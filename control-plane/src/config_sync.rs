//! `ConfigSync.Sync`: each data plane says hello, receives the current configuration, then
//! every newer revision as it is committed (a slow data plane skips straight to the newest),
//! and answers each with an ACK or NACK.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use gatehouse_proto::v1::{self as pb, sync_request::Message};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::gateways::Gateways;
use crate::store::Store;

pub struct ConfigSyncService {
    store: Arc<Store>,
    gateways: Arc<Gateways>,
}

impl ConfigSyncService {
    pub fn new(store: Arc<Store>, gateways: Arc<Gateways>) -> Self {
        Self { store, gateways }
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::config_sync_server::ConfigSync for ConfigSyncService {
    type SyncStream = SyncStream;

    async fn sync(&self, request: Request<Streaming<pb::SyncRequest>>) -> Result<Response<SyncStream>, Status> {
        let address = request.remote_addr().map(|a: SocketAddr| a.to_string()).unwrap_or_default();
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(pb::SyncRequest { message: Some(Message::Hello(hello)) })) => hello,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("the first message on a Sync stream must be Hello")),
        };
        if hello.protocol_version != gatehouse_proto::PROTOCOL_VERSION {
            tracing::warn!(gateway = %hello.name, theirs = hello.protocol_version, ours = gatehouse_proto::PROTOCOL_VERSION, "refused data plane with incompatible protocol");
            return Err(Status::failed_precondition(format!(
                "data plane speaks ConfigSync protocol {}, this control plane speaks {}: upgrade the older side",
                hello.protocol_version,
                gatehouse_proto::PROTOCOL_VERSION
            )));
        }
        if hello.name.is_empty() {
            return Err(Status::invalid_argument("Hello.name is required"));
        }
        let session = self.gateways.connected(&hello.name, &address, &hello.version, hello.revision);
        tracing::info!(gateway = %hello.name, %address, held = hello.revision, "data plane connected");

        let (tx, rx) = mpsc::channel(4);
        let mut revisions = self.store.subscribe();
        let name = hello.name.clone();
        let gateways = self.gateways.clone();

        // Sender: the current revision, then each newer one. Ends when the data plane is gone.
        let sender = tokio::spawn(async move {
            let mut nonce = 0u64;
            loop {
                let published = revisions.borrow_and_update().clone();
                nonce += 1;
                let message = pb::SyncResponse {
                    revision: published.revision,
                    nonce: nonce.to_string(),
                    snapshot: Some(published.snapshot.clone()),
                };
                if tx.send(Ok(message)).await.is_err() || revisions.changed().await.is_err() {
                    break;
                }
            }
        });

        // Receiver: ACKs and NACKs, until the stream ends.
        tokio::spawn(async move {
            while let Some(message) = inbound.next().await {
                match message {
                    Ok(pb::SyncRequest { message: Some(Message::Ack(ack)) }) => {
                        tracing::debug!(gateway = %name, revision = ack.revision, "ack");
                        gateways.acked(&name, session, ack.revision);
                    }
                    Ok(pb::SyncRequest { message: Some(Message::Nack(nack)) }) => {
                        tracing::warn!(gateway = %name, revision = nack.revision, reason = %nack.reason, "data plane rejected revision");
                        gateways.nacked(&name, session, &nack.reason);
                    }
                    Ok(_) => {}
                    Err(status) => {
                        tracing::info!(gateway = %name, error = %status.message(), "sync stream broke");
                        break;
                    }
                }
            }
            sender.abort();
            gateways.disconnected(&name, session);
            tracing::info!(gateway = %name, "data plane disconnected");
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
