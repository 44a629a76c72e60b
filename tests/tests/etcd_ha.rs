//! Several control planes on one real etcd cluster (three members on loopback): writes go on
//! when a member dies, fail UNAVAILABLE while etcd is gone (data planes keep serving) and
//! resume by themselves when it is back; a data plane whose control plane is killed moves to
//! another and gets later changes; one fleet view and rollout wait from any control plane; a
//! compaction during a watch; a sled store migrated into etcd. Every acknowledged write is
//! counted and found afterwards.
#![cfg(feature = "etcd")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse_proto::v1::{self as pb, credential_binding::Kind};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::etcd::EtcdCluster;
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::{Issued, TestCa};
use gatehouse_tests::process::{ControlPlane, DataPlane, ctl};
use gatehouse_tests::requests::{api, upload};
use hyper::StatusCode;

const ACK: Duration = Duration::from_secs(15);

/// A cluster, a shared master key, a CA whose backend answers over mTLS, and a folder.
struct World {
    dir: tempfile::TempDir,
    etcd: EtcdCluster,
    key: PathBuf,
    backend_ca: PathBuf,
    backend: EchoBackend,
    client: Issued,
}

async fn world(members: usize) -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let etcd = EtcdCluster::start(members).await?;
    let key = dir.path().join("master.key");
    gatehouse_shared::sealed::write_private_file(&key, &ring_key())?;
    let ca = TestCa::new("HA CA")?;
    let backend_ca = ca.write_pem(dir.path(), "backend-ca.pem")?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let client = ca.client("ha-client")?;
    Ok(World { dir, etcd, key, backend_ca, backend, client })
}

/// 32 random bytes, as a master key file holds.
fn ring_key() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut key = vec![0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key).unwrap();
    key
}

impl World {
    /// Control plane `n` on the cluster (on `endpoints`, default all members), plaintext on
    /// loopback, its log in the folder. The second and later ones get the first one's token
    /// files: the tokens live in etcd.
    async fn control_plane(&self, n: usize, endpoints: Option<String>) -> anyhow::Result<ControlPlane> {
        self.control_plane_with(n, endpoints, &[]).await
    }

    /// As [`Self::control_plane`], with extra flags.
    async fn control_plane_with(
        &self,
        n: usize,
        endpoints: Option<String>,
        extra: &[&str],
    ) -> anyhow::Result<ControlPlane> {
        let dir = self.dir.path().join(format!("cp{n}"));
        std::fs::create_dir_all(&dir)?;
        let first = self.dir.path().join("cp1");
        for file in ["operator.token", "gateway.token"] {
            if n != 1 && first.join(file).exists() && !dir.join(file).exists() {
                std::fs::copy(first.join(file), dir.join(file))?;
            }
        }
        let endpoints = endpoints.unwrap_or_else(|| self.etcd.endpoints_arg());
        let key = self.key.display().to_string();
        let mut flags = vec![
            "--plaintext",
            "--store",
            "etcd",
            "--etcd-endpoints",
            &endpoints,
            "--master-key-file",
            &key,
            "--keepalive",
            "1",
        ];
        flags.extend(extra);
        let log = self.dir.path().join(format!("cp{n}.log"));
        ControlPlane::start_logging(&dir, "127.0.0.1:0".parse()?, &flags, Some(&log)).await
    }

