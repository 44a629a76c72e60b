//! Assembles a data plane: the backend trust anchors, the proxy (plaintext and HTTPS) and admin
//! listeners, the configuration client (with its last-known-good cache). `gatehouse-dp` and the
//! demo both run it: [`DataPlane::bind`] does everything that can fail at start,
//! [`DataPlane::serve`] runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_shared::client::ClientError;
use tokio::net::TcpListener;

use crate::cache::{CacheError, ConfigCache};
use crate::config_client::{ConfigClient, ConfigClientSettings};
use crate::proxy::{Listeners, ProxySettings};
use crate::routes::Routing;
use crate::upstream::{TrustAnchors, TrustError};

/// What a data plane is told at start; [`DataPlaneConfig::new`] gives `gatehouse-dp`'s defaults.
/// (No `Debug`: it holds the gateway token.)
#[derive(Clone)]
pub struct DataPlaneConfig {
    /// URLs of the control planes' gRPC API, at least one. The first is tried first; when a
    /// stream breaks or cannot be opened, the next one (round robin). They must share one store.
    pub control_planes: Vec<String>,
    /// CA certificate (PEM) every control plane's certificate is checked against [default: the
    /// system roots].
    pub control_plane_ca: Option<PathBuf>,
    /// This data plane's gateway token; without one the control plane refuses it.
    pub token: Option<String>,
    /// Time to get a sync stream going before the attempt counts as failed.
    pub control_plane_connect_timeout: Duration,
    /// HTTP/2 keepalive on the sync stream.
    pub keepalive: Duration,
    /// Name shown by `gatehousectl gateway list` [default: host name and listen address].
    pub name: Option<String>,
    /// Address API clients send plaintext requests to (HTTP/1.1 and h2c); None: no plaintext.
    pub listen: Option<SocketAddr>,
    /// Address API clients send HTTPS requests to (HTTP/1.1 and h2), with the certificates of
    /// the configuration's hostnames; None: no HTTPS.
    pub listen_https: Option<SocketAddr>,
    /// Address of /healthz, /ready and /metrics.
    pub admin_listen: SocketAddr,
    /// PEM file of extra CA certificates trusted for backends, on top of the system roots.
    pub backend_ca_file: Option<PathBuf>,
    /// Time to connect (TCP) to a backend.
    pub backend_connect_timeout: Duration,
    /// How long a backend connection takes new requests (`None`: no limit).
    pub max_connection_age: Option<Duration>,
    /// Most connections to a backend per TLS identity; requests beyond wait for one.
    pub max_backend_connections: usize,
    /// Offer HTTP/2 to backends over TLS (ALPN); a backend that takes it gets one multiplexed
    /// connection per identity.
    pub backend_http2: bool,
    /// Folder of the last-known-good configuration cache, if any.
    pub cache_dir: Option<PathBuf>,
    /// Key file sealing the cache [default: cache.key in `cache_dir`].
    pub cache_key_file: Option<PathBuf>,
    /// Configurations with more APIs than this are refused (NACK).
    pub max_routes: usize,
    /// How the proxy treats API clients.
    pub proxy: ProxySettings,
}

impl DataPlaneConfig {
    /// A data plane of `control_plane` on these addresses (plaintext only), with
    /// `gatehouse-dp`'s defaults.
    pub fn new(control_plane: String, listen: SocketAddr, admin_listen: SocketAddr) -> Self {
        Self::with_listeners(control_plane, Some(listen), None, admin_listen)
    }

    /// A data plane of `control_plane` with a plaintext listener, an HTTPS one, or both (none
    /// of them fails [`DataPlane::bind`]), with `gatehouse-dp`'s defaults.
    pub fn with_listeners(
        control_plane: String,
        listen: Option<SocketAddr>,
        listen_https: Option<SocketAddr>,
        admin_listen: SocketAddr,
    ) -> Self {
        Self::with_control_planes(vec![control_plane], listen, listen_https, admin_listen)
    }

    /// As [`DataPlaneConfig::with_listeners`], knowing several control planes (see
    /// [`DataPlaneConfig::control_planes`]).
    pub fn with_control_planes(
        control_planes: Vec<String>,
        listen: Option<SocketAddr>,
        listen_https: Option<SocketAddr>,
        admin_listen: SocketAddr,
    ) -> Self {
        Self {
            control_planes,
            control_plane_ca: None,
            token: None,
            control_plane_connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(10),
            name: None,
            listen,
            listen_https,
            admin_listen,
            backend_ca_file: None,
            backend_connect_timeout: Duration::from_secs(10),
            max_connection_age: Some(Duration::from_secs(300)),
            max_backend_connections: crate::upstream::DEFAULT_MAX_CONNECTIONS_PER_POOL,
            backend_http2: false,
            cache_dir: None,
            cache_key_file: None,
            max_routes: 100_000,
            proxy: ProxySettings::default(),
        }
    }
}

