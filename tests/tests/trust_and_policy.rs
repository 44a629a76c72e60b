//! Backend trust, policy XML, rotation, etags and expiry, end to end through real sockets.

use std::time::Duration;

use gatehouse_proto::v1::{self as pb, credential_binding::Kind, set_api_credentials_request::Credential};
use gatehouse_tests::backend::{BackendOptions, ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::{self, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, bind, set_policy, upload};
use hyper::StatusCode;
use tonic::Code;

const ACK: Duration = Duration::from_secs(15);

fn tls(chain: bool, name: bool, cas: &[&str], system: bool) -> Option<pb::BackendTls> {
    Some(pb::BackendTls {
        validate_certificate_chain: Some(chain),
        validate_certificate_name: Some(name),
        ca_certificate_ids: cas.iter().map(|s| s.to_string()).collect(),
        trust_system_roots: Some(system),
    })
}

/// A control plane and one data plane that trusts nothing beyond the system roots.
async fn fleet(name: &str) -> anyhow::Result<(tempfile::TempDir, ControlPlane, DataPlane)> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let dp = DataPlane::start(&cp.access(), name, None).await?;
    Ok((dir, cp, dp))
}

async fn status_of(http: &HttpClient, dp: &DataPlane, path: &str) -> anyhow::Result<(StatusCode, String)> {
    let reply = http.get(&dp.url(path)).await?;
    Ok((reply.status, reply.body))
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_trust_follows_each_apis_settings() -> anyhow::Result<()> {
    let (_dir, cp, dp) = fleet("dp-trust").await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();

    let private_ca = TestCa::new("Private Backend CA")?;
    let private = EchoBackend::start(&private_ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let self_signed = EchoBackend::start(&pki::self_signed_server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let wrong_name = EchoBackend::start(&private_ca.server(&["other.example"])?, ClientAuth::AnyCertificate).await?;
    let impostor_key = private_ca.server(&["unrelated"])?;
    let impostor = EchoBackend::start_with(
        &pki::self_signed_server(&["localhost"])?,
        BackendOptions { signing_key: Some(impostor_key.key_der.clone()), ..BackendOptions::default() },
    )
    .await?;
    m.upload_certificate(upload("client", private_ca.client("gw")?.pfx("pw")?, "pw")).await?;
    let client = || Some(Kind::CertificateId("client".into()));

    // The CA: PEM accepted; a leaf certificate refused as not a CA.
    let status = m
        .upload_ca_certificate(pb::UploadCaCertificateRequest {
            id: "leaf".into(),
            certificate: impostor_key.pem.clone().into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("not a CA certificate"), "{}", status.message());

    // Before the CA is uploaded and referenced: not trusted.
    let mut put = api("private", "/private", &private.url(), client());
    let rev = m.put_api(put.clone()).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    let (status, body) = status_of(&http, &dp, "/private").await?;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("not trusted"), "{body}");

    let ca = m
        .upload_ca_certificate(pb::UploadCaCertificateRequest {
            id: "private-ca".into(),
            certificate: private_ca.der(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(ca.subject, "CN=Private Backend CA, O=Gatehouse Test");
    // Only the API's CA, not the system roots.
    put.backend_tls = tls(true, true, &["private-ca"], false);
    let created = m.put_api(put).await?.into_inner();
    assert_eq!(created.backend_tls, tls(true, true, &["private-ca"], false), "effective trust is explicit");
    wait_acked(&mut m, &[&dp.name], created.revision, ACK).await?;
    assert_eq!(status_of(&http, &dp, "/private").await?.0, StatusCode::OK);

    // The CA is in use: deleting it names the API.
    let status = m
        .delete_ca_certificate(pb::DeleteCaCertificateRequest { id: "private-ca".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("private"), "{}", status.message());

    // Self-signed backend: refused with chain validation on, served with it off.
    m.put_api(api("selfsigned-on", "/ss-on", &self_signed.url(), client())).await?;
    let mut off = api("selfsigned-off", "/ss-off", &self_signed.url(), client());
    off.backend_tls = tls(false, true, &[], true);
    m.put_api(off).await?;
    // Certificate for another host: refused with name validation on, served with it off.
    let mut name_on = api("name-on", "/name-on", &wrong_name.url(), client());
    name_on.backend_tls = tls(true, true, &["private-ca"], true);
    m.put_api(name_on).await?;
    let mut name_off = api("name-off", "/name-off", &wrong_name.url(), client());
    name_off.backend_tls = tls(true, false, &["private-ca"], true);
    m.put_api(name_off).await?;
    // Chain validation off still checks that the backend holds its certificate's key.
    let mut fake = api("impostor", "/impostor", &impostor.url(), client());
    fake.backend_tls = tls(false, false, &[], true);
    let rev = m.put_api(fake).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;

    for (path, expected, words) in [
        ("/ss-on", StatusCode::BAD_GATEWAY, "not trusted"),
        ("/ss-off", StatusCode::OK, ""),
        ("/name-on", StatusCode::BAD_GATEWAY, "does not match its host name"),
        ("/name-off", StatusCode::OK, ""),
        ("/impostor", StatusCode::BAD_GATEWAY, "not trusted"),
    ] {
        let (status, body) = status_of(&http, &dp, path).await?;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body.contains(words), "{path}: {body}");
    }
    assert_eq!(impostor.requests(), 0, "a request reached a backend that does not hold its key");

    // An API that trusts no roots at all is refused up front.
    let mut none = api("none", "/none", &private.url(), None);
    none.backend_tls = tls(true, true, &[], false);
    assert_eq!(m.put_api(none).await.unwrap_err().code(), Code::InvalidArgument);
    Ok(())
}

const POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <authentication-certificate certificate-id="client" />
    <authentication-basic username="svc-orders" password="s3cr3t-basic" />
    <set-header name="X-Api-Key" exists-action="override" secret="true">
      <value>k3y-s3cr3t</value>
    </set-header>
    <set-header name="X-Env" exists-action="skip">
      <value>prod</value>
    </set-header>
    <set-header name="X-Client-Junk" exists-action="delete" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

#[tokio::test(flavor = "multi_thread")]
async fn policy_xml_sets_credentials_and_keeps_secrets_write_only() -> anyhow::Result<()> {
    let (_dir, cp, dp) = fleet("dp-policy").await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    let ca = TestCa::new("Policy CA")?;
    let basic_backend = EchoBackend::start_with(
        &pki::self_signed_server(&["localhost"])?,
        BackendOptions {
            required_header: Some(("authorization".into(), "Basic c3ZjLW9yZGVyczpzM2NyM3QtYmFzaWM=".into())),
            ..BackendOptions::default()
        },
    )
    .await?;
    let key_backend = EchoBackend::start_with(
        &pki::self_signed_server(&["localhost"])?,
        BackendOptions {
            required_header: Some(("x-api-key".into(), "k3y-s3cr3t".into())),
            ..BackendOptions::default()
        },
    )
    .await?;
    let client = ca.client("client")?;
    m.upload_certificate(upload("client", client.pfx("pw")?, "pw")).await?;
    for (id, backend) in [("basic", &basic_backend), ("key", &key_backend)] {
        let mut put = api(id, &format!("/{id}"), &backend.url(), Some(Kind::CertificateId("client".into())));
        put.backend_tls = tls(false, true, &[], true);
        m.put_api(put).await?;
    }
    // Without the policy's credentials the backends refuse.
    let rev = m.get_api(pb::GetApiRequest { id: "key".into() }).await?.into_inner().revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    assert_eq!(status_of(&http, &dp, "/basic").await?.0, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&http, &dp, "/key").await?.0, StatusCode::UNAUTHORIZED);

    let mut last = 0;
    for id in ["basic", "key"] {
        last = m.set_api_policy(set_policy(id, POLICY)).await?.into_inner().revision;
    }
    wait_acked(&mut m, &[&dp.name], last, ACK).await?;
    for path in ["/basic", "/key"] {
        let request = hyper::Request::get(dp.url(path))
            .header("x-env", "staging")
            .header("x-client-junk", "drop me")
            .body(http_body_util::Full::new(bytes::Bytes::new()))?;
        let reply = http.send(request).await?;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.presented(), Some(client.thumbprint.as_str()), "the policy's certificate binding took effect");
        let seen = reply.json();
        assert_eq!(seen["headers"]["x-env"], "staging", "exists-action=skip keeps the client's value");
        assert!(seen["headers"].get("x-client-junk").is_none(), "exists-action=delete removes the header");
    }

    // The binding set by policy shows through GetApi, and one set by SetApiCredentials shows in the policy.
    let key = m.get_api(pb::GetApiRequest { id: "key".into() }).await?.into_inner();
    assert_eq!(key.credentials.and_then(|c| c.kind), Some(Kind::CertificateId("client".into())));
    m.set_api_credentials(bind("key", Credential::Thumbprint(client.thumbprint.to_string()))).await?;
    let read = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "key".into() }).await?.into_inner();
    assert!(read.xml.contains(&format!("thumbprint=\"{}\"", client.thumbprint)), "{}", read.xml);

    // Secrets are masked on read, and writing the read policy back changes nothing.
    assert!(!read.xml.contains("s3cr3t-basic") && !read.xml.contains("k3y-s3cr3t"), "{}", read.xml);
    assert!(read.xml.contains(gatehouse_control_plane::policy::MASK));
    let again = m.set_api_policy(set_policy("key", &read.xml)).await?.into_inner();
    assert_eq!(again.revision, read.revision, "SetApiPolicy(GetApiPolicy()) created a revision");
    assert_eq!(again.xml, read.xml);
    assert_eq!(status_of(&http, &dp, "/key").await?.0, StatusCode::OK, "the stored secret survived the round trip");

    // Bad documents say where, and change nothing.
    let cases = [
        ("<policies><inbound>", Code::InvalidArgument, "line 1"),
        (
            "<policies>\n<inbound>\n<rewrite-uri template=\"/x\" />\n</inbound>\n</policies>",
            Code::InvalidArgument,
            "line 3, column 1, <rewrite-uri>",
        ),
        (
            "<policies><inbound><authentication-basic username=\"u\" /></inbound></policies>",
            Code::InvalidArgument,
            "'password' is required",
        ),
        (
            "<policies><inbound><authentication-certificate certificate-id=\"missing\" /></inbound></policies>",
            Code::InvalidArgument,
            "'missing' not found",
        ),
    ];
    for (xml, code, words) in cases {
        let status = m.set_api_policy(set_policy("key", xml)).await.unwrap_err();
        assert_eq!(status.code(), code, "{xml}");
        assert!(status.message().contains(words), "{xml}: {}", status.message());
    }
    let after = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "key".into() }).await?.into_inner();
    assert_eq!(after.revision, read.revision);

    // Through the CLI: read, edit, write back.
    let out = ctl(&cp.access(), &["api", "policy", "basic"], None).await?;
    assert!(out.success && out.stdout.contains("<authentication-basic username=\"svc-orders\""), "{}", out.stdout);
    let edited = dir_file(&_dir, "policy.xml", &out.stdout.replace("<value>prod</value>", "<value>test</value>"))?;
    let out = ctl(&cp.access(), &["api", "policy", "basic", "--set", &edited], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("<value>test</value>"));
    Ok(())
}

