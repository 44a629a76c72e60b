//! What operators run Gatehouse with: Prometheus metrics on both planes, request ids, problem
//! bodies, graceful shutdown, shell completions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::credential_binding::Kind;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, upload};
use http_body_util::Full;
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_traffic_failures_and_fleet_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Metrics CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let dp = DataPlane::start(&cp.access(), "dp-metrics", Some(&ca_file)).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    m.upload_certificate(upload("a", ca.client("a")?.pfx("pw")?, "pw")).await?;
    m.put_api(api("ok", "/ok", &backend.url(), Some(Kind::CertificateId("a".into())))).await?;
    let rev = m.put_api(api("bad", "/bad", &backend.url(), None)).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    let _ = m.get_certificate(pb::GetCertificateRequest { id: "missing".into() }).await;

    for _ in 0..3 {
        assert_eq!(http.get(&dp.url("/ok")).await?.status, StatusCode::OK);
    }
    assert_eq!(http.get(&dp.url("/bad")).await?.status, StatusCode::BAD_GATEWAY);
    assert_eq!(http.get(&dp.url("/nowhere")).await?.status, StatusCode::NOT_FOUND);

    let text = http.get(&dp.admin_url("/metrics")).await?.body;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(value(r#"gatehouse_requests_total{api="ok",class="2xx"}"#), 3.0);
    assert_eq!(value(r#"gatehouse_requests_total{api="bad",class="5xx"}"#), 1.0);
    assert_eq!(value(r#"gatehouse_requests_total{api="-",class="4xx"}"#), 1.0);
    assert_eq!(value(r#"gatehouse_request_duration_seconds_count{api="ok"}"#), 3.0);
    assert_eq!(value(r#"gatehouse_backend_tls_failures_total{api="bad",reason="client_certificate_rejected"}"#), 1.0);
    assert!(value("gatehouse_upstream_connections_opened_total") >= 1.0);
    assert!(value("gatehouse_upstream_connections_open") >= 1.0);
    assert_eq!(value("gatehouse_config_revision"), rev as f64);
    assert_eq!(value("gatehouse_control_plane_connected"), 1.0);
    assert!((0.0..60.0).contains(&value("gatehouse_config_seconds_since_sync")));
    let expiry = text
        .lines()
        .find(|l| l.starts_with("gatehouse_client_certificate_expiry_days{certificate_id=\"a\""))
        .expect("expiry");
    assert!(expiry.rsplit(' ').next().unwrap().parse::<f64>()? > 300.0, "{expiry}");

    // gRPC calls to methods no service has: one series, not one per made-up path.
    let ca_file = cp.access().ca_file.expect("the control plane's CA");
    for method in ["made.up.Service/One", "made.up.Service/Two"] {
        let called = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--http2", "--cacert"])
            .arg(&ca_file)
            .args(["-X", "POST", "-H", "content-type: application/grpc", "--data-binary", ""])
            .arg(format!("https://127.0.0.1:{}/{method}", cp.addr.port()))
            .status()?;
        assert!(called.success(), "curl {method}: {called}");
    }
    let admin = format!("http://{}", cp.admin);
    let text = http.get(&format!("{admin}/metrics")).await?.body;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(value(r#"gatehouse_cp_grpc_requests_total{method="gatehouse.v1.Management/PutApi",code="Ok"}"#), 2.0);
    assert_eq!(
        value(r#"gatehouse_cp_grpc_requests_total{method="gatehouse.v1.Management/GetCertificate",code="NotFound"}"#),
        1.0
    );
    assert_eq!(value(r#"gatehouse_cp_grpc_requests_total{method="unknown",code="Unimplemented"}"#), 2.0);
    assert!(!text.contains("made.up"), "a made-up method became a series:\n{text}");
    assert_eq!(value(r#"gatehouse_cp_gateways{state="synced"}"#), 1.0);
    assert_eq!(value(r#"gatehouse_cp_gateways{state="disconnected"}"#), 0.0);
    assert_eq!(value("gatehouse_cp_config_revision"), rev as f64);
    assert!(value("gatehouse_cp_revision_ack_seconds_count") >= 1.0);
    assert!(text.contains(r#"gatehouse_cp_certificate_expiry_days{id="a""#), "{text}");
    assert_eq!(http.get(&format!("{admin}/healthz")).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_travel_and_errors_are_problem_documents() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Request id CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-ids", Some(&ca_file), &["--access-log"]).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("a", ca.client("a")?.pfx("pw")?, "pw")).await?;
    let rev =
        m.put_api(api("ok", "/ok", &backend.url(), Some(Kind::CertificateId("a".into())))).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    let http = HttpClient::default();

    let request =
        hyper::Request::get(dp.url("/ok")).header("x-request-id", "trace-me-42").body(Full::new(Bytes::new()))?;
    let reply = http.send(request).await?;
    assert_eq!(reply.headers["x-request-id"], "trace-me-42");
    assert_eq!(reply.json()["headers"]["x-request-id"], "trace-me-42", "forwarded to the backend");

    let reply = http.get(&dp.url("/ok")).await?;
    let generated = reply.headers["x-request-id"].to_str()?.to_string();
    assert!(generated.len() >= 16);
    assert_eq!(reply.json()["headers"]["x-request-id"], generated.as_str());

    let reply = http.get(&dp.url("/missing")).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let problem = reply.json();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "No API");
    assert_eq!(problem["request_id"], reply.headers["x-request-id"].to_str()?);
    assert_ne!(problem["request_id"], generated.as_str(), "each request gets its own id");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    // A plain HTTP backend that answers after 1.5 s.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let slow_addr = slow.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = slow.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"slow but done",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let mut dp = DataPlane::start(&cp.access(), "dp-term", None).await?;
    let mut m = cp.management().await?;
    let rev = m.put_api(api("slow", "/slow", &format!("http://{slow_addr}"), None)).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;

    let url = dp.url("/slow");
    let in_flight = tokio::spawn(async move { HttpClient::default().get(&url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    dp.process.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::net::TcpStream::connect(dp.addr).await;
    assert!(refused.is_err(), "new connections must be refused during shutdown");
    let reply = in_flight.await??;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "slow but done");
    let status = tokio::time::timeout(Duration::from_secs(10), dp.process.wait()).await??;
    assert_eq!(status.code(), Some(0));

    // The control plane, with a data plane's stream open, stops cleanly too.
    let _other = DataPlane::start(&cp.access(), "dp-still-connected", None).await?;
    wait_acked(&mut m, &["dp-still-connected"], rev, ACK).await?;
    let mut cp = cp;
    let started = Instant::now();
    cp.process.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), cp.process.wait()).await??;
    assert_eq!(status.code(), Some(0), "after {:?}", started.elapsed());
    let again = ControlPlane::start(&cp.data_dir).await?;
    let apis = again.management().await?.list_apis(pb::ListApisRequest {}).await?.into_inner();
    assert_eq!(apis.revision, rev);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_completions_and_help_examples() -> anyhow::Result<()> {
    let out = ctl(&gatehouse_tests::process::Access::nowhere(1), &["completions", "bash"], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("gatehousectl") && out.stdout.contains("complete"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    for command in [
        &["cert", "upload", "--help"][..],
        &["api", "policy", "--help"],
        &["token", "create", "--help"],
        &["gateway", "list", "--help"],
    ] {
        let out = ctl(&gatehouse_tests::process::Access::nowhere(1), command, None).await?;
        assert!(out.success && out.stdout.contains("Example"), "{command:?}: {}", out.stdout);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_and_the_access_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_logging(
        &dir.path().join("cp"),
        "127.0.0.1:0".parse()?,
        &["--log-format", "json"],
        Some(&dir.path().join("cp.log")),
    )
    .await?;
    let dp_log = dir.path().join("dp.log");
    let dp = DataPlane::start_logging(
        &cp.access(),
        "dp-json",
        None,
        &["--log-format", "json", "--access-log"],
        Some(&dp_log),
    )
    .await?;
    let mut m = cp.management().await?;
    let rev = m.put_api(api("orders", "/orders", "http://127.0.0.1:9", None)).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    let request = hyper::Request::get(dp.url("/orders/7?x=1"))
        .header("x-request-id", "json-log-1")
        .body(Full::new(Bytes::new()))?;
    assert_eq!(HttpClient::default().send(request).await?.status, StatusCode::BAD_GATEWAY);

    // Every line of both logs is a JSON object; the access line says what happened.
    let json_lines = || -> anyhow::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(&dp_log)?;
        Ok(text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect())
    };
    let is_access = |line: &serde_json::Value| line["target"] == "gatehouse::access";
    gatehouse_tests::eventually("an access log line", ACK, || async { Ok(json_lines()?.iter().any(is_access)) })
        .await?;
    let access = json_lines()?.into_iter().find(is_access).expect("an access line");
    let fields = &access["fields"];
    assert_eq!(fields["api"], "orders", "{access}");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], "/orders/7");
    assert_eq!(fields["status"], 502);
    assert_eq!(fields["request_id"], "json-log-1");
    assert_eq!(fields["backend"], "127.0.0.1:9");
    assert!(fields["latency_ms"].as_f64().is_some(), "{access}");
    let cp_text = std::fs::read_to_string(dir.path().join("cp.log"))?;
    let audit = cp_text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .find(|l| l["target"] == "gatehouse::audit" && l["fields"]["rpc"] == "PutApi")
        .expect("an audit line for PutApi");
    assert_eq!(audit["fields"]["who"], "admin", "{audit}");
    assert_eq!(audit["fields"]["resource"], "orders");
    assert_eq!(audit["fields"]["revision"], rev);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_cannot_be_forged_and_audit_lines_say_who_and_from_where() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("cp.log");
    let cp = ControlPlane::start_logging(&dir.path().join("cp"), "127.0.0.1:0".parse()?, &[], Some(&log)).await?;
    let mut m = cp.management().await?;
    let forged = "x\n2026-01-01T00:00:00Z  INFO gatehouse::audit: management write who=\"admin\" \u{1b}[2J";
    assert!(m.put_api(api(forged, "/a", "https://b", None)).await.is_err());
    m.put_api(api("fine", "/fine", "https://b", None)).await?;

    gatehouse_tests::eventually("two audit lines", ACK, || async {
        Ok(std::fs::read_to_string(&log)?.matches("gatehouse::audit").count() >= 2)
    })
    .await?;
    let text = std::fs::read_to_string(&log)?;
    // The caller's value stays on its own line, escaped; nothing starts a line it wrote.
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("2026-01-01")), "{text}");
    let refused = text.lines().find(|l| l.contains("management write refused")).expect("a refusal line");
    assert!(refused.contains("gatehouse::audit") && refused.contains(r"x\n2026"), "{refused}");
    let written =
        text.lines().find(|l| l.contains("management write") && l.contains("resource=fine")).expect("a write line");
    assert!(written.contains("peer=127.0.0.1:") && written.contains("who=admin"), "{written}");
    Ok(())
}
