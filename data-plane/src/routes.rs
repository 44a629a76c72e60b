//! The routing table: built from a snapshot off the request path, swapped in atomically, and
//! loaded once per request.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use gatehouse_proto::v1 as pb;
use http::Uri;
use tokio::sync::watch;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use gatehouse_shared::request_path::NormalizedPath;

use crate::configuration::Configuration;
use crate::upstream::{TlsPolicy, TrustAnchors, Upstream, UpstreamError, UpstreamKey, backend_verifier};

pub struct Route {
    pub api_id: String,
    /// Normalized path prefix ("/" or "/a/b", no trailing slash).
    pub prefix: String,
    /// Segments in the prefix: a request's `..` may not climb above them.
    pub depth: usize,
    pub service: Uri,
    pub upstream: Arc<Upstream>,
    /// Credentials and fixed headers for the backend, applied in order.
    pub headers: Vec<HeaderRule>,
    /// Time the backend has for response headers, when the API's policy sets it.
    pub backend_timeout: Option<std::time::Duration>,
    /// `Host` for the backend, made once.
    pub host: Option<http::HeaderValue>,
    pub metrics: crate::metrics::ApiMetrics,
}

/// One compiled `set-header` (or Basic credentials) of an API's policy.
pub struct HeaderRule {
    name: HeaderName,
    action: pb::header_action::Action,
    values: Vec<HeaderValue>,
}

impl HeaderRule {
    fn compile(action: &pb::HeaderAction) -> Result<Self, String> {
        let name = HeaderName::from_bytes(action.name.as_bytes())
            .map_err(|_| format!("invalid header name '{}'", action.name))?;
        let values = action
            .values
            .iter()
            .map(|v| {
                HeaderValue::from_str(v).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|_| format!("invalid value for header '{}'", action.name))?;
        let action = pb::header_action::Action::try_from(action.action)
            .map_err(|_| format!("unknown header action {}", action.action))?;
        Ok(Self { name, action, values })
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        use pb::header_action::Action;
        match self.action {
            Action::Override => {
                headers.remove(&self.name);
                for value in &self.values {
                    headers.append(self.name.clone(), value.clone());
                }
            }
            Action::Skip => {
                if !headers.contains_key(&self.name) {
                    for value in &self.values {
                        headers.append(self.name.clone(), value.clone());
                    }
                }
            }
            Action::Append => {
                for value in &self.values {
                    headers.append(self.name.clone(), value.clone());
                }
            }
            Action::Delete => {
                headers.remove(&self.name);
            }
        }
    }
}

pub struct RoutingTable {
    pub revision: u64,
    /// Longest prefix first, so the first match wins.
    routes: Vec<Route>,
    /// The client certificates routes present, for expiry metrics.
    certificates: Vec<CertificateInUse>,
}

pub struct CertificateInUse {
    pub certificate_id: String,
    pub thumbprint: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("API '{api}': {source}")]
    ServiceUrl {
        api: String,
        #[source]
        source: gatehouse_shared::api::ApiDefinitionError,
    },
    #[error("API '{api}': {source}")]
    Upstream {
        api: String,
        #[source]
        source: UpstreamError,
    },
    #[error("API '{api}': {reason}")]
    Header { api: String, reason: String },
    #[error("the configuration has {routes} APIs; this data plane accepts at most {limit} (--max-routes)")]
    TooManyRoutes { routes: usize, limit: usize },
}

impl TableError {
    pub fn api_id(&self) -> &str {
        match self {
            Self::ServiceUrl { api, .. } | Self::Upstream { api, .. } | Self::Header { api, .. } => api,
            Self::TooManyRoutes { .. } => "",
        }
    }
}

