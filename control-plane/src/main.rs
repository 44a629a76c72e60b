//! `gatehouse-cp`: the Gatehouse control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gatehouse_control_plane::management::Limits;
use gatehouse_control_plane::{ControlPlane, ControlPlaneConfig, Transport};

/// Gatehouse control plane: stores client certificates and APIs (sled) and streams
/// configuration to every data plane.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder for the database, the master key, the initial operator token and the generated
    /// TLS CA (created 0700 if missing).
    #[arg(long, env = "GATEHOUSE_CP_DATA_DIR", default_value = "gatehouse-data")]
    data_dir: PathBuf,
    /// Address of the gRPC API (Management, ConfigSync, health, reflection).
    #[arg(long, env = "GATEHOUSE_CP_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Address of /healthz and /metrics (Prometheus); "none" to turn it off.
    #[arg(long, env = "GATEHOUSE_CP_ADMIN_LISTEN", default_value = "127.0.0.1:7401")]
    admin_listen: String,
    /// TLS certificate (PEM, with its chain). Without --tls-cert/--tls-key the control plane
    /// serves a certificate from its own CA (DATA_DIR/tls/ca.pem).
    #[arg(long, env = "GATEHOUSE_CP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "GATEHOUSE_CP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Extra DNS name or IP address for the generated certificate (repeatable, or comma-separated).
    #[arg(long, env = "GATEHOUSE_CP_TLS_SAN", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Serve without TLS. Allowed only on a loopback address.
    #[arg(long, env = "GATEHOUSE_CP_PLAINTEXT", conflicts_with_all = ["tls_cert", "tls_key", "tls_san"])]
    plaintext: bool,
    /// Key sealing private keys and secrets in the database [default: DATA_DIR/master.key,
    /// created 0600 on first start].
    #[arg(long, env = "GATEHOUSE_CP_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Seconds between HTTP/2 keepalive pings on data plane streams; a peer silent for as long
    /// again is dropped.
    #[arg(long, env = "GATEHOUSE_CP_KEEPALIVE", default_value_t = 10)]
    keepalive: u64,
    /// Seconds a data plane may lag the latest revision before `gateway list` shows it STALE.
    #[arg(long, env = "GATEHOUSE_CP_STALE_AFTER", default_value_t = 10)]
    stale_after: u64,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Seconds a client has to finish its TLS handshake before the connection is dropped.
    #[arg(long, env = "GATEHOUSE_CP_TLS_HANDSHAKE_TIMEOUT", default_value_t = 5)]
    tls_handshake_timeout: u64,
    /// Most ConfigSync streams one gateway token may hold open at once.
    #[arg(long, env = "GATEHOUSE_CP_MAX_STREAMS_PER_TOKEN", default_value_t = 256)]
    max_streams_per_token: usize,
    /// Largest PFX file accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_PFX_BYTES", default_value_t = 1024 * 1024)]
    max_pfx_bytes: usize,
    /// Most certificates accepted in one PFX file.
    #[arg(long, env = "GATEHOUSE_CP_MAX_CHAIN_LENGTH", default_value_t = 10)]
    max_chain_length: usize,
    /// Largest policy XML document accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_POLICY_BYTES", default_value_t = 64 * 1024)]
    max_policy_bytes: usize,
    /// Seconds between two reads of the files linked certificates come from (cert link).
    #[arg(long, env = "GATEHOUSE_CP_SOURCE_POLL", default_value_t = 10)]
    source_poll: u64,
    /// Log format: text or json.
    #[arg(long, env = "GATEHOUSE_CP_LOG_FORMAT", default_value = "text")]
    log_format: gatehouse_shared::process::LogFormat,
    /// Log filter, RUST_LOG syntax (e.g. "info", "gatehouse_control_plane=debug").
    #[arg(long, env = "GATEHOUSE_CP_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    gatehouse_shared::process::init_logging(&args.log, args.log_format);
    gatehouse_shared::process::exit_on_error("gatehouse-cp", run(args)).await;
}

async fn run(args: Args) -> anyhow::Result<()> {
    let transport = match (args.plaintext, args.tls_cert, args.tls_key) {
        (true, _, _) => Transport::Plaintext,
        (false, Some(cert), Some(key)) => Transport::TlsFiles { cert, key },
        _ => Transport::TlsGenerated { sans: args.tls_san },
    };
    let config = ControlPlaneConfig {
        transport,
        master_key_file: args.master_key_file,
        keepalive: Duration::from_secs(args.keepalive.max(1)),
        stale_after: Duration::from_secs(args.stale_after),
        tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout.max(1)),
        limits: Limits {
            max_message_bytes: args.max_message_bytes,
            max_pfx_bytes: args.max_pfx_bytes,
            max_chain_length: args.max_chain_length,
            max_policy_bytes: args.max_policy_bytes,
            max_streams_per_token: args.max_streams_per_token,
        },
        source_poll: Duration::from_secs(args.source_poll.max(1)),
        admin_listen: match args.admin_listen.as_str() {
            "none" => None,
            addr => Some(addr.parse().with_context(|| format!("--admin-listen {addr} is not an address"))?),
        },
        ..ControlPlaneConfig::new(args.data_dir, args.listen)
    };
    let control_plane = ControlPlane::bind(&config).await?;
    let access = control_plane.access();
    if let Some(ca) = &access.ca_file {
        println!("gatehouse-cp TLS CA (give it to data planes and gatehousectl): {}", ca.display());
    }
    if let Some(token) = &access.initial_token_file {
        println!("gatehouse-cp initial operator token file: {}", token.display());
    }
    // Tests and scripts read these lines to learn the bound ports when listening on :0.
    let scheme = if control_plane.is_tls() { "https" } else { "http" };
    println!("gatehouse-cp listening on {} ({scheme})", control_plane.local_addr());
    if let Some(admin) = control_plane.admin_addr() {
        println!("gatehouse-cp admin (/healthz, /metrics) on {admin}");
    }
    control_plane.serve(gatehouse_shared::process::shutdown_signal()).await.context("serving")?;
    Ok(())
}
