//! `gatehouse-dp`: a Gatehouse data plane. Parses flags (each with its GATEHOUSE_DP_*
//! variable and its key in the --config file), starts the runtime, and hands the configuration to [`DataPlane`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use gatehouse_data_plane::proxy::ProxySettings;
use gatehouse_data_plane::{DataPlane, DataPlaneConfig};

/// Gatehouse data plane: proxies API clients' requests to backends, presenting each API's
/// client certificate, with configuration streamed from the control plane.
#[derive(Parser, Debug)]
#[command(name = "gatehouse-dp", version = gatehouse_shared::VERSION)]
struct Args {
    /// --config FILE (GATEHOUSE_DP_CONFIG) and --print-config.
    #[command(flatten)]
    config: gatehouse_shared::config_file::ConfigArgs,
    /// URL of a control plane's gRPC API; several, comma-separated or with the flag repeated,
    /// must share one store: the first is tried first, and when a stream breaks or cannot be
    /// opened the data plane moves on to the next (round robin), keeping the revision it holds.
    #[arg(
        long,
        env = "GATEHOUSE_DP_CONTROL_PLANE",
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        default_value = "https://127.0.0.1:7400"
    )]
    control_plane: Vec<String>,
    /// CA certificate (PEM) the control planes' TLS certificates are checked against (one file
    /// for all of them), e.g. the control plane's DATA_DIR/tls/ca.pem [default: the system
    /// roots].
    #[arg(long, env = "GATEHOUSE_DP_CONTROL_PLANE_CA")]
    control_plane_ca: Option<std::path::PathBuf>,
    /// File holding this data plane's gateway token (`gatehousectl token create NAME --role
    /// gateway`). The token may instead be given in GATEHOUSE_DP_TOKEN; never on the command line.
    #[arg(long, env = "GATEHOUSE_DP_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Seconds to get a sync stream going (TCP, TLS and HTTP/2 handshakes and the control
    /// plane's answer); then the attempt counts as failed and is retried with backoff.
    #[arg(long, env = "GATEHOUSE_DP_CONTROL_PLANE_CONNECT_TIMEOUT", default_value_t = 10)]
    control_plane_connect_timeout: u64,
    /// Largest request head (request line and headers) accepted from API clients, in bytes;
    /// larger ones get 431.
    #[arg(long, env = "GATEHOUSE_DP_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Seconds to connect (TCP) to a backend before the client gets 502.
    #[arg(long, env = "GATEHOUSE_DP_BACKEND_CONNECT_TIMEOUT", default_value_t = 10)]
    backend_connect_timeout: u64,
    /// Seconds a backend connection takes new requests; then it is closed once idle, so a
    /// rotated client certificate or changed backend trust reaches even the busiest
    /// connection within this time. 0: no limit.
    #[arg(long, env = "GATEHOUSE_DP_MAX_CONNECTION_AGE", default_value_t = 300)]
    max_connection_age: u64,
    /// Most connections to a backend per TLS identity (client certificate and trust settings);
    /// requests beyond wait for one to come back, within the backend timeout.
    #[arg(long, env = "GATEHOUSE_DP_MAX_BACKEND_CONNECTIONS", default_value_t = gatehouse_data_plane::upstream::DEFAULT_MAX_CONNECTIONS_PER_POOL)]
    max_backend_connections: usize,
    /// Offer HTTP/2 to backends over TLS (ALPN): a backend that takes it gets one multiplexed
    /// connection per TLS identity instead of one per request in flight.
    #[arg(long, env = "GATEHOUSE_DP_BACKEND_HTTP2")]
    backend_http2: bool,
    /// Address API clients send plaintext requests to (HTTP/1.1 and h2c); `none` turns
    /// plaintext off (then --listen-https is needed).
    #[arg(long, env = "GATEHOUSE_DP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: Listen,
    /// Address API clients send HTTPS requests to (TLS 1.2 and 1.3, HTTP/1.1 and h2), with the
    /// certificate of the hostname they ask for (`gatehousectl hostname put`) [default: off].
    #[arg(long, env = "GATEHOUSE_DP_LISTEN_HTTPS")]
    listen_https: Option<SocketAddr>,
    /// Address of /healthz and /ready.
    #[arg(long, env = "GATEHOUSE_DP_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    admin_listen: SocketAddr,
    /// Name shown by `gatehousectl gateway list` [default: host name and listen address].
    #[arg(long, env = "GATEHOUSE_DP_NAME")]
    name: Option<String>,
    /// PEM file of extra CA certificates trusted for backends, on top of the system roots.
    #[arg(long, env = "GATEHOUSE_DP_BACKEND_CA_FILE")]
    backend_ca_file: Option<std::path::PathBuf>,
    /// Folder of the last-known-good configuration cache (sealed; created 0700 if missing).
    /// Without it the data plane cannot serve until the control plane answers.
    #[arg(long, env = "GATEHOUSE_DP_CACHE_DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Key file sealing the cache [default: cache.key in --cache-dir, created 0600].
    #[arg(long, env = "GATEHOUSE_DP_CACHE_KEY_FILE")]
    cache_key_file: Option<std::path::PathBuf>,
    /// Refuse (NACK) configurations with more APIs than this.
    #[arg(long, env = "GATEHOUSE_DP_MAX_ROUTES", default_value_t = 100_000)]
    max_routes: usize,
    /// Seconds between HTTP/2 keepalive pings to the control plane; silence for as long again
    /// ends the stream and starts a reconnect.
    #[arg(long, env = "GATEHOUSE_DP_KEEPALIVE", default_value_t = 10)]
    keepalive: u64,
    /// Seconds a backend has to answer before the client gets 504.
    #[arg(long, env = "GATEHOUSE_DP_BACKEND_TIMEOUT", default_value_t = 60)]
    backend_timeout: u64,
    /// Seconds a client has to send its request headers (over HTTPS, also to complete the TLS
    /// handshake).
    #[arg(long, env = "GATEHOUSE_DP_HEADER_READ_TIMEOUT", default_value_t = 30)]
    header_read_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "GATEHOUSE_DP_SHUTDOWN_GRACE", default_value_t = 30)]
    shutdown_grace: u64,
    /// Log one line per request (target gatehouse::access): API, method, path, status,
    /// latency, backend, client certificate thumbprint, request id.
    #[arg(long, env = "GATEHOUSE_DP_ACCESS_LOG")]
    access_log: bool,
    /// Log format: text or json.
    #[arg(long, env = "GATEHOUSE_DP_LOG_FORMAT", default_value = "text")]
    log_format: gatehouse_shared::process::LogFormat,
    /// Threads serving requests [default 0: one per CPU this process may use]; 1 runs a single
    /// event loop.
    #[arg(long, env = "GATEHOUSE_DP_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, env = "GATEHOUSE_DP_LOG", default_value = "info")]
    log: String,
}

