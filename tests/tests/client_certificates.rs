//! Client certificates the way APIM checks them, end to end through the real binaries: a
//! hostname that asks for client certificates (`negotiate_client_certificate`, client CA
//! `partners-ca` uploaded with its CRL), an API whose policy holds
//! `<validate-client-certificate>` with an identity and `<forward-client-certificate>`, and real
//! TLS clients (tokio-rustls, and curl with `--cert`/`--key`) presenting certificates that are
//! missing, expired, untrusted, revoked, of another identity, or good. Refusals come before any
//! byte reaches the backend; the backend sees the forwarded thumbprint and subject of the good
//! one, never a copy the client forged.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::{Issued, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, Management, ctl};
use gatehouse_tests::requests::upload;
use tonic::Code;

const ACK: Duration = Duration::from_secs(15);
const HOST: &str = "api.example.test";

const POLICY: &str = r#"<policies>
    <inbound>
        <base />
        <validate-client-certificate validate-revocation="true" validate-trust="true" validate-not-before="true" validate-not-after="true" ignore-error="false">
            <identities>
                <identity issuer-certificate-id="partners-ca" subject="CN=orders-client, O=Gatehouse Test" />
            </identities>
        </validate-client-certificate>
        <forward-client-certificate thumbprint-header="X-Client-Thumbprint" subject-header="X-Client-Subject" />
        <authentication-certificate certificate-id="gateway" />
    </inbound>
</policies>"#;

/// Serial numbers of the partners' client certificates; the CRL revokes `REVOKED`.
const OK: u64 = 1001;
const REVOKED: u64 = 1002;

struct World {
    dir: tempfile::TempDir,
    /// Issues the hostname's and the backend's server certificates.
    front: TestCa,
    front_file: PathBuf,
    /// The client CA of the hostname.
    partners: TestCa,
    cp: ControlPlane,
    m: Management,
    backend: EchoBackend,
    dp: DataPlane,
}

/// What a client got: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn world() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let front = TestCa::new("HTTPS Front CA")?;
    let front_file = front.write_pem(dir.path(), "front.pem")?;
    let partners = TestCa::new("Partners CA")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("api-cert", front.server(&[HOST])?.pfx("pw")?, "pw")).await?;
    m.upload_certificate(upload("gateway", front.client("gateway")?.pfx("pw")?, "pw")).await?;
    m.upload_ca_certificate(pb::UploadCaCertificateRequest {
        id: "partners-ca".into(),
        certificate: partners.pem().into_bytes(),
        crl: partners.crl_pem(&[REVOKED])?.into_bytes(),
        ..Default::default()
    })
    .await?;
    m.put_hostname(pb::PutHostnameRequest {
        name: HOST.into(),
        certificate_id: "api-cert".into(),
        negotiate_client_certificate: true,
        client_ca_ids: vec!["partners-ca".into()],
        ..Default::default()
    })
    .await?;
    let backend = EchoBackend::start(&front.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    m.put_api(pb::PutApiRequest {
        id: "orders".into(),
        path: "/orders".into(),
        service_url: format!("{}/svc", backend.url()),
        hostnames: vec![HOST.into()],
        ..Default::default()
    })
    .await?;
    let revision = m
        .set_api_policy(pb::SetApiPolicyRequest { api_id: "orders".into(), xml: POLICY.into(), ..Default::default() })
        .await?
        .into_inner()
        .revision;
    let dp =
        DataPlane::start_with(&cp.access(), "dp-mtls", Some(&front_file), &["--listen-https", "127.0.0.1:0"]).await?;
    wait_acked(&mut m, &[&dp.name], revision, ACK).await?;
    Ok(World { dir, front, front_file, partners, cp, m, backend, dp })
}

