//! Assembles the control plane: store, tokens, TLS, services, gRPC health and reflection, on
//! one listener.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::admin::Answer;
use gatehouse_shared::sealed::{SealError, SealingKey};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::config_sync::ConfigSyncService;
use crate::gateways::Gateways;
use crate::management::{Limits, ManagementService};
use crate::store::{Store, StoreError};
use crate::tls::{ServerIdentity, TlsError};
use crate::tokens::{RequireRole, Role, TokenError, Tokens};

/// How the listener speaks.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plain HTTP/2: only on loopback addresses.
    Plaintext,
    /// TLS with the operator's certificate and key (PEM files).
    TlsFiles {
        /// The certificate chain, PEM.
        cert: PathBuf,
        /// Its private key, PEM.
        key: PathBuf,
    },
    /// TLS with a certificate from the control plane's own CA (created in the data dir), valid
    /// for localhost, 127.0.0.1, ::1 and these extra names.
    TlsGenerated {
        /// Extra DNS names or IP addresses.
        sans: Vec<String>,
    },
}

/// Where the configuration (and the tokens, and with etcd the fleet view) is kept.
#[derive(Clone, Debug, Default)]
pub enum StoreConfig {
    /// sled in DATA_DIR/sled: one control plane.
    #[default]
    Sled,
    /// etcd, shared by several control planes.
    #[cfg(feature = "etcd")]
    Etcd(crate::store::etcd::EtcdOptions),
}

/// How to start a control plane; [`ControlPlaneConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// Holds the database, the master key, the generated CA and the initial operator token (created 0700).
    pub data_dir: PathBuf,
    /// The gRPC listener's address.
    pub listen: SocketAddr,
    /// Plaintext, or TLS with given or generated certificates.
    pub transport: Transport,
    /// Seals private keys and secrets in the store [default: DATA_DIR/master.key, created 0600].
    pub master_key_file: Option<PathBuf>,
    /// HTTP/2 keepalive on sync streams: a ping this often, and a peer that does not answer
    /// within as long again is gone.
    pub keepalive: Duration,
    /// A data plane behind the latest revision for longer than this is listed STALE.
    pub stale_after: Duration,
    /// Connections that have not finished their TLS handshake by then are dropped.
    pub tls_handshake_timeout: Duration,
    /// Size limits on what operators send.
    pub limits: Limits,
    /// Where /healthz and /metrics are served, if anywhere.
    pub admin_listen: Option<SocketAddr>,
    /// Time between two reads of the files linked certificates come from.
    pub source_poll: Duration,
    /// sled, or etcd.
    pub store: StoreConfig,
    /// A console session unused for this long is signed out.
    pub console_idle: Duration,
}

impl ControlPlaneConfig {
    /// TLS with a generated certificate, no admin listener, and default timings and limits.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            transport: Transport::TlsGenerated { sans: Vec::new() },
            master_key_file: None,
            keepalive: Duration::from_secs(10),
            stale_after: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            admin_listen: None,
            source_poll: crate::sources::DEFAULT_POLL,
            store: StoreConfig::Sled,
            console_idle: Duration::from_secs(15 * 60),
        }
    }
}

