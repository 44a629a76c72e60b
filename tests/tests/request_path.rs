//! What an API client can and cannot make the gateway forward: request paths normalized before
//! routing (never a backend path outside the API's service URL, never another API than the
//! normalized path selects), identity headers the client may not assert, and broken request
//! bodies blamed on the client. Over HTTP/1.1 (raw bytes, so no client library tidies the path)
//! and h2c; the backend reports the raw request target it received.

use std::time::Duration;

use bytes::Bytes;
use gatehouse_proto::v1::credential_binding::Kind;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, raw_get, raw_request, raw_request_then_eof, sample};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::{api, upload};
use http_body_util::{BodyExt, Full};

const ACK: Duration = Duration::from_secs(15);

struct World {
    _dir: tempfile::TempDir,
    _cp: ControlPlane,
    backend: EchoBackend,
    dp: DataPlane,
}

/// `orders` (/orders → backend /v1/orders, with a client certificate), `admin`
/// (/admin → backend /internal) and a catch-all `open` (/ → backend /open) on one backend.
async fn world(name: &str) -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Request Path CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("orders-client", ca.client("orders-client")?.pfx("pw")?, "pw")).await?;
    let orders = Some(Kind::CertificateId("orders-client".into()));
    m.put_api(api("orders", "/orders", &format!("{}/v1/orders", backend.url()), orders)).await?;
    let admin = Some(Kind::CertificateId("orders-client".into()));
    m.put_api(api("admin", "/admin", &format!("{}/internal", backend.url()), admin)).await?;
    // A catch-all on the same backend: what a request must not reach a protected path through.
    let open = Some(Kind::CertificateId("orders-client".into()));
    let revision = m.put_api(api("open", "/", &format!("{}/open", backend.url()), open)).await?.into_inner().revision;
    let dp = DataPlane::start(&cp.access(), name, Some(&ca_file)).await?;
    wait_acked(&mut m, &[name], revision, ACK).await?;
    Ok(World { _dir: dir, _cp: cp, backend, dp })
}

/// Paths that normalize safely, and the request target the backend must receive.
const FORWARDED: &[(&str, &str)] = &[
    ("/orders/42", "/v1/orders/42"),
    ("/orders/a/./b", "/v1/orders/a/b"),
    ("/orders/a/../b", "/v1/orders/b"),
    ("/orders/a/%2e%2E/b", "/v1/orders/b"),
    ("/orders/a/.%2E/b", "/v1/orders/b"),
    ("/orders//42", "/v1/orders/42"),
    ("/orders///a//b/", "/v1/orders/a/b/"),
    ("/orders/%7Eitem/%41", "/v1/orders/~item/A"),
    ("/orders/caf%c3%a9?q=%2e%2e/x", "/v1/orders/caf%C3%A9?q=%2e%2e/x"),
    ("/orders/x/..", "/v1/orders/"),
    ("/orders/a%20b", "/v1/orders/a%20b"),
    ("//admin/status", "/internal/status"),
    ("/%61dmin/status", "/internal/status"),
    // Prefixes match ignoring ASCII case (as APIM, and backends like IIS): /ADMIN gets admin's rules.
    ("/ADMIN/status", "/internal/status"),
];

/// Paths that cannot be normalized safely: 400, and the backend sees nothing.
const REFUSED: &[&str] = &[
    "/orders/../admin",
    "/orders/%2e%2e/admin",
    "/orders/%2E%2e/%2e%2e/etc/passwd",
    "/orders/..%2Fadmin",
    "/orders/..%2fadmin",
    "/orders/a%2Fb",
    "/orders/a%5Cb",
    "/orders/..%5Cadmin",
    "/orders/..\\admin",
    "/orders/a%00b",
    "/orders/a%0d%0aX-Injected:%201",
    "/orders/..;/admin",
    "/orders/.;/x",
    "/orders/%c0%ae%c0%ae/admin",
    "/orders/%zz",
    "/../orders/1",
    "/admin/../orders/1",
    "/x/../orders/1",
    "/orders/a/../../admin",
    // Path parameters on an API's segment, which servlet backends drop: /admin;x is /admin there.
    "/admin;x/status",
];

#[tokio::test(flavor = "multi_thread")]
async fn http1_paths_are_normalized_or_refused() -> anyhow::Result<()> {
    let w = world("dp-paths-h1").await?;
    for (target, expected) in FORWARDED {
        let reply = raw_request(w.dp.addr, &raw_get(target, &[])).await?;
        assert_eq!(reply.status, Some(200), "{target}: {}", reply.body);
        assert_eq!(reply.json()["path"], *expected, "{target}");
    }
    let seen = w.backend.requests();
    for target in REFUSED {
        let reply = raw_request(w.dp.addr, &raw_get(target, &[])).await?;
        assert_eq!(reply.status, Some(400), "{target}: {}", reply.body);
    }
    assert_eq!(w.backend.requests(), seen, "a refused path reached the backend");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_paths_are_normalized_or_refused() -> anyhow::Result<()> {
    let w = world("dp-paths-h2c").await?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let get = |target: &str| {
        let request = hyper::Request::get(w.dp.url(target)).body(Full::new(Bytes::new()));
        let client = client.clone();
        async move {
            let response = client.request(request?).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()))
        }
    };
    // The URL type refuses a literal '\' and raw control characters before anything is sent.
    for (target, expected) in FORWARDED {
        let (status, body) = get(target).await?;
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(body["path"], *expected, "{target}");
    }
    let seen = w.backend.requests();
    for target in REFUSED.iter().filter(|t| !t.contains('\\')) {
        let (status, body) = get(target).await?;
        assert_eq!(status, 400, "{target}: {body}");
    }
    assert_eq!(w.backend.requests(), seen, "a refused path reached the backend");
    Ok(())
}

