//! Rotation under load: clients send requests as fast as they can through two data planes while
//! the API's client certificate flips A <-> B every 100 ms. Counts non-2xx responses and
//! requests that presented the wrong certificate after every data plane had ACKed the switch
//! (a request counts when it was sent after the ACK and answered before the next switch began:
//! only then is there exactly one right answer).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use gatehouse_proto::v1::{self as pb, credential_binding::Kind, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::{api, bind, upload};

#[derive(Parser, Debug)]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Milliseconds between flips.
    #[arg(long, default_value_t = 100)]
    flip_ms: u64,
    /// Concurrent clients (spread over both data planes).
    #[arg(long, default_value_t = 32)]
    clients: usize,
}

struct Sample {
    started: Instant,
    finished: Instant,
    ok: bool,
    presented: String,
}

/// A switch: the certificate expected from `acked` on, until `next` (the next switch's call).
struct Window {
    expected: String,
    acked: Instant,
    next: Option<Instant>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Rotation Bench CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let dps = [
        DataPlane::start(&cp.access(), "dp-0", Some(&ca_file)).await?,
        DataPlane::start(&cp.access(), "dp-1", Some(&ca_file)).await?,
    ];
    let mut m = cp.management().await?;
    let certs = [ca.client("a")?, ca.client("b")?];
    m.upload_certificate(upload("a", certs[0].pfx("pw")?, "pw")).await?;
    m.upload_certificate(upload("b", certs[1].pfx("pw")?, "pw")).await?;
    let revision = m
        .put_api(api("api", "/api", &backend.url(), Some(Kind::CertificateId("a".into()))))
        .await?
        .into_inner()
        .revision;
    let rollout = m.wait_for_rollout(pb::WaitForRolloutRequest { revision, timeout_ms: 10_000 }).await?.into_inner();
    ensure!(rollout.complete, "initial rollout incomplete");

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let url = dps[c % 2].url("/api/x");
        let samples = samples.clone();
        clients.push(tokio::spawn(async move {
            let http = HttpClient::default();
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let reply = http.get(&url).await;
                let finished = Instant::now();
                match reply {
                    Ok(reply) => mine.push(Sample {
                        started,
                        finished,
                        ok: reply.status.is_success(),
                        presented: reply.presented().unwrap_or_default().to_string(),
                    }),
                    Err(_) => mine.push(Sample { started, finished, ok: false, presented: String::new() }),
                }
            }
            samples.lock().expect("samples").extend(mine);
        }));
    }

    let mut windows: Vec<Window> = Vec::new();
    let mut flip = 0usize;
    while Instant::now() + Duration::from_millis(args.flip_ms) < deadline {
        tokio::time::sleep(Duration::from_millis(args.flip_ms)).await;
        flip += 1;
        let (id, cert) = if flip.is_multiple_of(2) { ("a", &certs[0]) } else { ("b", &certs[1]) };
        let call = Instant::now();
        if let Some(last) = windows.last_mut() {
            last.next = Some(call);
        }
        let revision =
            m.set_api_credentials(bind("api", Credential::CertificateId(id.into()))).await?.into_inner().revision;
        let rollout =
            m.wait_for_rollout(pb::WaitForRolloutRequest { revision, timeout_ms: 10_000 }).await?.into_inner();
        ensure!(rollout.complete, "flip {flip} incomplete: {rollout:?}");
        windows.push(Window { expected: cert.thumbprint.to_string(), acked: Instant::now(), next: None });
    }
    for client in clients {
        client.await?;
    }
    let samples = samples.lock().expect("samples");
    let non_2xx = samples.iter().filter(|s| !s.ok).count();
    let mut checked = 0usize;
    let mut wrong = 0usize;
    for window in &windows {
        for sample in
            samples.iter().filter(|s| s.ok && s.started >= window.acked && window.next.is_none_or(|n| s.finished < n))
        {
            checked += 1;
            if sample.presented != window.expected {
                wrong += 1;
            }
        }
    }
    println!(
        "rotation under load: {} s, {} clients over 2 data planes, a flip every {} ms ({} flips)",
        args.seconds,
        args.clients,
        args.flip_ms,
        windows.len()
    );
    println!("  requests {}  ({:.0} req/s)", samples.len(), samples.len() as f64 / args.seconds as f64);
    println!("  non-2xx responses {non_2xx}");
    println!("  requests after an ACK checked {checked}, presenting the wrong certificate {wrong}");
    Ok(())
}
