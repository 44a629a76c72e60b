//! A small HTTP/1.1 listener for operators' endpoints (/healthz, /ready, /metrics): each path
//! answered by a function of the caller's.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What an admin path answers: status, content type, body.
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Response body.
    pub body: String,
}

impl Answer {
    /// A JSON body with `status`.
    pub fn json(status: StatusCode, body: serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: body.to_string() }
    }

    /// Prometheus text exposition.
    pub fn metrics(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        }
    }

    /// 404 with a JSON error that lists the paths there are (`known`).
    pub fn not_found(known: &str) -> Self {
        Self::json(StatusCode::NOT_FOUND, serde_json::json!({ "error": format!("not found; try {known}") }))
    }
}

/// The next connection on `listener`. Accept errors (out of file descriptors and the like) are
/// logged and waited out briefly instead of retried in a spin: every listener of Gatehouse
/// accepts through this.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(error) => {
                tracing::warn!(%error, "accept failed; retrying shortly");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `answer(path)` on every connection until `shutdown` completes.
pub async fn serve<F>(listener: TcpListener, answer: F, shutdown: impl Future<Output = ()>)
where
    F: Fn(&str) -> Answer + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            (stream, _) = accept(&listener) => stream,
            _ = &mut shutdown => return,
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let reply = answer(request.uri().path());
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(reply.status)
                            .header(header::CONTENT_TYPE, reply.content_type)
                            .body(Full::new(Bytes::from(reply.body)))
                            .expect("static response parts are valid"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
