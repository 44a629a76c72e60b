//! Data planes as the control plane sees them, attacked: a revoked token's stream receives
//! nothing more even when a token of the same name is made at once; a gateway token connects
//! only the data-plane names it was made for; a second process under a connected name is
//! refused; what a data plane says of itself is bounded; `ListGateways` pages.

use std::time::Duration;

use gatehouse_proto::v1::{self as pb, config_sync_client::ConfigSyncClient, sync_request::Message};
use gatehouse_shared::client::{BearerToken, endpoint};
use gatehouse_tests::process::{ControlPlane, Management};
use gatehouse_tests::requests::api;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

/// One sync stream opened by hand: what a data plane (or an impostor) would hold.
struct Stream {
    outbound: mpsc::Sender<pb::SyncRequest>,
    inbound: Streaming<pb::SyncResponse>,
}

async fn open(cp: &ControlPlane, token: &str, hello: pb::Hello) -> Result<Stream, tonic::Status> {
    let access = cp.access();
    let channel = endpoint(&access.url, access.ca_file.as_deref()).unwrap().connect().await.unwrap();
    open_on(channel, token, hello).await
}

/// A stream on an existing connection (HTTP/2 carries many).
async fn open_on(channel: tonic::transport::Channel, token: &str, hello: pb::Hello) -> Result<Stream, tonic::Status> {
    let mut client = ConfigSyncClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap());
    let (outbound, rx) = mpsc::channel(4);
    outbound.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await.unwrap();
    let inbound = client.sync(ReceiverStream::new(rx)).await?.into_inner();
    Ok(Stream { outbound, inbound })
}

fn hello(name: &str, instance: &str) -> pb::Hello {
    pb::Hello {
        name: name.into(),
        instance_id: instance.into(),
        protocol_version: gatehouse_proto::PROTOCOL_VERSION,
        ..Default::default()
    }
}

impl Stream {
    /// Receives the next update and ACKs it.
    async fn ack_next(&mut self) -> anyhow::Result<u64> {
        let update = tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await??;
        let update = update.ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        let ack = pb::Ack { revision: update.revision, nonce: update.nonce };
        self.outbound.send(pb::SyncRequest { message: Some(Message::Ack(ack)) }).await?;
        Ok(update.revision)
    }

    async fn nack_next(&mut self, reason: String) -> anyhow::Result<u64> {
        let update = tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await??;
        let update = update.ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        let nack = pb::Nack { revision: update.revision, nonce: update.nonce, reason, ..Default::default() };
        self.outbound.send(pb::SyncRequest { message: Some(Message::Nack(nack)) }).await?;
        Ok(update.revision)
    }
}

