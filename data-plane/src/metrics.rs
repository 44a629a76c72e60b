//! The data plane's Prometheus metrics, served on the admin listener at /metrics. One data
//! plane per process, so the registry is process-wide (as Prometheus clients' default
//! registries are).

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::routes::Routing;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The API's id ("-" when no API matched).
    pub api: String,
    /// "2xx", "4xx", "5xx", ...
    pub class: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// The API's id.
    pub api: String,
}

/// Labels of the backend TLS failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsFailureLabels {
    /// The API's id.
    pub api: String,
    /// [`crate::upstream::BackendFailure::label`].
    pub reason: String,
}

/// Labels of the API clients' TLS handshake failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeFailureLabels {
    /// `unrecognized_name` (no hostname for the client's SNI, and no default) or `other`.
    pub reason: String,
}

/// Labels of the API clients' certificate failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientCertificateFailureLabels {
    /// The API's id.
    pub api: String,
    /// [`crate::client_certificates::Failure::label`].
    pub rule: String,
    /// `refused`, or `ignored` (the policy's ignore-error let the request through).
    pub outcome: String,
}

/// Labels of the client certificate expiry gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// The id the certificate was uploaded under.
    pub certificate_id: String,
    /// Its thumbprint.
    pub thumbprint: String,
}

/// Labels of the control plane info series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControlPlaneLabels {
    /// The control plane's URL, as given to `--control-plane`.
    pub url: String,
}

/// Every series this data plane exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by API and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to response headers, by API.
    pub latency: Family<ApiLabels, Histogram>,
    /// Backend TLS failures by API and reason.
    pub backend_tls_failures: Family<TlsFailureLabels, Counter>,
    /// TLS handshakes with API clients that failed, by reason.
    pub client_tls_handshake_failures: Family<HandshakeFailureLabels, Counter>,
    /// API clients' certificates that failed an API's validate-client-certificate, by rule.
    pub client_certificate_failures: Family<ClientCertificateFailureLabels, Counter>,
    /// Connections opened to backends.
    pub upstream_connections_opened: Counter,
    /// Connections to backends open now.
    pub upstream_connections_open: Gauge,
    /// Backend pools renewed at --max-connection-age (the old one's connections close once idle).
    pub upstream_pool_renewals: Counter,
    /// Time to apply one configuration update: the delta on the held configuration and the
    /// routing table built (full updates included).
    pub config_apply_duration: Histogram,
    applied_revision: Gauge,
    seconds_since_sync: Gauge<f64, std::sync::atomic::AtomicU64>,
    connected: Gauge,
    control_plane: Family<ControlPlaneLabels, Gauge>,
    certificate_expiry_days: Family<CertificateLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_sync: std::sync::Mutex<Option<Instant>>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

