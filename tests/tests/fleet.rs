//! Fleet sync an operator can trust: ACK/NACK, gateway status, rollout wait, deltas, the
//! last-known-good cache, and dead-stream detection, with real processes.

use std::time::Duration;

use gatehouse_proto::v1::{self as pb, credential_binding::Kind, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{Access, ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, bind, upload};
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

async fn ready(http: &HttpClient, dp: &DataPlane) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let reply = http.get(&dp.admin_url("/ready")).await?;
    Ok((reply.status, reply.json()))
}

async fn gateways(cp: &Access) -> anyhow::Result<serde_json::Value> {
    let out = ctl(cp, &["gateway", "list", "-o", "json"], None).await?;
    anyhow::ensure!(out.success, "gateway list failed: {}", out.stderr);
    Ok(serde_json::from_str(&out.stdout)?)
}

use gatehouse_tests::eventually;

#[tokio::test(flavor = "multi_thread")]
async fn three_data_planes_ack_and_the_cli_waits_for_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut dps = Vec::new();
    for i in 1..=3 {
        dps.push(DataPlane::start(&cp.access(), &format!("dp-{i}"), None).await?);
    }
    let server = cp.access();
    let out = ctl(
        &server,
        &["--wait", "api", "put", "orders", "--path", "/orders", "--service-url", "http://127.0.0.1:9"],
        None,
    )
    .await?;
    assert!(out.success, "{}", out.stderr);
    for dp in &dps {
        assert!(out.stdout.contains(&format!("{} applied in", dp.name)), "{}", out.stdout);
    }
    let list = gateways(&server).await?;
    let revision = list["revision"].as_u64().unwrap();
    let listed = list["gateways"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{list}");
    for g in listed {
        assert_eq!(g["state"], "SYNCED", "{g}");
        assert_eq!(g["applied_revision"], revision, "{g}");
        assert_eq!(g["connected"], true);
        assert!(g["address"].as_str().unwrap().starts_with("127.0.0.1:"), "{g}");
    }
    let out = ctl(&server, &["gateway", "list"], None).await?;
    assert_eq!(out.stdout.matches("SYNCED").count(), 3, "{}", out.stdout);

    // JSON mode keeps stdout for the resource and reports the rollout on stderr.
    let out = ctl(&server, &["--wait", "-o", "json", "api", "delete", "orders"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let rollout: serde_json::Value = serde_json::from_str(out.stderr.trim())?;
    assert_eq!(rollout["complete"], true, "{rollout}");
    assert_eq!(rollout["gateways"].as_array().unwrap().len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_revision_is_reported_and_the_last_good_one_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Nack CA")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let dp = DataPlane::start_with(&cp.access(), "dp-small", Some(&ca_file), &["--max-routes", "1"]).await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    m.upload_certificate(upload("client", ca.client("c")?.pfx("pw")?, "pw")).await?;
    let rev = m
        .put_api(api("one", "/one", &backend.url(), Some(Kind::CertificateId("client".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;

    let out =
        ctl(&cp.access(), &["--wait", "api", "put", "two", "--path", "/two", "--service-url", &backend.url()], None)
            .await?;
    assert!(!out.success, "the rollout must fail: {}", out.stdout);
    assert!(out.stdout.contains("dp-small REJECTED"), "{}", out.stdout);
    assert!(out.stderr.contains("rejected by dp-small"), "{}", out.stderr);
    let list = gateways(&cp.access()).await?;
    let g = &list["gateways"][0];
    assert_eq!(g["state"], "NACKED", "{g}");
    assert!(g["last_error"].as_str().unwrap().contains("at most 1"), "{g}");
    assert_eq!(g["applied_revision"], rev, "{g}");

    // Still serving the last good configuration.
    let reply = http.get(&dp.url("/one")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(http.get(&dp.url("/two")).await?.status, StatusCode::NOT_FOUND);

    // A later revision it can load clears the state.
    let rev =
        m.delete_api(pb::DeleteApiRequest { id: "two".into(), ..Default::default() }).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    assert_eq!(gateways(&cp.access()).await?["gateways"][0]["state"], "SYNCED");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn outages_restarts_and_the_cache() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Outage CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let (a, b) = (ca.client("a")?, ca.client("b")?);
    let cp_dir = dir.path().join("cp");
    let mut cp = ControlPlane::start(&cp_dir).await?;
    let cp_addr = cp.addr;
    let cp_access = cp.access();
    let http = HttpClient::default();
    let cache = |name: &str| dir.path().join(format!("cache-{name}")).display().to_string();
    let start_dp = |name: &'static str| {
        let cache = cache(name);
        let access = cp_access.clone();
        let ca_file = ca_file.clone();
        async move { DataPlane::start_with(&access, name, Some(&ca_file), &["--cache-dir", &cache]).await }
    };
    let steady = start_dp("dp-steady").await?;
    let mut roaming = start_dp("dp-roaming").await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("a", a.pfx("pw")?, "pw")).await?;
    m.upload_certificate(upload("b", b.pfx("pw")?, "pw")).await?;
    let rev_a = m
        .put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("a".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &["dp-steady", "dp-roaming"], rev_a, ACK).await?;

    // The cache is private, sealed, and holds no key material in the clear.
    let cache_file = std::path::Path::new(&cache("dp-roaming")).join("last-known-good.bin");
    eventually("cache written", ACK, || async { Ok(cache_file.exists()) }).await?;
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&cache_file)?.permissions().mode() & 0o777, 0o600);
        let bytes = std::fs::read(&cache_file)?;
        assert!(!bytes.windows(a.key_der.len()).any(|w| w == a.key_der.as_slice()), "private key in the clear");
        assert!(!bytes.windows(6).any(|w| w == b"orders"), "configuration in the clear");
    }

    // A change made while a data plane is down reaches it when it comes back: it boots from
    // its cache (revision A) and receives only what changed.
    let cached_a = std::fs::read(&cache_file)?;
    roaming.process.kill().await;
    let rev_b =
        m.set_api_credentials(bind("orders", Credential::CertificateId("b".into()))).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-steady"], rev_b, ACK).await?;
    let mut roaming = start_dp("dp-roaming").await?;
    wait_acked(&mut m, &["dp-roaming"], rev_b, ACK).await?;
    assert_eq!(http.get(&roaming.url("/orders")).await?.presented(), Some(b.thumbprint.as_str()));
    let (_, body) = ready(&http, &roaming).await?;
    assert_eq!(body["updates"]["full"], 0, "{body}");
    assert_eq!(body["updates"]["delta"], 1, "{body}");
    eventually("cache rewritten", ACK, || async { Ok(std::fs::read(&cache_file)? != cached_a) }).await?;
    roaming.process.kill().await;

    // Control plane gone: the steady data plane keeps serving; the roaming one boots from its
    // cache alone.
    cp.process.kill().await;
    drop(m);
    assert_eq!(http.get(&steady.url("/orders")).await?.presented(), Some(b.thumbprint.as_str()));
    let (_, steady_before) = ready(&http, &steady).await?;
    let roaming =
        DataPlane::start_with(&cp_access, "dp-roaming", Some(&ca_file), &["--cache-dir", &cache("dp-roaming")]).await?;
    let (status, body) = ready(&http, &roaming).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "cache", "{body}");
    assert_eq!(body["revision"], rev_b, "{body}");
    assert_eq!(http.get(&roaming.url("/orders")).await?.presented(), Some(b.thumbprint.as_str()), "served from cache");

    // The control plane returns on the same data dir: both reconnect and, being current,
    // are sent nothing at all.
    let cp = ControlPlane::start_on(&cp_dir, cp_addr).await?;
    let mut m = cp.management().await?;
    wait_acked(&mut m, &["dp-steady", "dp-roaming"], rev_b, Duration::from_secs(20)).await?;
    for dp in [&steady, &roaming] {
        eventually("reconnected", ACK, || async { Ok(ready(&http, dp).await?.1["control_plane_connected"] == true) })
            .await?;
    }
    assert_eq!(
        ready(&http, &steady).await?.1["updates"],
        steady_before["updates"],
        "a current data plane was sent something"
    );
    let (_, body) = ready(&http, &roaming).await?;
    assert_eq!(body["updates"], serde_json::json!({ "full": 0, "delta": 0, "rejected": 0 }), "{body}");
    assert_eq!(
        gateways(&cp.access()).await?["gateways"].as_array().unwrap().iter().filter(|g| g["state"] == "SYNCED").count(),
        2
    );

    // And the next change is a delta for both.
    let rev_c =
        m.set_api_credentials(bind("orders", Credential::CertificateId("a".into()))).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-steady", "dp-roaming"], rev_c, ACK).await?;
    assert_eq!(ready(&http, &roaming).await?.1["updates"]["delta"], 1);
    assert_eq!(http.get(&roaming.url("/orders")).await?.presented(), Some(a.thumbprint.as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_plane_with_neither_cache_nor_control_plane_serves_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cache = dir.path().join("cache").display().to_string();
    let dp = DataPlane::start_with(&Access::nowhere(port), "dp-alone", None, &["--cache-dir", &cache]).await?;
    let (status, body) = ready(&HttpClient::default(), &dp).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["source"], "none");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn frozen_peers_are_detected_on_both_sides() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(dir.path(), "127.0.0.1:0".parse()?, &["--keepalive", "1"]).await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-frozen", None, &["--keepalive", "1"]).await?;
    let mut m = cp.management().await?;
    let rev = m.put_api(api("a", "/a", "http://127.0.0.1:9", None)).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    let http = HttpClient::default();

    // The data plane freezes: the control plane notices (well within 30 s) and says so.
    dp.process.signal("STOP");
    let state = |cp: Access| async move {
        let list = gateways(&cp).await?;
        Ok::<_, anyhow::Error>(list["gateways"][0]["state"].as_str().unwrap_or("").to_string())
    };
    let took = eventually("control plane sees the frozen data plane", Duration::from_secs(30), || {
        let url = cp.access();
        async move { Ok(state(url).await? == "DISCONNECTED") }
    })
    .await;
    dp.process.signal("CONT");
    let took = took?;
    eprintln!("control plane noticed a frozen data plane in {took:?}");
    eventually("data plane reconnects", Duration::from_secs(30), || {
        let url = cp.access();
        async move { Ok(state(url).await? == "SYNCED") }
    })
    .await?;

    // The control plane freezes: the data plane notices, keeps serving, and reconnects after.
    cp.process.signal("STOP");
    let took = eventually("data plane sees the frozen control plane", Duration::from_secs(30), || async {
        Ok(ready(&http, &dp).await?.1["control_plane_connected"] == false)
    })
    .await;
    let still_ready = ready(&http, &dp).await?.0;
    cp.process.signal("CONT");
    let took = took?;
    eprintln!("data plane noticed a frozen control plane in {took:?}");
    assert_eq!(still_ready, StatusCode::OK);
    eventually("data plane reconnects", Duration::from_secs(30), || async {
        Ok(ready(&http, &dp).await?.1["control_plane_connected"] == true)
    })
    .await?;
    Ok(())
}
