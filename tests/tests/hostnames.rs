//! Hostnames as an operator manages them through `gatehousectl` and the gRPC API: put, list,
//! show and delete; the server certificate each needs (serverAuth, valid for the name); one
//! default at most; APIs that answer on hostnames, sharing a path across hosts; and the
//! refusals that name what is in the way (an API on a hostname, a hostname on a certificate).

use std::path::Path;

use gatehouse_proto::v1 as pb;
use gatehouse_tests::pki::{TestCa, pfx};
use gatehouse_tests::process::{Access, ControlPlane, CtlOutput, DataPlane, ctl};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tonic::Code;
use tonic_types::StatusExt as _;

/// Writes `pfx_bytes` (password "pw") and uploads it as certificate `id`.
async fn upload_cert(access: &Access, dir: &Path, id: &str, pfx_bytes: Vec<u8>) -> anyhow::Result<CtlOutput> {
    let file = dir.join(format!("{id}.pfx"));
    std::fs::write(&file, pfx_bytes)?;
    let password = dir.join("pw.txt");
    std::fs::write(&password, "pw")?;
    ctl(
        access,
        &["cert", "upload", id, "--pfx", file.to_str().unwrap(), "--password-file", password.to_str().unwrap()],
        None,
    )
    .await
}

/// A self-signed certificate (PFX, password "pw") for `names` that may only authenticate TLS
/// clients: the rule reads its extensions, not its issuer.
fn client_only_for(names: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    pfx(&[cert.der()], &key.serialize_der(), "pw")
}