/// `--listen`: an address, or `none`.
#[derive(Clone, Debug)]
struct Listen(Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "none" => Ok(Self(None)),
            addr => addr.parse().map(|addr| Self(Some(addr))),
        }
    }
}

fn main() {
    // Flags, then GATEHOUSE_DP_* variables, then the --config file, then the defaults.
    let args: Args = gatehouse_shared::config_file::parse("gatehouse-dp", "GATEHOUSE_DP_CONFIG");
    gatehouse_shared::process::init_logging(&args.log, args.log_format);
    // One worker is a single-threaded event loop (as an nginx worker is): no cross-thread
    // wake-ups, which matters when the proxy has one core.
    let workers = match args.worker_threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    let runtime = builder.enable_all().build().expect("the tokio runtime starts");
    runtime.block_on(gatehouse_shared::process::exit_on_error("gatehouse-dp", run(args)));
}

async fn run(args: Args) -> anyhow::Result<()> {
    let token = gatehouse_shared::client::resolve_token(args.token_file.as_deref(), "GATEHOUSE_DP_TOKEN", None)?;
    let config = DataPlaneConfig {
        control_plane_ca: args.control_plane_ca,
        token,
        control_plane_connect_timeout: Duration::from_secs(args.control_plane_connect_timeout.max(1)),
        keepalive: Duration::from_secs(args.keepalive.max(1)),
        name: args.name,
        backend_ca_file: args.backend_ca_file,
        backend_connect_timeout: Duration::from_secs(args.backend_connect_timeout),
        max_connection_age: (args.max_connection_age > 0).then(|| Duration::from_secs(args.max_connection_age)),
        max_backend_connections: args.max_backend_connections.max(1),
        backend_http2: args.backend_http2,
        cache_dir: args.cache_dir,
        cache_key_file: args.cache_key_file,
        max_routes: args.max_routes,
        proxy: ProxySettings {
            access_log: args.access_log,
            max_header_bytes: args.max_header_bytes,
            backend_timeout: Duration::from_secs(args.backend_timeout),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
        },
        ..DataPlaneConfig::with_control_planes(args.control_plane, args.listen.0, args.listen_https, args.admin_listen)
    };
    let data_plane = DataPlane::bind(config).await?;
    // Tests and scripts read these lines, in this order, to learn the bound ports when
    // listening on :0; a listener that is off has no line.
    if let Some(addr) = data_plane.plaintext_addr() {
        println!("gatehouse-dp listening on {addr}");
    }
    println!("gatehouse-dp admin on {}", data_plane.admin_addr());
    if let Some(addr) = data_plane.https_addr() {
        println!("gatehouse-dp https on {addr}");
    }
    data_plane.serve(gatehouse_shared::process::shutdown_signal()).await;
    Ok(())
}
