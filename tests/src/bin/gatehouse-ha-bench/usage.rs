//! What the processes used: memory and CPU time from /proc, and etcd's WAL fsyncs from its
//! metrics.

use gatehouse_tests::etcd::EtcdCluster;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::measure::status_kib;
use gatehouse_tests::process::ControlPlane;

/// "RSS/peak" of a control plane, in MiB.
pub fn memory(cp: &ControlPlane) -> String {
    let pid = cp.process.pid().unwrap_or(0);
    format!("{:.1}/{:.1}", status_kib(pid, "VmRSS:") as f64 / 1024.0, status_kib(pid, "VmHWM:") as f64 / 1024.0)
}

/// The RSS of `cluster`'s members, in MiB.
pub fn etcd_rss_mib(cluster: &EtcdCluster) -> f64 {
    etcd_pids(cluster).into_iter().map(|pid| status_kib(pid, "VmRSS:")).sum::<u64>() as f64 / 1024.0
}

/// The process ids of `cluster`'s members: this process's children named etcd that listen on
/// one of its client URLs.
pub fn etcd_pids(cluster: &EtcdCluster) -> Vec<u32> {
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
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.split_once(") ").map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the name: state is field 0, utime 11, stime 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 * 10.0
}

/// How many WAL fsyncs `cluster`'s members did and how long they took on average, from
/// their /metrics.
pub async fn wal_fsyncs(cluster: &EtcdCluster) -> String {
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
