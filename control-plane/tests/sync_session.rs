//! The sync session's rules against an in-process control plane on 127.0.0.1:0: one revision in
//! flight per data plane, bursts coalesced into the newest, a NACKed revision never sent again
//! while a newer one is.

use std::time::Duration;

use gatehouse_control_plane::tokens::Role;
use gatehouse_control_plane::{ControlPlane, ControlPlaneConfig, Transport};
use gatehouse_proto::v1::{self as pb, sync_request::Message};
use gatehouse_shared::client::{BearerToken, endpoint};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

struct Running {
    _dir: tempfile::TempDir,
    url: String,
    operator: String,
    gateway: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn control_plane() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ControlPlaneConfig::new(dir.path().join("cp"), "127.0.0.1:0".parse().unwrap());
    config.transport = Transport::Plaintext;
    let cp = ControlPlane::bind(&config).await.unwrap();
    let url = format!("http://{}", cp.local_addr());
    let (_, operator) = cp.tokens().create("operator", Role::Operator, None).await.unwrap();
    let (_, gateway) = cp.tokens().create("gw", Role::Gateway, Some("*")).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(cp.serve(async {
        let _ = stopped.await;
    }));
    Running { _dir: dir, url, operator, gateway, stop: Some(stop) }
}

type Management = pb::management_client::ManagementClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

async fn management(cp: &Running) -> Management {
    let channel = endpoint(&cp.url, None).unwrap().connect().await.unwrap();
    pb::management_client::ManagementClient::with_interceptor(channel, BearerToken::new(Some(&cp.operator)).unwrap())
}

async fn put(m: &mut Management, id: &str) -> u64 {
    let request = pb::PutApiRequest {
        id: id.into(),
        path: format!("/{id}"),
        service_url: "https://backend.internal".into(),
        ..Default::default()
    };
    m.put_api(request).await.unwrap().into_inner().revision
}

/// A data plane's side of one stream, driven by hand.
struct DataPlane {
    outbound: mpsc::Sender<pb::SyncRequest>,
    inbound: tonic::Streaming<pb::SyncResponse>,
}

impl DataPlane {
    async fn connect(cp: &Running, name: &str) -> Self {
        let channel = endpoint(&cp.url, None).unwrap().connect().await.unwrap();
        let mut client = pb::config_sync_client::ConfigSyncClient::with_interceptor(
            channel,
            BearerToken::new(Some(&cp.gateway)).unwrap(),
        );
        let (outbound, rx) = mpsc::channel(8);
        let hello = pb::Hello {
            name: name.into(),
            instance_id: name.into(),
            protocol_version: gatehouse_proto::PROTOCOL_VERSION,
            ..Default::default()
        };
        outbound.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await.unwrap();
        let inbound = client.sync(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { outbound, inbound }
    }

    async fn next(&mut self) -> pb::SyncResponse {
        tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await.unwrap().unwrap().unwrap()
    }

    /// Nothing arrives within a short while.
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.inbound.message()).await.is_err()
    }

    async fn ack(&self, update: &pb::SyncResponse) {
        let ack = pb::Ack { revision: update.revision, nonce: update.nonce.clone() };
        self.outbound.send(pb::SyncRequest { message: Some(Message::Ack(ack)) }).await.unwrap();
    }

    async fn nack(&self, update: &pb::SyncResponse) {
        let nack = pb::Nack {
            revision: update.revision,
            nonce: update.nonce.clone(),
            reason: "refused".into(),
            ..Default::default()
        };
        self.outbound.send(pb::SyncRequest { message: Some(Message::Nack(nack)) }).await.unwrap();
    }
}

#[tokio::test]
async fn one_revision_in_flight_and_bursts_coalesce_into_the_newest() {
    let cp = control_plane().await;
    let mut m = management(&cp).await;
    let mut dp = DataPlane::connect(&cp, "dp").await;
    let first = dp.next().await;
    assert!(first.full);
    dp.ack(&first).await;

    let one = put(&mut m, "a").await;
    let in_flight = dp.next().await;
    assert_eq!(in_flight.revision, one);
    // Not ACKed yet: four more writes, and nothing more is sent.
    let mut latest = one;
    for id in ["b", "c", "d", "e"] {
        latest = put(&mut m, id).await;
    }
    assert!(dp.quiet().await, "a second revision was sent while one was in flight");
    dp.ack(&in_flight).await;
    let coalesced = dp.next().await;
    assert_eq!(coalesced.revision, latest, "the burst did not coalesce into the newest revision");
    assert!(!coalesced.full);
    assert_eq!(coalesced.base_revision, one);
    let ids: Vec<&str> = coalesced.changed.as_ref().unwrap().routes.iter().map(|r| r.api_id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "d", "e"]);
}

#[tokio::test]
async fn a_nacked_revision_is_not_sent_again_but_a_newer_one_is() {
    let cp = control_plane().await;
    let mut m = management(&cp).await;
    let mut dp = DataPlane::connect(&cp, "dp").await;
    let first = dp.next().await;
    dp.ack(&first).await;

    let rejected = put(&mut m, "a").await;
    let update = dp.next().await;
    assert_eq!(update.revision, rejected);
    dp.nack(&update).await;
    assert!(dp.quiet().await, "a NACKed revision was sent again");
    let gateways = m.list_gateways(pb::ListGatewaysRequest::default()).await.unwrap().into_inner().gateways;
    assert_eq!(gateways[0].state, pb::GatewayState::Nacked as i32);
    assert_eq!(gateways[0].last_error, "refused");

    let newer = put(&mut m, "b").await;
    let next = dp.next().await;
    assert_eq!(next.revision, newer);
    // Still on top of what it last applied, so the rejected change comes again with the new one.
    assert_eq!(next.base_revision, first.revision);
    let ids: Vec<&str> = next.changed.as_ref().unwrap().routes.iter().map(|r| r.api_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
}
