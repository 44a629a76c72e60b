//! The bookkeeping around one request: what happened to it (`Outcome`, for metrics and the
//! access log), and the count of a request whose client left before it was answered
//! (`Unanswered`).

use std::time::Instant;

use http::Response;

use super::ProxyBody;

/// A request whose client went away before it was answered (an HTTP/2 stream reset, a closed
/// connection): hyper drops the handler, and this counts it on the way out as 499, nginx's
/// "client closed request", so it shows as a client error, never as a backend failure.
pub(super) struct Unanswered {
    pub(super) started: Instant,
    /// The API's series once the request was routed.
    pub(super) metrics: Option<crate::metrics::ApiMetrics>,
    pub(super) answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        const CLIENT_CLOSED_REQUEST: u16 = 499;
        match &self.metrics {
            Some(metrics) => metrics.observe(CLIENT_CLOSED_REQUEST, self.started.elapsed()),
            None => crate::metrics::global().observe_request("-", CLIENT_CLOSED_REQUEST, self.started.elapsed()),
        }
        tracing::debug!("the client went away before its request was answered");
    }
}

/// What happened to a request, for metrics and the access log.
pub(super) struct Outcome {
    pub(super) response: Response<ProxyBody>,
    pub(super) api: Option<String>,
    pub(super) backend: Option<String>,
    pub(super) thumbprint: Option<String>,
    pub(super) metrics: Option<crate::metrics::ApiMetrics>,
}

impl Outcome {
    pub(super) fn error(response: Response<ProxyBody>, api: Option<&str>) -> Self {
        Self { response, api: api.map(str::to_string), backend: None, thumbprint: None, metrics: None }
    }
}
