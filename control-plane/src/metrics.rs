//! The control plane's Prometheus metrics, served on its admin listener at /metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::gateways::Gateways;
use crate::store::Store;

/// Labels of the gRPC request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// Service and method, e.g. `gatehouse.v1.Management/ListApis`.
    pub method: String,
    /// The status code's name, e.g. `Ok`, `NotFound`.
    pub code: String,
}

/// Labels of the gateways-by-state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// A [`GatewayState`](crate::gateways::GatewayState) name.
    pub state: String,
}

/// Labels of the certificate expiry gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// The certificate's id.
    pub id: String,
    /// Its thumbprint.
    pub thumbprint: String,
}

/// Labels of the certificate refresh failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// The certificate's id.
    pub certificate_id: String,
}

/// Labels of the named value refresh failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamedValueLabels {
    /// The named value's name.
    pub name: String,
}

/// The control plane's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// gRPC requests by method and status code.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Commit of a revision to a data plane's ACK of it.
    pub ack_latency: Histogram,
    gateways: Family<StateLabels, Gauge>,
    revision: Gauge,
    certificate_expiry_days: Family<CertificateLabels, Gauge<f64, AtomicU64>>,
    certificate_refresh_failures: Family<RefreshLabels, Counter>,
    ca_certificate_refresh_failures: Family<RefreshLabels, Counter>,
    named_value_refresh_failures: Family<NamedValueLabels, Counter>,
}

/// One control plane per process, so one registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse_cp");
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        registry.register("grpc_requests", "gRPC requests by method and status code", grpc_requests.clone());
        let ack_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "revision_ack_seconds",
            "Time from committing a revision to a data plane acknowledging it",
            ack_latency.clone(),
        );
        let gateways = Family::<StateLabels, Gauge>::default();
        registry.register("gateways", "Data planes by state", gateways.clone());
        let revision = Gauge::default();
        registry.register("config_revision", "Latest committed configuration revision", revision.clone());
        let certificate_expiry_days = Family::<CertificateLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "certificate_expiry_days",
            "Days until each stored client certificate expires (negative: expired)",
            certificate_expiry_days.clone(),
        );
        let certificate_refresh_failures = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "certificate_refresh_failures",
            "Reads of a linked certificate's files that were refused (the last good certificate stayed)",
            certificate_refresh_failures.clone(),
        );
        let ca_certificate_refresh_failures = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "ca_certificate_refresh_failures",
            "Reads of a linked CA certificate's file that were refused (the last good certificate stayed)",
            ca_certificate_refresh_failures.clone(),
        );
        let named_value_refresh_failures = Family::<NamedValueLabels, Counter>::default();
        registry.register(
            "named_value_refresh_failures",
            "Reads of a linked named value's file that were refused (the last good value stayed)",
            named_value_refresh_failures.clone(),
        );
        Self {
            registry,
            grpc_requests,
            ack_latency,
            gateways,
            revision,
            certificate_expiry_days,
            certificate_refresh_failures,
            ca_certificate_refresh_failures,
            named_value_refresh_failures,
        }
    }

    /// Counts one refused refresh of a linked named value.
    pub fn named_value_refresh_failed(&self, name: &str) {
        self.named_value_refresh_failures.get_or_create(&NamedValueLabels { name: name.into() }).inc();
    }

    /// Counts one refused refresh of a linked CA certificate.
    pub fn ca_certificate_refresh_failed(&self, certificate_id: &str) {
        self.ca_certificate_refresh_failures
            .get_or_create(&RefreshLabels { certificate_id: certificate_id.into() })
            .inc();
    }

    /// Counts one refused refresh of a linked certificate.
    pub fn certificate_refresh_failed(&self, certificate_id: &str) {
        self.certificate_refresh_failures.get_or_create(&RefreshLabels { certificate_id: certificate_id.into() }).inc();
    }

    /// The exposition, with point-in-time values refreshed first.
    pub fn render(&self, store: &Store, gateways: &Gateways, stale_after: std::time::Duration) -> String {
        let state = store.state();
        self.revision.set(state.revision as i64);
        self.gateways.clear();
        for name in ["synced", "syncing", "stale", "nacked", "disconnected"] {
            self.gateways.get_or_create(&StateLabels { state: name.into() }).set(0);
        }
        for gateway in gateways.list() {
            let name = gateway.current_state(store, stale_after).as_str();
            self.gateways.get_or_create(&StateLabels { state: name.into() }).inc();
        }
        self.certificate_expiry_days.clear();
        for cert in state.certificates.values() {
            let info = &cert.certificate.info;
            self.certificate_expiry_days
                .get_or_create(&CertificateLabels { id: cert.id.clone(), thumbprint: info.thumbprint.to_string() })
                .set(info.days_to_expiry());
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

// === gRPC request counting ===

/// Counts every gRPC call by method and final status code (from headers for trailers-only
/// answers, else from the trailers).
#[derive(Clone, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// A service counted by [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body,
{
    type Response = http::Response<CountedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method: Arc<str> = request.uri().path().trim_start_matches('/').into();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let code = grpc_code(response.headers());
            if let Some(code) = &code {
                record(&method, code);
            }
            Ok(response.map(|inner| CountedBody { inner, method: if code.is_some() { None } else { Some(method) } }))
        })
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<String> {
    let code: i32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(format!("{:?}", tonic::Code::from_i32(code)))
}

fn record(method: &str, code: &str) {
    // Paths no service serves are one series, not one per path a client made up.
    let method = if code == "Unimplemented" { "unknown" } else { method };
    global().grpc_requests.get_or_create(&GrpcLabels { method: method.to_string(), code: code.to_string() }).inc();
}

pin_project_lite::pin_project! {
    /// A response body that records the call's status when its trailers go by.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        // Still to be recorded (None once recorded, or when the headers had the status).
        method: Option<Arc<str>>,
    }
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let (Some(method), Some(code)) = (this.method.take(), grpc_code(trailers))
                {
                    record(&method, &code);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(method) = this.method.take() {
                    record(&method, "Unknown");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
