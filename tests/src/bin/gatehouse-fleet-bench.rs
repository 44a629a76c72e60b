//! Fleet sync figures: bytes a data plane receives for a full snapshot and for a one-API change
//! with N APIs configured, and the time from a mutating call returning to every data plane
//! having applied it (what `gatehousectl --wait` waits for). Real processes on loopback.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use gatehouse_proto::v1::{
    self as pb, config_sync_client::ConfigSyncClient, credential_binding::Kind,
    set_api_credentials_request::Credential, sync_request::Message,
};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::{api, bind, upload};
use prost::Message as _;

#[derive(Parser, Debug)]
struct Args {
    /// APIs configured before measuring.
    #[arg(long, default_value_t = 1000)]
    apis: usize,
    /// Data planes for the rollout measurement.
    #[arg(long, default_value_t = 3)]
    data_planes: usize,
    /// Rollouts measured.
    #[arg(long, default_value_t = 50)]
    rollouts: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    let ca = TestCa::new("Fleet Bench CA")?;
    for id in ["a", "b"] {
        m.upload_certificate(upload(id, ca.client(id)?.pfx("pw")?, "pw")).await?;
    }
    let started = Instant::now();
    for i in 0..args.apis {
        let kind = Some(Kind::CertificateId(if i % 2 == 0 { "a" } else { "b" }.into()));
        m.put_api(api(&format!("api-{i:05}"), &format!("/api-{i:05}"), "https://localhost:9", kind)).await?;
    }
    let per_write = started.elapsed() / args.apis.max(1) as u32;

    // A bare ConfigSync client, to see exactly what a data plane is sent.
    let access = cp.access();
    let channel = gatehouse_shared::client::endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;
    let gateway_token =
        gatehouse_shared::client::read_token_file(access.gateway_token_file.as_ref().context("no gateway token")?)?;
    let mut sync =
        ConfigSyncClient::with_interceptor(channel, gatehouse_shared::client::BearerToken::new(Some(&gateway_token))?)
            .max_decoding_message_size(256 * 1024 * 1024);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hello = pb::Hello {
        name: "bench-observer".into(),
        version: "bench".into(),
        protocol_version: gatehouse_proto::PROTOCOL_VERSION,
        ..Default::default()
    };
    tx.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await?;
    let mut inbound = sync.sync(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let full = inbound.message().await?.context("no snapshot")?;
    ensure!(full.full, "first message is not a full snapshot");
    let ack = |u: &pb::SyncResponse| pb::SyncRequest {
        message: Some(Message::Ack(pb::Ack { revision: u.revision, nonce: u.nonce.clone() })),
    };
    tx.send(ack(&full)).await?;
    m.put_api(api("api-00000", "/api-00000", "https://localhost:10", Some(Kind::CertificateId("a".into())))).await?;
    let delta = inbound.message().await?.context("no delta")?;
    ensure!(!delta.full, "a one-API change was sent in full");
    tx.send(ack(&delta)).await?;
    let rotation_started = Instant::now();
    m.set_api_credentials(bind("api-00000", Credential::CertificateId("b".into()))).await?;
    let rebind = inbound.message().await?.context("no delta")?;
    let rebind_latency = rotation_started.elapsed();
    tx.send(ack(&rebind)).await?;

    println!("fleet sync with {} APIs and 2 client certificates:", args.apis);
    println!("  management write (PutApi, flushed) mean {per_write:.2?}");
    println!("  full snapshot        {:>9} bytes", full.encoded_len());
    println!(
        "  one-API change       {:>9} bytes (changed routes {}, identities {})",
        delta.encoded_len(),
        delta.changed.as_ref().map_or(0, |c| c.routes.len()),
        delta.changed.as_ref().map_or(0, |c| c.identities.len())
    );
    println!(
        "  one-API rebind       {:>9} bytes, received {rebind_latency:.2?} after the call started",
        rebind.encoded_len()
    );

    // Rollout: mutating call returned -> every data plane ACKed (WaitForRollout returned).
    let mut dps = Vec::new();
    for i in 0..args.data_planes {
        dps.push(DataPlane::start(&cp.access(), &format!("dp-{i}"), None).await?);
    }
    drop((tx, inbound));
    let names: Vec<String> = dps.iter().map(|d| d.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let latest = m.list_apis(pb::ListApisRequest {}).await?.into_inner().revision;
    gatehouse_tests::fleet::wait_acked(&mut m, &names, latest, Duration::from_secs(60)).await?;
    let mut samples = Vec::new();
    for i in 0..args.rollouts {
        let cert = if i % 2 == 0 { "a" } else { "b" };
        let revision = m
            .set_api_credentials(bind("api-00001", Credential::CertificateId(cert.into())))
            .await?
            .into_inner()
            .revision;
        let returned = Instant::now();
        let rollout =
            m.wait_for_rollout(pb::WaitForRolloutRequest { revision, timeout_ms: 10_000 }).await?.into_inner();
        samples.push(returned.elapsed());
        ensure!(
            rollout.complete && rollout.gateways.len() == args.data_planes,
            "rollout {revision} incomplete: {rollout:?}"
        );
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  rollout wait, {} data planes, {} changes: median {:.2?}  p99 {:.2?}  max {:.2?}",
        args.data_planes,
        args.rollouts,
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
    Ok(())
}
