//! One backend pool: the HTTP/1.1 connections of one TLS identity, made with its own rustls
//! configuration (and so its own session cache). A request takes an idle connection, else opens
//! one while the pool holds fewer than `--max-backend-connections`, else waits for one to come
//! back; a connection comes back when its response body has been read to the end, so the pool
//! holds as many connections as requests were in flight at once, not more. The request's own
//! task sends on the connection (hyper's `client::conn`); a task per connection only reads it.
//! Renewed (a new generation, the old one's connections closed once idle) every
//! --max-connection-age.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_proto::v1 as pb;
use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::{http1::SendRequest, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use tokio::sync::Notify;
use tower::ServiceExt as _;

use super::{TrustAnchors, UpstreamError, UpstreamKey};

/// An idle connection unused for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pool of one TLS identity: every connection in it presented the same client
/// certificate and checked the backend the same way. Made only by [`super::UpstreamsBuilder`].
pub struct Upstream {
    /// What every connection of this pool shares.
    pub key: UpstreamKey,
    /// The generation taking new requests; in-flight requests keep the one they started on.
    current: arc_swap::ArcSwap<Generation>,
    /// Makes the connections of every generation.
    connector: Counting<HttpsConnector<HttpConnector>>,
    /// How long one generation takes new requests.
    max_age: Option<Duration>,
    /// Most connections one generation holds.
    max_connections: usize,
    /// HTTP/2 offered to the backend (ALPN); one connection then carries every request.
    http2: bool,
}

/// The connections of a pool made since it was last renewed: dropped when its last request is
/// done, which closes its idle connections.
struct Generation {
    idle: Mutex<Vec<Idle>>,
    /// Connections open, or being opened.
    open: AtomicUsize,
    /// A connection came back or closed: a waiting request may go on.
    changed: Notify,
    born: Instant,
    /// The HTTP/2 connection, when the backend chose HTTP/2: shared by every request.
    http2: Mutex<Option<http2::SendRequest<Incoming>>>,
    /// Whether a connection was made, so the backend's protocol is known: with HTTP/2
    /// offered, the first connection is opened alone (should the backend take HTTP/2, every
    /// request shares it).
    protocol_known: std::sync::atomic::AtomicBool,
}

/// A connection just opened: HTTP/1.1, or HTTP/2 when offered and the backend chose it.
enum Opened {
    Http1(SendRequest<Incoming>),
    Http2(http2::SendRequest<Incoming>),
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made (TCP, or the TLS handshake).
    #[error("cannot connect to the backend")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP exchange failed.
    #[error("the backend call failed")]
    Http(#[source] hyper::Error),
}

impl SendError {
    /// Whether no connection could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
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
        let http2 = trust.backend_http2();
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let connector = match http2 {
            true => builder.enable_http1().enable_http2().wrap_connector(http),
            false => builder.enable_http1().wrap_connector(http),
        };
        let current = arc_swap::ArcSwap::from_pointee(Generation::new());
        Ok(Self {
            key,
            current,
            connector: Counting(connector),
            max_age: trust.max_connection_age(),
            max_connections: trust.max_connections_per_pool(),
            http2,
        })
    }

    /// Sends `request` on one of this pool's connections. A request that an idle connection
    /// could not take (the backend had closed it) goes on another; one that was sent is never
    /// sent again.
    pub async fn send(&self, mut request: http::Request<Incoming>) -> Result<http::Response<PooledBody>, SendError> {
        let generation = self.generation();
        loop {
            if let Some(mut shared) = generation.shared_http2() {
                if shared.ready().await.is_err() {
                    generation.forget_http2(&shared);
                    continue;
                }
                // HTTP/2 carries the host in :authority (from the URI); a Host header beside it
                // is refused by servers such as nginx ("duplicate host header").
                request.headers_mut().remove(http::header::HOST);
                *request.version_mut() = http::Version::HTTP_2;
                let response = shared.send_request(request).await.map_err(SendError::Http)?;
                return Ok(response.map(|body| PooledBody { body, lease: None }));
            }
            let Some((mut lease, reused)) = self.lease(&generation, request.uri()).await? else { continue };
            let sender = lease.sender.as_mut().expect("a lease holds its connection until it ends");
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response.map(|body| PooledBody { body, lease: Some(lease) })),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Http(error.into_error())),
                },
            }
        }
    }

    /// Opens one connection ahead of the first request, unless the pool has one: a new
    /// identity's TLS handshake happens before the table that uses it takes requests. A
    /// failure is left for the first request to meet and report.
    pub async fn warm(&self) {
        let generation = self.generation();
        let Some(slot) = Slot::first(&generation) else { return };
        let uri = format!("{}://{}/", self.key.scheme, self.key.authority).parse::<Uri>();
        let connected = match uri {
            Ok(uri) => self.connect(slot, &uri).await,
            Err(error) => Err(SendError::Connect(error.into())),
        };
        match connected {
            Ok(Opened::Http1(sender)) => {
                generation.protocol_learned();
                generation.put_idle(sender);
            }
            Ok(Opened::Http2(sender)) => generation.share_http2(sender),
            Err(error) => {
                tracing::debug!(backend = %self.key.authority, error = %gatehouse_shared::error_chain(&error), "warming a new backend pool failed")
            }
        }
    }

    /// An HTTP/1.1 connection for one request: an idle one (true), else a new one while under
    /// the limit, else the next to come back. None: the backend took HTTP/2 (on this request's
    /// connection or another's), and that connection is shared.
    async fn lease(&self, generation: &Arc<Generation>, uri: &Uri) -> Result<Option<(Lease, bool)>, SendError> {
        loop {
            // Woken after the backend took HTTP/2 on another request's connection: share it.
            if self.http2 && generation.shared_http2().is_some() {
                return Ok(None);
            }
            if let Some(sender) = generation.take_idle() {
                return Ok(Some((Lease::new(sender, generation), true)));
            }
            let limit = match self.http2 && !generation.protocol_known.load(Ordering::Acquire) {
                true => 1,
                false => self.max_connections,
            };
            if let Some(slot) = Slot::take(generation, limit) {
                return match self.connect(slot, uri).await? {
                    Opened::Http1(sender) => {
                        generation.protocol_learned();
                        Ok(Some((Lease::new(sender, generation), false)))
                    }
                    Opened::Http2(sender) => {
                        generation.share_http2(sender);
                        Ok(None)
                    }
                };
            }
            // At the limit: a connection that comes back (or closes) wakes one waiter; one
            // that came back since the check above left a permit, so none is missed.
            generation.changed.notified().await;
        }
    }

    /// Opens a connection (TCP, TLS, then HTTP/1.1 or, offered and chosen, HTTP/2) in `slot`
    /// and starts the task that reads it, which gives the slot back when the connection ends.
    async fn connect(&self, slot: Slot, uri: &Uri) -> Result<Opened, SendError> {
        let io = self.connector.clone().oneshot(uri.clone()).await.map_err(SendError::Connect)?;
        let opened = if self.http2 && io.connected().is_negotiated_h2() {
            let (sender, connection) =
                http2::Builder::new(TokioExecutor::new()).handshake(io).await.map_err(SendError::Http)?;
            reading(slot, connection);
            Opened::Http2(sender)
        } else {
            let (sender, connection) =
                hyper::client::conn::http1::Builder::new().handshake(io).await.map_err(SendError::Http)?;
            reading(slot, connection);
            Opened::Http1(sender)
        };
        Ok(opened)
    }

    /// The generation taking new requests, renewed once it is older than the maximum age: no
    /// connection takes new requests for longer, however busy, so what a rotation or a trust
    /// change retired is gone within that time.
    fn generation(&self) -> Arc<Generation> {
        let current = self.current.load_full();
        match self.max_age {
            Some(age) if current.born.elapsed() >= age => {
                let fresh = Arc::new(Generation::new());
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

/// Drives `connection` on a task of its own until it ends, then gives its slot back.
fn reading<C>(slot: Slot, connection: C)
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    let generation = slot.hand_over();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "backend connection ended");
        }
        if let Some(generation) = generation.upgrade() {
            generation.closed_one();
        }
    });
}

