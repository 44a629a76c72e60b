//! A real etcd cluster on loopback, for tests of the etcd-backed store: Debian's etcd-server
//! run as child processes, one folder per member (its data and its log), killed when dropped.
//!
//! The kit talks to etcd through its v3 JSON gateway (`/v3/...`, keys and values in base64)
//! with the plain HTTP client, so it needs neither `etcdctl` nor an etcd client crate.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::http_client::{HttpClient, Reply};

/// Where Debian's etcd-server package puts the server.
const ETCD: &str = "/usr/bin/etcd";

/// How long a cluster (or a restarted member) may take to elect a leader and answer.
const HEALTHY_WITHIN: Duration = Duration::from_secs(15);

/// One request to one member. A proposal a follower forwarded to a leader that just died is
/// lost, and etcd answers only after its own timeout (6 s here); asking another member sooner
/// is quicker. The kit's requests are safe to repeat.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the kit's own reads and compactions keep trying while the cluster has no leader.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// How many times [`EtcdCluster::start`] picks new ports when one was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// gRPC's OUT_OF_RANGE, which etcd answers a compaction at an already compacted revision with.
const OUT_OF_RANGE: i64 = 11;

/// An etcd cluster of child processes on 127.0.0.1; every member is killed when it is dropped.
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
    // Declared last so it is removed after the members are gone.
    dir: tempfile::TempDir,
}

/// One member: its ports stay the same across restarts, so clients keep their endpoints.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Child>,
}

// === impl EtcdCluster ===

