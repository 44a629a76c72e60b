//! Operator story steps 1-3 through a generated gRPC client against the real `gatehouse-cp`.

use gatehouse_proto::v1::{self as pb, credential_binding::Kind};
use gatehouse_tests::process::ControlPlane;
use gatehouse_tests::requests::upload;
use gatehouse_tests::{fixture, fixture_thumbprint, pki};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_pfx_uploads_and_lists_with_its_openssl_thumbprint() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let cases = [
        (
            "modern",
            "rsa-modern.pfx",
            "modern-pass",
            "rsa.sha1",
            "CN=rsa-client, O=Gatehouse Fixtures, C=US",
            "RSA 2048",
        ),
        (
            "legacy",
            "rsa-legacy.pfx",
            "legacy-pass",
            "rsa.sha1",
            "CN=rsa-client, O=Gatehouse Fixtures, C=US",
            "RSA 2048",
        ),
        ("ec", "ec-p256.pfx", "ec-pass", "ec.sha1", "CN=ec-client, O=Gatehouse Fixtures, C=US", "EC P-256"),
        ("empty", "empty-password.pfx", "", "ec.sha1", "CN=ec-client, O=Gatehouse Fixtures, C=US", "EC P-256"),
        (
            "chained",
            "chain.pfx",
            "chain-pass",
            "chain.sha1",
            "CN=chained-client, O=Gatehouse Fixtures, C=US",
            "RSA 2048",
        ),
    ];
    for (id, file, password, sha1, subject, key) in cases {
        let cert = m.upload_certificate(upload(id, fixture(file), password)).await?.into_inner();
        assert_eq!(cert.thumbprint, fixture_thumbprint(sha1), "{file}");
        assert_eq!(cert.subject, subject, "{file}");
        assert_eq!(cert.key_algorithm, key, "{file}");
        assert!(cert.not_after.unwrap().seconds > cert.not_before.unwrap().seconds);
    }
    let listed = m.list_certificates(pb::ListCertificatesRequest {}).await?.into_inner();
    let ids: Vec<&str> = listed.certificates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["chained", "ec", "empty", "legacy", "modern"]);
    let chained = m.get_certificate(pb::GetCertificateRequest { id: "chained".into() }).await?.into_inner();
    assert_eq!(chained.chain_length, 2);
    assert_eq!(chained.issuer, "CN=Fixture Intermediate CA, O=Gatehouse Fixtures, C=US");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_uploads_say_why_and_store_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;

    let ca = pki::TestCa::new("Refusal CA")?;
    let a = ca.client("a")?;
    let b = ca.client("b")?;
    let mismatched = pki::pfx(&[&a.der], &b.key_der, "pw")?;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("wrong password (OpenSSL 3)", fixture("rsa-modern.pfx"), "wrong", "password is incorrect"),
        ("wrong password (legacy)", fixture("rsa-legacy.pfx"), "wrong", "password is incorrect"),
        ("not PKCS#12", fixture("root-ca.pem"), "x", "not a PKCS#12"),
        ("no private key", fixture("no-key.pfx"), "nokey-pass", "no private key"),
        ("key of another certificate", mismatched, "pw", "does not belong"),
    ];
    for (case, pfx, password, expected) in cases {
        let status = m.upload_certificate(upload("refused", pfx, password)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(status.message().contains(expected), "{case}: {}", status.message());
    }
    let listed = m.list_certificates(pb::ListCertificatesRequest {}).await?.into_inner();
    assert!(listed.certificates.is_empty(), "a refused upload stored something: {listed:?}");
    assert_eq!(listed.revision, 0, "a refused upload created a revision");

    // A wrong password on re-upload leaves the stored certificate as it was.
    m.upload_certificate(upload("kept", fixture("ec-p256.pfx"), "ec-pass")).await?;
    let status = m.upload_certificate(upload("kept", fixture("rsa-modern.pfx"), "wrong")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let kept = m.get_certificate(pb::GetCertificateRequest { id: "kept".into() }).await?.into_inner();
    assert_eq!(kept.thumbprint, fixture_thumbprint("ec.sha1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn apis_bindings_and_deletion_rules() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("client", fixture("rsa-modern.pfx"), "modern-pass")).await?;
    let put = |id: &str, path: &str, credentials: Option<Kind>| pb::PutApiRequest {
        id: id.into(),
        display_name: String::new(),
        path: path.into(),
        service_url: "https://localhost:9".into(),
        credentials: credentials.map(|k| pb::CredentialBinding { kind: Some(k) }),
        ..Default::default()
    };

    let orders = m.put_api(put("orders", "/orders/", Some(Kind::CertificateId("client".into())))).await?.into_inner();
    assert_eq!(orders.path, "/orders");
    assert_eq!(orders.client_certificate_thumbprint, fixture_thumbprint("rsa.sha1"));
    let thumbprint = fixture_thumbprint("rsa.sha1").to_lowercase();
    m.put_api(put("billing", "/billing", Some(Kind::Thumbprint(thumbprint)))).await?;

    let status = m.put_api(put("orders2", "/orders", None)).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("'orders'"), "{}", status.message());

    let status = m.put_api(put("x", "/x", Some(Kind::CertificateId("missing".into())))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let mut bad_url = put("y", "/y", None);
    bad_url.service_url = "ftp://nope".into();
    assert_eq!(m.put_api(bad_url).await.unwrap_err().code(), Code::InvalidArgument);

    let cert = m.get_certificate(pb::GetCertificateRequest { id: "client".into() }).await?.into_inner();
    assert_eq!(cert.used_by, ["billing", "orders"]);

    let status = m
        .delete_certificate(pb::DeleteCertificateRequest { id: "client".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("billing") && status.message().contains("orders"), "{}", status.message());
    // The same, as structured details a client reads without parsing English.
    use tonic_types::StatusExt as _;
    let failure = status.get_details_precondition_failure().expect("google.rpc.PreconditionFailure details");
    let subjects: Vec<&str> = failure.violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["apis/billing", "apis/orders"]);
    assert!(failure.violations.iter().all(|v| v.r#type == "IN_USE"));

    // PutApi without credentials keeps the binding it has.
    let kept = m.put_api(put("orders", "/orders", None)).await?.into_inner();
    assert!(kept.credentials.is_some());

    for api in ["orders", "billing"] {
        m.set_api_credentials(pb::SetApiCredentialsRequest {
            api_id: api.into(),
            credential: Some(pb::set_api_credentials_request::Credential::None(())),
            ..Default::default()
        })
        .await?;
    }
    m.delete_certificate(pb::DeleteCertificateRequest { id: "client".into(), ..Default::default() }).await?;
    let status = m
        .delete_certificate(pb::DeleteCertificateRequest { id: "client".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = m.delete_api(pb::DeleteApiRequest { id: "nope".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("client", fixture("ec-p256.pfx"), "ec-pass")).await?;
    let api = m
        .put_api(pb::PutApiRequest {
            id: "orders".into(),
            display_name: "Orders".into(),
            path: "/orders".into(),
            service_url: "https://localhost:9".into(),
            credentials: Some(pb::CredentialBinding { kind: Some(Kind::CertificateId("client".into())) }),
            ..Default::default()
        })
        .await?
        .into_inner();
    // No pause: the kill lands right after the acknowledgement.
    cp.process.kill().await;
    drop(m);

    let cp = ControlPlane::start(dir.path()).await?;
    let mut m = cp.management().await?;
    let apis = m.list_apis(pb::ListApisRequest {}).await?.into_inner();
    assert_eq!(apis.revision, api.revision);
    assert_eq!(apis.apis.len(), 1);
    assert_eq!(apis.apis[0].client_certificate_thumbprint, fixture_thumbprint("ec.sha1"));
    let certs = m.list_certificates(pb::ListCertificatesRequest {}).await?.into_inner();
    assert_eq!(certs.certificates[0].used_by, ["orders"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_database_stops_the_start_and_says_how_to_recover() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("cp");
    let mut cp = ControlPlane::start(&data).await?;
    let token_before = std::fs::read(data.join("operator.token"))?;
    cp.management().await?.put_api(gatehouse_tests::requests::api("a", "/a", "https://b", None)).await?;
    cp.process.kill().await;
    // Damage the log after its header: sled would recover by dropping what follows.
    let db = data.join("sled/db");
    let mut bytes = std::fs::read(&db)?;
    for byte in bytes.iter_mut().skip(100) {
        *byte = 0x5a;
    }
    std::fs::write(&db, bytes)?;

    let log = dir.path().join("restart.log");
    let restarted = ControlPlane::start_logging(&data, "127.0.0.1:0".parse()?, &[], Some(&log)).await;
    assert!(restarted.is_err(), "a control plane that lost its APIs started");
    let stderr = std::fs::read_to_string(&log)?;
    assert!(stderr.contains("lost writes") && stderr.contains("restore DATA_DIR/sled from a backup"), "{stderr}");
    assert_eq!(std::fs::read(data.join("operator.token"))?, token_before, "the operator token was replaced");
    Ok(())
}