/// Why a data plane cannot start. The wrapped errors already say what and where, so they are
/// shown as they are.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `--backend-ca-file` bundle cannot be used.
    #[error(transparent)]
    BackendCa(#[from] TrustError),
    /// The proxy listener cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS listener cannot be bound.
    #[error("cannot listen on {addr} (https)")]
    HttpsListen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Neither a plaintext nor an HTTPS listener was asked for.
    #[error("no listener for API clients: give --listen, --listen-https, or both")]
    NoListener,
    /// The admin listener cannot be bound.
    #[error("cannot listen on {addr} (admin)")]
    AdminListen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A control plane setting that no retry can fix (URL, CA file, token format).
    #[error(transparent)]
    ControlPlane(#[from] ClientError),
    /// The list of control planes is empty.
    #[error("no control plane: give --control-plane URL[,URL...]")]
    NoControlPlane,
    /// The last-known-good cache folder or key cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A bound, not yet serving, data plane.
pub struct DataPlane {
    listeners: Listeners,
    admin_listener: TcpListener,
    local_addr: SocketAddr,
    plaintext_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    routing: Arc<Routing>,
    client: ConfigClient,
    proxy: ProxySettings,
}

// === impl DataPlane ===

impl DataPlane {
    /// Reads the backend CA bundle, binds the listeners, checks the control plane settings
    /// and opens the cache (serving its configuration, if usable, from the first request).
    pub async fn bind(config: DataPlaneConfig) -> Result<Self, StartError> {
        if config.listen.is_none() && config.listen_https.is_none() {
            // Said before anything is bound.
            return Err(StartError::NoListener);
        }
        if config.control_planes.is_empty() {
            return Err(StartError::NoControlPlane);
        }
        let mut trust = TrustAnchors::system();
        if let Some(path) = &config.backend_ca_file {
            trust = trust.with_pem_file(path)?;
        }
        let trust = trust
            .with_connect_timeout(config.backend_connect_timeout)
            .with_max_connection_age(config.max_connection_age)
            .with_max_connections_per_pool(config.max_backend_connections)
            .with_backend_http2(config.backend_http2);
        let plaintext = match config.listen {
            Some(addr) => Some(bind(addr).await.map_err(|source| StartError::Listen { addr, source })?),
            None => None,
        };
        let https = match config.listen_https {
            Some(addr) => Some(bind(addr).await.map_err(|source| StartError::HttpsListen { addr, source })?),
            None => None,
        };
        let (admin_listener, admin_addr) = bind(config.admin_listen)
            .await
            .map_err(|source| StartError::AdminListen { addr: config.admin_listen, source })?;
        let plaintext_addr = plaintext.as_ref().map(|(_, addr)| *addr);
        let https_addr = https.as_ref().map(|(_, addr)| *addr);
        let listeners = Listeners { plaintext: plaintext.map(|(l, _)| l), https: https.map(|(l, _)| l) };
        let Some(local_addr) = plaintext_addr.or(https_addr) else { return Err(StartError::NoListener) };

        let name = config.name.unwrap_or_else(|| format!("{}-{local_addr}", host_name()));
        if config.token.is_none() {
            tracing::warn!(
                "no gateway token (--token-file or GATEHOUSE_DP_TOKEN): the control plane will refuse this data plane"
            );
        }
        let settings = ConfigClientSettings {
            control_plane_ca: config.control_plane_ca,
            token: config.token,
            keepalive: config.keepalive,
            max_routes: config.max_routes,
            listen_addresses: plaintext_addr
                .map(|addr| format!("http://{addr}"))
                .into_iter()
                .chain(https_addr.map(|addr| format!("https://{addr}")))
                .collect(),
            connect_timeout: config.control_plane_connect_timeout,
            ..ConfigClientSettings::new(config.control_planes, name, trust)
        };
        settings.check()?;
        let routing = Arc::new(Routing::default());
        let mut client = ConfigClient::new(settings, routing.clone());
        if let Some(dir) = &config.cache_dir {
            client = client.with_cache(ConfigCache::open(dir, config.cache_key_file.as_deref())?).await;
        }
        Ok(Self {
            listeners,
            admin_listener,
            local_addr,
            plaintext_addr,
            https_addr,
            admin_addr,
            routing,
            client,
            proxy: config.proxy,
        })
    }

    /// Where API clients reach this data plane: the plaintext listener, or the HTTPS one when
    /// plaintext is off.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext listener (HTTP/1.1 and h2c), when on.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext_addr
    }

    /// The HTTPS listener, when on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Where /healthz, /ready and /metrics are served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The routing table the proxy serves from: [`Routing::watch`] tells when a revision is
    /// applied.
    pub fn routing(&self) -> &Arc<Routing> {
        &self.routing
    }

    /// Syncs with the control plane and serves admin and API clients until `shutdown`
    /// completes, then lets in-flight requests finish (up to the grace period).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::spawn(self.client.run());
        tokio::spawn(crate::admin::serve(self.admin_listener, self.routing.clone(), std::future::pending()));
        crate::proxy::serve(self.listeners, self.routing, self.proxy, shutdown).await;
        tracing::info!("data plane stopped");
    }
}

/// A listener and the address it got (the port, when asked for port 0).
async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// This host's name, for the default data plane name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gatehouse-dp".to_string())
}
