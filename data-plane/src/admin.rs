//! The operator-facing side of a data plane: `/healthz` (alive) and `/ready` (a configuration
//! is applied, so requests can be served).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::routes::Routing;

pub async fn serve(listener: TcpListener, routing: Arc<Routing>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut shutdown => return,
        };
        let routing = routing.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let routing = routing.clone();
                async move { Ok::<_, Infallible>(answer(&request, &routing)) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(request: &Request<Incoming>, routing: &Routing) -> Response<Full<Bytes>> {
    let (status, body) = match request.uri().path() {
        "/healthz" => (StatusCode::OK, serde_json::json!({ "status": "alive" })),
        "/ready" => {
            use std::sync::atomic::Ordering::Relaxed;
            let ready = routing.is_ready();
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let sync = &routing.status;
            let body = serde_json::json!({
                "ready": ready,
                "revision": routing.revision(),
                "source": if !ready { "none" } else if sync.from_cache.load(Relaxed) { "cache" } else { "control-plane" },
                "control_plane_connected": sync.connected.load(Relaxed),
                "updates": {
                    "full": sync.full_updates.load(Relaxed),
                    "delta": sync.delta_updates.load(Relaxed),
                    "rejected": sync.rejected_updates.load(Relaxed),
                },
            });
            (status, body)
        }
        _ => (StatusCode::NOT_FOUND, serde_json::json!({ "error": "not found; try /healthz or /ready" })),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}