impl EtcdCluster {
    /// Starts `members` members (1 or 3, usually) on free loopback ports and waits until every
    /// one reports healthy (a leader is elected and reads go through). Fails with the members'
    /// logs if the cluster is not healthy within 15 s.
    pub async fn start(members: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Path::new(ETCD).is_file(),
            "etcd-server is not installed ({ETCD} is missing): bash .ci/test installs it"
        );
        anyhow::ensure!(members > 0, "an etcd cluster needs at least one member");
        let mut attempt = 1;
        loop {
            let mut cluster = Self::create(members)?;
            let all: Vec<usize> = (0..members).collect();
            match cluster.launch(&all, "new").await {
                Ok(()) => return Ok(cluster),
                // Ports are found free and then released, so another process may take one
                // before etcd binds it: try again with new ones.
                Err(_) if attempt < START_ATTEMPTS && cluster.port_was_taken() => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Each member's client URL, `http://127.0.0.1:PORT`, stopped members included.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The client URLs joined by commas, as `--etcd-endpoints` takes them.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// SIGKILLs `member` (no-op if it is stopped) and waits for the process to exit.
    pub fn kill(&mut self, member: usize) {
        if let Some(mut process) = self.members[member].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// SIGKILLs every member.
    pub fn stop_all(&mut self) {
        for member in 0..self.members.len() {
            self.kill(member);
        }
    }

    /// Restarts a stopped `member` on its old ports and data, and waits until it is healthy
    /// (which needs a quorum of the cluster running).
    pub async fn start_member(&mut self, member: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.members[member].process.is_none(), "etcd member {member} is already running");
        self.launch(&[member], "existing").await
    }

    /// Restarts every stopped member and waits until all members are healthy.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        let stopped: Vec<usize> = (0..self.members.len()).filter(|&m| self.members[m].process.is_none()).collect();
        self.launch(&stopped, "existing").await?;
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.wait_healthy(&all).await
    }

    /// Compacts the keyspace at the current revision (physically, so old revisions are gone
    /// when this returns) and returns that revision. Compacting twice without writes between
    /// is not an error.
    pub async fn compact_to_latest(&self) -> anyhow::Result<i64> {
        let range = self.post("/v3/kv/range", serde_json::json!({ "key": BASE64.encode([0u8]) })).await?;
        let revision = int64(&range["header"]["revision"]).ok_or_else(|| anyhow!("no header.revision in {range}"))?;
        let reply =
            self.post_reply("/v3/kv/compaction", serde_json::json!({ "revision": revision, "physical": true })).await?;
        let already_compacted = int64(&reply.json()["code"]) == Some(OUT_OF_RANGE);
        anyhow::ensure!(
            reply.status.is_success() || already_compacted,
            "compaction at revision {revision}: {} {}",
            reply.status,
            reply.body
        );
        Ok(revision)
    }

    /// How many keys start with `prefix` (every key for ""); a linearizable read, so it needs
    /// a quorum.
    pub async fn get_prefix_count(&self, prefix: &str) -> anyhow::Result<usize> {
        // etcd refuses an empty key; "\0" up to "\0" is its spelling of every key.
        let key = if prefix.is_empty() { vec![0] } else { prefix.as_bytes().to_vec() };
        let body = serde_json::json!({
            "key": BASE64.encode(key),
            "range_end": BASE64.encode(prefix_end(prefix.as_bytes())),
            "count_only": true,
        });
        let range = self.post("/v3/kv/range", body).await?;
        // The gateway leaves out a count of zero, like every default field.
        match &range["count"] {
            serde_json::Value::Null => Ok(0),
            count => int64(count).and_then(|c| usize::try_from(c).ok()).ok_or_else(|| anyhow!("bad count in {range}")),
        }
    }

    /// The last 40 lines `member` wrote (stdout and stderr, across restarts).
    pub fn logs(&self, member: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(member)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A cluster not yet started: a folder, two free ports and a name per member, and a token
    /// no other cluster uses (so members of two tests' clusters never join each other).
    fn create(members: usize) -> anyhow::Result<Self> {
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let dir = tempfile::Builder::new().prefix("etcd-cluster-").tempdir()?;
        // All listeners are held at once so no two ports of this cluster are the same.
        let listeners = (0..2 * members).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
        let ports = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<Vec<_>, _>>()?;
        drop(listeners);
        let members = (0..members)
            .map(|m| Member {
                name: format!("m{m}"),
                client_port: ports[2 * m],
                peer_port: ports[2 * m + 1],
                process: None,
            })
            .collect();
        let token = format!("gatehouse-test-{}-{}", std::process::id(), CLUSTERS.fetch_add(1, Ordering::Relaxed));
        Ok(Self { members, token, dir })
    }

    /// Spawns `members` with `--initial-cluster-state state` and waits until they are healthy.
    async fn launch(&mut self, members: &[usize], state: &str) -> anyhow::Result<()> {
        for &member in members {
            let process = self.spawn(member, state).with_context(|| format!("starting etcd member {member}"))?;
            self.members[member].process = Some(process);
        }
        self.wait_healthy(members).await
    }

    fn spawn(&self, member: usize, state: &str) -> anyhow::Result<Child> {
        let m = &self.members[member];
        let initial_cluster =
            self.members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        let folder = self.member_dir(member);
        std::fs::create_dir_all(&folder)?;
        let mut log = OpenOptions::new().create(true).append(true).open(self.log_path(member))?;
        writeln!(log, "=== gatehouse test kit: starting {} (initial-cluster-state {state}) ===", m.name)?;
        let mut command = Command::new(ETCD);
        command
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(folder.join("data"))
            .args(["--listen-client-urls", &m.client_url(), "--advertise-client-urls", &m.client_url()])
            .args(["--listen-peer-urls", &m.peer_url(), "--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // Elections within a second, so tests that kill a leader stay short.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--quota-backend-bytes", &(256u64 << 20).to_string()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // etcd reads every flag from ETCD_* too; the caller's environment must not reconfigure it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }
        Ok(command.spawn()?)
    }

    /// Polls each member's `/health` until it says `{"health":"true"}`; fails early if a
    /// member exits, and with its last answer and log if it is not healthy within 15 s.
    async fn wait_healthy(&mut self, members: &[usize]) -> anyhow::Result<()> {
        let start = Instant::now();
        for &member in members {
            let url = format!("{}/health", self.members[member].client_url());
            loop {
                let exited = match self.members[member].process.as_mut() {
                    Some(process) => process.try_wait()?,
                    None => bail!("etcd member {member} is not running"),
                };
                if let Some(status) = exited {
                    self.members[member].process = None;
                    bail!(
                        "etcd member {member} exited ({status}) before it was healthy; its log:\n{}",
                        self.logs(member)
                    );
                }
                let last = match tokio::time::timeout(Duration::from_secs(2), HttpClient::default().get(&url)).await {
                    Ok(Ok(reply)) if reply.json()["health"] == "true" => break,
                    Ok(Ok(reply)) => format!("{} {}", reply.status, reply.body),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(_) => String::from("no answer within 2 s"),
                };
                if start.elapsed() > HEALTHY_WITHIN {
                    bail!(
                        "etcd member {member} ({url}) not healthy within {HEALTHY_WITHIN:?}, last answer: {last}; its log:\n{}",
                        self.logs(member)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// POSTs `body` to `path` and returns the answer's JSON; a non-2xx answer is an error.
    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let reply = self.post_reply(path, body).await?;
        anyhow::ensure!(reply.status.is_success(), "etcd {path}: {} {}", reply.status, reply.body);
        Ok(reply.json())
    }

    /// POSTs `body` to `path` on the first running member that answers; while none can (no
    /// leader: 503, gRPC's UNAVAILABLE), tries again for up to 10 s, which covers an election.
    async fn post_reply(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Reply> {
        let start = Instant::now();
        loop {
            let mut errors = Vec::new();
            for member in self.members.iter().filter(|m| m.process.is_some()) {
                let url = format!("{}{path}", member.client_url());
                let request = Request::post(&url)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))?;
                match tokio::time::timeout(REQUEST_TIMEOUT, HttpClient::default().send(request)).await {
                    Ok(Ok(reply)) if reply.status != hyper::StatusCode::SERVICE_UNAVAILABLE => return Ok(reply),
                    Ok(Ok(reply)) => errors.push(format!("{url}: {} {}", reply.status, reply.body)),
                    Ok(Err(e)) => errors.push(format!("{url}: {e:#}")),
                    Err(_) => errors.push(format!("{url}: no answer within {REQUEST_TIMEOUT:?}")),
                }
            }
            if start.elapsed() > ANSWER_WITHIN {
                bail!("no etcd member answered {path} within {ANSWER_WITHIN:?}: {errors:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a member failed because its port was taken (the race [`Self::start`] retries).
    fn port_was_taken(&self) -> bool {
        (0..self.members.len())
            .any(|m| std::fs::read_to_string(self.log_path(m)).is_ok_and(|log| log.contains("address already in use")))
    }

    fn member_dir(&self, member: usize) -> PathBuf {
        self.dir.path().join(&self.members[member].name)
    }

    fn log_path(&self, member: usize) -> PathBuf {
        self.member_dir(member).join("etcd.log")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

// === impl Member ===

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// The end of the range of keys that start with `prefix`: the prefix with its last byte that
/// is not 0xff incremented (and the rest cut off); "\0", meaning every key, if there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An int64 from the gateway's JSON, which writes them as strings.
fn int64(value: &serde_json::Value) -> Option<i64> {
    value.as_str().and_then(|s| s.parse().ok()).or_else(|| value.as_i64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `key` = `value` through the gateway.
    async fn put(cluster: &EtcdCluster, key: &str, value: &str) -> anyhow::Result<()> {
        cluster
            .post("/v3/kv/put", serde_json::json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) }))
            .await?;
        Ok(())
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"gatehouse/"), b"gatehouse0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[tokio::test]
    async fn three_members_survive_a_kill_and_a_full_restart() -> anyhow::Result<()> {
        let started = Instant::now();
        let mut cluster = EtcdCluster::start(3).await?;
        eprintln!("start(3): {:?}", started.elapsed());
        assert_eq!(cluster.endpoints().len(), 3);
        assert!(cluster.endpoints().iter().all(|e| e.starts_with("http://127.0.0.1:")), "{:?}", cluster.endpoints());
        assert_eq!(cluster.endpoints_arg().split(',').count(), 3);

        put(&cluster, "gatehouse/a", "1").await?;
        put(&cluster, "gatehouse/b", "2").await?;
        put(&cluster, "other", "3").await?;
        assert_eq!(cluster.get_prefix_count("gatehouse/").await?, 2);
        assert_eq!(cluster.get_prefix_count("nothing/").await?, 0);

        // Two of three keep a quorum: reads still go through.
        cluster.kill(0);
        let killed = Instant::now();
        let count =
            cluster.get_prefix_count("gatehouse/").await.with_context(|| format!("m1:\n{}", cluster.logs(1)))?;
        assert_eq!(count, 2);
        eprintln!("range after kill(0): {:?}", killed.elapsed());

        cluster.stop_all();
        let restarted = Instant::now();
        cluster.start_all().await?;
        eprintln!("start_all after stop_all: {:?}", restarted.elapsed());
        assert_eq!(cluster.get_prefix_count("gatehouse/").await?, 2, "data survives a restart");

        let revision = cluster.compact_to_latest().await?;
        assert!(revision >= 4, "three puts happened, revision {revision}");
        assert_eq!(cluster.compact_to_latest().await?, revision, "compacting again is fine");

        // A member restarted alone rejoins on its own ports and data, and catches up: with
        // member 1 gone too, the quorum depends on it.
        cluster.kill(2);
        put(&cluster, "gatehouse/c", "4").await?;
        cluster.start_member(2).await?;
        cluster.kill(1);
        let count =
            cluster.get_prefix_count("gatehouse/").await.with_context(|| format!("m2:\n{}", cluster.logs(2)))?;
        assert_eq!(count, 3, "member 2 caught up with the write it missed");
        Ok(())
    }

    #[tokio::test]
    async fn one_member_starts_and_answers() -> anyhow::Result<()> {
        let started = Instant::now();
        let cluster = EtcdCluster::start(1).await?;
        eprintln!("start(1): {:?}", started.elapsed());
        assert_eq!(cluster.get_prefix_count("").await?, 0);
        assert!(cluster.compact_to_latest().await? > 0);
        Ok(())
    }
}