    /// A data plane that knows `control_planes` (first one first).
    async fn data_plane(&self, control_planes: &[&ControlPlane], name: &str) -> anyhow::Result<DataPlane> {
        let mut access = control_planes[0].access();
        access.url = control_planes.iter().map(|cp| cp.url()).collect::<Vec<_>>().join(",");
        let log = self.dir.path().join(format!("{name}.log"));
        DataPlane::start_logging(&access, name, Some(&self.backend_ca), &[], Some(&log)).await
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// Uploads the client certificate and puts API `id` on `path` bound to it; returns the revision.
async fn configure(cp: &ControlPlane, w: &World, id: &str, path: &str) -> anyhow::Result<u64> {
    let mut m = cp.management().await?;
    m.upload_certificate(upload("ha", w.client.pfx("pw")?, "pw")).await?;
    let put = m.put_api(api(id, path, &w.backend.url(), Some(Kind::CertificateId("ha".into())))).await?;
    Ok(put.into_inner().revision)
}

/// Puts API `id` (plain http, never called) and returns the revision, or the gRPC status.
async fn put(cp: &ControlPlane, id: &str) -> Result<u64, tonic::Status> {
    let mut m = cp.management().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = api(id, &format!("/{id}"), "http://127.0.0.1:9", None);
    m.put_api(request).await.map(|r| r.into_inner().revision)
}

/// Every API id and its revision, as `cp` lists them.
async fn apis(cp: &ControlPlane) -> anyhow::Result<BTreeMap<String, u64>> {
    let list = cp.management().await?.list_apis(pb::ListApisRequest::default()).await?.into_inner();
    Ok(list.apis.into_iter().map(|a| (a.id, a.revision)).collect())
}

/// Every acknowledged write is listed, at its revision, by each control plane.
async fn none_lost(acknowledged: &BTreeMap<String, u64>, cps: &[&ControlPlane]) -> anyhow::Result<()> {
    for cp in cps {
        let listed = until(Duration::from_secs(10), || async {
            let listed = apis(cp).await?;
            let missing: Vec<&String> = acknowledged.keys().filter(|id| !listed.contains_key(*id)).collect();
            anyhow::ensure!(missing.is_empty(), "missing {missing:?}");
            Ok(listed)
        })
        .await?;
        for (id, revision) in acknowledged {
            assert_eq!(listed[id], *revision, "{id} was acknowledged at revision {revision}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_survive_a_dead_member_fail_fast_without_etcd_and_resume_when_it_returns() -> anyhow::Result<()> {
    let mut w = world(3).await?;
    let cp1 = w.control_plane(1, None).await?;
    let cp2 = w.control_plane(2, None).await?;
    let revision = configure(&cp1, &w, "orders", "/orders").await?;
    let dp = w.data_plane(&[&cp2, &cp1], "dp-1").await?;
    wait_acked(&mut cp1.management().await?, &[&dp.name], revision, ACK).await?;
    let http = HttpClient::default();

    // Both control planes write at once; a member dies a third of the way in.
    let writes = |cp: &'static str, target: &ControlPlane| {
        let target = target.access();
        async move {
            let mut acknowledged = BTreeMap::new();
            let mut refused = 0;
            let mut m = target.management().await?;
            for n in 0..15 {
                let id = format!("{cp}-{n}");
                match m.put_api(api(&id, &format!("/{id}"), "http://127.0.0.1:9", None)).await {
                    Ok(put) => {
                        acknowledged.insert(id, put.into_inner().revision);
                    }
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                        refused += 1;
                    }
                }
            }
            anyhow::Ok((acknowledged, refused))
        }
    };
    let kill = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        w.etcd.kill(0);
    };
    let (on_cp1, on_cp2, ()) = tokio::join!(writes("one", &cp1), writes("two", &cp2), kill);
    let ((mut acknowledged, refused_1), (on_cp2, refused_2)) = (on_cp1?, on_cp2?);
    acknowledged.extend(on_cp2);
    assert!(refused_1 + refused_2 <= 2, "{} of 30 writes failed with one member of three down", refused_1 + refused_2);
    let revisions: std::collections::BTreeSet<u64> = acknowledged.values().copied().collect();
    assert_eq!(revisions.len(), acknowledged.len(), "two writes acknowledged with one revision: {acknowledged:?}");
    none_lost(&acknowledged, &[&cp1, &cp2]).await?;

    // All members gone: writes fail fast, naming etcd; the data plane serves on.
    w.etcd.stop_all();
    let started = Instant::now();
    let status = put(&cp1, "while-down").await.expect_err("a write without etcd");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("the store (etcd) is unreachable"), "{}", status.message());
    assert!(started.elapsed() < Duration::from_secs(10), "the write took {:?} to fail", started.elapsed());
    let reply = http.get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(w.client.thumbprint.as_str()));

