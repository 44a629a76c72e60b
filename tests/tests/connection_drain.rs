//! Backend connections never outlive the identity they were opened with for long: when an API's
//! client certificate is rotated, the new identity's first connection is opened before the data
//! plane applies the change, and the old identity's pooled connections close once idle;
//! under continuous traffic no connection takes new requests past --max-connection-age, and a
//! pool holds no more connections than the requests in flight, nor past its limit.

use std::time::{Duration, Instant};

use gatehouse_proto::v1::{credential_binding::Kind, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::{api, bind, upload};
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

async fn metric(http: &HttpClient, dp: &DataPlane, series: &str) -> anyhow::Result<f64> {
    let metrics = http.get(&dp.admin_url("/metrics")).await?.body;
    sample(&metrics, series).ok_or_else(|| anyhow::anyhow!("no {series} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_identity_s_connections_close_once_idle() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Drain CA")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let backend_ca = ca.write_pem(dir.path(), "ca.pem")?;
    let (a, b) = (ca.client("drain-a")?, ca.client("drain-b")?);
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("a", a.pfx("pw")?, "pw")).await?;
    m.upload_certificate(upload("b", b.pfx("pw")?, "pw")).await?;
    let put = m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("a".into())))).await?;
    let dp = DataPlane::start(&cp.access(), "dp-drain", Some(&backend_ca)).await?;
    wait_acked(&mut m, &[&dp.name], put.into_inner().revision, ACK).await?;
    let http = HttpClient::default();
    for _ in 0..3 {
        let reply = http.get(&dp.url("/orders")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.presented(), Some(a.thumbprint.as_str()));
    }
    assert_eq!(metric(&http, &dp, "gatehouse_upstream_connections_open").await?, 1.0);

    let rotated = m.set_api_credentials(bind("orders", Credential::CertificateId("b".into()))).await?;
    wait_acked(&mut m, &[&dp.name], rotated.into_inner().revision, ACK).await?;
    // B's pool was warmed before the table took requests: its connection is open already.
    assert_eq!(metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?, 2.0);
    for _ in 0..3 {
        let reply = http.get(&dp.url("/orders")).await?;
        assert_eq!(reply.presented(), Some(b.thumbprint.as_str()), "the old identity after the ACK");
    }
    assert_eq!(metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?, 2.0, "the warm one is used");
    // A's connection was idle: it is closed, not kept beside B's.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = metric(&http, &dp, "gatehouse_upstream_connections_open").await?;
        if open == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} backend connections open after the rotation, expected B's alone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn under_continuous_traffic_no_connection_outlives_the_maximum_age() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Age CA")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let backend_ca = ca.write_pem(dir.path(), "ca.pem")?;
    let client = ca.client("aged")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", client.pfx("pw")?, "pw")).await?;
    let put = m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-age", Some(&backend_ca), &["--max-connection-age", "1"]).await?;
    wait_acked(&mut m, &[&dp.name], put.into_inner().revision, ACK).await?;
    let http = HttpClient::default();

    // One request every 20 ms for 3.5 s (bounded): the connection never idles for long.
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(3500) && sent < 500 {
        let reply = http.get(&dp.url("/orders")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?;
    let renewals = metric(&http, &dp, "gatehouse_upstream_pool_renewals_total").await?;
    assert!(opened >= 3.0, "{opened} connections over 3.5 s with a 1 s maximum age ({sent} requests)");
    assert!(renewals >= 2.0, "{renewals} pool renewals over 3.5 s with a 1 s maximum age");
    // The retired ones closed: what stays open is the current one (and at most one finishing).
    let open = metric(&http, &dp, "gatehouse_upstream_connections_open").await?;
    assert!(open <= 2.0, "{open} backend connections open");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_opens_no_more_connections_than_requests_in_flight_nor_past_its_limit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Bound CA")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let backend_ca = ca.write_pem(dir.path(), "ca.pem")?;
    let client = ca.client("bounded")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", client.pfx("pw")?, "pw")).await?;
    let put = m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    let dp =
        DataPlane::start_with(&cp.access(), "dp-bound", Some(&backend_ca), &["--max-backend-connections", "2"]).await?;
    wait_acked(&mut m, &[&dp.name], put.into_inner().revision, ACK).await?;
    let http = HttpClient::default();

    // One request at a time: one connection, reused.
    for _ in 0..20 {
        let reply = http.get(&dp.url("/orders")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    assert_eq!(metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?, 1.0);

    // 16 at once, five times: every one answered, on at most two connections.
    let url = dp.url("/orders");
    for _ in 0..5 {
        let replies = futures_util::future::join_all((0..16).map(|_| http.get(&url))).await;
        for reply in replies {
            let reply = reply?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            assert_eq!(reply.presented(), Some(client.thumbprint.as_str()));
        }
    }
    let opened = metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?;
    assert!(opened <= 2.0, "{opened} backend connections opened with --max-backend-connections 2");
    assert!(metric(&http, &dp, "gatehouse_upstream_connections_open").await? <= 2.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn with_http2_offered_a_backend_that_takes_it_gets_one_connection_for_every_request() -> anyhow::Result<()> {
    use gatehouse_tests::backend::BackendOptions;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("H2 CA")?;
    let options =
        BackendOptions { client_auth: ClientAuth::TrustedBy(ca.der()), http2: true, ..BackendOptions::default() };
    let backend = EchoBackend::start_with(&ca.server(&["localhost"])?, options).await?;
    let backend_ca = ca.write_pem(dir.path(), "ca.pem")?;
    let client = ca.client("h2")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", client.pfx("pw")?, "pw")).await?;
    let put = m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-h2", Some(&backend_ca), &["--backend-http2"]).await?;
    wait_acked(&mut m, &[&dp.name], put.into_inner().revision, ACK).await?;
    let http = HttpClient::default();
    let url = dp.url("/orders");
    for _ in 0..3 {
        let replies = futures_util::future::join_all((0..16).map(|_| http.get(&url))).await;
        for reply in replies {
            let reply = reply?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            assert_eq!(reply.presented(), Some(client.thumbprint.as_str()));
            let echoed: serde_json::Value = serde_json::from_str(&reply.body)?;
            assert_eq!(echoed["version"], "HTTP/2.0", "the backend was reached over HTTP/2");
        }
    }
    let opened = metric(&http, &dp, "gatehouse_upstream_connections_opened_total").await?;
    assert_eq!(opened, 1.0, "48 requests, 16 at a time, over one HTTP/2 connection");
    Ok(())
}
