//! `gatehouse-cp`: the Gatehouse control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gatehouse_control_plane::{ControlPlane, ControlPlaneConfig};

/// Gatehouse control plane: stores client certificates and APIs (sled) and streams
/// configuration to every data plane.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder for the sled database (created if missing).
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "gatehouse-data")]
    data_dir: PathBuf,
    /// Address of the gRPC API (Management, ConfigSync, health, reflection).
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Seconds between HTTP/2 keepalive pings on data plane streams; a peer silent for as long
    /// again is dropped.
    #[arg(long, env = "GATEHOUSE_KEEPALIVE", default_value_t = 10)]
    keepalive: u64,
    /// Seconds a data plane may lag the latest revision before `gateway list` shows it STALE.
    #[arg(long, env = "GATEHOUSE_STALE_AFTER", default_value_t = 10)]
    stale_after: u64,
    /// Log filter, RUST_LOG syntax (e.g. "info", "gatehouse_control_plane=debug").
    #[arg(long, env = "GATEHOUSE_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    gatehouse_shared::process::init_logging(&args.log);
    if let Err(error) = run(args).await {
        eprintln!("gatehouse-cp: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = ControlPlaneConfig {
        keepalive: std::time::Duration::from_secs(args.keepalive.max(1)),
        stale_after: std::time::Duration::from_secs(args.stale_after),
        ..ControlPlaneConfig::new(args.data_dir, args.listen)
    };
    let control_plane = ControlPlane::bind(&config).await?;
    // Tests and scripts read this line to learn the bound port when listening on :0.
    println!("gatehouse-cp listening on {}", control_plane.local_addr());
    control_plane.serve(gatehouse_shared::process::shutdown_signal()).await.context("serving")?;
    Ok(())
}