/// Identity headers a client sends, and a value the backend must never see.
const CLAIMED: &[&str] = &[
    "X-Forwarded-For: 203.0.113.7",
    "X-Forwarded-Host: evil.test",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Port: 443",
    "X-Forwarded-Client-Cert: Hash=forged",
    "Forwarded: for=203.0.113.7;proto=https",
    "X-Real-IP: 203.0.113.7",
    "X-Client-Cert: forged",
    "X-Client-Verify: SUCCESS",
    "X-SSL-Client-Verify: SUCCESS",
    "X-SSL-Client-S-DN: CN=admin",
    "X-ARR-ClientCert: forged",
    "Client-Cert: :Zm9yZ2Vk:",
    "Client-Cert-Chain: :Zm9yZ2Vk:",
    "SSL-Client-Verify: SUCCESS",
    "True-Client-IP: 203.0.113.7",
    "X-Client-Thumbprint: forged",
    "X-Original-URL: /admin",
];

fn assert_no_claimed_identity(seen: &serde_json::Value, expected_host: &str) {
    let headers = seen["headers"].as_object().expect("the backend reports headers");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], expected_host);
    for claimed in CLAIMED {
        let name = claimed.split(':').next().unwrap().to_ascii_lowercase();
        if !["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].contains(&name.as_str()) {
            assert!(!headers.contains_key(&name), "{name} passed through: {headers:?}");
        }
    }
    for (name, value) in headers {
        let value = value.as_str().unwrap_or_default();
        assert!(!value.contains("forged") && !value.contains("203.0.113.7"), "{name}: {value}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_from_clients_never_reach_the_backend() -> anyhow::Result<()> {
    let w = world("dp-identity").await?;
    let reply = raw_request(w.dp.addr, &raw_get("/orders/1", CLAIMED)).await?;
    assert_eq!(reply.status, Some(200), "{}", reply.body);
    assert_no_claimed_identity(&reply.json(), "gateway.test");

    // The same over h2c, where the host travels as :authority.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::get(w.dp.url("/orders/1"));
    for claimed in CLAIMED {
        let (name, value) = claimed.split_once(": ").unwrap();
        request = request.header(name, value);
    }
    let response = client.request(request.body(Full::new(Bytes::new()))?).await?;
    assert_eq!(response.status(), 200);
    let seen: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    assert_no_claimed_identity(&seen, &w.dp.addr.to_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_request_body_is_the_clients_error() -> anyhow::Result<()> {
    let w = world("dp-bodies").await?;
    let malformed_chunks = b"POST /orders/1 HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\nnot-a-chunk-size\r\n\r\n";
    let cut_short = b"POST /orders/1 HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 100\r\n\r\nonly ten b";
    for request in [&malformed_chunks[..], &cut_short[..]] {
        let reply = raw_request_then_eof(w.dp.addr, request).await?;
        // A 400, or a closed connection: never a 5xx that blames the backend.
        assert!(matches!(reply.status, None | Some(400)), "{:?}: {}", reply.status, reply.body);
    }
    let metrics = HttpClient::default().get(&w.dp.admin_url("/metrics")).await?.body;
    let server_errors = sample(&metrics, r#"gatehouse_requests_total{api="orders",class="5xx"}"#);
    assert_eq!(server_errors.unwrap_or(0.0), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, r#"gatehouse_requests_total{api="orders",class="4xx"}"#), Some(2.0), "{metrics}");
    assert_eq!(sample(&metrics, r#"gatehouse_backend_tls_failures_total{api="orders",reason="client_body"}"#), None);

    // An h2c client that resets its stream mid-body.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::StreamBody<tokio_stream::Iter<std::vec::IntoIter<BodyFrame>>>>();
    let frames: Vec<BodyFrame> = vec![
        Ok(hyper::body::Frame::data(Bytes::from_static(b"partial"))),
        Err(std::io::Error::other("client gave up")),
    ];
    let request = hyper::Request::post(w.dp.url("/orders/1"))
        .body(http_body_util::StreamBody::new(tokio_stream::iter(frames)))?;
    if let Ok(response) = client.request(request).await {
        assert_eq!(response.status(), 400);
    }
    gatehouse_tests::eventually("the reset stream is counted as a client error", Duration::from_secs(10), || async {
        let metrics = HttpClient::default().get(&w.dp.admin_url("/metrics")).await?.body;
        Ok(sample(&metrics, r#"gatehouse_requests_total{api="orders",class="4xx"}"#) == Some(3.0))
    })
    .await?;
    let metrics = HttpClient::default().get(&w.dp.admin_url("/metrics")).await?.body;
    let server_errors = sample(&metrics, r#"gatehouse_requests_total{api="orders",class="5xx"}"#);
    assert_eq!(server_errors.unwrap_or(0.0), 0.0, "{metrics}");
    Ok(())
}

type BodyFrame = Result<hyper::body::Frame<Bytes>, std::io::Error>;
