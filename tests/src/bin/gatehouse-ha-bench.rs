//! Several control planes on etcd, measured beside one on sled: `PutApi` latency and throughput
//! (sled, etcd with one member, etcd with three), the time from SIGKILLing the control plane a
//! fleet is connected to until every data plane has applied a change made on another one, and
//! propagation to a fleet split over two control planes. Real processes on loopback: Debian's
//! etcd-server (started by the test kit) and `gatehouse-cp` built with the `etcd` feature.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, Subcommand};
use gatehouse_tests::etcd::EtcdCluster;
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::process::{Access, ControlPlane, DataPlane, Management};
use gatehouse_tests::requests::api;

/// How long a data plane may take to apply a revision before the run is void.
const ACK_WITHIN: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    part: Part,
}

#[derive(Subcommand, Debug)]
enum Part {
    /// PutApi latency and throughput on sled, etcd with one member and etcd with three.
    Writes {
        /// Writes per store, per load and per round.
        #[arg(long, default_value_t = 500)]
        writes: usize,
        /// Concurrent writers in the second load (each on its own connection).
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Rounds, the stores interleaved in each.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// SIGKILL the control plane every data plane is on; time until all of them applied a
    /// change made on the other control plane.
    Failover {
        #[arg(long, default_value_t = 10)]
        data_planes: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// A change on one control plane until every data plane ACKed, half of them on another
    /// control plane (etcd), beside all of them on one control plane (sled).
    Propagation {
        #[arg(long, default_value_t = 10)]
        data_planes: usize,
        #[arg(long, default_value_t = 50)]
        changes: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().part {
        Part::Writes { writes, writers, rounds } => write_figures(writes, writers, rounds).await,
        Part::Failover { data_planes, rounds } => failover_figures(data_planes, rounds).await,
        Part::Propagation { data_planes, changes } => propagation_figures(data_planes, changes).await,
    }
}

// === writes ===

/// Latencies of one load and how long it took from first call to last answer.
struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Load {
    fn writes_per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// What one store did over every round: each load's latencies pooled, each round's rate kept.
#[derive(Default)]
struct WriteFigures {
    one: Vec<Duration>,
    one_rates: Vec<f64>,
    many: Vec<Duration>,
    many_rates: Vec<f64>,
    /// CPU time (ms) the control plane, the etcd members and this load generator used
    /// during the measured loads.
    cpu: [f64; 3],
}

async fn write_figures(writes: usize, writers: usize, rounds: usize) -> anyhow::Result<()> {
    ensure!(writes > 0 && writers > 0 && rounds > 0, "writes, writers and rounds must be positive");
    let stores = [Store::Sled, Store::Etcd { members: 1 }, Store::Etcd { members: 3 }];
    let mut installations = Vec::new();
    for store in stores {
        let installation = Installation::start(store).await?;
        let cp = installation.control_plane(1).await?;
        // Warm-up: connections, the first revisions, etcd's first allocations.
        write_load(&cp.access(), 1, 20).await?;
        installations.push((installation, cp));
    }
    let mut figures: Vec<WriteFigures> = stores.iter().map(|_| WriteFigures::default()).collect();
    for round in 1..=rounds {
        for ((installation, cp), figures) in installations.iter().zip(&mut figures) {
            let before = installation.cpu_ms(cp);
            let one = write_load(&cp.access(), 1, writes).await?;
            let many = write_load(&cp.access(), writers, writes).await?;
            let after = installation.cpu_ms(cp);
            for (total, (b, a)) in figures.cpu.iter_mut().zip(before.iter().zip(after)) {
                *total += a - b;
            }
            println!(
                "  round {round} {:<16} 1 writer {:>7.0} writes/s, {writers} writers {:>7.0} writes/s",
                installation.store.label(),
                one.writes_per_second(),
                many.writes_per_second()
            );
            figures.one_rates.push(one.writes_per_second());
            figures.many_rates.push(many.writes_per_second());
            figures.one.extend(one.latencies);
            figures.many.extend(many.latencies);
        }
    }

    println!(
        "PutApi on one control plane (plaintext gRPC on loopback), {rounds} round(s) x {writes} writes per load, \
         stores interleaved; {writers} writers each on its own connection; p50/p99 over every round, writes/s the \
         median round; CP, etcd and the load share the machine's {} cores",
        cores()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>9}   {:>10} {:>10} {:>9}   {:>15} {:>13}",
        "store",
        "1w p50",
        "1w p99",
        "writes/s",
        format!("{writers}w p50"),
        format!("{writers}w p99"),
        "writes/s",
        "CP RSS/peak MiB",
        "etcd RSS MiB"
    );
    let summaries: Vec<[f64; 6]> = figures.iter_mut().map(WriteFigures::summary).collect();
    for ((installation, cp), s) in installations.iter().zip(&summaries) {
        let etcd_rss =
            installation.etcd.as_ref().map_or(String::from("-"), |etcd| format!("{:.1}", etcd_rss_mib(etcd)));
        println!(
            "{:<16} {:>7.2} ms {:>7.2} ms {:>9.0}   {:>7.2} ms {:>7.2} ms {:>9.0}   {:>15} {:>13}",
            installation.store.label(),
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            s[5],
            memory(cp),
            etcd_rss
        );
    }
    for ((installation, _), s) in installations.iter().zip(&summaries).skip(1) {
        let sled = &summaries[0];
        println!(
            "{:<16} {:>9} {:>10} {:>9}   {:>10} {:>10} {:>9}",
            format!("{} / sled", installation.store.short_label()),
            format!("x{:.2}", s[0] / sled[0]),
            format!("x{:.2}", s[1] / sled[1]),
            format!("x{:.2}", s[2] / sled[2]),
            format!("x{:.2}", s[3] / sled[3]),
            format!("x{:.2}", s[4] / sled[4]),
            format!("x{:.2}", s[5] / sled[5]),
        );
    }
    let measured = (figures[0].one.len() + figures[0].many.len()) as f64;
    println!("CPU time per write during the measured loads (ms; 10 ms clock ticks, over {measured} writes):");
    for ((installation, _), figures) in installations.iter().zip(&figures) {
        let [cp, etcd, client] = figures.cpu.map(|ms| ms / measured);
        println!(
            "  {:<16} control plane {cp:.2}, etcd {etcd:.2}, load generator {client:.2}",
            installation.store.label()
        );
    }
    for (installation, _) in &installations {
        if let Some(etcd) = &installation.etcd {
            println!("  {:<16} {}", installation.store.label(), wal_fsyncs(etcd).await);
        }
    }
    for (installation, _) in &installations {
        installation.report_logs();
    }
    Ok(())
}

impl WriteFigures {
    /// p50 and p99 in ms and the median round's writes/s, for one writer and for many.
    fn summary(&mut self) -> [f64; 6] {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        [
            ms(percentile(&mut self.one, 0.5)),
            ms(percentile(&mut self.one, 0.99)),
            median(&mut self.one_rates),
            ms(percentile(&mut self.many, 0.5)),
            ms(percentile(&mut self.many, 0.99)),
            median(&mut self.many_rates),
        ]
    }
}

/// `writes` PutApi calls spread over `writers` concurrent writers, each on its own connection
/// (made before the clock starts). Every write changes an API: ten per writer, overwritten in
/// turn, so the configuration stays small and the figure is the store's, not the model's size.
async fn write_load(access: &Access, writers: usize, writes: usize) -> anyhow::Result<Load> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut clients = Vec::with_capacity(writers);
    for _ in 0..writers {
        clients.push(access.management().await?);
    }
    let per_writer = writes.div_ceil(writers);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(writer, mut m)| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let id = format!("w{writer}-{}", i % 10);
                    let port = 10_000 + WRITES.fetch_add(1, Ordering::Relaxed) % 50_000;
                    let request = api(&id, &format!("/{id}"), &format!("http://127.0.0.1:{port}"), None);
                    let sent = Instant::now();
                    m.put_api(request).await.with_context(|| format!("PutApi {id}"))?;
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(per_writer * writers);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Load { latencies, elapsed: started.elapsed() })
}

// === failover ===

async fn failover_figures(data_planes: usize, rounds: usize) -> anyhow::Result<()> {
    ensure!(data_planes > 0 && rounds > 0, "data planes and rounds must be positive");
    let installation = Installation::start(Store::Etcd { members: 3 }).await?;
    let mut cp1 = installation.control_plane(1).await?;
    let cp2 = installation.control_plane(2).await?;
    let mut m2 = cp2.management().await?;
    let (mut written, mut applied) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if round > 1 {
            // The previous round killed it: a new process on the same etcd.
            cp1 = installation.control_plane(1).await?;
        }
        let mut m1 = cp1.management().await?;
        let urls = format!("{},{}", cp1.url(), cp2.url());
        // New names each round: the killed control plane's records linger for its lease's time.
        let names: Vec<String> = (0..data_planes).map(|i| format!("r{round}-dp-{i}")).collect();
        let fleet = installation.data_planes(&names, |_| urls.as_str()).await?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let revision = put_changed(&mut m1, "failover").await?;
        wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;
        for name in &names {
            ensure!(installation.connected_to(name, &cp1.url()), "{name} is not on the first control plane");
        }

        let killed = Instant::now();
        cp1.process.kill().await;
        let revision = put_changed(&mut m2, "failover").await?;
        let put_returned = killed.elapsed();
        wait_acked(&mut m2, &names, revision, ACK_WITHIN).await?;
        let all_applied = killed.elapsed();
        for name in &names {
            ensure!(installation.connected_to(name, &cp2.url()), "{name} applied a revision but never moved");
        }
        println!(
            "  round {round}: PutApi on cp2 returned {:>8.2?} after the kill, every data plane applied it {:>8.2?} after",
            put_returned, all_applied
        );
        written.push(put_returned);
        applied.push(all_applied);
        for mut dp in fleet {
            dp.process.kill().await;
        }
    }
    println!(
        "failover: {data_planes} data planes on cp1 (--control-plane cp1,cp2), two control planes on a 3-member etcd; \
         cp1 SIGKILLed, then PutApi on cp2; {rounds} round(s), time from the kill"
    );
    for (what, samples) in [("PutApi on cp2 returned", &mut written), ("every data plane applied it", &mut applied)] {
        samples.sort();
        println!(
            "  {what:<28} min {:>8.2?}  median {:>8.2?}  max {:>8.2?}",
            samples[0],
            samples[samples.len() / 2],
            samples[samples.len() - 1]
        );
    }
    println!("  cp2 memory at the end: RSS/peak {} MiB", memory(&cp2));
    installation.report_logs();
    Ok(())
}

