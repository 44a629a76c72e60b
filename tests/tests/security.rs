//! Security through real processes: tokens and roles, TLS, secrets sealed at rest, nothing
//! secret in any log line, and size limits.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_proto::v1::{self as pb, config_sync_client::ConfigSyncClient, credential_binding::Kind};
use gatehouse_shared::client::{BearerToken, endpoint};
use gatehouse_tests::backend::{BackendOptions, ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, set_policy, upload};
use http_body_util::Full;
use hyper::StatusCode;
use tonic::Code;

const ACK: Duration = Duration::from_secs(15);

async fn management_with(
    cp: &ControlPlane,
    token: Option<&str>,
) -> anyhow::Result<gatehouse_tests::process::Management> {
    let access = cp.access();
    let channel = endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;
    Ok(pb::management_client::ManagementClient::with_interceptor(channel, BearerToken::new(token)?))
}

async fn sync_with(cp: &ControlPlane, token: Option<&str>) -> anyhow::Result<tonic::Status> {
    let access = cp.access();
    let channel = endpoint(&access.url, access.ca_file.as_deref())?.connect().await?;
    let mut client = ConfigSyncClient::with_interceptor(channel, BearerToken::new(token)?);
    let hello = pb::SyncRequest {
        message: Some(pb::sync_request::Message::Hello(pb::Hello {
            name: "intruder".into(),
            protocol_version: gatehouse_proto::PROTOCOL_VERSION,
            ..Default::default()
        })),
    };
    match client.sync(tokio_stream::iter([hello])).await {
        Err(status) => Ok(status),
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) => Ok(status),
            Ok(_) => anyhow::bail!("the stream was accepted"),
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_roles_guard_every_rpc() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut operator = cp.management().await?;
    let gateway_token = std::fs::read_to_string(cp.access().gateway_token_file.unwrap())?;
    let operator_token = cp.access().operator_token()?;
    let before = operator.list_apis(pb::ListApisRequest {}).await?.into_inner().revision;

    let attempt = |token: Option<String>| {
        let cp = &cp;
        async move {
            let mut m = management_with(cp, token.as_deref()).await?;
            anyhow::Ok(m.put_api(api("sneaky", "/sneaky", "https://localhost:1", None)).await.unwrap_err())
        }
    };
    let status = attempt(None).await?;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("Bearer"), "{}", status.message());
    assert_eq!(attempt(Some("gh_not-a-real-token".into())).await?.code(), Code::Unauthenticated);
    let status = attempt(Some(gateway_token.clone())).await?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("gateway role"), "{}", status.message());

    // An operator token on the sync stream, or none, or a made-up one.
    assert_eq!(sync_with(&cp, Some(&operator_token)).await?.code(), Code::PermissionDenied);
    assert_eq!(sync_with(&cp, None).await?.code(), Code::Unauthenticated);
    assert_eq!(sync_with(&cp, Some("gh_nope")).await?.code(), Code::Unauthenticated);

    // A second operator, then revoked: refused afterwards.
    let created = operator
        .create_token(pb::CreateTokenRequest {
            name: "ci".into(),
            role: pb::Role::Operator as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut ci = management_with(&cp, Some(&created.secret)).await?;
    ci.list_apis(pb::ListApisRequest {}).await?;
    operator.revoke_token(pb::RevokeTokenRequest { name: "ci".into(), force: false }).await?;
    assert_eq!(ci.list_apis(pb::ListApisRequest {}).await.unwrap_err().code(), Code::Unauthenticated);

    // Nothing was written by any refused call.
    let after = operator.list_apis(pb::ListApisRequest {}).await?.into_inner();
    assert_eq!(after.revision, before);
    assert!(after.apis.is_empty());

    // token list never shows a secret.
    let out = ctl(&cp.access(), &["token", "list", "-o", "json"], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(
        !out.stdout.contains(&gateway_token) && !out.stdout.contains(&operator_token) && !out.stdout.contains("gh_")
    );
    assert!(out.stdout.contains("test-gateways") && out.stdout.contains("admin"), "{}", out.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_gateway_token_disconnects_its_data_plane() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let out = ctl(&cp.access(), &["token", "create", "edge-1", "--role", "gateway"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let token_file = dir.path().join("edge-1.token");
    std::fs::write(&token_file, &out.stdout)?;
    let mut access = cp.access();
    access.gateway_token_file = Some(token_file);
    let dp = DataPlane::start(&access, "edge-1", None).await?;
    let mut m = cp.management().await?;
    let rev = m.put_api(api("a", "/a", "http://127.0.0.1:9", None)).await?.into_inner().revision;
    wait_acked(&mut m, &["edge-1"], rev, ACK).await?;

    let out = ctl(&cp.access(), &["token", "revoke", "edge-1"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let http = HttpClient::default();
    gatehouse_tests::eventually("the revoked data plane is disconnected", ACK, || {
        let (mut m, http, dp) = (m.clone(), &http, &dp);
        async move {
            let list = m.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
            let ready = http.get(&dp.admin_url("/ready")).await?.json();
            Ok(!list.gateways[0].connected && ready["control_plane_connected"] == false)
        }
    })
    .await?;
    // It keeps serving what it has, and cannot come back with the revoked token.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!m.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner().gateways[0].connected);
    assert_eq!(http.get(&dp.url("/a")).await?.status, StatusCode::BAD_GATEWAY, "still routing /a");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_verified_and_plaintext_stays_on_loopback() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut access = cp.access();
    let out = ctl(&access, &["cert", "list"], None).await?;
    assert!(out.success, "with the right CA: {}", out.stderr);

    let other = TestCa::new("Some Other CA")?;
    access.ca_file = Some(other.write_pem(dir.path(), "other-ca.pem")?);
    let out = ctl(&access, &["cert", "list"], None).await?;
    assert!(!out.success);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the control plane") && out.stderr.contains("--ca-file"),
        "{}",
        out.stderr
    );

    // Plaintext: refused off loopback (nothing is bound), fine on loopback.
    let output = std::process::Command::new(gatehouse_tests::process::binary("gatehouse-cp")?)
        .args(["--data-dir", dir.path().join("plain").to_str().unwrap(), "--listen", "0.0.0.0:0", "--plaintext"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve plaintext on 0.0.0.0:0"), "{stderr}");
    let plain = ControlPlane::start_with(&dir.path().join("plain"), "127.0.0.1:0".parse()?, &["--plaintext"]).await?;
    assert!(plain.url().starts_with("http://"));
    let out = ctl(&plain.access(), &["cert", "list"], None).await?;
    assert!(out.success, "{}", out.stderr);
    Ok(())
}

/// Every file under `dir`, as bytes.
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_at_rest_or_in_any_log_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Secrets CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let (cp_log, dp_log) = (dir.path().join("cp.log"), dir.path().join("dp.log"));
    let cp_dir = dir.path().join("cp");
    let cp = ControlPlane::start_logging(&cp_dir, "127.0.0.1:0".parse()?, &["--log", "trace"], Some(&cp_log)).await?;
    let cache_dir = dir.path().join("cache");
    let dp = DataPlane::start_logging(
        &cp.access(),
        "dp-secrets",
        Some(&ca_file),
        &["--log", "trace", "--cache-dir", cache_dir.to_str().unwrap()],
        Some(&dp_log),
    )
    .await?;
    let backend = EchoBackend::start_with(
        &ca.server(&["localhost"])?,
        BackendOptions { client_auth: ClientAuth::TrustedBy(ca.der()), ..BackendOptions::default() },
    )
    .await?;
    let mut m = cp.management().await?;

    let password = "Pfx-Passw0rd-Never-Logged";
    let basic_password = "Basic-S3cret-Never-Logged";
    let header_secret = "Header-S3cret-Never-Logged";
    let client = ca.client("secrets-client")?;
    // A wrong password first: the refusal must not echo it either.
    let wrong = m.upload_certificate(upload("client", client.pfx(password)?, "Wrong-Passw0rd-Never-Logged")).await;
    assert_eq!(wrong.unwrap_err().code(), Code::InvalidArgument);
    m.upload_certificate(upload("client", client.pfx(password)?, password)).await?;
    m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("client".into())))).await?;
    let xml = format!(
        r#"<policies><inbound><authentication-certificate certificate-id="client" /><authentication-basic username="svc" password="{basic_password}" /><set-header name="X-Api-Key" secret="true"><value>{header_secret}</value></set-header></inbound></policies>"#
    );
    let rev = m.set_api_policy(set_policy("orders", &xml)).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-secrets"], rev, ACK).await?;
    let reply = HttpClient::default().get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["headers"]["x-api-key"], header_secret, "the backend does get the secret");
    // Responses never carry them back.
    let policy = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "orders".into() }).await?.into_inner();
    assert!(!policy.xml.contains(basic_password) && !policy.xml.contains(header_secret));
    let cache_file = cache_dir.join("last-known-good.bin");
    gatehouse_tests::eventually("the cache is written", ACK, || async { Ok(cache_file.exists()) }).await?;
    m.get_certificate(pb::GetCertificateRequest { id: "client".into() }).await?;
    drop(m);
    drop(dp);
    drop(cp);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let operator_token = std::fs::read_to_string(cp_dir.join("operator.token"))?.trim().to_string();
    let gateway_token = std::fs::read_to_string(cp_dir.join("gateway.token"))?.trim().to_string();
    let key_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&client.key_der)
    };
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("private key (DER)", client.key_der.clone()),
        // Past the PKCS#8 header that every P-256 key shares: the private scalar.
        ("private key (base64)", key_b64.as_bytes()[48..96].to_vec()),
        ("PFX password", password.as_bytes().to_vec()),
        ("wrong PFX password", b"Wrong-Passw0rd-Never-Logged".to_vec()),
        ("basic password", basic_password.as_bytes().to_vec()),
        ("secret header", header_secret.as_bytes().to_vec()),
    ];
    // At rest: the control plane's data dir (but its own token files) and the data plane's cache.
    for (path, bytes) in all_files(&cp_dir).into_iter().chain(all_files(&cache_dir)) {
        for (what, secret) in &secrets {
            assert!(!contains(&bytes, secret), "{what} found in {}", path.display());
        }
    }
    // In the logs, at trace level: nor tokens either.
    let logs = [std::fs::read(&cp_log)?, std::fs::read(&dp_log)?];
    assert!(logs[0].len() > 10_000 && logs[1].len() > 1_000, "trace logs were not written");
    let tokens: Vec<(&str, Vec<u8>)> =
        vec![("operator token", operator_token.into_bytes()), ("gateway token", gateway_token.into_bytes())];
    for (i, log) in logs.iter().enumerate() {
        for (what, secret) in secrets.iter().chain(tokens.iter()) {
            assert!(!contains(log, secret), "{what} found in the {} log", ["control plane", "data plane"][i]);
        }
    }
    // And the audit trail says who did what.
    let cp_text = String::from_utf8_lossy(&logs[0]);
    let audit =
        cp_text.lines().find(|l| l.contains("SetApiPolicy") && l.contains("management write")).expect("audit line");
    assert!(
        audit.contains("who=admin") && audit.contains("resource=orders") && audit.contains(&format!("revision={rev}")),
        "{audit}"
    );
    assert!(
        cp_text.lines().any(|l| l.contains("UploadCertificate") && l.contains("InvalidArgument")),
        "refusals are audited"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_have_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(
        dir.path(),
        "127.0.0.1:0".parse()?,
        &["--max-pfx-bytes", "600", "--max-policy-bytes", "200", "--max-message-bytes", "20000"],
    )
    .await?;
    let dp = DataPlane::start_with(&cp.access(), "dp-limits", None, &["--max-header-bytes", "8192"]).await?;
    let mut m = cp.management().await?;
    // A message over the gRPC limit: RESOURCE_EXHAUSTED, naming the limit.
    let status = m.upload_certificate(upload("huge", vec![0; 30_000], "pw")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("limit of 20000 bytes (--max-message-bytes)"), "{}", status.message());
    let ca = TestCa::new("Limits CA")?;
    let status = m.upload_certificate(upload("big", ca.client("big")?.pfx("pw")?, "pw")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("larger than the limit of 600 bytes"), "{}", status.message());
    let rev = m.put_api(api("a", "/a", "http://127.0.0.1:9", None)).await?.into_inner().revision;
    let status = m
        .set_api_policy(set_policy("a", &format!("<policies><!-- {} --></policies>", "x".repeat(300))))
        .await
        .unwrap_err();
    assert!(status.message().contains("larger than the limit of 200 bytes"), "{}", status.message());
    wait_acked(&mut m, &["dp-limits"], rev, ACK).await?;
    let request =
        hyper::Request::get(dp.url("/a")).header("x-big", "y".repeat(10_000)).body(Full::new(Bytes::new()))?;
    let reply = HttpClient::default().send(request).await?;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_finishes_its_tls_handshake_is_dropped() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(dir.path(), "127.0.0.1:0".parse()?, &["--tls-handshake-timeout", "1"]).await?;
    let mut silent = tokio::net::TcpStream::connect(cp.addr).await?;
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buffer)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "dropped after {:?}", started.elapsed());
    // The control plane still serves everyone else.
    assert!(cp.management().await?.list_apis(pb::ListApisRequest {}).await.is_ok());
    Ok(())
}