// === impl Generation ===

impl Generation {
    fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            changed: Notify::new(),
            born: Instant::now(),
            http2: Mutex::new(None),
            protocol_known: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The most recently returned idle connection that is still open and not too old; those
    /// closed or idle too long are dropped (which closes them).
    fn take_idle(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(candidate) = idle.pop() {
            if !candidate.sender.is_closed() && candidate.since.elapsed() < IDLE_TIMEOUT {
                return Some(candidate.sender);
            }
        }
        None
    }

    /// The shared HTTP/2 connection, if there is one still open.
    fn shared_http2(&self) -> Option<http2::SendRequest<Incoming>> {
        let shared = self.http2.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.as_ref().filter(|sender| !sender.is_closed()).cloned()
    }

    fn share_http2(&self, sender: http2::SendRequest<Incoming>) {
        *self.http2.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sender);
        self.protocol_learned();
    }

    /// A connection was made: requests waiting to learn the backend's protocol go on.
    fn protocol_learned(&self) {
        self.protocol_known.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Forgets the shared HTTP/2 connection if it is still `broken`: the next request opens one.
    fn forget_http2(&self, broken: &http2::SendRequest<Incoming>) {
        let mut shared = self.http2.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if shared.as_ref().is_some_and(|current| current.is_closed() || broken.is_closed()) {
            *shared = None;
        }
    }

    fn put_idle(&self, sender: SendRequest<Incoming>) {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Idle { sender, since: Instant::now() });
        self.changed.notify_one();
    }

    fn closed_one(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }
}