/// Why a control plane cannot start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created.
    #[error("cannot open the data directory {dir}")]
    DataDir {
        /// The data directory.
        dir: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// sled cannot open its database.
    #[error("cannot open the database in {dir}")]
    Database {
        /// The data directory.
        dir: PathBuf,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// The stored configuration cannot be loaded.
    #[error("cannot load the configuration in {dir}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// Why it cannot.
        #[source]
        source: StoreError,
    },
    /// The master key does not open the store in the data directory.
    #[error(
        "the master key {key_file} does not open the configuration in {dir}: the store was sealed under another key; start with that one (--master-key-file)"
    )]
    WrongMasterKey {
        /// The key file given.
        key_file: PathBuf,
        /// The data directory.
        dir: PathBuf,
    },
    /// The configuration in etcd cannot be loaded.
    #[error("cannot load the configuration from etcd")]
    Etcd(#[source] StoreError),
    /// The master key cannot be loaded or created.
    #[error("master key")]
    MasterKey(#[source] SealError),
    /// The token registry cannot be opened, or the first operator token made.
    #[error("tokens")]
    Tokens(#[source] TokenError),
    /// The initial operator token cannot be written.
    #[error("cannot write the initial operator token to {path}")]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate and key cannot be read or generated.
    #[error("TLS identity")]
    Tls(#[source] TlsError),
    /// tonic refuses the TLS certificate or key.
    #[error("the TLS certificate or key cannot be used")]
    TlsConfig(#[source] tonic::transport::Error),
    /// Plaintext asked for on an address other than loopback.
    #[error(
        "refusing to serve plaintext on {0}: that is not a loopback address, and the stream carries private keys; drop --plaintext to serve TLS"
    )]
    PlaintextNotLoopback(SocketAddr),
    /// A listener cannot bind.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// gRPC reflection cannot load the descriptors.
    #[error("gRPC reflection could not load the API descriptors")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The gRPC server stopped with an error.
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// What an operator (and the data planes) need to reach this control plane.
#[derive(Clone, Debug)]
pub struct Access {
    /// The CA to verify the control plane with, when it made its own.
    pub ca_file: Option<PathBuf>,
    /// Written on first start: the first operator token.
    pub initial_token_file: Option<PathBuf>,
}

/// A bound, not yet serving, control plane.
pub struct ControlPlane {
    store: Arc<Store>,
    tokens: Arc<Tokens>,
    gateways: Arc<Gateways>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<ServerIdentity>,
    access: Access,
    config: ControlPlaneConfig,
}

impl ControlPlane {
    /// Opens the data directory, store and tokens, makes an operator token if none is left, sets
    /// up TLS and binds the listeners.
    pub async fn bind(config: &ControlPlaneConfig) -> Result<Self, StartError> {
        if matches!(config.transport, Transport::Plaintext) && !config.listen.ip().is_loopback() {
            return Err(StartError::PlaintextNotLoopback(config.listen));
        }
        let dir = &config.data_dir;
        gatehouse_shared::sealed::create_private_dir(dir)
            .map_err(|source| StartError::DataDir { dir: dir.clone(), source })?;
        let key_file = config.master_key_file.clone().unwrap_or_else(|| dir.join("master.key"));
        let key = SealingKey::load_or_create(&key_file).map_err(StartError::MasterKey)?;
        let gateways = Arc::new(Gateways::default());
        let (store, tokens) = match &config.store {
            StoreConfig::Sled => {
                let db = sled::Config::new()
                    .path(dir.join("sled"))
                    .open()
                    .map_err(|source| StartError::Database { dir: dir.clone(), source })?;
                // The store first: a database that lost writes stops the start before anything is written.
                let watermark = crate::watermark::Watermark::new(dir.join("committed-revision"));
                let store = Store::open(db.clone(), key, Some(watermark)).map_err(|source| match source {
                    StoreError::WrongMasterKey => {
                        StartError::WrongMasterKey { key_file: key_file.clone(), dir: dir.clone() }
                    }
                    source => StartError::Store { dir: dir.clone(), source },
                })?;
                (Arc::new(store), Arc::new(Tokens::open(&db).map_err(StartError::Tokens)?))
            }
            #[cfg(feature = "etcd")]
            StoreConfig::Etcd(options) => {
                // Boxed: the etcd client's futures are large, and most control planes run on sled.
                let etcd = Box::pin(crate::store::etcd::Etcd::connect(options)).await.map_err(StartError::Etcd)?;
                let store = Box::pin(Store::open_etcd(etcd.clone(), key)).await.map_err(StartError::Etcd)?;
                let tokens = Box::pin(Tokens::open_etcd(etcd.clone())).await.map_err(StartError::Tokens)?;
                let id = crate::random::secret("cp-")[..15].to_string();
                crate::gateways::etcd::share(gateways.clone(), etcd, id);
                (store, tokens)
            }
        };
        let mut access = Access { ca_file: None, initial_token_file: None };
        // No operator token (a first start, or every one revoked): make one, so whoever holds
        // the host can always manage the control plane again by restarting it.
        if !tokens.has_operator() {
            let path = dir.join("operator.token");
            let name = (0..)
                .map(|n| if n == 0 { "admin".to_string() } else { format!("admin-{n}") })
                .find(|name| !tokens.list().iter().any(|t| t.name == *name))
                .expect("a free name");
            match tokens.create(&name, Role::Operator, None).await {
                Ok((_, secret)) => {
                    gatehouse_shared::sealed::write_private_file(&path, format!("{secret}\n").as_bytes())
                        .map_err(|source| StartError::TokenFile { path: path.clone(), source })?;
                    tracing::info!(path = %path.display(), token = %name, "operator token written; keep it safe");
                    access.initial_token_file = Some(path);
                }
                // Another control plane on the same store (etcd) made the first token meanwhile.
                Err(TokenError::Exists(_)) => {}
                Err(error) => return Err(StartError::Tokens(error)),
            }
        } else if dir.join("operator.token").exists() {
            access.initial_token_file = Some(dir.join("operator.token"));
        }
        let tls = match &config.transport {
            Transport::Plaintext => None,
            Transport::TlsFiles { cert, key } => {
                Some(crate::tls::server_identity(dir, Some(cert), Some(key), &[]).map_err(StartError::Tls)?)
            }
            Transport::TlsGenerated { sans } => {
                Some(crate::tls::server_identity(dir, None, None, sans).map_err(StartError::Tls)?)
            }
        };
        access.ca_file = tls.as_ref().and_then(|t| t.ca_file.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source })?),
            None => None,
        };
        Ok(Self { store, tokens, gateways, listener, admin_listener, tls, access, config: config.clone() })
    }

    /// The gRPC listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The admin listener's bound address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The CA file and initial operator token to reach it with.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Whether the gRPC listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The API tokens, e.g. to make one before serving.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// Serves until `shutdown` completes, then flushes the store.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartError> {
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<pb::management_server::ManagementServer<ManagementService>>().await;
        health_reporter.set_serving::<pb::config_sync_server::ConfigSyncServer<ConfigSyncService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(StartError::Reflection)?;

        let addr = self.local_addr();
        // Small HTTP/2 frames must not wait for Nagle's algorithm: a revision is a few frames.
        let incoming = TcpListenerStream::new(self.listener).map(|stream| {
            if let Ok(stream) = &stream {
                let _ = stream.set_nodelay(true);
            }
            stream
        });
        let limits = self.config.limits.clone();
        let max_message = limits.max_message_bytes;
        let watcher = tokio::spawn(crate::sources::watch(self.store.clone(), limits.clone(), self.config.source_poll));
        let service = ManagementService::new(
            self.store.clone(),
            self.gateways.clone(),
            self.tokens.clone(),
            self.config.stale_after,
            limits.clone(),
        );
        // The console calls the same service as gRPC clients; its uploads are as large as a
        // message may be.
        let console =
            crate::console::router(service.clone(), self.tokens.clone(), self.config.console_idle, max_message);
        let management = pb::management_server::ManagementServer::new(service).max_decoding_message_size(max_message);
        let sync = pb::config_sync_server::ConfigSyncServer::new(ConfigSyncService::new(
            self.store.clone(),
            self.gateways.clone(),
            self.tokens.clone(),
            self.config.limits.max_streams_per_token,
        ))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
        tracing::info!(%addr, tls = self.tls.is_some(), revision = self.store.state().revision, "control plane serving");
        let mut builder = tonic::transport::Server::builder()
            // The console in browsers: over plaintext (loopback) they speak HTTP/1.1; over TLS
            // the listener offers HTTP/2 only, which every current browser speaks.
            .accept_http1(true)
            // A data plane frozen or cut off mid-stream is noticed within two keepalive periods.
            .http2_keepalive_interval(Some(self.config.keepalive))
            .http2_keepalive_timeout(Some(self.config.keepalive));
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                        // A peer that connects and never finishes the handshake is dropped.
                        .timeout(self.config.tls_handshake_timeout),
                )
                .map_err(StartError::TlsConfig)?;
        }
        if let Some(admin) = self.admin_listener {
            let (store, gateways, stale_after) = (self.store.clone(), self.gateways.clone(), self.config.stale_after);
            tokio::spawn(gatehouse_shared::admin::serve(
                admin,
                move |path| match path {
                    "/healthz" => Answer::json(http::StatusCode::OK, serde_json::json!({ "status": "alive" })),
                    "/metrics" => Answer::metrics(crate::metrics::global().render(&store, &gateways, stale_after)),
                    _ => Answer::not_found("/healthz or /metrics"),
                },
                std::future::pending(),
            ));
        }
        let gateways = self.gateways.clone();
        let mut grpc = tonic::service::Routes::builder();
        // Health and reflection are open (they reveal no configuration); Management needs an
        // operator token and ConfigSync a gateway token; the console signs operators in itself.
        grpc.add_service(health)
            .add_service(reflection)
            .add_service(InterceptedService::new(management, RequireRole::new(self.tokens.clone(), Role::Operator)))
            .add_service(InterceptedService::new(sync, RequireRole::new(self.tokens.clone(), Role::Gateway)));
        let routes = tonic::service::Routes::from(grpc.routes().into_axum_router().merge(console));
        let result = builder
            .layer(
                tower::ServiceBuilder::new()
                    .layer(crate::metrics::GrpcMetricsLayer)
                    .layer(crate::oversize::OversizeLayer { limit: self.config.limits.max_message_bytes }),
            )
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                gateways.close_all();
            })
            .await
            .map_err(StartError::Serve);
        watcher.abort();
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "flush on shutdown failed");
        }
        tracing::info!("control plane stopped");
        result
    }
}
