//! A data plane that knows several control planes (`--control-plane URL,URL`) gets past one
//! that is down or mute to the next in its list, and serves what that one configures.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_proto::v1::credential_binding::Kind;
use gatehouse_tests::backend::{ClientAuth, EchoBackend, SilentBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::{Issued, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, binary};
use gatehouse_tests::requests::{api, upload};
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

/// A live control plane with API /orders configured (presenting client certificate "c" to
/// an mTLS backend), and the revision that holds it.
struct World {
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    cp: ControlPlane,
    _backend: EchoBackend,
    client: Issued,
    revision: u64,
}

async fn world() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Failover CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let client = ca.client("c")?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", client.pfx("pw")?, "pw")).await?;
    let revision = m
        .put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("c".into()))))
        .await?
        .into_inner()
        .revision;
    Ok(World { dir, ca_file, cp, _backend: backend, client, revision })
}

/// Starts a data plane whose list names `first` before the live control plane, and checks it
/// ends up synced with the live one: ACKed, proxying /orders, the live URL in /metrics, and the
/// move from `first` in its log.
async fn fails_over_from(w: &World, first: &str, extra: &[&str]) -> anyhow::Result<()> {
    let live = w.cp.url();
    let mut access = w.cp.access();
    access.url = format!("{first},{live}");
    let log = w.dir.path().join("dp.log");
    let dp = DataPlane::start_logging(&access, "dp-failover", Some(&w.ca_file), extra, Some(&log)).await?;

    let mut m = w.cp.management().await?;
    wait_acked(&mut m, &[&dp.name], w.revision, ACK).await?;
    let http = HttpClient::default();
    let ready = http.get(&dp.admin_url("/ready")).await?;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let reply = http.get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(w.client.thumbprint.as_str()));

    let metrics = http.get(&dp.admin_url("/metrics")).await?.body;
    let series = format!("gatehouse_control_plane_info{{url=\"{live}\"}}");
    assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
    assert!(!metrics.contains(&format!("url=\"{first}\"")), "{metrics}");

    let log = std::fs::read_to_string(&log)?;
    let moved = log
        .lines()
        .find(|l| l.contains("cannot sync with the control plane"))
        .unwrap_or_else(|| panic!("no failed attempt logged:\n{log}"));
    assert!(moved.contains(&format!("control_plane={first}")), "{moved}");
    assert!(moved.contains(&format!("next={live}")), "{moved}");
    let connected = log.lines().find(|l| l.contains("config sync connected")).expect("connected line");
    assert!(connected.contains(&format!("control_plane={live}")), "{connected}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_that_refuses_connections_is_skipped() -> anyhow::Result<()> {
    let w = world().await?;
    // Bound and released: nothing listens there any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    fails_over_from(&w, &format!("https://{dead}"), &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_that_accepts_and_never_answers_is_skipped() -> anyhow::Result<()> {
    let w = world().await?;
    let mute = SilentBackend::start().await?;
    fails_over_from(&w, &format!("https://{}", mute.addr), &["--control-plane-connect-timeout", "1"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_url_anywhere_in_the_list_stops_the_data_plane_at_start_naming_it() -> anyhow::Result<()> {
    for list in ["https://127.0.0.1:1,127.0.0.1:7400", "https://127.0.0.1:1,"] {
        let bad = list.split(',').nth(1).unwrap_or_default();
        let output = tokio::process::Command::new(binary("gatehouse-dp")?)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--control-plane", list])
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), output).await??;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{list}: {stderr}");
        assert!(stderr.contains(&format!("'{bad}' is not a valid control plane URL")), "{list}: {stderr}");
    }
    Ok(())
}