// === impl Slot ===

/// A place for one connection in a generation, taken while the connection is being opened: a
/// failed or abandoned attempt (the request timed out, the client went away) gives it back.
struct Slot {
    generation: Option<Arc<Generation>>,
}

impl Slot {
    /// A slot, if the generation holds fewer than `limit` connections.
    fn take(generation: &Arc<Generation>, limit: usize) -> Option<Self> {
        let mut open = generation.open.load(Ordering::Acquire);
        while open < limit {
            match generation.open.compare_exchange(open, open + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Self { generation: Some(generation.clone()) }),
                Err(now) => open = now,
            }
        }
        None
    }

    /// The generation's first slot, if it holds no connection yet.
    fn first(generation: &Arc<Generation>) -> Option<Self> {
        generation
            .open
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then(|| Self { generation: Some(generation.clone()) })
    }

    /// The connection is open: from now on its reading task gives the slot back.
    fn hand_over(mut self) -> Weak<Generation> {
        let generation = self.generation.take().expect("a slot is handed over once");
        Arc::downgrade(&generation)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(generation) = self.generation.take() {
            generation.closed_one();
        }
    }
}

// === impl Lease ===

/// A connection taken for one request: back to its generation's idle connections when the
/// response was read to the end, else dropped (hyper then closes it).
struct Lease {
    sender: Option<SendRequest<Incoming>>,
    generation: Arc<Generation>,
}

impl Lease {
    fn new(sender: SendRequest<Incoming>, generation: &Arc<Generation>) -> Self {
        Self { sender: Some(sender), generation: generation.clone() }
    }

    fn give_back(mut self) {
        if let Some(sender) = self.sender.take()
            && !sender.is_closed()
        {
            self.generation.put_idle(sender);
        }
    }
}

// === impl PooledBody ===

pin_project_lite::pin_project! {
    /// A backend's response body: its connection goes back to the pool once the body has been
    /// read to the end.
    pub struct PooledBody {
        #[pin]
        body: Incoming,
        lease: Option<Lease>,
    }

    impl PinnedDrop for PooledBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body nobody read to the end left bytes on the connection: it is not reused.
            if let Some(lease) = this.lease.take()
                && hyper::body::Body::is_end_stream(&*this.body)
            {
                lease.give_back();
            }
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let frame = ready!(this.body.poll_frame(cx));
        match &frame {
            None => {
                if let Some(lease) = this.lease.take() {
                    lease.give_back();
                }
            }
            Some(Err(_)) => {
                this.lease.take();
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
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