impl World {
    /// GET `path` over HTTPS (SNI and Host `api.example.test`) with tokio-rustls, presenting
    /// `certificate` if given, and sending forged copies of the forwarded headers.
    async fn get(&self, certificate: Option<&Issued>, path: &str) -> anyhow::Result<Answer> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_pki_types::CertificateDer::from(self.front.der()))?;
        let builder = rustls::ClientConfig::builder_with_provider(gatehouse_shared::crypto::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match certificate {
            None => builder.with_no_client_auth(),
            Some(issued) => builder.with_client_auth_cert(
                vec![rustls_pki_types::CertificateDer::from(issued.der.clone())],
                rustls_pki_types::PrivateKeyDer::Pkcs8(issued.key_der.clone().into()),
            )?,
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.dp.https.expect("--listen-https")).await?;
        let name = rustls_pki_types::ServerName::try_from(HOST)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header("host", HOST)
            .header("x-client-thumbprint", "FORGED")
            .header("x-client-subject", "CN=admin")
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
        Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() })
    }

    /// curl with `--resolve`, `--cacert`, and `--cert`/`--key` when `certificate` is given;
    /// returns status and body.
    fn curl(&self, certificate: Option<&Issued>, path: &str) -> anyhow::Result<Answer> {
        let port = self.dp.https.expect("--listen-https").port();
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "10", "--resolve"])
            .arg(format!("{HOST}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&self.front_file)
            .args(["-H", "X-Client-Thumbprint: FORGED", "-w", "\n%{http_code}"]);
        if let Some(issued) = certificate {
            let cert = self.dir.path().join(format!("{}.pem", issued.thumbprint));
            let key = self.dir.path().join(format!("{}.key", issued.thumbprint));
            std::fs::write(&cert, &issued.pem)?;
            std::fs::write(&key, &issued.key_pem)?;
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let output = command.arg(format!("https://{HOST}:{port}{path}")).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        Ok(Answer { status: status.trim().parse()?, body: body.to_string() })
    }

    async fn metric(&self, rule: &str) -> anyhow::Result<f64> {
        let metrics = HttpClient::default().get(&self.dp.admin_url("/metrics")).await?.body;
        let series =
            format!(r#"gatehouse_client_certificate_failures_total{{api="orders",rule="{rule}",outcome="refused"}}"#);
        Ok(sample(&metrics, &series).unwrap_or(0.0))
    }
}

/// A refusal: the status, problem+json naming the rule and the API, and nothing of the trust
/// configuration (no CA name, id or thumbprint).
fn refused(answer: &Answer, status: u16, rule: &str, w: &World) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let problem = answer.json();
    assert_eq!(problem["detail"], rule, "{}", answer.body);
    assert_eq!(problem["api"], "orders");
    for secret in ["Partners CA", "partners-ca", &gatehouse_shared::Thumbprint::of_der(&w.partners.der()).to_string()] {
        assert!(!answer.body.contains(secret), "the body names the trust configuration: {}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_checked_before_the_backend_and_the_good_one_is_forwarded() -> anyhow::Result<()> {
    let w = world().await?;
    let stranger = TestCa::new("Stranger CA")?;
    let ok = w.partners.client_with_serial("orders-client", OK)?;
    let revoked = w.partners.client_with_serial("orders-client", REVOKED)?;
    let expired = w.partners.expired_client("orders-client")?;
    let untrusted = stranger.client_with_serial("orders-client", OK)?;
    let other = w.partners.client_with_serial("billing-client", 1003)?;

    // Refused, each naming its rule; the backend hears of none of them.
    refused(
        &w.get(None, "/orders/1").await?,
        401,
        "this API requires a client certificate, and none was presented",
        &w,
    );
    refused(&w.get(Some(&expired), "/orders/1").await?, 403, "the certificate expired", &w);
    refused(&w.get(Some(&untrusted), "/orders/1").await?, 403, "the certificate is not trusted", &w);
    refused(&w.get(Some(&revoked), "/orders/1").await?, 403, "the certificate was revoked", &w);
    refused(&w.get(Some(&other), "/orders/1").await?, 403, "no identity matched", &w);
    assert_eq!(w.backend.requests(), 0, "a refused request reached the backend");
    for rule in ["missing", "expired", "not_trusted", "revoked", "no_identity_matched"] {
        assert!(w.metric(rule).await? >= 1.0, "{rule} not counted");
    }

    // The good one: the backend sees its thumbprint and subject, not the forged copies.
    let answer = w.get(Some(&ok), "/orders/1").await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = answer.json();
    assert_eq!(seen["path"], "/svc/1");
    assert_eq!(seen["headers"]["x-client-thumbprint"], ok.thumbprint.as_str());
    assert_eq!(seen["headers"]["x-client-subject"], "O=Gatehouse Test,CN=orders-client");

    // curl, the same way.
    let answer = w.curl(Some(&ok), "/orders/2")?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["headers"]["x-client-thumbprint"], ok.thumbprint.as_str());
    refused(&w.curl(Some(&revoked), "/orders/2")?, 403, "the certificate was revoked", &w);
    refused(&w.curl(Some(&untrusted), "/orders/2")?, 403, "the certificate is not trusted", &w);
    refused(&w.curl(None, "/orders/2")?, 401, "this API requires a client certificate, and none was presented", &w);

    // An API on a hostname is not there over plaintext (which never carries a certificate).
    let plain = format!("http://{}/orders/3", w.dp.addr);
    let request = hyper::Request::get(&plain).header("host", HOST).body(http_body_util::Full::default())?;
    let answer = HttpClient::default().send(request).await?;
    assert_eq!(answer.status.as_u16(), 404, "{}", answer.body);
    assert_eq!(w.backend.requests(), 2, "only the good certificate's requests reached the backend");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crl_uploaded_beside_its_ca_revokes_on_the_next_request_and_none_fails_closed() -> anyhow::Result<()> {
    let mut w = world().await?;
    let ok = w.partners.client_with_serial("orders-client", OK)?;
    assert_eq!(w.get(Some(&ok), "/orders/1").await?.status, 200);

    // A new CRL for the stored CA (no certificate given), through gatehousectl --wait.
    let crl = w.dir.path().join("partners.crl");
    std::fs::write(&crl, w.partners.crl_pem(&[REVOKED, OK])?)?;
    let access = w.cp.access();
    let out = ctl(&access, &["--wait", "ca", "upload", "partners-ca", "--crl", crl.to_str().unwrap()], None).await?;
    assert!(out.success, "{}", out.stderr);
    refused(&w.get(Some(&ok), "/orders/1").await?, 403, "the certificate was revoked", &w);
    let shown = ctl(&access, &["ca", "list", "-o", "json"], None).await?;
    let list: serde_json::Value = serde_json::from_str(&shown.stdout)?;
    assert_eq!(list[0]["crl_entries"], 2, "{}", shown.stdout);
    assert!(list[0]["crl_next_update"].is_string(), "{}", shown.stdout);
    assert_eq!(list[0]["used_by"], serde_json::json!(["orders"]), "the policy names it as issuer");

    // A CRL of another CA is refused, saying why.
    let foreign = w.dir.path().join("foreign.crl");
    std::fs::write(&foreign, TestCa::new("Other CA")?.crl_pem(&[])?)?;
    let out = ctl(&access, &["ca", "upload", "partners-ca", "--crl", foreign.to_str().unwrap()], None).await?;
    assert!(!out.success && out.stderr.contains("not by this CA"), "{}", out.stderr);

    // The CA again without a CRL: revocation cannot be checked, so every certificate fails.
    let revision =
        w.m.upload_ca_certificate(pb::UploadCaCertificateRequest {
            id: "partners-ca".into(),
            certificate: w.partners.pem().into_bytes(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut w.m, &[&w.dp.name], revision, ACK).await?;
    let fresh = w.partners.client_with_serial("orders-client", 2001)?;
    refused(
        &w.get(Some(&fresh), "/orders/1").await?,
        403,
        "no CRL is known for the issuer, so revocation cannot be checked",
        &w,
    );
    assert!(w.metric("no_crl").await? >= 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_refusals_say_where() -> anyhow::Result<()> {
    let mut w = world().await?;
    // An issuer-certificate-id naming no uploaded CA certificate: refused at its <identity>.
    let xml = POLICY.replace("issuer-certificate-id=\"partners-ca\"", "issuer-certificate-id=\"nobody\"");
    let status =
        w.m.set_api_policy(pb::SetApiPolicyRequest { api_id: "orders".into(), xml, ..Default::default() })
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("policy XML, line 6, column 17, <identity>:")
            && status.message().contains("'nobody'"),
        "{}",
        status.message()
    );
    // The CA an identity names cannot be deleted while it does.
    let status =
        w.m.delete_ca_certificate(pb::DeleteCaCertificateRequest { id: "partners-ca".into(), ..Default::default() })
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    // The policy reads back as it was set (every attribute explicit).
    let read = w.m.get_api_policy(pb::GetApiPolicyRequest { api_id: "orders".into() }).await?.into_inner().xml;
    assert!(
        read.contains(
            "<identity subject=\"CN=orders-client, O=Gatehouse Test\" issuer-certificate-id=\"partners-ca\" />"
        ),
        "{read}"
    );
    assert!(read.contains("<forward-client-certificate thumbprint-header=\"x-client-thumbprint\""), "{read}");
    Ok(())
}
