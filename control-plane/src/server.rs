//! Assembles the control plane: store, services, gRPC health and reflection, on one listener.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config_sync::ConfigSyncService;
use crate::gateways::Gateways;
use crate::management::ManagementService;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// HTTP/2 keepalive on sync streams: a ping this often, and a peer that does not answer
    /// within as long again is gone.
    pub keepalive: Duration,
    /// A data plane behind the latest revision for longer than this is listed STALE.
    pub stale_after: Duration,
}

impl ControlPlaneConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self { data_dir, listen, keepalive: Duration::from_secs(10), stale_after: Duration::from_secs(10) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {dir}")]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC reflection could not load the API descriptors")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// A bound, not yet serving, control plane.
pub struct ControlPlane {
    store: Arc<Store>,
    gateways: Arc<Gateways>,
    listener: TcpListener,
    config: ControlPlaneConfig,
}

impl ControlPlane {
    pub async fn bind(config: &ControlPlaneConfig) -> Result<Self, StartError> {
        let store = Store::open(&config.data_dir)
            .map_err(|source| StartError::Store { dir: config.data_dir.clone(), source })?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        Ok(Self { store: Arc::new(store), gateways: Arc::new(Gateways::default()), listener, config: config.clone() })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
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
        let management = ManagementService::new(self.store.clone(), self.gateways.clone(), self.config.stale_after);
        let sync = ConfigSyncService::new(self.store.clone(), self.gateways.clone());
        tracing::info!(addr = %addr, revision = self.store.state().revision, "control plane serving");
        let result = tonic::transport::Server::builder()
            // A data plane frozen or cut off mid-stream is noticed within two keepalive periods.
            .http2_keepalive_interval(Some(self.config.keepalive))
            .http2_keepalive_timeout(Some(self.config.keepalive))
            .add_service(health)
            .add_service(reflection)
            .add_service(pb::management_server::ManagementServer::new(management))
            .add_service(pb::config_sync_server::ConfigSyncServer::new(sync))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(StartError::Serve);
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "flush on shutdown failed");
        }
        tracing::info!("control plane stopped");
        result
    }
}