async fn gateway_token(m: &mut Management, name: &str, names: &str) -> anyhow::Result<String> {
    let request =
        pb::CreateTokenRequest { name: name.into(), role: pb::Role::Gateway as i32, data_plane_names: names.into() };
    Ok(m.create_token(request).await?.into_inner().secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_tokens_stream_receives_nothing_more_even_when_its_name_is_reused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    m.put_api(api("a", "/a", "https://127.0.0.1:9", None)).await?;
    for round in 0..25 {
        let secret = gateway_token(&mut m, "edge-race", "*").await?;
        let mut stream = open(&cp, &secret, hello(&format!("race-{round}"), "i")).await?;
        stream.ack_next().await?;
        // Revoke and re-create the same name: at the same moment (either may win), or one
        // right after the other (the name surely reused).
        let mut m2 = m.clone();
        if round % 2 == 0 {
            let revoke = m.revoke_token(pb::RevokeTokenRequest { name: "edge-race".into(), force: false });
            let create = gateway_token(&mut m2, "edge-race", "*");
            let (revoked, created) = tokio::join!(revoke, create);
            revoked?;
            if let Err(error) = created {
                let status = error.downcast_ref::<tonic::Status>().map(|s| s.code());
                assert_eq!(status, Some(Code::AlreadyExists), "{error:?}");
            }
        } else {
            m.revoke_token(pb::RevokeTokenRequest { name: "edge-race".into(), force: false }).await?;
            gateway_token(&mut m2, "edge-race", "*").await?;
        }
        // Anything committed from now on must never reach the old stream.
        let after = m
            .put_api(api("a", "/a", &format!("https://127.0.0.1:{}", 1000 + round), None))
            .await?
            .into_inner()
            .revision;
        // The old stream ends with UNAUTHENTICATED, and nothing from `after` on reaches it first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, stream.inbound.message()).await {
                Err(_) => panic!("round {round}: the revoked token's stream did not end"),
                Ok(Ok(None)) => panic!("round {round}: the stream ended without saying the token was revoked"),
                Ok(Err(status)) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "round {round}: {status:?}");
                    break;
                }
                Ok(Ok(Some(update))) => {
                    assert!(
                        update.revision < after,
                        "round {round}: revision {} reached a revoked stream",
                        update.revision
                    )
                }
            }
        }
        // The round's new token, if the create won.
        let _ = m.revoke_token(pb::RevokeTokenRequest { name: "edge-race".into(), force: false }).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_token_connects_only_the_names_it_was_made_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let exact = gateway_token(&mut m, "edge-1", "").await?;
    let fleet = gateway_token(&mut m, "edge-fleet", "edge-*").await?;

    assert!(open(&cp, &exact, hello("edge-1", "a")).await.is_ok());
    let refused = open(&cp, &exact, hello("edge-2", "b")).await.err().expect("edge-2 refused");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("edge-1"), "{}", refused.message());
    assert!(open(&cp, &fleet, hello("edge-7", "c")).await.is_ok());
    let refused = open(&cp, &fleet, hello("core-1", "d")).await.err().expect("core-1 refused");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let names: Vec<String> = m
        .list_gateways(pb::ListGatewaysRequest::default())
        .await?
        .into_inner()
        .gateways
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["edge-1", "edge-7"]);
    let bad = m
        .create_token(pb::CreateTokenRequest {
            name: "x".into(),
            role: pb::Role::Gateway as i32,
            data_plane_names: "edge-*-x\n".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_under_a_connected_name_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let secret = gateway_token(&mut m, "dup-token", "dup").await?;
    let mut first = open(&cp, &secret, hello("dup", "instance-a")).await?;
    first.ack_next().await?;
    let second = open(&cp, &secret, hello("dup", "instance-b")).await.err().expect("a second instance is refused");
    assert_eq!(second.code(), Code::AlreadyExists, "{second:?}");
    assert!(second.message().contains("instance-a"), "{}", second.message());
    // The same process reconnecting replaces its old stream.
    let mut again = open(&cp, &secret, hello("dup", "instance-a")).await?;
    again.ack_next().await?;
    let list = m.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
    assert_eq!(list.gateways.len(), 1);
    assert_eq!(list.gateways[0].instance_id, "instance-a");
    assert!(list.gateways[0].connected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_data_plane_says_of_itself_is_bounded() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(dir.path(), "127.0.0.1:0".parse()?, &["--max-streams-per-token", "3"]).await?;
    let mut m = cp.management().await?;
    let secret = gateway_token(&mut m, "bounded", "*").await?;
    for bad in [hello(&"n".repeat(10_000), "i"), hello("line\nbreak", "i"), hello("esc\u{1b}[2J", "i")] {
        let refused = open(&cp, &secret, bad).await.err().expect("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
    let mut long_version = hello("v", "i");
    long_version.version = "1".repeat(1000);
    assert_eq!(open(&cp, &secret, long_version).await.err().unwrap().code(), Code::InvalidArgument);

    // A huge NACK reason is kept, but cut.
    let mut nacking = open(&cp, &secret, hello("nacking", "i")).await?;
    nacking.ack_next().await?;
    m.put_api(api("a", "/a", "https://127.0.0.1:9", None)).await?;
    nacking.nack_next("x".repeat(100_000)).await?;
    let last_error = |mut m: Management| async move {
        let list = m.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
        anyhow::Ok(list.gateways.into_iter().find(|g| g.name == "nacking").map(|g| g.last_error).unwrap_or_default())
    };
    gatehouse_tests::eventually("the NACK is recorded", Duration::from_secs(10), || {
        let m = m.clone();
        async move { Ok(!last_error(m).await?.is_empty()) }
    })
    .await?;
    let error = last_error(m.clone()).await?;
    assert!(error.ends_with("(truncated)") && error.len() < 1100, "{} characters", error.len());

    // Streams per token: three are fine, a fourth is refused.
    let _two = open(&cp, &secret, hello("s2", "i")).await?;
    let _three = open(&cp, &secret, hello("s3", "i")).await?;
    let refused = open(&cp, &secret, hello("s4", "i")).await.err().expect("a fourth stream is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("--max-streams-per-token"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_gateways_pages_in_name_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let secret = gateway_token(&mut m, "many", "*").await?;
    let mut streams = Vec::new();
    for i in 0..23 {
        streams.push(open(&cp, &secret, hello(&format!("dp-{i:02}"), &format!("i{i}"))).await?);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = m.list_gateways(pb::ListGatewaysRequest { page_size: 5, page_token }).await?.into_inner();
        assert!(page.gateways.len() <= 5);
        seen.extend(page.gateways.into_iter().map(|g| g.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = (0..23).map(|i| format!("dp-{i:02}")).collect();
    assert_eq!(seen, expected);
    let bad = m.list_gateways(pb::ListGatewaysRequest { page_size: 5, page_token: "%%%".into() }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    // gatehousectl reads every page.
    let out = gatehouse_tests::process::ctl(&cp.access(), &["gateway", "list", "-o", "json"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(json["gateways"].as_array().map(Vec::len), Some(23));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_show_warns_when_data_planes_trust_different_ca_bundles() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let ca = gatehouse_tests::pki::TestCa::new("Bundle CA")?;
    let bundle = ca.write_pem(dir.path(), "bundle.pem")?;
    let mut m = cp.management().await?;
    let revision = m.put_api(api("a", "/a", "https://127.0.0.1:9", None)).await?.into_inner().revision;
    let with = gatehouse_tests::process::DataPlane::start(&cp.access(), "with-bundle", Some(&bundle)).await?;
    let without = gatehouse_tests::process::DataPlane::start(&cp.access(), "without-bundle", None).await?;
    gatehouse_tests::fleet::wait_acked(&mut m, &[&with.name, &without.name], revision, Duration::from_secs(15)).await?;

    let out = gatehouse_tests::process::ctl(&cp.access(), &["gateway", "list", "-o", "json"], None).await?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let gateways = json["gateways"].as_array().expect("a list");
    let fingerprint = |name: &str| {
        gateways
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| g["backend_ca_fingerprint"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(fingerprint("with-bundle").map(|f| f.len()), Some(64));
    assert_eq!(fingerprint("without-bundle").as_deref(), Some(""));
    let listens = gateways.iter().find(|g| g["name"] == "with-bundle").unwrap()["listen_addresses"].clone();
    assert_eq!(listens, serde_json::json!([format!("http://{}", with.addr)]));

    let out = gatehouse_tests::process::ctl(&cp.access(), &["api", "show", "a"], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stderr.contains("trust different extra CA bundles"), "{}", out.stderr);
    assert!(out.stderr.contains("no --backend-ca-file: without-bundle"), "{}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn last_seen_follows_heartbeats() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    let revision = m.put_api(api("a", "/a", "https://127.0.0.1:9", None)).await?.into_inner().revision;
    let dp =
        gatehouse_tests::process::DataPlane::start_with(&cp.access(), "beating", None, &["--keepalive", "1"]).await?;
    gatehouse_tests::fleet::wait_acked(&mut m, &[&dp.name], revision, Duration::from_secs(15)).await?;
    // Nothing changes, so only heartbeats can move last_seen.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let gateway = m.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner().gateways.remove(0);
    let since = gateway.connected_since.unwrap().seconds;
    let seen = gateway.last_seen.unwrap().seconds;
    assert!(seen - since >= 2, "last seen {seen}, connected {since}");
    let out = gatehouse_tests::process::ctl(&cp.access(), &["gateway", "list"], None).await?;
    assert!(out.stdout.contains("s ago"), "{}", out.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_list_works_with_two_thousand_data_planes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp =
        ControlPlane::start_with(&dir.path().join("cp"), "127.0.0.1:0".parse()?, &["--max-streams-per-token", "5000"])
            .await?;
    let mut m = cp.management().await?;
    let secret = gateway_token(&mut m, "fleet", "*").await?;
    let access = cp.access();
    let mut streams = Vec::new();
    // Ten connections of two hundred streams each (HTTP/2's usual concurrent-stream limit).
    for connection in 0..10 {
        let channel = endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;
        for i in 0..200 {
            // Long names and versions, at the bounds, make the entries as large as they get.
            let mut hello =
                hello(&format!("dp-{connection:02}-{i:03}-{}", "x".repeat(100)), &format!("i{connection}-{i}"));
            hello.version = "v".repeat(64);
            streams.push(open_on(channel.clone(), &secret, hello).await?);
        }
    }
    let out = gatehouse_tests::process::ctl(&cp.access(), &["gateway", "list", "-o", "json"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(json["gateways"].as_array().map(Vec::len), Some(2000));
    let out = gatehouse_tests::process::ctl(&cp.access(), &["gateway", "list"], None).await?;
    assert!(out.success && out.stdout.lines().count() > 2000, "{}", out.stderr);
    Ok(())
}