fn json(out: &CtlOutput) -> serde_json::Value {
    assert!(out.success, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// A refusal: non-zero, one line on stderr that contains `says`.
fn refused(out: &CtlOutput, says: &str) {
    assert!(!out.success, "expected a refusal: {}", out.stdout);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(says), "expected '{says}' in: {}", out.stderr);
}

fn subjects(status: &tonic::Status) -> Vec<String> {
    let failure = status.get_details_precondition_failure().expect("google.rpc.PreconditionFailure details");
    failure.violations.into_iter().map(|v| v.subject).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostnames_through_the_cli_with_the_rules_they_keep() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    let ca = TestCa::new("Hostnames CA")?;
    let server = ca.server(&["api.example.com", "*.example.com"])?;
    assert!(upload_cert(&access, dir.path(), "server", server.pfx("pw")?).await?.success);
    let out = upload_cert(&access, dir.path(), "client-only", client_only_for(&["api.example.com"])?).await?;
    assert!(out.success, "{}", out.stderr);
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let out = ctl(&access, &["ca", "upload", "partners", "--file", ca_file.to_str().unwrap()], None).await?;
    assert!(out.success, "{}", out.stderr);

    // Put: the name is stored lowercase; the certificate's thumbprint shows.
    let out = ctl(&access, &["hostname", "put", "API.Example.com", "--cert", "server", "--default"], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("api.example.com") && out.stdout.contains(server.thumbprint.as_str()),
        "{}",
        out.stdout
    );
    let wildcard = [
        "hostname",
        "put",
        "*.example.com",
        "--cert",
        "server",
        "--negotiate-client-certificate",
        "--client-ca",
        "partners",
    ];
    let out = ctl(&access, &wildcard, None).await?;
    assert!(out.success, "{}", out.stderr);

    let list = json(&ctl(&access, &["hostname", "list", "-o", "json"], None).await?);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["*.example.com", "api.example.com"]);
    assert_eq!(list[0]["negotiate_client_certificate"], true);
    assert_eq!(list[0]["client_ca_ids"], serde_json::json!(["partners"]));
    assert_eq!(list[1]["default"], true);
    let table = ctl(&access, &["hostname", "list"], None).await?;
    assert!(table.stdout.lines().next().unwrap().starts_with("NAME"), "{}", table.stdout);
    let shown = json(&ctl(&access, &["hostname", "show", "api.example.com", "-o", "json"], None).await?);
    assert_eq!(shown["thumbprint"], server.thumbprint.as_str());
    assert_eq!(shown["certificate_id"], "server");

    // Refusals, each saying why, writing nothing.
    let before = json(&ctl(&access, &["hostname", "list", "-o", "json"], None).await?);
    refused(
        &ctl(&access, &["hostname", "put", "api.example.org", "--cert", "server"], None).await?,
        "not for 'api.example.org'",
    );
    refused(&ctl(&access, &["hostname", "put", "a.b.example.com", "--cert", "server"], None).await?, "not for");
    refused(
        &ctl(&access, &["hostname", "put", "api.example.com", "--cert", "client-only"], None).await?,
        "does not include serverAuth",
    );
    refused(
        &ctl(&access, &["hostname", "put", "www.example.com", "--cert", "server", "--default"], None).await?,
        "hostname 'api.example.com' is the default already",
    );
    refused(&ctl(&access, &["hostname", "put", "10.0.0.1", "--cert", "server"], None).await?, "IP address");
    refused(&ctl(&access, &["hostname", "put", "www.example.com", "--cert", "nope"], None).await?, "'nope' not found");
    assert_eq!(json(&ctl(&access, &["hostname", "list", "-o", "json"], None).await?), before);
    // The same refusals through gRPC, with their codes and structured details.
    let mut m = cp.management().await?;
    let put = |name: &str, cert: &str, default: bool| pb::PutHostnameRequest {
        name: name.into(),
        certificate_id: cert.into(),
        default,
        ..Default::default()
    };
    let status = m.put_hostname(put("www.example.com", "server", true)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(subjects(&status), ["hostnames/api.example.com"]);
    let status = m.put_hostname(put("api.example.com", "client-only", false)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(subjects(&status), ["certificates/client-only"]);
    let status = m.put_hostname(put("bad_name.example.com", "server", false)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // APIs on hostnames: a path is shared across disjoint hostnames, not with an API on any host.
    let orders = ["api", "put", "orders", "--path", "/orders", "--service-url", "https://backend.internal:8443"];
    let out = ctl(&access, &[&orders[..], &["--host", "API.example.com"]].concat(), None).await?;
    assert!(out.success, "{}", out.stderr);
    let shown = json(&ctl(&access, &["api", "show", "orders", "-o", "json"], None).await?);
    assert_eq!(shown["hostnames"], serde_json::json!(["api.example.com"]));
    let wild = ["api", "put", "orders-wild", "--path", "/orders", "--service-url", "https://backend.internal:8443"];
    let out = ctl(&access, &[&wild[..], &["--host", "*.example.com"]].concat(), None).await?;
    assert!(out.success, "{}", out.stderr);
    let any = ["api", "put", "orders-any", "--path", "/orders", "--service-url", "https://backend.internal:8443"];
    refused(&ctl(&access, &any, None).await?, "already used by API");
    refused(
        &ctl(&access, &[&any[..], &["--host", "nope.example.com"]].concat(), None).await?,
        "hostname 'nope.example.com' not found",
    );
    let hostname = json(&ctl(&access, &["hostname", "show", "api.example.com", "-o", "json"], None).await?);
    assert_eq!(hostname["used_by"], serde_json::json!(["orders"]));

    // Deletes refused while something uses the hostname or its certificates, naming it.
    refused(&ctl(&access, &["hostname", "delete", "api.example.com"], None).await?, "used by APIs: orders");
    let status = m
        .delete_hostname(pb::DeleteHostnameRequest { name: "api.example.com".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(subjects(&status), ["apis/orders"]);
    let out = ctl(&access, &["cert", "delete", "server"], None).await?;
    refused(&out, "used by hostnames: *.example.com, api.example.com");
    assert!(out.stderr.contains("hostname put"), "the refusal says what to do: {}", out.stderr);
    let status = m
        .delete_certificate(pb::DeleteCertificateRequest { id: "server".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(subjects(&status), ["hostnames/*.example.com", "hostnames/api.example.com"]);
    refused(&ctl(&access, &["ca", "delete", "partners"], None).await?, "hostnames: *.example.com");
    // A rotation that would leave a hostname without a valid certificate is refused, naming it.
    let narrower = ca.server(&["api.example.com"])?;
    refused(&upload_cert(&access, dir.path(), "server", narrower.pfx("pw")?).await?, "*.example.com");

    // Cleared from the API (update --no-host), the hostname can go; on any host, the API can
    // no longer share its path with the one on *.example.com.
    refused(
        &ctl(&access, &["api", "update", "orders", "--no-host"], None).await?,
        "already used by API 'orders-wild' (an API without hostnames answers on every host)",
    );
    let out = ctl(&access, &["api", "update", "orders", "--no-host", "--path", "/all-orders"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&access, &["hostname", "delete", "api.example.com"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let list = json(&ctl(&access, &["hostname", "list", "-o", "json"], None).await?);
    assert_eq!(list.as_array().unwrap().len(), 1);
    refused(&ctl(&access, &["hostname", "show", "api.example.com"], None).await?, "not found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostname_writes_return_their_revision_and_wait_for_the_data_planes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    let _dp = DataPlane::start(&access, "dp-hostnames", None).await?;
    let ca = TestCa::new("Hostnames Wait CA")?;
    assert!(upload_cert(&access, dir.path(), "server", ca.server(&["api.example.com"])?.pfx("pw")?).await?.success);
    let put = ["--wait", "--timeout", "15s", "hostname", "put", "api.example.com", "--cert", "server", "--default"];
    let out = ctl(&access, &put, None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("dp-hostnames"), "the rollout is reported: {}", out.stdout);
    let out = ctl(&access, &["-o", "json", "hostname", "show", "api.example.com"], None).await?;
    let revision = json(&out)["revision"].as_u64().unwrap();

    let mut m = cp.management().await?;
    let listed = m.list_hostnames(pb::ListHostnamesRequest {}).await?.into_inner();
    assert_eq!(listed.revision, revision);
    let api = ["api", "put", "a", "--path", "/a", "--service-url", "https://127.0.0.1:9", "--host", "api.example.com"];
    let out = ctl(&access, &[&["--wait", "--timeout", "15s"][..], &api[..]].concat(), None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&access, &["--wait", "--timeout", "15s", "api", "delete", "a"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let deleted =
        ctl(&access, &["-o", "json", "--wait", "--timeout", "15s", "hostname", "delete", "api.example.com"], None)
            .await?;
    let deleted = json(&deleted);
    assert!(deleted["revision"].as_u64().unwrap() > revision);
    Ok(())
}
