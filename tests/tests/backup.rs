//! Backups, restores and master key rotation through the real binaries: a backup taken from a
//! running control plane restores into an empty folder, where a new control plane serves it to a
//! data plane that presents the backed-up certificate; a restore refuses a folder that holds
//! something and a master key that is not the backup's; after a rotation the control plane still
//! serves, and the old key opens nothing.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::credential_binding::Kind;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane, binary};
use gatehouse_tests::requests::{api, set_policy, upload};
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

/// What a one-shot `gatehouse-cp` printed and how it ended.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `gatehouse-cp ARGS` to its end, without the test runner's own GATEHOUSE_* variables.
async fn gatehouse_cp(args: &[&str]) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(binary("gatehouse-cp")?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .with_context(|| format!("gatehouse-cp {args:?} did not exit"))??;
    Ok(Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

/// A port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Copies `name` from one data directory to another (token files, the master key).
fn copy(from: &Path, to: &Path, name: &str) -> anyhow::Result<()> {
    std::fs::copy(from.join(name), to.join(name)).with_context(|| format!("copying {name}"))?;
    Ok(())
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_online_restores_into_an_empty_folder_that_serves_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Backup CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let client = ca.client("orders-client")?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let cp_dir = dir.path().join("cp");
    let cp = ControlPlane::start_on(&cp_dir, listen.parse()?).await?;
    let mut m = cp.management().await?;
    m.upload_certificate(upload("orders-client", client.pfx("pw")?, "pw")).await?;
    let bound = Some(Kind::CertificateId("orders-client".into()));
    let revision = m.put_api(api("orders", "/orders", &backend.url(), bound)).await?.into_inner().revision;

    // The control plane holds the database: the backup comes from it, found from --data-dir
    // and --listen alone (its CA and operator token are in the data directory).
    let file = dir.path().join("gatehouse.backup");
    let out =
        gatehouse_cp(&["--data-dir", &path(&cp_dir), "--listen", &listen, "backup", "--out", &path(&file)]).await?;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("backup of revision {revision} ")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("from the control plane at https://{listen}")), "{}", out.stdout);
    assert_eq!(mode(&file)?, 0o600);
    let bytes = std::fs::read(&file)?;
    assert!(bytes.starts_with(b"GATEHOUSE-BACKUP"));
    assert!(!bytes.windows(client.key_der.len()).any(|w| w == client.key_der), "a private key in clear");
    // Written after the backup: not in it.
    m.put_api(api("later", "/later", &backend.url(), None)).await?;

    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir)?;
    copy(&cp_dir, &restored_dir, "master.key")?;
    let out = gatehouse_cp(&["restore", "--data-dir", &path(&restored_dir), "--from", &path(&file)]).await?;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("restored revision {revision} ")), "{}", out.stdout);
    assert_eq!(
        std::fs::read_to_string(restored_dir.join("committed-revision"))?.split_whitespace().nth(1),
        Some(&*revision.to_string())
    );

    // The tokens came with the backup: the operator's and the data plane's token files work.
    copy(&cp_dir, &restored_dir, "operator.token")?;
    copy(&cp_dir, &restored_dir, "gateway.token")?;
    let restored = ControlPlane::start(&restored_dir).await?;
    let dp = DataPlane::start(&restored.access(), "dp-restored", Some(&ca_file)).await?;
    let mut rm = restored.management().await?;
    wait_acked(&mut rm, &[&dp.name], revision, ACK).await?;
    let apis = rm.list_apis(pb::ListApisRequest::default()).await?.into_inner();
    assert_eq!(apis.revision, revision);
    assert_eq!(apis.apis.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["orders"]);
    let http = HttpClient::default();
    let reply = http.get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(client.thumbprint.as_str()), "the backend saw the backed-up certificate");
    assert_eq!(http.get(&dp.url("/later")).await?.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_refuses_a_folder_that_holds_something_and_another_master_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Refusals CA")?;
    let cp_dir = dir.path().join("cp");
    let mut cp = ControlPlane::start(&cp_dir).await?;
    cp.management().await?.upload_certificate(upload("a", ca.client("a")?.pfx("pw")?, "pw")).await?;
    cp.process.signal("TERM");
    cp.process.wait().await?;

    // No control plane runs: the backup is read from the database.
    let file = dir.path().join("offline.backup");
    let out = gatehouse_cp(&["backup", "--data-dir", &path(&cp_dir), "--out", &path(&file)]).await?;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("from the database in {}", cp_dir.display())), "{}", out.stdout);

    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy)?;
    std::fs::write(busy.join("leftover.txt"), "x")?;
    let out = gatehouse_cp(&["restore", "--data-dir", &path(&busy), "--from", &path(&file)]).await?;
    assert!(!out.success);
    assert!(out.stderr.contains("is not empty (it holds leftover.txt)"), "{}", out.stderr);

    let no_key = dir.path().join("no-key");
    let out = gatehouse_cp(&["restore", "--data-dir", &path(&no_key), "--from", &path(&file)]).await?;
    assert!(!out.success);
    assert!(
        out.stderr.contains(&format!("no master key at {}", no_key.join("master.key").display())),
        "{}",
        out.stderr
    );

    let other_key = dir.path().join("other-key");
    std::fs::create_dir(&other_key)?;
    gatehouse_shared::sealed::SealingKey::load_or_create(&other_key.join("master.key"))?;
    let out = gatehouse_cp(&["restore", "--data-dir", &path(&other_key), "--from", &path(&file)]).await?;
    assert!(!out.success);
    assert!(out.stderr.contains("does not open this backup: it was made under another master key"), "{}", out.stderr);
    let left: Vec<_> = std::fs::read_dir(&other_key)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    assert_eq!(left, ["master.key"], "a refused restore writes nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_master_key_rotation_the_control_plane_serves_and_the_old_key_opens_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Rotation CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let client = ca.client("orders-client")?;
    let cp_dir = dir.path().join("cp");
    let mut cp = ControlPlane::start(&cp_dir).await?;
    let mut m = cp.management().await?;
    // Sealed three ways: the certificate's private key, a secret named value, the Basic password.
    m.upload_certificate(upload("orders-client", client.pfx("pw")?, "pw")).await?;
    let secret = pb::PutNamedValueRequest {
        name: "backend-pw".into(),
        value: "s3cret".into(),
        secret: true,
        ..Default::default()
    };
    m.put_named_value(secret).await?;
    m.put_api(api("orders", "/orders", &backend.url(), None)).await?;
    let xml = r#"<policies><inbound><authentication-certificate certificate-id="orders-client" />
        <authentication-basic username="svc" password="{{backend-pw}}" /></inbound></policies>"#;
    let revision = m.set_api_policy(set_policy("orders", xml)).await?.into_inner().revision;

    let new_key = dir.path().join("new.key");
    let rotate = ["rotate-master-key", "--data-dir", &path(&cp_dir), "--new-key-file", &path(&new_key)];
    let out = gatehouse_cp(&rotate).await?;
    assert!(!out.success, "refused while the control plane runs");
    assert!(
        out.stderr.contains("in use by a running control plane") && out.stderr.contains("stop it first"),
        "{}",
        out.stderr
    );
    assert!(!cp_dir.join("master.key.old").exists());
    cp.process.signal("TERM");
    cp.process.wait().await?;

    let old_key = std::fs::read(cp_dir.join("master.key"))?;
    let out = gatehouse_cp(&rotate).await?;
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("re-sealed 3 records under the new key"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("the old key is in {}", cp_dir.join("master.key.old").display())),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read(cp_dir.join("master.key"))?, std::fs::read(&new_key)?);
    assert_eq!(std::fs::read(cp_dir.join("master.key.old"))?, old_key);
    assert_eq!(mode(&cp_dir.join("master.key.old"))?, 0o600);

    let old_key_file = path(&cp_dir.join("master.key.old"));
    let start = ["--data-dir", &path(&cp_dir), "--listen", "127.0.0.1:0", "--admin-listen", "none"];
    let out = gatehouse_cp(&[&start[..], &["--master-key-file", &old_key_file]].concat()).await?;
    assert!(!out.success, "the old key starts nothing");
    assert!(
        out.stderr.contains(&format!("the master key {old_key_file} does not open the configuration")),
        "{}",
        out.stderr
    );

    let cp = ControlPlane::start(&cp_dir).await?;
    let dp = DataPlane::start(&cp.access(), "dp-rotated", Some(&ca_file)).await?;
    wait_acked(&mut cp.management().await?, &[&dp.name], revision, ACK).await?;
    let reply = HttpClient::default().get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(client.thumbprint.as_str()));
    use base64::Engine as _;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("svc:s3cret"));
    assert_eq!(reply.json()["headers"]["authorization"], basic.as_str());
    Ok(())
}