    // Back again: no control plane restarted, and later changes reach the data plane.
    w.etcd.start_all().await?;
    let revision =
        until(Duration::from_secs(20), || async { put(&cp1, "after").await.map_err(|s| anyhow::anyhow!("{s:?}")) })
            .await?;
    acknowledged.insert("after".into(), revision);
    none_lost(&acknowledged, &[&cp1, &cp2]).await?;
    wait_acked(&mut cp2.management().await?, &[&dp.name], revision, ACK).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_plane_moves_to_another_control_plane_when_its_own_is_killed() -> anyhow::Result<()> {
    let w = world(3).await?;
    let mut cp1 = w.control_plane(1, None).await?;
    let cp2 = w.control_plane(2, None).await?;
    let revision = configure(&cp1, &w, "orders", "/orders").await?;
    let dp = w.data_plane(&[&cp1, &cp2], "dp-1").await?;
    wait_acked(&mut cp1.management().await?, &[&dp.name], revision, ACK).await?;

    cp1.process.kill().await;
    let killed = Instant::now();
    let mut m2 = cp2.management().await?;
    // Connected to cp2 itself: cp1's record (under its lease) may still say connected.
    until(Duration::from_secs(10), || async {
        let list = cp2.management().await?.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
        let moved = list.gateways.iter().any(|g| g.name == dp.name && g.connected);
        let log = w.log("dp-1");
        let reconnected = log.lines().filter(|l| l.contains("config sync connected")).any(|l| l.contains(&cp2.url()));
        anyhow::ensure!(moved && reconnected, "not yet on cp2");
        Ok(())
    })
    .await?;
    let failover = killed.elapsed();
    assert!(failover < Duration::from_secs(2), "the data plane took {failover:?} to move to cp2");

    let put = m2.put_api(api("later", "/later", &w.backend.url(), Some(Kind::CertificateId("ha".into())))).await?;
    wait_acked(&mut m2, &[&dp.name], put.into_inner().revision, ACK).await?;
    let reply = HttpClient::default().get(&dp.url("/later/x")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(w.client.thumbprint.as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn any_control_plane_sees_the_whole_fleet_and_waits_for_all_of_it() -> anyhow::Result<()> {
    let w = world(1).await?;
    let cp1 = w.control_plane(1, None).await?;
    let cp2 = w.control_plane(2, None).await?;
    let revision = configure(&cp1, &w, "orders", "/orders").await?;
    let a = w.data_plane(&[&cp1], "dp-a").await?;
    let b = w.data_plane(&[&cp2], "dp-b").await?;
    wait_acked(&mut cp1.management().await?, &[&a.name, &b.name], revision, ACK).await?;
    wait_acked(&mut cp2.management().await?, &[&a.name, &b.name], revision, ACK).await?;

    // A write on cp1 waits for the data plane connected to cp2 too.
    let args = ["--wait", "api", "put", "more", "--path", "/more", "--service-url", "http://127.0.0.1:9"];
    let out = ctl(&cp1.access(), &args, None).await?;
    assert!(out.success, "{}", out.stderr);
    for name in ["dp-a", "dp-b"] {
        assert!(out.stdout.contains(&format!("{name} applied in")), "{}", out.stdout);
    }
    let out = ctl(&cp2.access(), &["gateway", "list", "-o", "json"], None).await?;
    let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let states: Vec<(&str, &str)> = list["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("dp-a", "SYNCED"), ("dp-b", "SYNCED")], "{list}");

    // A token revoked on one control plane ends the streams it opened on another.
    let mut m1 = cp1.management().await?;
    m1.revoke_token(pb::RevokeTokenRequest { name: "test-gateways".into(), ..Default::default() }).await?;
    until(Duration::from_secs(10), || async {
        let list = cp2.management().await?.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
        anyhow::ensure!(list.gateways.iter().all(|g| !g.connected), "still connected: {:?}", list.gateways);
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_whose_watch_was_compacted_away_reloads_and_catches_up() -> anyhow::Result<()> {
    let mut w = world(3).await?;
    let endpoints = w.etcd.endpoints();
    let cp1 = w.control_plane(1, Some(endpoints[..2].join(","))).await?;
    // cp2 talks to member 2 only: while it is down, cp2's watch falls behind.
    let cp2 = w.control_plane(2, Some(endpoints[2].clone())).await?;
    let revision = configure(&cp1, &w, "orders", "/orders").await?;
    let dp = w.data_plane(&[&cp2], "dp-2").await?;
    wait_acked(&mut cp2.management().await?, &[&dp.name], revision, ACK).await?;

    w.etcd.kill(2);
    // Writes may fail while the two left elect a leader (if member 2 led); an operator retries.
    let put_retried = |id: &'static str| {
        let cp1 = &cp1;
        until(Duration::from_secs(10), move || async move { put(cp1, id).await.map_err(|s| anyhow::anyhow!("{s:?}")) })
    };
    let mut acknowledged = BTreeMap::new();
    for id in ["c0", "c1", "c2", "c3", "c4"] {
        acknowledged.insert(id.to_string(), put_retried(id).await?);
    }
    let mut m1 = cp1.management().await?;
    m1.delete_api(pb::DeleteApiRequest { id: "c0".into(), ..Default::default() }).await?;
    acknowledged.remove("c0");
    let latest = put_retried("last").await?;
    acknowledged.insert("last".into(), latest);
    w.etcd.compact_to_latest().await?;
    w.etcd.start_member(2).await?;

    none_lost(&acknowledged, &[&cp2]).await?;
    assert!(!apis(&cp2).await?.contains_key("c0"), "a delete made while cp2's watch was away is lost");
    wait_acked(&mut cp2.management().await?, &[&dp.name], latest, ACK).await?;
    let log = w.log("cp2");
    assert!(log.contains("reloading everything"), "cp2 did not reload after the compaction:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_plane_never_rolls_back_to_a_control_plane_that_is_behind() -> anyhow::Result<()> {
    let mut w = world(3).await?;
    let endpoints = w.etcd.endpoints();
    let mut cp1 = w.control_plane(1, Some(endpoints[..2].join(","))).await?;
    // cp2 reaches etcd through member 2 only: with member 2 down it falls behind.
    let cp2 = w.control_plane(2, Some(endpoints[2].clone())).await?;
    configure(&cp1, &w, "orders", "/orders").await?;
    w.etcd.kill(2);
    let mut m1 = cp1.management().await?;
    let newer = until(Duration::from_secs(10), || {
        let mut m1 = m1.clone();
        let url = w.backend.url();
        async move {
            let put = m1.put_api(api("newer", "/newer", &url, Some(Kind::CertificateId("ha".into())))).await?;
            Ok(put.into_inner().revision)
        }
    })
    .await?;
    let dp = w.data_plane(&[&cp1, &cp2], "dp-1").await?;
    wait_acked(&mut m1, &[&dp.name], newer, ACK).await?;

    // cp1 dies; cp2 has not seen `newer`: the data plane keeps what it has.
    cp1.process.kill().await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let http = HttpClient::default();
    let reply = http.get(&dp.url("/newer")).await?;
    assert_eq!(reply.status, StatusCode::OK, "the data plane lost /newer: {}", reply.body);
    let log = w.log("dp-1");
    assert!(log.contains("behind the data plane"), "cp2 did not say it is behind:\n{log}");

    // Member 2 returns: cp2 catches up and the data plane syncs with it.
    w.etcd.start_member(2).await?;
    wait_acked(&mut cp2.management().await?, &[&dp.name], newer, ACK).await?;
    assert_eq!(http.get(&dp.url("/newer")).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sled_store_migrates_into_etcd_and_serves_from_there() -> anyhow::Result<()> {
    let w = world(1).await?;
    let sled_dir = w.dir.path().join("sled-cp");
    let key = w.key.display().to_string();
    let mut before = ControlPlane::start_with(&sled_dir, "127.0.0.1:0".parse()?, &["--master-key-file", &key]).await?;
    let revision = configure(&before, &w, "orders", "/orders").await?;
    let listed = apis(&before).await?;
    before.process.kill().await;
    before.process.wait().await?;

    let out = tokio::process::Command::new(gatehouse_tests::process::binary("gatehouse-cp")?)
        .args(["migrate", "--to-etcd", "--data-dir", &sled_dir.display().to_string(), "--master-key-file", &key])
        .args(["--etcd-endpoints", &w.etcd.endpoints_arg()])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("copied revision {revision}")), "{stdout}");

    // Into a prefix that holds a configuration, it refuses.
    let again = tokio::process::Command::new(gatehouse_tests::process::binary("gatehouse-cp")?)
        .args(["migrate", "--to-etcd", "--data-dir", &sled_dir.display().to_string(), "--master-key-file", &key])
        .args(["--etcd-endpoints", &w.etcd.endpoints_arg()])
        .output()
        .await?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a Gatehouse configuration"));

    // The old operator and gateway tokens work against the etcd control plane.
    copy_tokens(&sled_dir, &w.dir.path().join("cp1"))?;
    let cp = w.control_plane(1, None).await?;
    assert_eq!(apis(&cp).await?, listed);
    let dp = w.data_plane(&[&cp], "dp-m").await?;
    wait_acked(&mut cp.management().await?, &[&dp.name], revision, ACK).await?;
    let reply = HttpClient::default().get(&dp.url("/orders")).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.presented(), Some(w.client.thumbprint.as_str()));
    Ok(())
}

/// Calls `attempt` every 50 ms until it succeeds (its value) or `timeout` passes (its last error).
async fn until<T, F, Fut>(timeout: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if start.elapsed() >= timeout => return Err(error.context(format!("not within {timeout:?}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The store's revision as `cp` lists it with the fleet.
async fn revision(cp: &ControlPlane) -> anyhow::Result<u64> {
    let out = ctl(&cp.access(), &["gateway", "list", "-o", "json"], None).await?;
    anyhow::ensure!(out.success, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
    list["revision"].as_u64().ok_or_else(|| anyhow::anyhow!("no revision in {list}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_files_read_by_every_control_plane_rotate_once() -> anyhow::Result<()> {
    let w = world(1).await?;
    let cp1 = w.control_plane_with(1, None, &["--source-poll", "1"]).await?;
    let cp2 = w.control_plane_with(2, None, &["--source-poll", "1"]).await?;
    let ca = TestCa::new("Linked CA")?;
    let (a, b) = (ca.client("linked-a")?, ca.client("linked-b")?);
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let backend_ca = ca.write_pem(w.dir.path(), "linked-ca.pem")?;
    let pfx = w.dir.path().join("linked.pfx");
    let password = w.dir.path().join("pw.txt");
    std::fs::write(&pfx, a.pfx("pw")?)?;
    std::fs::write(&password, "pw")?;
    let (pfx_arg, password_arg) = (pfx.display().to_string(), password.display().to_string());
    let out =
        ctl(&cp1.access(), &["cert", "link", "c", "--pfx", &pfx_arg, "--password-file", &password_arg], None).await?;
    assert!(out.success, "{}", out.stderr);
    let mut m = cp1.management().await?;
    let put = m.put_api(api("linked", "/linked", &backend.url(), Some(Kind::CertificateId("c".into())))).await?;
    let mut access = cp2.access();
    access.url = cp2.url();
    let dp = DataPlane::start(&access, "dp-linked", Some(&backend_ca)).await?;
    wait_acked(&mut m, &[&dp.name], put.into_inner().revision, ACK).await?;
    let before = revision(&cp1).await?;

    // Renewed on disk: both control planes read it; it becomes exactly one revision.
    let tmp = pfx.with_extension("tmp");
    std::fs::write(&tmp, b.pfx("pw")?)?;
    std::fs::rename(&tmp, &pfx)?;
    let http = HttpClient::default();
    until(Duration::from_secs(10), || async {
        let reply = http.get(&dp.url("/linked")).await?;
        anyhow::ensure!(reply.presented() == Some(b.thumbprint.as_str()), "still {:?}", reply.presented());
        Ok(())
    })
    .await?;
    // Three more polls of each control plane: nothing new to commit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(revision(&cp1).await?, before + 1, "the renewal was committed more than once");
    assert_eq!(revision(&cp2).await?, before + 1);
    for cp in [&cp1, &cp2] {
        let out = ctl(&cp.access(), &["cert", "show", "c", "-o", "json"], None).await?;
        let shown: serde_json::Value = serde_json::from_str(&out.stdout)?;
        assert_eq!(shown["thumbprint"], b.thumbprint.as_str(), "{shown}");
    }
    Ok(())
}

fn copy_tokens(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for file in ["operator.token", "gateway.token"] {
        std::fs::copy(from.join(file), to.join(file))?;
    }
    Ok(())
}
