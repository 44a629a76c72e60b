//! Several control planes on etcd, measured beside one on sled: `PutApi` latency and throughput
//! (sled, etcd with one member, etcd with three), the time from SIGKILLing the control plane a
//! fleet is connected to until every data plane has applied a change made on another one, and
//! propagation to a fleet split over two control planes. Real processes on loopback: Debian's
//! etcd-server (started by the test kit) and `gatehouse-cp` built with the `etcd` feature.

mod failover;
mod figures;
mod installation;
mod propagation;
mod usage;
mod writes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_proto::v1 as pb;
use gatehouse_tests::process::Management;
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
        /// Data planes, all on the control plane that is killed.
        #[arg(long, default_value_t = 10)]
        data_planes: usize,
        /// Kills, each with a new control plane and new data planes.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// A change on one control plane until every data plane ACKed, half of them on another
    /// control plane (etcd), beside all of them on one control plane (sled).
    Propagation {
        /// Data planes, spread over the control planes.
        #[arg(long, default_value_t = 10)]
        data_planes: usize,
        /// Changes timed, per setup.
        #[arg(long, default_value_t = 200)]
        changes: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().part {
        Part::Writes { writes, writers, rounds } => writes::write_figures(writes, writers, rounds).await,
        Part::Failover { data_planes, rounds } => failover::failover_figures(data_planes, rounds).await,
        Part::Propagation { data_planes, changes } => propagation::propagation_figures(data_planes, changes).await,
    }
}

/// A PutApi for API `id` (on path /id) with a service URL it did not have before, so that every
/// write is a change.
fn changed_api(id: &str) -> pb::PutApiRequest {
    static CHANGES: AtomicU64 = AtomicU64::new(0);
    let port = 10_000 + CHANGES.fetch_add(1, Ordering::Relaxed) % 50_000;
    api(id, &format!("/{id}"), &format!("http://127.0.0.1:{port}"), None)
}

/// Puts API `id` with a service URL it did not have before; returns the revision.
async fn put_changed(m: &mut Management, id: &str) -> anyhow::Result<u64> {
    Ok(m.put_api(changed_api(id)).await.with_context(|| format!("PutApi {id}"))?.into_inner().revision)
}
