//! The API clients' side: an HTTP/1.1 and h2c listener that routes each request by path prefix
//! and streams it to the API's backend, presenting the API's client certificate.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_shared::error_chain;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::routes::Routing;
use crate::upstream::{BackendFailure, backend_uri};

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Largest request head accepted (HTTP/1.1 buffer; HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Time a backend has to send response headers before the client gets 504.
    pub backend_timeout: Duration,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
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

/// Serves API clients on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (up to the grace period).
pub async fn serve(
    listener: TcpListener,
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
    builder.http2().max_header_list_size(proxy.settings.max_header_bytes.min(u32::MAX as usize) as u32);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, peer).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the shutdown grace period");
    }
}

impl Proxy {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let Some(table) = self.routing.load() else {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready",
                "this gateway has no configuration yet",
                None,
            );
        };
        let Some(route) = table.route(request.uri().path()) else {
            return problem(
                StatusCode::NOT_FOUND,
                "No API",
                &format!("no API is configured for path {}", request.uri().path()),
                None,
            );
        };
        let api = route.api_id.as_str();
        let uri = match backend_uri(&route.service, &route.prefix, request.uri()) {
            Ok(uri) => uri,
            Err(_) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request path",
                    "the request path cannot be forwarded",
                    Some(api),
                );
            }
        };
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(authority) = uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        append_forwarded_for(&mut parts.headers, peer);
        parts.headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("http"));
        for rule in &route.headers {
            rule.apply(&mut parts.headers);
        }
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let outbound = Request::from_parts(parts, body);

        match tokio::time::timeout(self.settings.backend_timeout, route.upstream.send(outbound)).await {
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "Backend timeout",
                &format!("the backend did not respond within {:?}", self.settings.backend_timeout),
                Some(api),
            ),
            Ok(Err(error)) => {
                let failure = BackendFailure::classify(&error);
                tracing::warn!(api, ?failure, error = %error_chain(&error), "backend call failed");
                problem(StatusCode::BAD_GATEWAY, "Backend failure", failure.describe(), Some(api))
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
        }
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

/// An error the gateway itself produced, as RFC 9457 problem details.
pub fn problem(status: StatusCode, title: &str, detail: &str, api: Option<&str>) -> Response<ProxyBody> {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(api) = api {
        body["api"] = serde_json::Value::from(api);
    }
    let bytes = Bytes::from(body.to_string());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Full::new(bytes).map_err(|never| match never {}).boxed())
        .expect("static response parts are valid")
}
