//! The operator-facing side of a data plane: `/healthz` (alive), `/ready` (a configuration
//! is applied, so requests can be served) and `/metrics` (Prometheus).

use std::future::Future;
use std::sync::Arc;

use gatehouse_shared::admin::Answer;
use http::StatusCode;
use tokio::net::TcpListener;

use crate::routes::Routing;

/// Serves the admin endpoints on `listener` until `shutdown` completes (the accept loop is
/// `gatehouse_shared::admin::serve`'s).
pub async fn serve(listener: TcpListener, routing: Arc<Routing>, shutdown: impl Future<Output = ()>) {
    gatehouse_shared::admin::serve(listener, move |path| answer(path, &routing), shutdown).await
}

fn answer(path: &str, routing: &Routing) -> Answer {
    match path {
        "/healthz" => Answer::json(StatusCode::OK, serde_json::json!({ "status": "alive" })),
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
            Answer::json(status, body)
        }
        "/metrics" => Answer::metrics(crate::metrics::global().render(routing)),
        _ => Answer::not_found("/healthz, /ready or /metrics"),
    }
}
