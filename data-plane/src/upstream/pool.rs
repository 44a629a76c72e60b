//! One backend pool: a hyper-util client with its own rustls configuration (and so its own
//! session cache) for one TLS identity, counting the connections it opens, and renewed (a new
//! client, the old one's connections closed once idle) every --max-connection-age.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use http::Uri;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;

use super::{TrustAnchors, UpstreamError, UpstreamKey};

/// The pool of one TLS identity: every connection in it presented the same client
/// certificate and checked the backend the same way. Made only by [`super::UpstreamsBuilder`].
pub struct Upstream {
    /// What every connection of this pool shares.
    pub key: UpstreamKey,
    /// The client taking new requests; in-flight requests keep the one they started on.
    current: arc_swap::ArcSwap<Generation>,
    /// Makes the connections of every generation.
    connector: Counting<HttpsConnector<HttpConnector>>,
    /// How long one generation takes new requests.
    max_age: Option<Duration>,
}

/// One client of a pool and when it was made: dropped when its last request is done, which
/// closes its connections.
struct Generation {
    client: Client<Counting<HttpsConnector<HttpConnector>>, Incoming>,
    born: std::time::Instant,
}

impl Generation {
    fn new(connector: Counting<HttpsConnector<HttpConnector>>) -> Self {
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        Self { client, born: std::time::Instant::now() }
    }
}

// === impl Upstream ===

impl Upstream {
    /// A pool for `key`; `verifier` checks the backend (shared by every pool with the same
    /// trust settings, so a thousand identities do not mean a thousand root stores).
    pub(super) fn new(
        key: UpstreamKey,
        identity: Option<&pb::ClientIdentity>,
        verifier: Arc<dyn ServerCertVerifier>,
        trust: &TrustAnchors,
    ) -> Result<Self, UpstreamError> {
        let provider = gatehouse_shared::crypto::provider();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(UpstreamError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let tls = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = identity.certificate_chain.iter().map(|der| der.clone().into()).collect();
                let key = rustls_pki_types::PrivateKeyDer::Pkcs8(identity.private_key.clone().into());
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| UpstreamError::BadIdentity { thumbprint: identity.thumbprint.clone(), source })?
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(trust.connect_timeout()));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let connector = Counting(connector);
        let current = arc_swap::ArcSwap::from_pointee(Generation::new(connector.clone()));
        Ok(Self { key, current, connector, max_age: trust.max_connection_age() })
    }

    /// Sends `request` on one of this pool's connections (opening one if none is idle).
    pub async fn send(
        &self,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        let generation = self.generation();
        generation.client.request(request).await
    }

    /// The generation taking new requests, renewed once it is older than the maximum age: no
    /// connection takes new requests for longer, however busy, so what a rotation or a trust
    /// change retired is gone within that time.
    fn generation(&self) -> Arc<Generation> {
        let current = self.current.load_full();
        match self.max_age {
            Some(age) if current.born.elapsed() >= age => {
                let fresh = Arc::new(Generation::new(self.connector.clone()));
                let previous = self.current.compare_and_swap(&current, fresh.clone());
                if Arc::ptr_eq(&previous, &current) {
                    crate::metrics::global().upstream_pool_renewals.inc();
                    fresh
                } else {
                    // Another request renewed it first.
                    self.current.load_full()
                }
            }
            _ => current,
        }
    }
}

// === impl Counting ===

/// A connector that counts the connections it opens and those still open.
#[derive(Clone)]
struct Counting<C>(C);

impl<C> tower::Service<Uri> for Counting<C>
where
    C: tower::Service<Uri> + Clone + Send + 'static,
    C::Response: Send + 'static,
    C::Future: Send + 'static,
{
    type Response = CountedConnection<C::Response>;
    type Error = C::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let connection = connecting.await?;
            let metrics = crate::metrics::global();
            metrics.upstream_connections_opened.inc();
            metrics.upstream_connections_open.inc();
            Ok(CountedConnection(connection))
        })
    }
}

// === impl CountedConnection ===

/// A backend connection, counted as open until dropped.
struct CountedConnection<T>(T);

impl<T> Drop for CountedConnection<T> {
    fn drop(&mut self) {
        crate::metrics::global().upstream_connections_open.dec();
    }
}

impl<T: hyper_util::client::legacy::connect::Connection> hyper_util::client::legacy::connect::Connection
    for CountedConnection<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.0.connected()
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for CountedConnection<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for CountedConnection<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