fn dir_file(dir: &tempfile::TempDir, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_etags_and_expiry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Rotation CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let dp = DataPlane::start(&cp.access(), "dp-rotation", Some(&ca_file)).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    let (old, new) = (ca.client("old")?, ca.client("new")?);

    let first = m.upload_certificate(upload("orders-client", old.pfx("pw")?, "pw")).await?.into_inner();
    m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("orders-client".into())))).await?;
    let pinned = m.upload_certificate(upload("pinned", ca.client("pinned")?.pfx("pw")?, "pw")).await?.into_inner();
    let rev = m
        .put_api(api("billing", "/billing", &backend.url(), Some(Kind::Thumbprint(pinned.thumbprint.clone()))))
        .await?
        .into_inner()
        .revision;
    wait_acked(&mut m, &[&dp.name], rev, ACK).await?;
    assert_eq!(http.get(&dp.url("/orders")).await?.presented(), Some(old.thumbprint.as_str()));

    // Etags: a stale if_match is refused and writes nothing; the current one works.
    let mut stale = upload("orders-client", new.pfx("pw")?, "pw");
    stale.if_match = "999".into();
    let status = m.upload_certificate(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("changed since it was read"), "{}", status.message());
    let mut current = upload("orders-client", new.pfx("pw")?, "pw");
    current.if_match = first.etag.clone();
    let rotated = m.upload_certificate(current).await?.into_inner();
    assert_ne!(rotated.etag, first.etag);
    assert_eq!(rotated.used_by, ["orders"]);

    // Rotation by re-upload: the API bound by id presents the new certificate.
    wait_acked(&mut m, &[&dp.name], rotated.revision, ACK).await?;
    for _ in 0..5 {
        assert_eq!(http.get(&dp.url("/orders")).await?.presented(), Some(new.thumbprint.as_str()));
    }
    // A pinned thumbprint cannot be rotated away.
    let status = m.upload_certificate(upload("pinned", ca.client("other")?.pfx("pw")?, "pw")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("billing"), "{}", status.message());

    let api_now = m.get_api(pb::GetApiRequest { id: "orders".into() }).await?.into_inner();
    let mut put = api("orders", "/orders-v2", &backend.url(), None);
    put.if_match = "0".into();
    assert_eq!(m.put_api(put.clone()).await.unwrap_err().code(), Code::FailedPrecondition);
    let mut delete = pb::DeleteApiRequest { id: "orders".into(), if_match: "0".into() };
    assert_eq!(m.delete_api(delete.clone()).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(
        m.get_api(pb::GetApiRequest { id: "orders".into() }).await?.into_inner().path,
        "/orders",
        "nothing written"
    );
    put.if_match = api_now.etag.clone();
    m.put_api(put).await?;
    delete.if_match = "*".into();
    m.delete_api(delete).await?;

    // Expiry: an expired certificate uploads (and says so) but binding it needs an override.
    let expired = ca.expired_client("expired")?;
    let uploaded = m.upload_certificate(upload("expired", expired.pfx("pw")?, "pw")).await?.into_inner();
    assert!(uploaded.expired);
    let status = m.set_api_credentials(bind("billing", Credential::CertificateId("expired".into()))).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("expired on 2021-01-01"), "{}", status.message());
    let mut forced = bind("billing", Credential::CertificateId("expired".into()));
    forced.allow_expired = true;
    m.set_api_credentials(forced).await?;

    let out = ctl(&cp.access(), &["cert", "list", "--expiring-within", "30d"], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("expired") && out.stdout.contains("EXPIRED"), "{}", out.stdout);
    assert!(!out.stdout.contains("orders-client"), "{}", out.stdout);
    let out = ctl(&cp.access(), &["api", "credentials", "billing", "--client-cert", "expired"], None).await?;
    assert!(!out.success && out.stderr.contains("--allow-expired"), "{}", out.stderr);
    let out =
        ctl(&cp.access(), &["api", "credentials", "billing", "--client-cert", "expired", "--allow-expired"], None)
            .await?;
    assert!(out.success, "{}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_sets_backend_trust() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let ca = TestCa::new("CLI CA")?;
    let der = dir.path().join("ca.der");
    std::fs::write(&der, ca.der())?;
    let server = cp.access();
    let out = ctl(&server, &["ca", "upload", "internal", "--file", der.to_str().unwrap()], None).await?;
    assert!(out.success, "{}", out.stderr);
    // The same shape as `cert upload` prints.
    assert!(out.stdout.starts_with("id:") && out.stdout.contains("thumbprint:"), "{}", out.stdout);
    let out = ctl(
        &server,
        &[
            "api",
            "put",
            "orders",
            "--path",
            "/orders",
            "--service-url",
            "https://localhost:1",
            "--ca",
            "internal",
            "--no-system-roots",
            "--no-verify-name",
            "-o",
            "json",
        ],
        None,
    )
    .await?;
    assert!(out.success, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(json["backend_tls"]["ca_certificate_ids"], serde_json::json!(["internal"]));
    assert_eq!(json["backend_tls"]["trust_system_roots"], false);
    assert_eq!(json["backend_tls"]["validate_certificate_name"], false);
    assert_eq!(json["backend_tls"]["validate_certificate_chain"], true);
    let out = ctl(&server, &["ca", "list"], None).await?;
    assert!(out.stdout.contains("internal") && out.stdout.contains("orders"), "{}", out.stdout);
    let out = ctl(&server, &["ca", "delete", "internal"], None).await?;
    assert!(!out.success && out.stderr.contains("orders"), "{}", out.stderr);
    Ok(())
}