impl RoutingTable {
    /// Builds a table, reusing the previous table's pools (and their warm connections) where
    /// the TLS identity is unchanged.
    pub fn build(
        config: &Configuration,
        previous: Option<&RoutingTable>,
        trust: &TrustAnchors,
        max_routes: usize,
    ) -> Result<Self, TableError> {
        if config.routes.len() > max_routes {
            return Err(TableError::TooManyRoutes { routes: config.routes.len(), limit: max_routes });
        }
        let revision = config.revision;
        let identities: HashMap<&str, &pb::ClientIdentity> =
            config.identities.iter().map(|(t, i)| (t.as_str(), i)).collect();
        let cas: HashMap<&str, &pb::TrustedCa> = config.cas.iter().map(|(t, c)| (t.as_str(), c)).collect();
        let mut pools: HashMap<UpstreamKey, Arc<Upstream>> = previous
            .map(|table| table.routes.iter().map(|r| (r.upstream.key.clone(), r.upstream.clone())).collect())
            .unwrap_or_default();
        let mut verifiers: HashMap<TlsPolicy, Arc<dyn rustls::client::danger::ServerCertVerifier>> = HashMap::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        for config in config.routes.values() {
            let service = gatehouse_shared::api::parse_service_url(&config.service_url)
                .map_err(|source| TableError::ServiceUrl { api: config.api_id.clone(), source })?;
            let key = UpstreamKey {
                scheme: service.scheme_str().unwrap_or("https").to_string(),
                authority: service.authority().map(|a| a.to_string()).unwrap_or_default(),
                client_thumbprint: config.client_certificate_thumbprint.clone(),
                tls: TlsPolicy::from_route(config.tls.as_ref()),
            };
            let upstream = match pools.get(&key) {
                Some(pool) => pool.clone(),
                None => {
                    let identity = if key.client_thumbprint.is_empty() {
                        None
                    } else {
                        Some(*identities.get(key.client_thumbprint.as_str()).ok_or_else(|| TableError::Upstream {
                            api: config.api_id.clone(),
                            source: UpstreamError::MissingIdentity { thumbprint: key.client_thumbprint.clone() },
                        })?)
                    };
                    let verifier = match verifiers.get(&key.tls) {
                        Some(verifier) => verifier.clone(),
                        None => {
                            let verifier = backend_verifier(&key.tls, &cas, trust)
                                .map_err(|source| TableError::Upstream { api: config.api_id.clone(), source })?;
                            verifiers.insert(key.tls.clone(), verifier.clone());
                            verifier
                        }
                    };
                    let pool = Arc::new(
                        Upstream::new(key.clone(), identity, verifier, trust)
                            .map_err(|source| TableError::Upstream { api: config.api_id.clone(), source })?,
                    );
                    pools.insert(key, pool.clone());
                    pool
                }
            };
            let headers = config
                .headers
                .iter()
                .map(HeaderRule::compile)
                .collect::<Result<_, _>>()
                .map_err(|reason| TableError::Header { api: config.api_id.clone(), reason })?;
            let host = service.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
            let metrics = crate::metrics::global().for_api(&config.api_id);
            routes.push(Route {
                api_id: config.api_id.clone(),
                prefix: config.path.clone(),
                depth: gatehouse_shared::request_path::depth(&config.path),
                backend_timeout: (config.backend_timeout_seconds > 0)
                    .then(|| std::time::Duration::from_secs(config.backend_timeout_seconds.into())),
                service,
                upstream,
                headers,
                host,
                metrics,
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let certificates = identities
            .values()
            .filter_map(|identity| {
                let leaf = identity.certificate_chain.first()?;
                let info = gatehouse_shared::certificate::describe_der(leaf).ok()?;
                Some(CertificateInUse {
                    certificate_id: identity.certificate_id.clone(),
                    thumbprint: identity.thumbprint.clone(),
                    not_after: info.not_after,
                })
            })
            .collect();
        Ok(Self { revision, routes, certificates })
    }

    /// Longest-prefix match on whole path segments: "/orders" matches "/orders" and
    /// "/orders/1", never "/ordersx".
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            route.prefix == "/"
                || (path.starts_with(&route.prefix)
                    && matches!(path.as_bytes().get(route.prefix.len()), None | Some(b'/')))
        })
    }