// === propagation ===

async fn propagation_figures(data_planes: usize, changes: usize) -> anyhow::Result<()> {
    ensure!(data_planes > 0 && changes > 0, "data planes and changes must be positive");
    println!(
        "propagation: {changes} one-API changes (PutApi) on cp1, each timed from the call returning until every one of \
         {data_planes} data planes ACKed it (cp1's ListGateways, polled every 2 ms)"
    );
    let mut medians = Vec::new();
    for (store, control_planes) in [(Store::Sled, 1), (Store::Etcd { members: 3 }, 2)] {
        let installation = Installation::start(store).await?;
        let mut cps = Vec::new();
        for n in 1..=control_planes {
            cps.push(installation.control_plane(n).await?);
        }
        let urls: Vec<String> = cps.iter().map(ControlPlane::url).collect();
        let names: Vec<String> = (0..data_planes).map(|i| format!("dp-{i}")).collect();
        // Data plane i on control plane i mod n: half on each of two.
        let _fleet = installation.data_planes(&names, |i| urls[i % urls.len()].as_str()).await?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut m1 = cps[0].management().await?;
        let revision = put_changed(&mut m1, "moving").await?;
        wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;

        let (mut puts, mut acked) = (Vec::new(), Vec::new());
        for _ in 0..changes {
            let sent = Instant::now();
            let revision = put_changed(&mut m1, "moving").await?;
            let returned = Instant::now();
            puts.push(returned - sent);
            wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;
            acked.push(returned.elapsed());
        }
        let label = match store {
            Store::Sled => format!("sled, 1 control plane, {data_planes} data planes"),
            Store::Etcd { members } => format!(
                "etcd ({members} members), {control_planes} control planes, {} + {} data planes",
                data_planes.div_ceil(2),
                data_planes / 2
            ),
        };
        println!(
            "  {label:<52} all ACKed p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}   (PutApi p50 {:.2?})",
            percentile(&mut acked, 0.5),
            percentile(&mut acked, 0.99),
            percentile(&mut acked, 1.0),
            percentile(&mut puts, 0.5)
        );
        let memories: Vec<String> =
            cps.iter().enumerate().map(|(n, cp)| format!("cp{} {} MiB", n + 1, memory(cp))).collect();
        println!("    control plane RSS/peak at the end: {}", memories.join(", "));
        medians.push(percentile(&mut acked, 0.5));
        installation.report_logs();
    }
    println!("  etcd / sled, p50 all ACKed: x{:.2}", medians[1].as_secs_f64() / medians[0].as_secs_f64());
    Ok(())
}

