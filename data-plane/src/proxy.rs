//! The API clients' side: a plaintext listener (HTTP/1.1 and h2c) and an HTTPS one (HTTP/1.1
//! and h2, with the certificate of the hostname the client asks for: `tls`), both routing each
//! request by host (`host`) and path prefix and streaming it to the API's backend, presenting
//! the API's client certificate. What happens to headers on the way is in `headers`.

mod headers;
mod host;
mod outcome;
mod problem;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_shared::{error_chain, request_path};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use self::headers::{REQUEST_ID, request_id, set_forwarding_headers, strip_console_session, strip_hop_by_hop};
use self::host::request_host;
use self::outcome::{Outcome, Unanswered};
pub use self::problem::problem;
use self::problem::quote;
use self::tls::TlsSession;
use crate::metrics::TlsFailureLabels;
use crate::routes::Routing;
use crate::upstream::BackendFailure;

/// The body of every response the proxy sends: the backend's, streamed, or its own error.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How the proxy treats API clients.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// One log line per request on target `gatehouse::access`.
    pub access_log: bool,
    /// Largest request head accepted (HTTP/1.1 buffer; HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Time a backend has to send response headers before the client gets 504.
    pub backend_timeout: Duration,
    /// Time a client has to send its request headers; over HTTPS, also the time it has to
    /// complete the TLS handshake.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            access_log: false,
            max_header_bytes: 64 * 1024,
            backend_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

struct Proxy {
    routing: Arc<Routing>,
    settings: ProxySettings,
}

/// Where API clients connect: either listener may be off.
#[derive(Default)]
pub struct Listeners {
    /// HTTP/1.1 and h2c.
    pub plaintext: Option<TcpListener>,
    /// HTTPS: HTTP/1.1 and h2 (by ALPN), with the certificates of the routing table's
    /// hostnames.
    pub https: Option<TcpListener>,
}

/// One API client's connection, as each request on it sees it.
#[derive(Debug)]
pub struct ClientConnection {
    /// The client's address.
    pub peer: SocketAddr,
    /// What the TLS handshake settled (hostname, client certificate chain); None over plaintext.
    pub tls: Option<TlsSession>,
}

/// Serves API clients on `listeners` until `shutdown` completes, then lets in-flight requests
/// finish (up to the grace period).
pub async fn serve(
    listeners: Listeners,
    routing: Arc<Routing>,
    settings: ProxySettings,
    shutdown: impl Future<Output = ()>,
) {
    let grace = settings.shutdown_grace;
    let proxy = Arc::new(Proxy { routing, settings });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.settings.header_read_timeout)
        // hyper needs at least 8 KiB; past the limit the client gets 431.
        .max_buf_size(proxy.settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(proxy.settings.max_header_bytes.min(u32::MAX as usize) as u32)
        // A peer that stops answering pings is gone: its connection is closed.
        .keep_alive_interval(Some(proxy.settings.header_read_timeout))
        .keep_alive_timeout(proxy.settings.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, https) = tokio::select! {
            (stream, peer) = accept(listeners.plaintext.as_ref()) => (stream, peer, false),
            (stream, peer) = accept(listeners.https.as_ref()) => (stream, peer, true),
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (proxy, watcher) = (proxy.clone(), graceful.watcher());
        if !https {
            let connection = ClientConnection { peer, tls: None };
            tokio::spawn(serve_connection(proxy, &builder, watcher, stream, connection));
            continue;
        }
        let builder = builder.clone();
        // The handshake runs on the connection's own task: a slow client holds up no one.
        tokio::spawn(async move {
            match tls::accept(stream, &proxy.routing, proxy.settings.header_read_timeout).await {
                Ok((stream, session)) => {
                    let connection = ClientConnection { peer, tls: Some(session) };
                    serve_connection(proxy, &builder, watcher, stream, connection).await
                }
                Err(error) => {
                    tracing::debug!(%peer, error = %error_chain(&error), "TLS handshake with a client failed")
                }
            }
        });
    }
    drop(listeners);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the shutdown grace period");
    }
}

