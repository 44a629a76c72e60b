//! A plain HTTP client for talking to data planes as an API client would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::backend::THUMBPRINT_HEADER;

/// A response, read to the end.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body, as text.
    pub body: String,
}

impl Reply {
    /// Thumbprint of the client certificate the echo backend saw.
    pub fn presented(&self) -> Option<&str> {
        self.headers.get(THUMBPRINT_HEADER).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (null if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An HTTP/1.1 client without TLS, for a data plane's listener.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()) }
    }
}

impl HttpClient {
    /// GETs `url`.
    pub async fn get(&self, url: &str) -> anyhow::Result<Reply> {
        self.send(Request::get(url).body(Full::new(Bytes::new()))?).await
    }

    /// Sends `request` and reads the whole response.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

/// What came back on a raw connection: the status (None if the gateway closed without
/// answering) and the body.
pub struct RawReply {
    /// Status code, if the server answered.
    pub status: Option<u16>,
    /// Body, as text.
    pub body: String,
}

impl RawReply {
    /// The body as JSON (null if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `request` byte for byte over a new TCP connection (no client library in the way, so
/// paths no URL type would accept reach the server as written) and reads the reply until the
/// server closes (at most 10 seconds). Send `Connection: close`, or use [`raw_request_then_eof`].
pub async fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> anyhow::Result<RawReply> {
    send_raw(addr, request, false).await
}

/// As [`raw_request`], then ends the client's side of the stream: a client that stops sending.
pub async fn raw_request_then_eof(addr: std::net::SocketAddr, request: &[u8]) -> anyhow::Result<RawReply> {
    send_raw(addr, request, true).await
}

async fn send_raw(addr: std::net::SocketAddr, request: &[u8], eof: bool) -> anyhow::Result<RawReply> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    if eof {
        stream.shutdown().await?;
    }
    let mut reply = Vec::new();
    // A reset after the reply is as good as a close: keep what arrived.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut reply)).await?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok(RawReply { status, body })
}

/// A GET for `target` with `Connection: close` and the given extra header lines.
pub fn raw_get(target: &str, headers: &[&str]) -> Vec<u8> {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// The value of the first Prometheus sample whose line starts with `series` (name and labels).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
