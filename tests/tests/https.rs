//! HTTPS for API clients end to end, as an operator sets it up and as real TLS clients see it:
//! hostnames with certificates on the control plane, a data plane with `--listen-https`, and
//! curl (`--resolve`, `--cacert`) and a Rust client against it. SNI exact, wildcard, default,
//! none and unknown; HTTP/2 over TLS; a Host that does not belong to the connection (421); a
//! hostname's certificate rotated under open connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::Thumbprint;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::pki::{Issued, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, Management};
use gatehouse_tests::requests::upload;

const ACK: Duration = Duration::from_secs(15);

struct World {
    dir: tempfile::TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    cp: ControlPlane,
    m: Management,
    _backend: EchoBackend,
    dp: DataPlane,
}

impl World {
    fn https(&self) -> SocketAddr {
        self.dp.https.expect("started with --listen-https")
    }

    /// curl against the data plane's HTTPS port with `name` resolved to it; returns (exit
    /// status, stdout, stderr).
    fn curl(&self, name: &str, path: &str, extra: &[&str]) -> (i32, String, String) {
        let port = self.https().port();
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10", "--resolve"])
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&self.ca_file)
            .args(extra)
            .arg(format!("https://{name}:{port}{path}"))
            .output()
            .expect("curl runs (Debian's curl package)");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn put_hostname(&mut self, name: &str, certificate: &str, default: bool) -> anyhow::Result<u64> {
        let request = pb::PutHostnameRequest {
            name: name.into(),
            certificate_id: certificate.into(),
            default,
            ..Default::default()
        };
        Ok(self.m.put_hostname(request).await?.into_inner().revision)
    }

    async fn applied(&mut self, revision: u64) -> anyhow::Result<()> {
        wait_acked(&mut self.m, &[&self.dp.name], revision, ACK).await.map(|_| ())
    }
}

async fn upload_server(m: &mut Management, id: &str, issued: &Issued) -> anyhow::Result<()> {
    m.upload_certificate(upload(id, issued.pfx("pw")?, "pw")).await?;
    Ok(())
}

/// Hostnames `api.example.test` (exact), `*.apps.example.test` (wildcard) and
/// `default.example.test` (the default), each with its own certificate from one test CA;
/// APIs `exact` (on api.example.test), `wild` (on *.apps.example.test) and `any` (no hostname).
async fn world() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("HTTPS Front CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    upload_server(&mut m, "api-cert", &ca.server(&["api.example.test"])?).await?;
    upload_server(&mut m, "apps-cert", &ca.server(&["*.apps.example.test"])?).await?;
    upload_server(&mut m, "default-cert", &ca.server(&["default.example.test"])?).await?;
    // The backend asks the gateway for a client certificate.
    m.upload_certificate(upload("client", ca.client("gateway")?.pfx("pw")?, "pw")).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let dp =
        DataPlane::start_with(&cp.access(), "dp-https", Some(&ca_file), &["--listen-https", "127.0.0.1:0"]).await?;
    let mut world = World { dir, ca, ca_file, cp, m, _backend: backend, dp };
    world.put_hostname("api.example.test", "api-cert", false).await?;
    world.put_hostname("*.apps.example.test", "apps-cert", false).await?;
    world.put_hostname("default.example.test", "default-cert", true).await?;
    let backend_url = world._backend.url();
    let mut revision = 0;
    for (id, path, base, hosts) in [
        ("exact", "/svc", "/exact", vec!["api.example.test"]),
        ("wild", "/svc", "/wild", vec!["*.apps.example.test"]),
        ("any", "/other", "/any", vec![]),
    ] {
        let request = pb::PutApiRequest {
            id: id.into(),
            path: path.into(),
            service_url: format!("{backend_url}{base}"),
            hostnames: hosts.into_iter().map(String::from).collect(),
            credentials: Some(pb::CredentialBinding {
                kind: Some(pb::credential_binding::Kind::CertificateId("client".into())),
            }),
            ..Default::default()
        };
        revision = world.m.put_api(request).await?.into_inner().revision;
    }
    world.applied(revision).await?;
    Ok(world)
}

