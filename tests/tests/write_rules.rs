//! Writes an operator can predict: `api put` replaces and says what it removed, `UpdateApi`
//! changes only the masked fields, `--wait` on policy writes; service URLs, paths and ids that
//! are refused before they could mislead; secrets that stay write-only through any sequence of
//! policy writes; and the APIM forms migrated policies carry (forward-request timeout, Host).

use std::time::{Duration, Instant};

use gatehouse_proto::v1::{self as pb, credential_binding::Kind};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, set_policy, upload};
use hyper::StatusCode;
use tonic::Code;

const ACK: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn put_replaces_and_says_so_update_changes_only_the_mask() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let ca = TestCa::new("Write Rules CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let access = cp.access();
    let out = ctl(&access, &["ca", "upload", "test-ca", "--file", ca_file.to_str().unwrap()], None).await?;
    assert!(out.success, "{}", out.stderr);
    let put = ["api", "put", "orders", "--path", "/orders", "--service-url", "https://backend.internal:8443"];
    let out = ctl(&access, &[&put[..], &["--ca", "test-ca", "--display-name", "Orders"]].concat(), None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(!out.stderr.contains("replaced"), "a create removes nothing: {}", out.stderr);

    // Re-running put to change the display name drops the CA trust: it says so.
    let out = ctl(&access, &[&put[..], &["--display-name", "Orders v2"]].concat(), None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stderr.contains("removed: CA certificates test-ca"), "{}", out.stderr);

    // update changes the named field only.
    let out = ctl(&access, &["api", "update", "orders", "--ca", "test-ca"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&access, &["api", "update", "orders", "--display-name", "Orders v3"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let mut m = cp.management().await?;
    let shown = m.get_api(pb::GetApiRequest { id: "orders".into() }).await?.into_inner();
    assert_eq!(shown.display_name, "Orders v3");
    assert_eq!(shown.backend_tls.unwrap().ca_certificate_ids, ["test-ca"]);
    let out = ctl(&access, &["api", "update", "orders"], None).await?;
    assert!(!out.success && out.stderr.contains("nothing to update"), "{}", out.stderr);

    // The RPC with an explicit mask, and a mask naming what is not a field.
    let patch = pb::Api {
        id: "orders".into(),
        path: "/orders-v3".into(),
        display_name: "ignored".into(),
        ..Default::default()
    };
    let updated = m
        .update_api(pb::UpdateApiRequest {
            api: Some(patch.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["path".into()] }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((updated.path.as_str(), updated.display_name.as_str()), ("/orders-v3", "Orders v3"));
    let bad = m
        .update_api(pb::UpdateApiRequest {
            api: Some(patch.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["revision".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = m
        .update_api(pb::UpdateApiRequest {
            api: Some(pb::Api { id: "nope".into(), ..patch }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["path".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // The etag still guards it.
    let stale = m
        .update_api(pb::UpdateApiRequest {
            api: Some(pb::Api { id: "orders".into(), display_name: "x".into(), ..Default::default() }),
            if_match: shown.etag,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_works_on_policy_and_ca_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let _dp = DataPlane::start(&cp.access(), "dp-wait-policy", None).await?;
    let mut m = cp.management().await?;
    m.put_api(api("a", "/a", "https://127.0.0.1:9", None)).await?;
    let policy = dir.path().join("policy.xml");
    std::fs::write(
        &policy,
        r#"<policies><inbound><set-header name="X-Env" exists-action="override"><value>prod</value></set-header></inbound></policies>"#,
    )?;
    let out = ctl(&cp.access(), &["--wait", "api", "policy", "a", "--set", policy.to_str().unwrap()], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("dp-wait-policy"), "the rollout is reported: {}", out.stdout);

    let ca_file = TestCa::new("Wait CA")?.write_pem(dir.path(), "ca.pem")?;
    for args in
        [&["ca", "upload", "wait-ca", "--file", ca_file.to_str().unwrap()][..], &["ca", "delete", "wait-ca"][..]]
    {
        let out = ctl(&cp.access(), &[&["--wait"][..], args].concat(), None).await?;
        assert!(out.success, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("dp-wait-policy"), "{args:?}: the rollout is reported: {}", out.stdout);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn service_urls_paths_and_ids_that_could_mislead_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", TestCa::new("Ids CA")?.client("c")?.pfx("pw")?, "pw")).await?;
    let refused = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().to_string()
    };
    let message = refused(m.put_api(api("a", "/a", "https://svc:hunter2@backend:8443", None)).await.unwrap_err());
    assert!(message.contains("authentication-basic") && !message.contains("hunter2"), "{message}");
    let cert = Some(Kind::CertificateId("c".into()));
    let message = refused(m.put_api(api("a", "/a", "http://backend:8080", cert.clone())).await.unwrap_err());
    assert!(message.contains("could never be presented"), "{message}");
    for url in ["https://backend:0", "https://backend:70000", "https://backend:8443/a/../b"] {
        refused(m.put_api(api("a", "/a", url, None)).await.unwrap_err());
    }
    for path in ["/a/%2e%2e/b", "/a%2Fb", "/a%00", "/a//b", "/a/./b", "/%61"] {
        refused(m.put_api(api("a", path, "https://backend", None)).await.unwrap_err());
    }
    for id in [".", ".."] {
        refused(m.put_api(api(id, "/a", "https://backend", None)).await.unwrap_err());
    }
    let long = format!("https://backend/{}/../x", "x".repeat(5000));
    let message = refused(m.put_api(api("a", "/a", &long, None)).await.unwrap_err());
    assert!(message.len() < 400, "{} characters", message.len());
    // A binding cannot be added later over http:// either.
    m.put_api(api("plain", "/plain", "http://backend:8080", None)).await?;
    let credential = pb::set_api_credentials_request::Credential::CertificateId("c".into());
    refused(m.set_api_credentials(gatehouse_tests::requests::bind("plain", credential)).await.unwrap_err());
    let xml = r#"<policies><inbound><authentication-certificate certificate-id="c" /></inbound></policies>"#;
    let message = refused(m.set_api_policy(set_policy("plain", xml)).await.unwrap_err());
    assert!(message.contains("line 1, column 20") && message.contains("http://"), "{message}");
    // Every policy refusal says where, the certificate the store cannot find included.
    let missing = xml.replace("certificate-id=\"c\"", "certificate-id=\"missing\"");
    let message = refused(m.set_api_policy(set_policy("plain", &missing)).await.unwrap_err());
    assert!(message.contains("line 1, column 20") && message.contains("missing"), "{message}");
    assert!(m.list_apis(pb::ListApisRequest {}).await?.into_inner().apis.iter().all(|a| a.id == "plain"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sequence_of_policy_writes_reads_a_secret_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    m.put_api(api("a", "/a", "https://backend", None)).await?;
    let secret = r#"<policies><inbound>
        <authentication-basic username="svc" password="basic-pw-1" />
        <set-header name="X-Key" exists-action="override" secret="true"><value>key-value-1</value></set-header>
    </inbound></policies>"#;
    m.set_api_policy(set_policy("a", secret)).await?;
    let read = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "a".into() }).await?.into_inner().xml;
    assert!(!read.contains("basic-pw-1") && !read.contains("key-value-1"), "{read}");

    // The mask sent back without secret="true" would make the stored value readable: refused.
    let unmarked = read.replace(r#" secret="true""#, "");
    let status = m.set_api_policy(set_policy("a", &unmarked)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("line"), "the refusal says where: {}", status.message());
    // Another exists-action keeps it secret; a username change keeps the password masked.
    let changed = read.replace("override", "skip").replace(r#"username="svc""#, r#"username="svc2""#);
    m.set_api_policy(set_policy("a", &changed)).await?;
    let read = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "a".into() }).await?.into_inner().xml;
    assert!(!read.contains("basic-pw-1") && !read.contains("key-value-1"), "{read}");
    assert!(read.contains("svc2"), "{read}");
    // Expressions, and named values that do not exist, are refused: never forwarded literally.
    for (value, says) in [
        ("{{backend-key}}", "no such named value"),
        ("@(context.Request.Headers.GetValueOrDefault(\"k\"))", "not supported"),
        ("  @{ return \"x\"; }", "not supported"),
    ] {
        let xml = format!(
            r#"<policies><inbound><set-header name="X-K" exists-action="override"><value>{value}</value></set-header></inbound></policies>"#
        );
        let status = m.set_api_policy(set_policy("a", &xml)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{value}: {status:?}");
        assert!(status.message().contains(says), "{}", status.message());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn migrated_apim_policies_set_the_backend_timeout_and_host() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let ca = TestCa::new("Apim CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let dp = DataPlane::start(&cp.access(), "dp-apim", Some(&ca_file)).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("c", ca.client("c")?.pfx("pw")?, "pw")).await?;
    m.put_api(api("echo", "/echo", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    let xml = r#"<policies>
      <inbound>
        <base />
        <authentication-certificate certificate-id="c" />
        <set-header name="Host" exists-action="override"><value>orders.example.com</value></set-header>
      </inbound>
      <backend><forward-request timeout="20" /></backend>
    </policies>"#;
    let revision = m.set_api_policy(set_policy("echo", xml)).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-apim"], revision, ACK).await?;
    let reply = HttpClient::default().get(&dp.url("/echo/x")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["headers"]["host"], "orders.example.com");
    let read = m.get_api_policy(pb::GetApiPolicyRequest { api_id: "echo".into() }).await?.into_inner().xml;
    assert!(read.contains(r#"timeout="20""#), "{read}");

    // A backend that never answers: the policy's 1 s, not the data plane's 60 s default.
    let silent = gatehouse_tests::backend::SilentBackend::start().await?;
    let silent_addr = silent.addr;
    m.put_api(api("slow", "/slow", &format!("http://{silent_addr}"), None)).await?;
    let xml = r#"<policies><backend><forward-request timeout="1" /></backend></policies>"#;
    let revision = m.set_api_policy(set_policy("slow", xml)).await?.into_inner().revision;
    wait_acked(&mut m, &["dp-apim"], revision, ACK).await?;
    let started = Instant::now();
    let reply = HttpClient::default().get(&dp.url("/slow")).await?;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // Without the policy's forward-request: refused as "do not forward", not silently sent.
    let xml = r#"<policies><backend><set-header name="X" exists-action="override"><value>1</value></set-header></backend></policies>"#;
    assert_eq!(m.set_api_policy(set_policy("slow", xml)).await.unwrap_err().code(), Code::InvalidArgument);
    Ok(())
}
