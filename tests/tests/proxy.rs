//! Operator story step 4 end to end: real control plane, real data planes, and a backend that
//! requires a client certificate and reports which one it was shown.

use std::time::Duration;

use bytes::Bytes;
use gatehouse_proto::v1::{self as pb, credential_binding::Kind, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::{self, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::{api, bind};
use http_body_util::Full;
use hyper::StatusCode;

const ACK_TIMEOUT: Duration = Duration::from_secs(15);

struct World {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    ca: TestCa,
    cp: ControlPlane,
    backend: EchoBackend,
    a: pki::Issued,
    b: pki::Issued,
}

/// A control plane with client certificates "a" and "b" uploaded, and a backend that trusts
/// only client certificates from the test CA, serving a certificate from that CA.
async fn world() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Proxy Test CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let (a, b) = (ca.client("client-a")?, ca.client("client-b")?);
    let mut m = cp.management().await?;
    for (id, cert) in [("a", &a), ("b", &b)] {
        m.upload_certificate(pb::UploadCertificateRequest {
            id: id.into(),
            pfx: cert.pfx("pw")?,
            password: "pw".into(),
            ..Default::default()
        })
        .await?;
    }
    Ok(World { _dir: dir, ca_file, ca, cp, backend, a, b })
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_certificates_reaches_every_data_plane() -> anyhow::Result<()> {
    let w = world().await?;
    let mut m = w.cp.management().await?;
    let dp1 = DataPlane::start(&w.cp.access(), "dp-1", Some(&w.ca_file)).await?;
    let dp2 = DataPlane::start(&w.cp.access(), "dp-2", Some(&w.ca_file)).await?;
    let names = [dp1.name.as_str(), dp2.name.as_str()];
    let http = HttpClient::default();

    let created = m
        .put_api(api("orders", "/orders", &format!("{}/v1", w.backend.url()), Some(Kind::CertificateId("a".into()))))
        .await?;
    wait_acked(&mut m, &names, created.into_inner().revision, ACK_TIMEOUT).await?;
    for dp in [&dp1, &dp2] {
        let reply = http.get(&dp.url("/orders/42?expand=items")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.presented(), Some(w.a.thumbprint.as_str()));
        let seen = reply.json();
        assert_eq!(seen["path"], "/v1/42?expand=items");
        assert_eq!(seen["headers"]["host"], format!("localhost:{}", w.backend.addr.port()));
        assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    }
    // The console's session cookie (a browser sends it to every port of the host) stays with
    // the data plane; the client's other cookies go on.
    let with_cookies = hyper::Request::get(dp1.url("/orders/1"))
        .header("cookie", "theme=dark; gatehouse_console=cs_secret; lang=en")
        .body(Full::new(Bytes::new()))?;
    let seen = http.send(with_cookies).await?.json();
    assert_eq!(seen["headers"]["cookie"], "theme=dark; lang=en");

    // A -> B -> A (by thumbprint) -> B, each checked on both data planes after their ACK.
    let steps = [
        (Credential::CertificateId("b".into()), &w.b),
        (Credential::Thumbprint(w.a.thumbprint.to_string()), &w.a),
        (Credential::CertificateId("b".into()), &w.b),
    ];
    for (credential, expected) in steps {
        let revision = m.set_api_credentials(bind("orders", credential)).await?.into_inner().revision;
        wait_acked(&mut m, &names, revision, ACK_TIMEOUT).await?;
        for dp in [&dp1, &dp2] {
            for _ in 0..5 {
                let reply = http.get(&dp.url("/orders")).await?;
                assert_eq!(
                    reply.presented(),
                    Some(expected.thumbprint.as_str()),
                    "{} after ACK of {revision}",
                    dp.name
                );
            }
        }
    }

    // Request bodies stream through.
    let body = vec![7u8; 256 * 1024];
    let request = hyper::Request::post(dp1.url("/orders/upload")).body(Full::new(Bytes::from(body.clone())))?;
    let reply = http.send(request).await?;
    assert_eq!(reply.json()["body_bytes"], body.len());
    assert_eq!(reply.json()["method"], "POST");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_errors_say_what_went_wrong() -> anyhow::Result<()> {
    let w = world().await?;
    let mut m = w.cp.management().await?;
    let dp = DataPlane::start(&w.cp.access(), "dp-errors", Some(&w.ca_file)).await?;
    let http = HttpClient::default();

    // A backend whose certificate no trusted CA issued.
    let rogue_ca = TestCa::new("Rogue CA")?;
    let untrusted = EchoBackend::start(&rogue_ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();

    m.put_api(api("nocert", "/nocert", &w.backend.url(), None)).await?;
    m.put_api(api("untrusted", "/untrusted", &untrusted.url(), Some(Kind::CertificateId("a".into())))).await?;
    let last = m
        .put_api(api("down", "/down", &format!("https://localhost:{closed}"), Some(Kind::CertificateId("a".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], last, ACK_TIMEOUT).await?;

    let reply = http.get(&dp.url("/nowhere")).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(reply.json()["detail"].as_str().unwrap().contains("/nowhere"));

    for (path, status, words) in [
        ("/nocert", StatusCode::BAD_GATEWAY, "rejected the gateway's client certificate"),
        ("/untrusted", StatusCode::BAD_GATEWAY, "not trusted"),
        ("/down", StatusCode::BAD_GATEWAY, "could not connect"),
    ] {
        let reply = http.get(&dp.url(path)).await?;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        let problem = reply.json();
        assert!(problem["detail"].as_str().unwrap_or("").contains(words), "{path}: {}", reply.body);
        assert_eq!(problem["api"], &path[1..]);
    }
    assert_eq!(untrusted.requests(), 0, "a request reached an untrusted backend");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_gets_504() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let silent = gatehouse_tests::backend::SilentBackend::start().await?;
    let silent_addr = silent.addr;
    let dp = DataPlane::start_with(&cp.access(), "dp-slow", None, &["--backend-timeout", "1"]).await?;
    let revision = m.put_api(api("slow", "/slow", &format!("http://{silent_addr}"), None)).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-slow"], revision, ACK_TIMEOUT).await?;
    let reply = HttpClient::default().get(&dp.url("/slow")).await?;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_eq!(reply.json()["api"], "slow");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_plane_serves_through_a_control_plane_outage_and_catches_up() -> anyhow::Result<()> {
    let mut w = world().await?;
    let mut m = w.cp.management().await?;
    let dp = DataPlane::start(&w.cp.access(), "dp-outage", Some(&w.ca_file)).await?;
    let http = HttpClient::default();
    let revision = m
        .put_api(api("orders", "/orders", &w.backend.url(), Some(Kind::CertificateId("a".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], revision, ACK_TIMEOUT).await?;

    let addr = w.cp.addr;
    w.cp.process.kill().await;
    drop(m);
    for _ in 0..10 {
        let reply = http.get(&dp.url("/orders")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.presented(), Some(w.a.thumbprint.as_str()));
    }
    let ready = http.get(&dp.admin_url("/ready")).await?;
    assert_eq!(ready.status, StatusCode::OK, "still ready on its last good configuration");

    let cp = ControlPlane::start_on(&w.cp.data_dir, addr).await?;
    let mut m = cp.management().await?;
    let revision =
        m.set_api_credentials(bind("orders", Credential::CertificateId("b".into()))).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], revision, ACK_TIMEOUT).await?;
    let reply = http.get(&dp.url("/orders")).await?;
    assert_eq!(reply.presented(), Some(w.b.thumbprint.as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_until_the_first_configuration() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Start the control plane once (to make its CA and tokens), then take it away.
    let mut first = ControlPlane::start(dir.path()).await?;
    let (cp_addr, access) = (first.addr, first.access());
    first.process.kill().await;
    let dp = DataPlane::start(&access, "dp-early", None).await?;
    let http = HttpClient::default();
    let ready = http.get(&dp.admin_url("/ready")).await?;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let reply = http.get(&dp.url("/anything")).await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(http.get(&dp.admin_url("/healthz")).await?.status, StatusCode::OK);

    let _cp = ControlPlane::start_on(dir.path(), cp_addr).await?;
    gatehouse_tests::eventually("the data plane becomes ready", Duration::from_secs(15), || async {
        Ok(http.get(&dp.admin_url("/ready")).await?.status == StatusCode::OK)
    })
    .await?;
    // Ready with an empty configuration: no route, and the gateway says so.
    assert_eq!(http.get(&dp.url("/anything")).await?.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_clients_may_speak_h2c() -> anyhow::Result<()> {
    let w = world().await?;
    let mut m = w.cp.management().await?;
    let dp = DataPlane::start(&w.cp.access(), "dp-h2c", Some(&w.ca_file)).await?;
    let rev = m
        .put_api(api("orders", "/orders", &w.backend.url(), Some(Kind::CertificateId("a".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK_TIMEOUT).await?;
    // HTTP/2 with prior knowledge, in clear text, as a sidecar or an internal client would.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let response = client.request(hyper::Request::get(dp.url("/orders/1")).body(Full::new(Bytes::new()))?).await?;
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-client-thumbprint"], w.a.thumbprint.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_intermediate_is_presented_with_the_leaf() -> anyhow::Result<()> {
    // The openssl fixture: leaf <- intermediate <- root. The backend trusts only the root, so it
    // accepts the gateway only if the gateway sends the intermediate too.
    let w = world().await?;
    let root_pem = gatehouse_tests::fixture("root-ca.pem");
    let root = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::pem_slice_iter(&root_pem).next().unwrap()?.to_vec()
    };
    let backend = EchoBackend::start(&w.ca.server(&["localhost"])?, ClientAuth::TrustedBy(root)).await?;
    let mut m = w.cp.management().await?;
    m.upload_certificate(gatehouse_tests::requests::upload(
        "chained",
        gatehouse_tests::fixture("chain.pfx"),
        "chain-pass",
    ))
    .await?;
    let dp = DataPlane::start(&w.cp.access(), "dp-chain", Some(&w.ca_file)).await?;
    let rev = m
        .put_api(api("chained", "/chained", &backend.url(), Some(Kind::CertificateId("chained".into()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK_TIMEOUT).await?;
    let reply = HttpClient::default().get(&dp.url("/chained")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(gatehouse_tests::fixture_thumbprint("chain.sha1").as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_never_send_a_request_are_closed() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-idle", None, &["--header-read-timeout", "1"]).await?;
    // Nothing at all, and an HTTP/2 preface with its SETTINGS but no request.
    let preface = [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &[0, 0, 0, 4, 0, 0, 0, 0, 0][..]].concat();
    for hello in [Vec::new(), preface] {
        let mut stream = tokio::net::TcpStream::connect(dp.addr).await?;
        stream.write_all(&hello).await?;
        let started = std::time::Instant::now();
        let mut buffer = vec![0u8; 1024];
        // Read until the gateway closes (an HTTP/2 server answers the preface with frames first).
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an idle connection stayed open");
        assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());
    }
    Ok(())
}