/// Puts API `id` with a service URL it did not have before; returns the revision.
async fn put_changed(m: &mut Management, id: &str) -> anyhow::Result<u64> {
    static CHANGES: AtomicU64 = AtomicU64::new(0);
    let port = 10_000 + CHANGES.fetch_add(1, Ordering::Relaxed) % 50_000;
    let request = api(id, &format!("/{id}"), &format!("http://127.0.0.1:{port}"), None);
    Ok(m.put_api(request).await.with_context(|| format!("PutApi {id}"))?.into_inner().revision)
}

// === the stores and their processes ===

/// Where a configuration is kept.
#[derive(Clone, Copy, Debug)]
enum Store {
    Sled,
    Etcd { members: usize },
}

impl Store {
    fn label(self) -> String {
        match self {
            Store::Sled => "sled".into(),
            Store::Etcd { members: 1 } => "etcd, 1 member".into(),
            Store::Etcd { members } => format!("etcd, {members} members"),
        }
    }

    fn short_label(self) -> String {
        match self {
            Store::Sled => "sled".into(),
            Store::Etcd { members } => format!("etcd {members}"),
        }
    }
}

/// A store (an etcd cluster, or nothing for sled), the master key every control plane on it
/// shares, and a folder for the control planes' and data planes' data and logs.
struct Installation {
    store: Store,
    etcd: Option<EtcdCluster>,
    key: PathBuf,
    dir: tempfile::TempDir,
}

