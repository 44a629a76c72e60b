//! What the benchmark harnesses measure with: percentiles of durations and a process's memory.

use std::time::Duration;

/// The sample at quantile `q` (0 to 1, nearest rank); sorts them.
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 when the process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