/// The subject CN of the certificate curl was shown (from `-v`).
fn served_subject(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| l.trim().strip_prefix("*  subject: ").map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_exact_then_wildcard_then_default() -> anyhow::Result<()> {
    let w = world().await?;
    // Exact: curl checks the certificate against the name, so success means the right one.
    let (code, body, stderr) = w.curl("api.example.test", "/svc/1", &[]);
    assert_eq!(code, 0, "{stderr}");
    let seen: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(seen["path"], "/exact/1");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    // Wildcard, one label.
    let (code, body, stderr) = w.curl("a.apps.example.test", "/svc/2", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body)?["path"], "/wild/2");
    // Two labels under the wildcard: not covered, so the default certificate is shown.
    let (code, _, stderr) = w.curl("x.y.apps.example.test", "/other", &["-v", "--insecure"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(served_subject(&stderr).is_some_and(|s| s.contains("default.example.test")), "{stderr}");
    // No SNI at all (an IP address): the default, and an API on any host answers.
    let port = w.https().port();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "-v", "--insecure"])
        .arg(format!("https://127.0.0.1:{port}/other/3"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(served_subject(&stderr).is_some_and(|s| s.contains("default.example.test")), "{stderr}");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&output.stdout)?["path"], "/any/3");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_over_tls_and_a_misdirected_host_gets_421() -> anyhow::Result<()> {
    let w = world().await?;
    let (code, out, stderr) =
        w.curl("api.example.test", "/svc/h2", &["--http2", "-o", "/dev/null", "-w", "%{http_version}"]);
    assert_eq!((code, out.as_str()), (0, "2"), "{stderr}");
    // A connection made for api.example.test carrying a request for another hostname.
    let (code, out, stderr) = w.curl(
        "api.example.test",
        "/svc/x",
        &["-H", "Host: a.apps.example.test", "-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!((code, out.as_str()), (0, "421"), "{stderr}");
    let (code, out, _) = w.curl(
        "api.example.test",
        "/svc/x",
        &["--http2", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: a.apps.example.test"],
    );
    assert_eq!((code, out.as_str()), (0, "421"));
    // An API on a hostname is an HTTPS API: over plaintext it does not answer at all.
    let plain = gatehouse_tests::http_client::raw_request(
        w.dp.addr,
        b"GET /svc/x HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(plain.status, Some(404), "{}", plain.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_default_an_unknown_name_is_refused_in_the_handshake() -> anyhow::Result<()> {
    let mut w = world().await?;
    let revision =
        w.m.delete_hostname(pb::DeleteHostnameRequest { name: "default.example.test".into(), ..Default::default() })
            .await?
            .into_inner()
            .revision;
    w.applied(revision).await?;
    let (code, _, stderr) = w.curl("unknown.example.test", "/other", &["--insecure"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unrecognized name"), "{stderr}");
    let metrics = gatehouse_tests::http_client::HttpClient::default().get(&w.dp.admin_url("/metrics")).await?.body;
    let failures = gatehouse_tests::http_client::sample(
        &metrics,
        r#"gatehouse_client_tls_handshake_failures_total{reason="unrecognized_name"}"#,
    );
    assert!(failures.unwrap_or(0.0) >= 1.0, "{metrics}");
    Ok(())
}

/// A TLS client connection to the data plane for `name` that stays open: what the handshake
/// showed (the server certificate's thumbprint) and an HTTP/1.1 sender on it.
async fn open(
    w: &World,
    name: &str,
) -> anyhow::Result<(Thumbprint, hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(w.ca.der()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(gatehouse_shared::crypto::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(w.https()).await?;
    let server_name = rustls_pki_types::ServerName::try_from(name.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(server_name, tcp).await?;
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).expect("a server certificate").to_vec();
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok((Thumbprint::of_der(&leaf), sender))
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    host: &str,
) -> anyhow::Result<u16> {
    let request = hyper::Request::get("/svc/rotating").header("host", host).body(http_body_util::Empty::new())?;
    let response = sender.send_request(request).await?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_hostname_certificate_applies_to_the_next_handshake_and_open_connections_go_on() -> anyhow::Result<()>
{
    let w = world().await?;
    let (before, mut open_connection) = open(&w, "api.example.test").await?;
    assert_eq!(get(&mut open_connection, "api.example.test").await?, 200);

    // Rotate by re-uploading under the same id, through gatehousectl, and wait for the fleet.
    let next = w.ca.server(&["api.example.test"])?;
    let pfx = w.dir.path().join("api-next.pfx");
    std::fs::write(&pfx, next.pfx("pw")?)?;
    let password = w.dir.path().join("pw.txt");
    std::fs::write(&password, "pw")?;
    let out = gatehouse_tests::process::ctl(
        &w.cp.access(),
        &[
            "--wait",
            "cert",
            "upload",
            "api-cert",
            "--pfx",
            pfx.to_str().unwrap(),
            "--password-file",
            password.to_str().unwrap(),
        ],
        None,
    )
    .await?;
    assert!(out.success, "{}", out.stderr);

    // The open connection keeps working; a new one is shown the new certificate.
    assert_eq!(get(&mut open_connection, "api.example.test").await?, 200);
    let (after, mut fresh) = open(&w, "api.example.test").await?;
    assert_ne!(after, before);
    assert_eq!(after, next.thumbprint);
    assert_eq!(get(&mut fresh, "api.example.test").await?, 200);
    Ok(())
}
