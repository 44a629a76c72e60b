//! Fleet fan-out, simulated: one process opens N ConfigSync streams to one control plane, each
//! behaving as a data plane does on the wire (hello, the full snapshot, an ACK for every
//! revision at once), then makes one-API changes (`PutApi`) and times each from the call
//! returning until every stream has ACKed it. For each N it prints those times, each stream's
//! own delay, how long the fleet took to connect, and the control plane's memory.
//!
//! The streams share a few HTTP/2 connections (`--streams-per-connection`), as no real fleet
//! would; what is measured is the control plane's fan-out (encoding and sending a delta to every
//! stream, and taking in every ACK), not a TCP connection per data plane.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use gatehouse_proto::v1::config_sync_client::ConfigSyncClient;
use gatehouse_proto::v1::sync_request::Message;
use gatehouse_proto::v1::{self as pb};
use gatehouse_tests::measure::{percentile, status_kib};
use gatehouse_tests::process::ControlPlane;
use gatehouse_tests::requests::api;
use tokio::sync::{mpsc, watch};

#[derive(Parser, Debug)]
#[command(name = "gatehouse-fanout-bench")]
struct Args {
    /// Fleet sizes to measure, one control plane each.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    streams: Vec<usize>,
    /// One-API changes timed per fleet size.
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// APIs in the configuration.
    #[arg(long, default_value_t = 100)]
    apis: usize,
    /// Sync streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: usize,
}

/// How long a fleet may take to connect, or to ACK one change, before the run is void.
const WITHIN: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "fleet fan-out: simulated data planes (ConfigSync streams, {} per connection) on one control plane with {} APIs; \
         {} one-API changes each, timed from PutApi returning until every stream ACKed",
        args.streams_per_connection, args.apis, args.changes
    );
    for &streams in &args.streams {
        fleet(streams, &args).await?;
    }
    Ok(())
}

async fn fleet(streams: usize, args: &Args) -> anyhow::Result<()> {
    ensure!(streams > 0 && args.changes > 0 && args.streams_per_connection > 0, "counts must be positive");
    let dir = tempfile::tempdir()?;
    let limit = (streams + 1).to_string();
    let cp =
        ControlPlane::start_with(&dir.path().join("cp"), "127.0.0.1:0".parse()?, &["--max-streams-per-token", &limit])
            .await?;
    let mut m = cp.management().await?;
    for i in 0..args.apis {
        m.put_api(api(&format!("api-{i:05}"), &format!("/api-{i:05}"), "https://localhost:9", None)).await?;
    }
    let access = cp.access();
    let token =
        gatehouse_shared::client::read_token_file(access.gateway_token_file.as_ref().context("no gateway token")?)?;

    // Every stream reports each revision it ACKs to one collector.
    let (acks, mut collected) = mpsc::unbounded_channel::<(u64, Instant)>();
    let connect_started = Instant::now();
    let mut connections = Vec::new();
    for _ in 0..streams.div_ceil(args.streams_per_connection) {
        connections.push(gatehouse_shared::client::endpoint(&access.url, access.ca_file.as_deref())?.connect().await?);
    }
    for i in 0..streams {
        let channel = connections[i / args.streams_per_connection].clone();
        let client =
            ConfigSyncClient::with_interceptor(channel, gatehouse_shared::client::BearerToken::new(Some(&token))?)
                .max_decoding_message_size(64 * 1024 * 1024);
        tokio::spawn(simulated_data_plane(client, format!("sim-{i:05}"), acks.clone()));
    }
    drop(acks);
    // The collector: per revision, how many streams ACKed it and when each did.
    let (done_tx, done) = watch::channel(HashMap::<u64, Vec<Instant>>::new());
    let collector = tokio::spawn(async move {
        let mut seen: HashMap<u64, Vec<Instant>> = HashMap::new();
        while let Some((revision, at)) = collected.recv().await {
            let times = seen.entry(revision).or_default();
            times.push(at);
            if times.len() == streams {
                let finished = seen.remove(&revision).unwrap_or_default();
                done_tx.send_modify(|done| {
                    done.insert(revision, finished);
                });
            }
        }
    });
    let first = m.list_apis(pb::ListApisRequest {}).await?.into_inner().revision;
    let connected = wait_all(&done, first).await?;
    let connect_time = connected.iter().max().map(|t| *t - connect_started).unwrap_or_default();

    let (mut all, mut each) = (Vec::new(), Vec::new());
    for n in 0..args.changes {
        let changed = api("api-00000", "/api-00000", &format!("https://localhost:{}", 10 + n % 2), None);
        let revision = m.put_api(changed).await?.into_inner().revision;
        let returned = Instant::now();
        let acked = wait_all(&done, revision).await?;
        each.extend(acked.iter().map(|t| t.saturating_duration_since(returned)));
        all.push(acked.iter().max().map(|t| t.saturating_duration_since(returned)).unwrap_or_default());
    }
    let rss = cp.process.pid().map(|pid| status_kib(pid, "VmRSS:") / 1024).unwrap_or_default();
    let peak = cp.process.pid().map(|pid| status_kib(pid, "VmHWM:") / 1024).unwrap_or_default();
    println!(
        "  {streams:>5} streams: every stream ACKed a change in median {:.1?}, p99 {:.1?}, max {:.1?}; one stream's ACK median {:.1?}, p99 {:.1?}; \
         fleet connected (full snapshot ACKed) in {:.2?}; control plane RSS {rss} MiB (peak {peak} MiB)",
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.99),
        percentile(&mut all, 1.0),
        percentile(&mut each, 0.5),
        percentile(&mut each, 0.99),
        connect_time,
    );
    collector.abort();
    Ok(())
}

/// One stream as a data plane behaves on it: hello, then an ACK for every revision at once.
async fn simulated_data_plane(
    mut client: ConfigSyncClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            gatehouse_shared::client::BearerToken,
        >,
    >,
    name: String,
    acks: mpsc::UnboundedSender<(u64, Instant)>,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(4);
    let hello = pb::Hello {
        name,
        version: "fanout-bench".into(),
        protocol_version: gatehouse_proto::PROTOCOL_VERSION,
        ..Default::default()
    };
    tx.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await?;
    let mut inbound = client.sync(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    while let Some(update) = inbound.message().await? {
        let ack = pb::Ack { revision: update.revision, nonce: update.nonce };
        tx.send(pb::SyncRequest { message: Some(Message::Ack(ack)) }).await?;
        let _ = acks.send((update.revision, Instant::now()));
    }
    Ok(())
}

/// When every stream ACKed `revision`.
async fn wait_all(done: &watch::Receiver<HashMap<u64, Vec<Instant>>>, revision: u64) -> anyhow::Result<Vec<Instant>> {
    let mut done = done.clone();
    let finished = tokio::time::timeout(WITHIN, done.wait_for(|done| done.contains_key(&revision)))
        .await
        .with_context(|| format!("not every stream ACKed revision {revision} within {WITHIN:?}"))?
        .context("the collector stopped")?;
    Ok(finished[&revision].clone())
}