/// The next client connection on `listener`; never, when it is off.
async fn accept(listener: Option<&TcpListener>) -> (TcpStream, SocketAddr) {
    match listener {
        Some(listener) => gatehouse_shared::admin::accept(listener).await,
        None => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one client connection, each request seeing `connection`.
fn serve_connection<IO>(
    proxy: Arc<Proxy>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: IO,
    connection: ClientConnection,
) -> impl Future<Output = ()> + Send + 'static
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let connection = Arc::new(connection);
    // A connection that never sends a request (no byte, or only an HTTP/2 preface) is closed
    // after the header-read timeout: hyper's own timer starts only once a request begins.
    let first_request = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle_limit = proxy.settings.header_read_timeout;
    let requested = first_request.clone();
    let service = service_fn(move |request| {
        requested.store(true, std::sync::atomic::Ordering::Relaxed);
        let (proxy, connection) = (proxy.clone(), connection.clone());
        async move { Ok::<_, Infallible>(proxy.handle(request, &connection).await) }
    });
    let served = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
    async move {
        tokio::pin!(served);
        let idle = async {
            tokio::time::sleep(idle_limit).await;
            if first_request.load(std::sync::atomic::Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = &mut served => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "client connection ended with an error");
                }
            }
            // Dropping the connection closes it; no request was in flight.
            () = idle => tracing::debug!(%peer, "client connection sent no request in time; closed"),
        }
    }
}

// === impl Proxy ===

