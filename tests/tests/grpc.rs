//! What any gRPC tool sees: health, reflection, and a clear refusal of an incompatible data plane.

use gatehouse_proto::v1::{self as pb, config_sync_client::ConfigSyncClient};
use gatehouse_tests::process::ControlPlane;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer_generic_clients() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    // No token needed: health and reflection reveal no configuration.
    let access = cp.access();
    let channel = gatehouse_shared::client::endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "gatehouse.v1.Management", "gatehouse.v1.ConfigSync"] {
        let reply = health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await?.into_inner();
        assert_eq!(reply.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
    let reply = replies.message().await?.expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["gatehouse.v1.Management", "gatehouse.v1.ConfigSync"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not listed: {names:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_data_plane_is_refused_with_a_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let access = cp.access();
    let channel = gatehouse_shared::client::endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;
    let token = gatehouse_shared::client::read_token_file(access.gateway_token_file.as_ref().unwrap())?;
    let mut sync =
        ConfigSyncClient::with_interceptor(channel, gatehouse_shared::client::BearerToken::new(Some(&token))?);
    let hello = pb::SyncRequest {
        message: Some(pb::sync_request::Message::Hello(pb::Hello {
            name: "future-dp".into(),
            version: "99.0.0".into(),
            protocol_version: gatehouse_proto::PROTOCOL_VERSION + 1,
            revision: 0,
            config_id: String::new(),
            ..Default::default()
        })),
    };
    let status = sync.sync(tokio_stream::iter([hello])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("protocol"), "{}", status.message());
    Ok(())
}