    /// Number of APIs in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn certificates(&self) -> &[CertificateInUse] {
        &self.certificates
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Route {
    /// The backend URI for a request: the service URL's base path, then what follows the API's
    /// prefix in the request's normalized path, then the query as the client sent it.
    pub fn backend_uri(&self, path: &NormalizedPath, query: Option<&str>) -> Result<Uri, http::Error> {
        backend_uri(&self.service, &self.prefix, path.as_str(), query)
    }
}

fn backend_uri(service: &Uri, prefix: &str, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
    let rest = if prefix == "/" { path } else { &path[prefix.len()..] };
    let base = service.path().trim_end_matches('/');
    let mut target = String::with_capacity(base.len() + rest.len() + 2 + query.map_or(0, str::len));
    target.push_str(base);
    if !rest.is_empty() && !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if target.is_empty() {
        target.push('/');
    }
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let mut parts = service.clone().into_parts();
    parts.path_and_query = Some(target.parse()?);
    Ok(Uri::from_parts(parts)?)
}

/// The data plane's current table, shared by the proxy (readers) and the config client (writer).
pub struct Routing {
    current: ArcSwapOption<RoutingTable>,
    applied: watch::Sender<u64>,
    pub status: SyncStatus,
}

/// How this data plane's sync is going, for /ready.
#[derive(Default)]
pub struct SyncStatus {
    pub connected: std::sync::atomic::AtomicBool,
    pub full_updates: std::sync::atomic::AtomicU64,
    pub delta_updates: std::sync::atomic::AtomicU64,
    pub rejected_updates: std::sync::atomic::AtomicU64,
    pub from_cache: std::sync::atomic::AtomicBool,
}

impl Default for Routing {
    fn default() -> Self {
        Self { current: ArcSwapOption::empty(), applied: watch::Sender::new(0), status: SyncStatus::default() }
    }
}

impl Routing {
    pub fn load(&self) -> Option<Arc<RoutingTable>> {
        self.current.load_full()
    }

    pub fn swap(&self, table: RoutingTable) {
        let revision = table.revision;
        self.current.store(Some(Arc::new(table)));
        self.applied.send_replace(revision);
    }

    /// The applied revision, 0 before the first snapshot.
    pub fn revision(&self) -> u64 {
        *self.applied.borrow()
    }

    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Changes with every applied revision.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(api: &str, path: &str) -> pb::RouteConfig {
        pb::RouteConfig {
            api_id: api.into(),
            path: path.into(),
            service_url: "http://127.0.0.1:1".into(),
            client_certificate_thumbprint: String::new(),
            tls: None,
            headers: vec![],
            backend_timeout_seconds: 0,
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let config =
            configuration(vec![route("root", "/"), route("orders", "/orders"), route("items", "/orders/items")]);
        let table = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap();
        let api = |p: &str| table.route(p).map(|r| r.api_id.as_str());
        assert_eq!(api("/orders/items/3"), Some("items"));
        assert_eq!(api("/orders/3"), Some("orders"));
        assert_eq!(api("/orders"), Some("orders"));
        assert_eq!(api("/ordersx"), Some("root"));
    }

    #[test]
    fn unchanged_identity_keeps_its_pool() {
        let config = configuration(vec![route("a", "/a")]);
        let first = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap();
        let second = RoutingTable::build(&config, Some(&first), &TrustAnchors::system(), usize::MAX).unwrap();
        assert!(Arc::ptr_eq(&first.routes[0].upstream, &second.routes[0].upstream));
    }

    #[test]
    fn missing_identity_is_an_error_naming_the_api() {
        let mut r = route("a", "/a");
        r.client_certificate_thumbprint = "AB".repeat(20);
        let config = configuration(vec![r]);
        let error = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).err().unwrap();
        assert_eq!(error.api_id(), "a");
    }

    #[test]
    fn a_configuration_over_the_route_limit_is_refused() {
        let config = configuration(vec![route("a", "/a"), route("b", "/b")]);
        let error = RoutingTable::build(&config, None, &TrustAnchors::system(), 1).err().unwrap();
        assert!(error.to_string().contains("at most 1"), "{error}");
    }

    #[test]
    fn backend_uri_joins_base_rest_and_query() {
        let service: Uri = "https://b:8443/api".parse().unwrap();
        assert_eq!(backend_uri(&service, "/orders", "/orders/42", Some("x=1")).unwrap(), "https://b:8443/api/42?x=1");
        assert_eq!(backend_uri(&service, "/orders", "/orders", None).unwrap(), "https://b:8443/api");
        assert_eq!(backend_uri(&service, "/orders", "/orders/", None).unwrap(), "https://b:8443/api/");
        let root: Uri = "http://b:80".parse().unwrap();
        assert_eq!(backend_uri(&root, "/orders", "/orders", None).unwrap(), "http://b:80/");
        assert_eq!(backend_uri(&root, "/", "/x/y", Some("q")).unwrap(), "http://b:80/x/y?q");
    }

    fn configuration(routes: Vec<pb::RouteConfig>) -> Configuration {
        Configuration {
            revision: 1,
            routes: routes.into_iter().map(|r| (r.api_id.clone(), r)).collect(),
            ..Default::default()
        }
    }
}