impl Installation {
    async fn start(store: Store) -> anyhow::Result<Self> {
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
    async fn control_plane(&self, n: usize) -> anyhow::Result<ControlPlane> {
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
    async fn data_planes<'a>(
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
    fn connected_to(&self, name: &str, url: &str) -> bool {
        let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        log.lines().any(|l| l.contains("config sync connected") && l.contains(&format!("control_plane={url}")))
    }

    /// CPU time used so far (ms) by `cp`, by the etcd members and by this process.
    fn cpu_ms(&self, cp: &ControlPlane) -> [f64; 3] {
        let etcd = self.etcd.as_ref().map_or(0.0, |etcd| etcd_pids(etcd).into_iter().map(cpu_ms).sum());
        [cp.process.pid().map_or(0.0, cpu_ms), etcd, cpu_ms(std::process::id())]
    }

    /// Prints how many warnings and errors the control planes logged, with the first few.
    fn report_logs(&self) {
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

// === figures ===

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A /proc/PID/status field in KiB (VmRSS, VmHWM), 0 when the process is gone.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// "RSS/peak" of a control plane, in MiB.
fn memory(cp: &ControlPlane) -> String {
    let pid = cp.process.pid().unwrap_or(0);
    format!("{:.1}/{:.1}", status_kib(pid, "VmRSS:") as f64 / 1024.0, status_kib(pid, "VmHWM:") as f64 / 1024.0)
}

/// The RSS of `cluster`'s members, in MiB.
fn etcd_rss_mib(cluster: &EtcdCluster) -> f64 {
    etcd_pids(cluster).into_iter().map(|pid| status_kib(pid, "VmRSS:")).sum::<u64>() as f64 / 1024.0
}

/// The process ids of `cluster`'s members: this process's children named etcd that listen on
/// one of its client URLs.
fn etcd_pids(cluster: &EtcdCluster) -> Vec<u32> {
    let me = std::process::id().to_string();
    let endpoints = cluster.endpoints();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((name, rest)) = stat.split_once(") ") else { return false };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            // "PID (comm) STATE PPID ...": the parent is the second field after the name.
            name.ends_with("(etcd")
                && rest.split_whitespace().nth(1) == Some(me.as_str())
                && endpoints.iter().any(|url| cmdline.split('\0').any(|arg| arg == url))
        })
        .collect()
}

/// User plus system CPU time of `pid` so far, in ms (Linux counts it in 10 ms ticks).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.split_once(") ").map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the name: state is field 0, utime 11, stime 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 * 10.0
}

/// How many WAL fsyncs `cluster`'s members did and how long they took on average, from
/// their /metrics.
async fn wal_fsyncs(cluster: &EtcdCluster) -> String {
    let (mut count, mut seconds) = (0.0, 0.0);
    for endpoint in cluster.endpoints() {
        let Ok(reply) = HttpClient::default().get(&format!("{endpoint}/metrics")).await else { continue };
        for line in reply.body.lines() {
            let value = |name: &str| line.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok());
            if let Some(v) = value("etcd_disk_wal_fsync_duration_seconds_count ") {
                count += v;
            } else if let Some(v) = value("etcd_disk_wal_fsync_duration_seconds_sum ") {
                seconds += v;
            }
        }
    }
    if count == 0.0 {
        return "no WAL fsync figures in etcd's /metrics".into();
    }
    format!("WAL fsyncs (all members, whole run): {count:.0}, mean {:.3} ms", seconds / count * 1000.0)
}
