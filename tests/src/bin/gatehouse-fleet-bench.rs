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
use gatehouse_tests::measure::status_kib;
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
    /// Client certificates uploaded (APIs are bound to them in turn).
    #[arg(long, default_value_t = 2)]
    certs: usize,
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { dir_bytes(&p) } else { e.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    let ca = TestCa::new("Fleet Bench CA")?;
    let cert_ids: Vec<String> =
        (0..args.certs.max(2)).map(|i| if i < 2 { ["a", "b"][i].to_string() } else { format!("c{i:04}") }).collect();
    let started = Instant::now();
    for id in &cert_ids {
        m.upload_certificate(upload(id, ca.client(id)?.pfx("pw")?, "pw")).await?;
    }
    let upload_time = started.elapsed();
    let mut put_latency = Vec::with_capacity(args.apis);
    for i in 0..args.apis {
        let kind = Some(Kind::CertificateId(cert_ids[i % cert_ids.len()].clone()));
        let started = Instant::now();
        m.put_api(api(&format!("api-{i:05}"), &format!("/api-{i:05}"), "https://localhost:9", kind)).await?;
        put_latency.push(started.elapsed());
    }
    let late_puts = median(&mut put_latency[args.apis.saturating_sub(100)..].to_vec());
    let per_write = median(&mut put_latency);
    let mut list_latency = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        m.list_apis(pb::ListApisRequest {}).await?;
        list_latency.push(started.elapsed());
    }
    let list_latency = median(&mut list_latency);

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

    println!("fleet sync with {} APIs and {} client certificates:", args.apis, cert_ids.len());
    println!("  certificate uploads  {upload_time:.2?} for {}", cert_ids.len());
    println!("  PutApi (commit, flush, snapshot) median {per_write:.2?}; median of the last 100 {late_puts:.2?}");
    println!("  ListApis median {list_latency:.2?}");
    println!("  control plane data dir {} KiB", dir_bytes(&cp.data_dir) / 1024);
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
    let http = gatehouse_tests::http_client::HttpClient::default();
    for i in 0..args.data_planes {
        let started = Instant::now();
        let dp = DataPlane::start(&cp.access(), &format!("dp-{i}"), None).await?;
        while http.get(&dp.admin_url("/ready")).await?.status != hyper::StatusCode::OK {
            ensure!(started.elapsed() < Duration::from_secs(120), "data plane never became ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if i == 0 {
            println!("  data plane start to ready (full snapshot applied) {:.2?}", started.elapsed());
        }
        dps.push(dp);
    }
    drop((tx, inbound));
    let names: Vec<String> = dps.iter().map(|d| d.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let latest = m.list_apis(pb::ListApisRequest {}).await?.into_inner().revision;
    gatehouse_tests::fleet::wait_acked(&mut m, &names, latest, Duration::from_secs(60)).await?;
    let applied_before = apply_histogram(&http, &dps[0]).await?;
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
    let applied = apply_histogram(&http, &dps[0]).await?.since(&applied_before);
    if let Some(pid) = dps[0].process.pid() {
        println!(
            "  data plane memory: RSS {} MiB, peak {} MiB",
            status_kib(pid, "VmRSS:") / 1024,
            status_kib(pid, "VmHWM:") / 1024
        );
    }
    println!(
        "  rollout wait (one-API change applied everywhere), {} data planes, {} changes: median {:.2?}  p99 {:.2?}  max {:.2?}",
        args.data_planes,
        args.rollouts,
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
    println!(
        "  data plane apply (delta applied, routing table built; its histogram): mean {:.2} ms, median at most {:.2} ms, over {} updates",
        applied.sum / applied.count.max(1.0) * 1000.0,
        applied.quantile_bound(0.5) * 1000.0,
        applied.count
    );
    Ok(())
}

/// A data plane's `gatehouse_config_apply_duration_seconds` histogram.
struct ApplyHistogram {
    /// (upper bound, cumulative count), in order.
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl ApplyHistogram {
    /// What was observed between `before` and this reading.
    fn since(&self, before: &ApplyHistogram) -> ApplyHistogram {
        let buckets =
            self.buckets.iter().zip(&before.buckets).map(|((bound, now), (_, then))| (*bound, now - then)).collect();
        ApplyHistogram { buckets, sum: self.sum - before.sum, count: self.count - before.count }
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile_bound(&self, q: f64) -> f64 {
        let wanted = self.count * q;
        self.buckets.iter().find(|(_, cumulative)| *cumulative >= wanted).map_or(f64::INFINITY, |(bound, _)| *bound)
    }
}

async fn apply_histogram(
    http: &gatehouse_tests::http_client::HttpClient,
    dp: &DataPlane,
) -> anyhow::Result<ApplyHistogram> {
    let text = http.get(&dp.admin_url("/metrics")).await?.body;
    let name = "gatehouse_config_apply_duration_seconds";
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut histogram = ApplyHistogram { buckets: Vec::new(), sum: 0.0, count: 0.0 };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let bound = rest.split('"').next().unwrap_or_default();
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().context("bucket bound")? };
            histogram.buckets.push((bound, value(line).context("bucket count")?));
        } else if line.starts_with(&format!("{name}_sum ")) {
            histogram.sum = value(line).context("sum")?;
        } else if line.starts_with(&format!("{name}_count ")) {
            histogram.count = value(line).context("count")?;
        }
    }
    ensure!(!histogram.buckets.is_empty(), "the data plane exports no {name}");
    Ok(histogram)
}