impl Proxy {
    async fn handle(&self, request: Request<Incoming>, connection: &ClientConnection) -> Response<ProxyBody> {
        let started = Instant::now();
        let id = request_id(request.headers());
        let method = request.method().clone();
        let path = if self.settings.access_log { request.uri().path().to_string() } else { String::new() };
        let mut unanswered = Unanswered { started, metrics: None, answered: false };
        let outcome = self.forward(request, connection, &id, &mut unanswered).await;
        unanswered.answered = true;
        let mut response = outcome.response;
        let status = response.status().as_u16();
        let api = outcome.api.as_deref().unwrap_or("-");
        match &outcome.metrics {
            Some(metrics) => metrics.observe(status, started.elapsed()),
            None => crate::metrics::global().observe_request(api, status, started.elapsed()),
        }
        if self.settings.access_log {
            tracing::info!(
                target: "gatehouse::access",
                api,
                %method,
                path,
                status,
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                backend = outcome.backend.as_deref().unwrap_or("-"),
                thumbprint = outcome.thumbprint.as_deref().unwrap_or("-"),
                request_id = id.to_str().unwrap_or_default(),
                "request"
            );
        }
        response.headers_mut().insert(REQUEST_ID.clone(), id);
        response
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        connection: &ClientConnection,
        id: &HeaderValue,
        unanswered: &mut Unanswered,
    ) -> Outcome {
        let request_id = id.to_str().unwrap_or_default();
        let Some(table) = self.routing.load() else {
            let detail = "this gateway has no configuration yet";
            return Outcome::error(
                problem(StatusCode::SERVICE_UNAVAILABLE, "Not ready", detail, None, request_id),
                None,
            );
        };
        let (mut parts, body) = request.into_parts();
        let host = match request_host(&parts) {
            Ok(host) => host,
            Err(error) => {
                let response = problem(StatusCode::BAD_REQUEST, "Bad host", &error.to_string(), None, request_id);
                return Outcome::error(response, None);
            }
        };
        let host_name = host.as_ref().map(|h| h.name.as_str());
        if let Some(tls) = &connection.tls
            && !tls.serves_host(&table.hostnames, host_name)
        {
            let detail = format!(
                "this connection was made for {}; open a new one for {}",
                tls.hostname,
                quote(host_name.unwrap_or_default())
            );
            let response = problem(StatusCode::MISDIRECTED_REQUEST, "Misdirected request", &detail, None, request_id);
            return Outcome::error(response, None);
        }
        let path = match request_path::normalize(parts.uri.path()) {
            Ok(path) => path,
            Err(error) => {
                let response =
                    problem(StatusCode::BAD_REQUEST, "Bad request path", &error.to_string(), None, request_id);
                return Outcome::error(response, None);
            }
        };
        let Some(route) = table.route(host_name, path.as_str(), connection.tls.is_some()) else {
            let detail = match host_name {
                Some(host) => {
                    format!("no API is configured for host {} and path {}", quote(host), quote(path.as_str()))
                }
                None => format!("no API is configured for path {}", quote(path.as_str())),
            };
            return Outcome::error(problem(StatusCode::NOT_FOUND, "No API", &detail, None, request_id), None);
        };
        // Backends that drop `;params` (servlet containers) would read `/sec;x/a` as `/sec/a`:
        // a request must not reach, that way, another API than the one its path without
        // parameters selects (one with other rules, sharing the backend).
        if let Some(bare) = request_path::without_parameters(path.as_str())
            && table.route(host_name, &bare, connection.tls.is_some()).is_some_and(|other| !std::ptr::eq(other, route))
        {
            let detail = "path parameters (';') on a segment of an API's path are not accepted";
            let response = problem(StatusCode::BAD_REQUEST, "Bad request path", detail, None, request_id);
            return Outcome::error(response, None);
        }
        let api = route.api_id.as_str();
        unanswered.metrics = Some(route.metrics.clone());
        if !path.stays_within(route.depth) {
            let detail = format!("'..' in the path climbs above the API's path {}", route.prefix);
            let response = problem(StatusCode::BAD_REQUEST, "Bad request path", &detail, Some(api), request_id);
            return Outcome::error(response, Some(api));
        }
        // The subscription key: checked before anything goes to the backend, and taken out.
        let query = match table.subscriptions.admit(
            route.subscription_key.as_ref(),
            api,
            &mut parts.headers,
            parts.uri.query(),
        ) {
            Ok(query) => query,
            Err(refusal) => {
                let (status, title, detail) = refusal.status_title_detail(route.subscription_key.as_ref());
                return Outcome::error(problem(status, title, &detail, Some(api), request_id), Some(api));
            }
        };
        // The client certificate (the policy's validate-client-certificate), after the key as in
        // APIM (a subscription is checked before the policy runs), before any byte goes out.
        let client_certificate =
            match route.client_certificate.check(&table.client_authorities, connection, api, request_id) {
                Ok(validated) => validated,
                Err(failure) => return Outcome::error(failure.problem(api, request_id), Some(api)),
            };
        let uri = match route.backend_uri(&path, query.as_deref()) {
            Ok(uri) => uri,
            Err(_) => {
                let detail = "the request path cannot be forwarded";
                let response = problem(StatusCode::BAD_REQUEST, "Bad request path", detail, Some(api), request_id);
                return Outcome::error(response, Some(api));
            }
        };
        // Only the access log needs these as strings.
        let (backend, thumbprint) = match self.settings.access_log {
            true => (
                uri.authority().map(|a| a.to_string()),
                Some(route.upstream.key.client_thumbprint.clone()).filter(|t| !t.is_empty()),
            ),
            false => (None, None),
        };
        strip_hop_by_hop(&mut parts.headers);
        strip_console_session(&mut parts.headers);
        let scheme = if connection.tls.is_some() { "https" } else { "http" };
        set_forwarding_headers(&mut parts.headers, connection.peer, scheme, host.map(|h| h.authority));
        if let Some(host) = &route.host {
            parts.headers.insert(header::HOST, host.clone());
        }
        parts.headers.insert(REQUEST_ID.clone(), id.clone());
        for rule in &route.headers {
            rule.apply(&mut parts.headers);
        }
        route.client_certificate.forward(&mut parts.headers, client_certificate.as_ref());
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let outbound = Request::from_parts(parts, body);

        let timeout = route.backend_timeout.unwrap_or(self.settings.backend_timeout);
        let response = match tokio::time::timeout(timeout, route.upstream.send(outbound)).await {
            Err(_) => {
                let detail = format!("the backend did not respond within {timeout:?}");
                problem(StatusCode::GATEWAY_TIMEOUT, "Backend timeout", &detail, Some(api), request_id)
            }
            Ok(Err(error)) => {
                let failure = BackendFailure::classify(&error);
                match failure {
                    BackendFailure::ClientBody => {
                        tracing::debug!(api, error = %error_chain(&error), request_id, "client request body failed")
                    }
                    _ => tracing::warn!(api, ?failure, error = %error_chain(&error), request_id, "backend call failed"),
                }
                if failure.is_tls() {
                    crate::metrics::global()
                        .backend_tls_failures
                        .get_or_create(&TlsFailureLabels { api: api.to_string(), reason: failure.label().to_string() })
                        .inc();
                }
                let title = if failure == BackendFailure::ClientBody { "Bad request body" } else { "Backend failure" };
                problem(failure.status(), title, failure.describe(), Some(api), request_id)
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
        };
        // The route's metric handles count it; the API's name is needed only for the access log.
        let api = self.settings.access_log.then(|| api.to_string());
        Outcome { response, api, backend, thumbprint, metrics: Some(route.metrics.clone()) }
    }
}
