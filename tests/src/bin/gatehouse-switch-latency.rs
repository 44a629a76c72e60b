//! Measures how long a credential switch takes to reach the backend: from `SetApiCredentials`
//! returning to the first request through each data plane that presents the new certificate.
//! Real processes (`gatehouse-cp`, N x `gatehouse-dp`) on loopback; prints median, p99 and max.
//! Build the binaries first (`cargo build --release --workspace` for release figures).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use clap::Parser;
use gatehouse_proto::v1::{self as pb, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};

#[derive(Parser, Debug)]
struct Args {
    /// Number of A<->B switches.
    #[arg(long, default_value_t = 100)]
    switches: usize,
    /// Number of data planes.
    #[arg(long, default_value_t = 2)]
    data_planes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Latency CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let mut data_planes = Vec::new();
    for i in 0..args.data_planes {
        data_planes.push(DataPlane::start(&cp.access(), &format!("dp-{i}"), Some(&ca_file)).await?);
    }
    let mut m = cp.management().await?;
    let certs = [ca.client("a")?, ca.client("b")?];
    for (id, cert) in ["a", "b"].iter().zip(&certs) {
        m.upload_certificate(pb::UploadCertificateRequest {
            id: (*id).into(),
            pfx: cert.pfx("pw")?,
            password: "pw".into(),
            ..Default::default()
        })
        .await?;
    }
    m.put_api(pb::PutApiRequest {
        id: "api".into(),
        display_name: String::new(),
        path: "/api".into(),
        service_url: backend.url(),
        // Bound from the start, so every response during a switch must be 2xx.
        credentials: Some(pb::CredentialBinding {
            kind: Some(pb::credential_binding::Kind::CertificateId("b".into())),
        }),
        ..Default::default()
    })
    .await?;

    let http = HttpClient::default();
    // Per switch: (i) until every data plane ACKed; (ii) until a request through every data
    // plane presented the new certificate.
    let (mut acked, mut presented): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    let mut errors = 0usize;
    // Two phases, so that the requests polling for (ii) do not load the machine while (i) is
    // measured: first switches timed to the ACKs alone, then switches timed to the backend.
    for i in 0..args.switches * 2 {
        let measuring_acks = i < args.switches;
        let (id, cert) = if i % 2 == 0 { ("a", &certs[0]) } else { ("b", &certs[1]) };
        let revision = m
            .set_api_credentials(pb::SetApiCredentialsRequest {
                api_id: "api".into(),
                credential: Some(Credential::CertificateId(id.into())),
                ..Default::default()
            })
            .await?
            .into_inner()
            .revision;
        let returned = Instant::now();
        let mut rollout_client = m.clone();
        let rollout = async move {
            let rollout = rollout_client
                .wait_for_rollout(pb::WaitForRolloutRequest { revision, timeout_ms: 10_000 })
                .await?
                .into_inner();
            ensure!(rollout.complete, "switch {i}: rollout incomplete: {rollout:?}");
            anyhow::Ok(returned.elapsed())
        };
        // Every data plane is polled at once, so one's latency does not include another's.
        let polls = data_planes.iter().map(|dp| {
            let http = http.clone();
            let url = dp.url("/api/x");
            let expected = cert.thumbprint.to_string();
            async move {
                let mut errors = 0usize;
                loop {
                    let reply = http.get(&url).await?;
                    if !reply.status.is_success() {
                        errors += 1;
                    }
                    if reply.presented() == Some(expected.as_str()) {
                        return anyhow::Ok((returned.elapsed(), errors));
                    }
                    if returned.elapsed() > Duration::from_secs(10) {
                        bail!("switch {i} did not reach {url} within 10 s");
                    }
                }
            }
        });
        if measuring_acks {
            acked.push(rollout.await?);
            continue;
        }
        let (rollout, polled) = tokio::join!(rollout, futures_util::future::join_all(polls));
        rollout?;
        let mut slowest = Duration::ZERO;
        for result in polled {
            let (latency, failed) = result?;
            slowest = slowest.max(latency);
            errors += failed;
        }
        presented.push(slowest);
    }
    ensure!(!presented.is_empty(), "no samples");
    println!(
        "credential switch, {} switches x {} data planes (from SetApiCredentials returning):",
        args.switches, args.data_planes
    );
    for (what, samples) in [("every data plane ACKed", &mut acked), ("every data plane presents it", &mut presented)] {
        samples.sort();
        let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "  {what:<30} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}",
            pick(0.5),
            pick(0.99),
            samples[samples.len() - 1]
        );
    }
    println!("  non-2xx responses {errors}");
    Ok(())
}
