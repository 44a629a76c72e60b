//! The stores under test and their processes: an etcd cluster (or nothing, for sled), control
//! planes on it sharing one master key and their token files, and data planes; logs in a folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gatehouse_tests::etcd::EtcdCluster;
use gatehouse_tests::process::{Access, ControlPlane, DataPlane};

use crate::usage::{cpu_ms, etcd_pids};

/// Where a configuration is kept.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    Sled,
    Etcd { members: usize },
}

impl Store {
    pub fn label(self) -> String {
        match self {
            Store::Sled => "sled".into(),
            Store::Etcd { members: 1 } => "etcd, 1 member".into(),
            Store::Etcd { members } => format!("etcd, {members} members"),
        }
    }

    pub fn short_label(self) -> String {
        match self {
            Store::Sled => "sled".into(),
            Store::Etcd { members } => format!("etcd {members}"),
        }
    }
}

/// A store (an etcd cluster, or nothing for sled), the master key every control plane on it
/// shares, and a folder for the control planes' and data planes' data and logs.
pub struct Installation {
    pub store: Store,
    pub etcd: Option<EtcdCluster>,
    key: PathBuf,
    dir: tempfile::TempDir,
}

impl Installation {
    pub async fn start(store: Store) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("gatehouse-ha-bench-").tempdir()?;
        let etcd = match store {
            Store::Sled => None,
            Store::Etcd { members } => Some(EtcdCluster::start(members).await?),
        };
        let key = dir.path().join("master.key");
        gatehouse_shared::sealed::write_private_file(&key, &random_key())?;
        Ok(Self { store, etcd, key, dir })
    }

    /// Control plane `n` (from 1), plaintext on loopback, its log in the folder. Later ones get
    /// the first one's token files: with etcd the tokens live in the store, shared by all.
    pub async fn control_plane(&self, n: usize) -> anyhow::Result<ControlPlane> {
        let dir = self.dir.path().join(format!("cp{n}"));
        std::fs::create_dir_all(&dir)?;
        let first = self.dir.path().join("cp1");
        for file in ["operator.token", "gateway.token"] {
            if n != 1 && !dir.join(file).exists() {
                std::fs::copy(first.join(file), dir.join(file)).with_context(|| format!("copying cp1's {file}"))?;
            }
        }
        let key = self.key.display().to_string();
        let mut flags = vec!["--plaintext".to_string(), "--master-key-file".into(), key];
        if let Some(etcd) = &self.etcd {
            flags.extend(["--store".into(), "etcd".into(), "--etcd-endpoints".into(), etcd.endpoints_arg()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let log = self.log_path(&format!("cp{n}"));
        ControlPlane::start_logging(&dir, "127.0.0.1:0".parse()?, &flags, Some(&log))
            .await
            .with_context(|| format!("control plane {n} on {}; its log ends:\n{}", self.store.label(), tail(&log, 15)))
    }

    /// Data planes named `names`, the i-th given `--control-plane urls(i)`; started in turn.
    pub async fn data_planes<'a>(
        &self,
        names: &[String],
        urls: impl Fn(usize) -> &'a str,
    ) -> anyhow::Result<Vec<DataPlane>> {
        let mut access = Access::nowhere(0);
        access.gateway_token_file = Some(self.dir.path().join("cp1/gateway.token"));
        let mut fleet = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            access.url = urls(i).to_string();
            let log = self.log_path(name);
            let dp = DataPlane::start_logging(&access, name, None, &[], Some(&log))
                .await
                .with_context(|| format!("data plane {name}; its log ends:\n{}", tail(&log, 15)))?;
            fleet.push(dp);
        }
        Ok(fleet)
    }

    /// Whether data plane `name` has opened a config sync stream to `url` (its log says so).
    pub fn connected_to(&self, name: &str, url: &str) -> bool {
        let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        log.lines().any(|l| l.contains("config sync connected") && l.contains(&format!("control_plane={url}")))
    }

    /// CPU time used so far (ms) by `cp`, by the etcd members and by this process.
    pub fn cpu_ms(&self, cp: &ControlPlane) -> [f64; 3] {
        let etcd = self.etcd.as_ref().map_or(0.0, |etcd| etcd_pids(etcd).into_iter().map(cpu_ms).sum());
        [cp.process.pid().map_or(0.0, cpu_ms), etcd, cpu_ms(std::process::id())]
    }

    /// Prints how many warnings and errors the control planes logged, with the first few.
    pub fn report_logs(&self) {
        let mut lines = Vec::new();
        for n in 1..=2 {
            let text = std::fs::read_to_string(self.log_path(&format!("cp{n}"))).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    // Without the timestamp, so repeats can be told apart from news.
                    .map(|l| format!("cp{n}: {}", l.split_once(' ').map_or(l, |(_, rest)| rest.trim_start()))),
            );
        }
        println!("  {} control plane log: {} warnings/errors", self.store.label(), lines.len());
        let mut shown = Vec::new();
        for line in lines {
            if shown.len() < 3 && !shown.contains(&line) {
                println!("    {line}");
                shown.push(line);
            }
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

/// 32 random bytes, as a master key file holds.
fn random_key() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut key = vec![0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key).expect("the system's random source");
    key
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
