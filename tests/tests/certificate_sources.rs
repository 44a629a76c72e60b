//! Certificates from files (issue 13): a control plane polling linked files every second, a data
//! plane, and a backend that reports which client certificate it was shown. Files are swapped
//! the ways cert-manager, Vault Agent and certbot swap them: rename over, a Kubernetes `..data`
//! symlink swap, and broken writes that must keep the last good certificate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse_proto::v1::{self as pb, credential_binding::Kind};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::{Issued, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::api;

const SWAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `bytes` beside `path`, then renames it over `path` (what most renewal tools do).
fn rename_over(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Points the `..data` symlink in `dir` at `version`, atomically, as the kubelet does.
fn swap_data_link(dir: &Path, version: &str) -> anyhow::Result<()> {
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    Ok(())
}

/// Sends requests until the backend sees `expected`; returns how long that took.
async fn until_presented(http: &HttpClient, url: &str, expected: &Issued) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let reply = http.get(url).await?;
        if reply.presented() == Some(expected.thumbprint.as_str()) {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < SWAP_TIMEOUT,
            "the backend still saw {:?}, not {}",
            reply.presented(),
            expected.thumbprint
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cert show ID -o json`.
async fn show(cp: &ControlPlane, id: &str) -> anyhow::Result<serde_json::Value> {
    let out = ctl(&cp.access(), &["cert", "show", id, "-o", "json"], None).await?;
    anyhow::ensure!(out.success, "{}", out.stderr);
    Ok(serde_json::from_str(&out.stdout)?)
}

/// Waits until the certificate's last refresh failed, and returns its message.
async fn until_refresh_failed(cp: &ControlPlane, id: &str) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let cert = show(cp, id).await?;
        if cert["last_refresh"]["ok"] == false {
            return Ok(cert["last_refresh"]["message"].as_str().unwrap_or_default().to_string());
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "no failed refresh recorded: {cert}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_files_rotate_on_swap_and_broken_files_keep_the_last_good_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Sources Test CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let cp = ControlPlane::start_with(&dir.path().join("cp"), "127.0.0.1:0".parse()?, &["--source-poll", "1"]).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let dp = DataPlane::start(&cp.access(), "dp-sources", Some(&ca_file)).await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    let url = dp.url("/orders");

    let certs: PathBuf = dir.path().join("certs");
    std::fs::create_dir_all(&certs)?;
    let pfx_path = certs.join("client.pfx");
    let password_file = dir.path().join("pw.txt");
    std::fs::write(&password_file, "pw\n")?;
    let (a, b) = (ca.client("client-a")?, ca.client("client-b")?);
    std::fs::write(&pfx_path, a.pfx("pw")?)?;

    // A relative path is refused: paths are the control plane's.
    let relative = ctl(
        &cp.access(),
        &["cert", "link", "c", "--pfx", "client.pfx", "--password-file", path_str(&password_file)],
        None,
    )
    .await?;
    assert!(!relative.success && relative.stderr.contains("absolute"), "{}", relative.stderr);
    // A wrong password is refused as an upload would be, and nothing is stored.
    std::fs::write(dir.path().join("wrong.txt"), "nope")?;
    let wrong = ctl(
        &cp.access(),
        &[
            "cert",
            "link",
            "c",
            "--pfx",
            path_str(&pfx_path),
            "--password-file",
            path_str(&dir.path().join("wrong.txt")),
        ],
        None,
    )
    .await?;
    assert!(!wrong.success && wrong.stderr.contains("the PFX password is incorrect"), "{}", wrong.stderr);
    assert_eq!(
        m.get_certificate(pb::GetCertificateRequest { id: "c".into() }).await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    let linked = ctl(
        &cp.access(),
        &["cert", "link", "c", "--pfx", path_str(&pfx_path), "--password-file", path_str(&password_file)],
        None,
    )
    .await?;
    assert!(linked.success, "{}", linked.stderr);
    assert!(linked.stdout.contains(&format!("pfx {}", pfx_path.display())), "{}", linked.stdout);
    assert!(!linked.stdout.contains("pw\n") && !show(&cp, "c").await?.to_string().contains("\"pw\""));

    let created = m.put_api(api("orders", "/orders", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    wait_acked(&mut m, &[dp.name.as_str()], created.into_inner().revision, Duration::from_secs(15)).await?;
    assert_eq!(http.get(&url).await?.presented(), Some(a.thumbprint.as_str()));

    // Rename over: the data plane presents B within a poll.
    rename_over(&pfx_path, &b.pfx("pw")?)?;
    let took = until_presented(&http, &url, &b).await?;
    println!("file swap (rename over) to the data plane presenting the new certificate: {took:?} (--source-poll 1)");

    // A Kubernetes secret volume: client.pfx -> ..data/client.pfx, ..data -> ..v1, swapped to ..v2.
    let k8s = dir.path().join("k8s");
    let (c, d) = (ca.client("client-c")?, ca.client("client-d")?);
    for (version, cert) in [("..v1", &c), ("..v2", &d)] {
        std::fs::create_dir_all(k8s.join(version))?;
        std::fs::write(k8s.join(version).join("client.pfx"), cert.pfx("pw")?)?;
    }
    std::os::unix::fs::symlink("..v1", k8s.join("..data"))?;
    std::os::unix::fs::symlink("..data/client.pfx", k8s.join("client.pfx"))?;
    let k8s_pfx = k8s.join("client.pfx");
    let relinked = ctl(
        &cp.access(),
        &["cert", "link", "c", "--pfx", path_str(&k8s_pfx), "--password-file", path_str(&password_file)],
        None,
    )
    .await?;
    assert!(relinked.success, "{}", relinked.stderr);
    until_presented(&http, &url, &c).await?;
    swap_data_link(&k8s, "..v2")?;
    let took = until_presented(&http, &url, &d).await?;
    println!("file swap (Kubernetes ..data symlink) to the data plane presenting the new certificate: {took:?}");

    // A half-written file (written in place) keeps D, and says why.
    let e = ca.client("client-e")?;
    let e_pfx = e.pfx("pw")?;
    let v2 = k8s.join("..v2").join("client.pfx");
    std::fs::write(&v2, &e_pfx[..e_pfx.len() / 2])?;
    let message = until_refresh_failed(&cp, "c").await?;
    assert!(message.starts_with("certificate refused: "), "{message}");
    assert_eq!(http.get(&url).await?.presented(), Some(d.thumbprint.as_str()));

    // A file under another password keeps D too, with the upload's message.
    std::fs::write(&v2, e.pfx("other")?)?;
    let start = Instant::now();
    loop {
        let cert = show(&cp, "c").await?;
        let message = cert["last_refresh"]["message"].as_str().unwrap_or_default().to_string();
        if message == "certificate refused: the PFX password is incorrect" {
            assert_eq!(cert["last_refresh"]["ok"], false);
            assert_eq!(cert["thumbprint"], d.thumbprint.as_str());
            break;
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "wrong password not recorded: {cert}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http.get(&url).await?.presented(), Some(d.thumbprint.as_str()));
    let shown = ctl(&cp.access(), &["cert", "show", "c"], None).await?;
    assert!(shown.stdout.contains("FAILED at") && shown.stdout.contains("password is incorrect"), "{}", shown.stdout);

    // Only the failing certificate is listed by --refresh-failed.
    m.upload_certificate(pb::UploadCertificateRequest {
        id: "plain".into(),
        pfx: a.pfx("pw")?,
        password: "pw".into(),
        ..Default::default()
    })
    .await?;
    let failed = ctl(&cp.access(), &["cert", "list", "--refresh-failed", "-o", "json"], None).await?;
    let failed: serde_json::Value = serde_json::from_str(&failed.stdout)?;
    let ids: Vec<&str> = failed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c"]);

    // The failures are counted.
    let metrics = http.get(&format!("http://{}/metrics", cp.admin)).await?.body;
    let failures = sample(&metrics, r#"gatehouse_cp_certificate_refresh_failures_total{certificate_id="c"}"#)
        .unwrap_or_else(|| panic!("refresh failures missing:\n{metrics}"));
    assert!(failures >= 2.0, "{failures}");

    // Refresh now: the refusal comes back as INVALID_ARGUMENT with the upload's message.
    let refused = m.refresh_certificate(pb::RefreshCertificateRequest { id: "c".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(refused.message(), "certificate refused: the PFX password is incorrect");
    // A certificate without a source cannot be refreshed.
    let unlinked = ctl(&cp.access(), &["cert", "refresh", "plain"], None).await?;
    assert!(!unlinked.success && unlinked.stderr.contains("no source"), "{}", unlinked.stderr);
    assert_eq!(
        m.refresh_certificate(pb::RefreshCertificateRequest { id: "plain".into() }).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    // Fixed file, refreshed at once: E is presented and the failure cleared.
    std::fs::write(&v2, &e_pfx)?;
    let refreshed = ctl(&cp.access(), &["cert", "refresh", "c", "-o", "json"], None).await?;
    assert!(refreshed.success, "{}", refreshed.stderr);
    let refreshed: serde_json::Value = serde_json::from_str(&refreshed.stdout)?;
    assert_eq!(refreshed["thumbprint"], e.thumbprint.as_str());
    assert_eq!(refreshed["last_refresh"]["ok"], true);
    until_presented(&http, &url, &e).await?;
    let failed = ctl(&cp.access(), &["cert", "list", "--refresh-failed", "-o", "json"], None).await?;
    assert_eq!(failed.stdout.trim(), "[]");

    // PEM files: a key that does not match its certificate is refused, the last good one stays.
    let pem_dir = dir.path().join("pem");
    std::fs::create_dir_all(&pem_dir)?;
    let (cert_pem, key_pem) = (pem_dir.join("tls.crt"), pem_dir.join("tls.key"));
    let f = ca.client("client-f")?;
    std::fs::write(&cert_pem, format!("{}{}", f.pem, ca.pem()))?;
    std::fs::write(&key_pem, &f.key_pem)?;
    let pem = ctl(
        &cp.access(),
        &["cert", "link", "c", "--cert-pem", path_str(&cert_pem), "--key-pem", path_str(&key_pem)],
        None,
    )
    .await?;
    assert!(pem.success, "{}", pem.stderr);
    until_presented(&http, &url, &f).await?;
    std::fs::write(&key_pem, &ca.client("client-g")?.key_pem)?;
    let message = until_refresh_failed(&cp, "c").await?;
    assert_eq!(
        message,
        "certificate refused: the private key in the key file does not belong to the certificate in the certificate file"
    );
    assert_eq!(http.get(&url).await?.presented(), Some(f.thumbprint.as_str()));
    // An expired certificate (with its own key) is refused too: renewing into an outage is no renewal.
    let expired = ca.expired_client("client-expired")?;
    std::fs::write(&key_pem, &expired.key_pem)?;
    rename_over(&cert_pem, expired.pem.as_bytes())?;
    let start = Instant::now();
    loop {
        let message = until_refresh_failed(&cp, "c").await?;
        if message.contains("expired") {
            break;
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "expiry not recorded: {message}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http.get(&url).await?.presented(), Some(f.thumbprint.as_str()));

    // A plain upload replaces the certificate and drops the link.
    m.upload_certificate(pb::UploadCertificateRequest {
        id: "c".into(),
        pfx: a.pfx("pw")?,
        password: "pw".into(),
        ..Default::default()
    })
    .await?;
    let cert = m.get_certificate(pb::GetCertificateRequest { id: "c".into() }).await?.into_inner();
    assert!(cert.source.is_none() && cert.last_refresh.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linked_ca_file_rotates_backend_trust_and_a_broken_file_keeps_the_last_good_ca() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start_with(&dir.path().join("cp"), "127.0.0.1:0".parse()?, &["--source-poll", "1"]).await?;
    let dp = DataPlane::start(&cp.access(), "dp-ca-sources", None).await?;
    let mut m = cp.management().await?;
    let http = HttpClient::default();
    let (old_ca, new_ca) = (TestCa::new("Old Backend CA")?, TestCa::new("New Backend CA")?);
    // The backend already serves a certificate from the new CA; the API trusts only the linked file.
    let backend = EchoBackend::start(&new_ca.server(&["localhost"])?, ClientAuth::AnyCertificate).await?;
    let ca_path = dir.path().join("backend-ca.pem");
    std::fs::write(&ca_path, old_ca.pem())?;
    let linked = ctl(&cp.access(), &["ca", "link", "backend", "--file", path_str(&ca_path)], None).await?;
    assert!(linked.success, "{}", linked.stderr);
    assert!(linked.stdout.contains(&format!("file {}", ca_path.display())), "{}", linked.stdout);

    // The echo backend asks for a client certificate.
    m.upload_certificate(pb::UploadCertificateRequest {
        id: "client".into(),
        pfx: new_ca.client("gateway")?.pfx("pw")?,
        password: "pw".into(),
        ..Default::default()
    })
    .await?;
    let mut put = api("inventory", "/inventory", &backend.url(), Some(Kind::CertificateId("client".into())));
    put.backend_tls = Some(pb::BackendTls {
        validate_certificate_chain: Some(true),
        validate_certificate_name: Some(true),
        ca_certificate_ids: vec!["backend".into()],
        trust_system_roots: Some(false),
    });
    let created = m.put_api(put).await?.into_inner();
    wait_acked(&mut m, &[dp.name.as_str()], created.revision, Duration::from_secs(15)).await?;
    let url = dp.url("/inventory");
    assert_eq!(http.get(&url).await?.status, hyper::StatusCode::BAD_GATEWAY);

    // A half-written file is refused and the old CA stays.
    let pem = new_ca.pem();
    std::fs::write(&ca_path, &pem[..pem.len() / 2])?;
    let start = Instant::now();
    let list = loop {
        let out = ctl(&cp.access(), &["ca", "list", "--refresh-failed", "-o", "json"], None).await?;
        let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "no failed CA refresh recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list[0]["id"], "backend");
    assert!(list[0]["last_refresh"]["message"].as_str().unwrap().starts_with("CA certificate refused: "), "{list}");
    assert_eq!(list[0]["thumbprint"], gatehouse_shared::Thumbprint::of_der(&old_ca.der()).to_string());
    let refused = m.refresh_ca_certificate(pb::RefreshCaCertificateRequest { id: "backend".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let metrics = http.get(&format!("http://{}/metrics", cp.admin)).await?.body;
    assert!(
        sample(&metrics, r#"gatehouse_cp_ca_certificate_refresh_failures_total{certificate_id="backend"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    // Renamed over with the new CA: the data plane trusts the backend within a poll.
    rename_over(&ca_path, pem.as_bytes())?;
    let start = Instant::now();
    while http.get(&url).await?.status != hyper::StatusCode::OK {
        if start.elapsed() >= SWAP_TIMEOUT {
            let out = ctl(&cp.access(), &["ca", "list", "-o", "json"], None).await?;
            let reply = http.get(&url).await?;
            anyhow::bail!("the new CA was not trusted in time: {} / {}", out.stdout, reply.body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("CA file swap to the data plane trusting the new CA: {:?}", start.elapsed());

    // The link survives a restart, and the restarted control plane watches the file again.
    let (data_dir, addr) = (cp.data_dir.clone(), cp.addr);
    let mut cp = cp;
    cp.process.kill().await;
    let cp = ControlPlane::start_with(&data_dir, addr, &["--source-poll", "1"]).await?;
    std::fs::write(&ca_path, "-----BEGIN CERTIFICATE-----\ntruncated")?;
    let start = Instant::now();
    loop {
        let out = ctl(&cp.access(), &["ca", "list", "--refresh-failed", "-o", "json"], None).await?;
        let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            assert_eq!(list[0]["source"]["file"], path_str(&ca_path));
            break;
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "the restarted control plane does not watch the file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http.get(&url).await?.status, hyper::StatusCode::OK, "the last good CA is still trusted");
    Ok(())
}
