//! `PutApi` latency and throughput on one control plane, over sled and over etcd with one and
//! with three members, the stores interleaved round by round.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use gatehouse_tests::process::Access;

use crate::changed_api;
use crate::figures::{cores, median, percentile};
use crate::installation::{Installation, Store};
use crate::usage::{etcd_rss_mib, memory, wal_fsyncs};

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

pub async fn write_figures(writes: usize, writers: usize, rounds: usize) -> anyhow::Result<()> {
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
                    let request = changed_api(&id);
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