// === impl Metrics ===

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests by API and response status class", requests.clone());
        let latency = Family::<ApiLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("request_duration_seconds", "Time to response headers, by API", latency.clone());
        let backend_tls_failures = Family::<TlsFailureLabels, Counter>::default();
        registry.register(
            "backend_tls_failures",
            "Backend TLS failures by API and reason",
            backend_tls_failures.clone(),
        );
        let client_tls_handshake_failures = Family::<HandshakeFailureLabels, Counter>::default();
        registry.register(
            "client_tls_handshake_failures",
            "TLS handshakes with API clients that failed, by reason (unrecognized_name, other)",
            client_tls_handshake_failures.clone(),
        );
        let client_certificate_failures = Family::<ClientCertificateFailureLabels, Counter>::default();
        registry.register(
            "client_certificate_failures",
            "API clients' certificates that failed validate-client-certificate, by API, rule and outcome (refused, ignored)",
            client_certificate_failures.clone(),
        );
        let upstream_connections_opened = Counter::default();
        registry.register(
            "upstream_connections_opened",
            "Connections opened to backends",
            upstream_connections_opened.clone(),
        );
        let upstream_connections_open = Gauge::default();
        registry.register(
            "upstream_connections_open",
            "Connections to backends open now",
            upstream_connections_open.clone(),
        );
        let upstream_pool_renewals = Counter::default();
        registry.register(
            "upstream_pool_renewals",
            "Backend pools renewed at --max-connection-age: the old connections take no new request and close once idle",
            upstream_pool_renewals.clone(),
        );
        let config_apply_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "config_apply_duration_seconds",
            "Time to apply one configuration update (the delta, then the routing table built)",
            config_apply_duration.clone(),
        );
        let applied_revision = Gauge::default();
        registry.register("config_revision", "Configuration revision applied", applied_revision.clone());
        let seconds_since_sync = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "config_seconds_since_sync",
            "Seconds since the last configuration update was applied or the stream confirmed current",
            seconds_since_sync.clone(),
        );
        let connected = Gauge::default();
        registry.register(
            "control_plane_connected",
            "1 while the sync stream to the control plane is up",
            connected.clone(),
        );
        let control_plane = Family::<ControlPlaneLabels, Gauge>::default();
        registry.register(
            "control_plane_info",
            "1 for the URL of the control plane the sync stream is up with (no series while it is down)",
            control_plane.clone(),
        );
        let certificate_expiry_days = Family::<CertificateLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "client_certificate_expiry_days",
            "Days until each client certificate in use expires (negative: expired)",
            certificate_expiry_days.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            backend_tls_failures,
            client_tls_handshake_failures,
            client_certificate_failures,
            upstream_connections_opened,
            upstream_connections_open,
            upstream_pool_renewals,
            config_apply_duration,
            applied_revision,
            seconds_since_sync,
            connected,
            control_plane,
            certificate_expiry_days,
            last_sync: std::sync::Mutex::new(None),
        }
    }

    /// A configuration was applied, or the control plane confirmed the current one.
    pub fn synced(&self) {
        *self.last_sync.lock().expect("metrics lock") = Some(Instant::now());
    }

    /// The sync stream is up with the control plane at `url`, or (None) with none.
    pub fn connected_to(&self, url: Option<&str>) {
        self.control_plane.clear();
        if let Some(url) = url {
            self.control_plane.get_or_create(&ControlPlaneLabels { url: url.to_string() }).set(1);
        }
    }

    /// For requests that matched no API (rare): looks the series up each time.
    pub fn observe_request(&self, api: &str, status: u16, elapsed: Duration) {
        let class = format!("{}xx", status / 100);
        self.requests.get_or_create(&RequestLabels { api: api.to_string(), class }).inc();
        self.latency.get_or_create(&ApiLabels { api: api.to_string() }).observe(elapsed.as_secs_f64());
    }

    /// One API's series, resolved once when its route is built, so a request costs no lookup.
    pub fn for_api(&self, api: &str) -> ApiMetrics {
        let by_class = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            self.requests.get_or_create(&RequestLabels { api: api.to_string(), class: class.into() }).clone()
        });
        let latency = self.latency.get_or_create(&ApiLabels { api: api.to_string() }).clone();
        ApiMetrics { by_class, latency }
    }

    /// The Prometheus text exposition, with point-in-time values refreshed first.
    pub fn render(&self, routing: &Routing) -> String {
        self.applied_revision.set(routing.revision() as i64);
        self.connected.set(routing.status.connected.load(Ordering::Relaxed) as i64);
        let since = self.last_sync.lock().expect("metrics lock").map(|t| t.elapsed().as_secs_f64()).unwrap_or(-1.0);
        self.seconds_since_sync.set(since);
        self.certificate_expiry_days.clear();
        if let Some(table) = routing.load() {
            for cert in table.certificates() {
                let days = gatehouse_shared::days_until(cert.not_after);
                self.certificate_expiry_days
                    .get_or_create(&CertificateLabels {
                        certificate_id: cert.certificate_id.clone(),
                        thumbprint: cert.thumbprint.clone(),
                    })
                    .set(days);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The series of one API.
#[derive(Clone)]
pub struct ApiMetrics {
    by_class: [Counter; 5],
    latency: Histogram,
}

// === impl ApiMetrics ===

impl ApiMetrics {
    /// Counts one request with its status and time to response headers.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.latency.observe(elapsed.as_secs_f64());
    }
}
