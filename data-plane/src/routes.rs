//! The routing table: built from a snapshot off the request path, swapped in atomically, and
//! loaded once per request (and once per HTTPS handshake). A route knows its API's hosts, path
//! prefix, backend, header rules and the upstream pool of the TLS identity it presents; the
//! pools themselves belong to [`crate::upstream`], the hostnames (server certificates) to
//! [`crate::hostnames`].
//!
//! A request goes to the API with the longest path prefix that matches it (on whole segments
//! of the normalized path) among the APIs that answer on its host; when several APIs have that
//! prefix, one that names the host exactly wins over one whose wildcard hostname covers it,
//! which wins over one without hostnames (answering on any host).

mod header_rule;
mod routing;

use std::sync::Arc;

use gatehouse_shared::request_path::NormalizedPath;
use http::Uri;

use crate::client_certificates::{Authorities, AuthorityError, ClientCertificateError, ClientCertificatePolicy};
use crate::configuration::Configuration;
use crate::hostnames::{HostPattern, HostnameError, Hostnames, InvalidHostName};
use crate::subscriptions::{KeyRequirement, SubscriptionError, Subscriptions};
use crate::upstream::{TlsPolicy, TrustAnchors, Upstream, UpstreamError, UpstreamKey, Upstreams};

pub use header_rule::{HeaderError, HeaderRule};
pub use routing::{Routing, SyncStatus};

/// One API as the proxy sees it.
pub struct Route {
    /// The API's id.
    pub api_id: String,
    /// The hosts it answers on; empty: any host.
    pub hosts: Vec<HostPattern>,
    /// Normalized path prefix ("/" or "/a/b", no trailing slash).
    pub prefix: String,
    /// Segments in the prefix: a request's `..` may not climb above them.
    pub depth: usize,
    /// The service URL requests go to (scheme, authority and base path).
    pub service: Uri,
    /// The pool of the TLS identity this API presents to its backend.
    pub upstream: Arc<Upstream>,
    /// Credentials and fixed headers for the backend, applied in order.
    pub headers: Vec<HeaderRule>,
    /// Time the backend has for response headers, when the API's policy sets it.
    pub backend_timeout: Option<std::time::Duration>,
    /// `Host` for the backend, made once.
    pub host: Option<http::HeaderValue>,
    /// The API's request series, resolved once.
    pub metrics: crate::metrics::ApiMetrics,
    /// What the API's policy does with client certificates (validate, forward).
    pub client_certificate: ClientCertificatePolicy,
    /// The subscription key callers must present, when the API requires one.
    pub subscription_key: Option<KeyRequirement>,
}

/// Every API of one configuration revision, ready for requests.
pub struct RoutingTable {
    /// The revision it was built from.
    pub revision: u64,
    /// Longest prefix first, APIs sharing a prefix together.
    routes: Vec<Route>,
    /// Where to look a request up: see [`RoutingTable::route`].
    index: PrefixIndex,
    /// The pools the routes use: where the next table's pools start from.
    upstreams: Upstreams,
    /// The client certificates routes present, for expiry metrics.
    certificates: Vec<CertificateInUse>,
    /// The hostnames served over HTTPS, with their certificates.
    pub hostnames: Hostnames,
    /// The CA certificates client certificates are checked against.
    pub client_authorities: Authorities,
    /// The subscriptions' keys (hashes), for APIs that require one.
    pub subscriptions: Subscriptions,
}

/// A client certificate of the configuration, for the expiry metric.
pub struct CertificateInUse {
    /// The id it was uploaded under.
    pub certificate_id: String,
    /// Its thumbprint.
    pub thumbprint: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

/// Why a configuration cannot become a routing table (the data plane NACKs it).
///
/// The API's id is the message; the cause is the source, so `error_chain` reads
/// "API 'orders': invalid header name 'x y': invalid HTTP header name".
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The API's service URL cannot be used.
    #[error("API '{api}'")]
    ServiceUrl {
        /// The API's id.
        api: String,
        /// What is wrong with the URL.
        #[source]
        source: gatehouse_shared::api::ApiDefinitionError,
    },
    /// The API's backend pool cannot be made (client certificate, CA certificates).
    #[error("API '{api}'")]
    Upstream {
        /// The API's id.
        api: String,
        /// Why the pool cannot be made.
        #[source]
        source: UpstreamError,
    },
    /// One of the API's header rules cannot be compiled.
    #[error("API '{api}'")]
    Header {
        /// The API's id.
        api: String,
        /// What is wrong with the rule.
        #[source]
        source: HeaderError,
    },
    /// One of the API's hostnames is not a host name.
    #[error("API '{api}'")]
    ApiHostname {
        /// The API's id.
        api: String,
        /// The name.
        #[source]
        source: InvalidHostName,
    },
    /// A hostname cannot be served (its certificate, its client CAs, its name).
    #[error("hostname '{name}'")]
    Hostname {
        /// The hostname's name.
        name: String,
        /// What is wrong with it.
        #[source]
        source: HostnameError,
    },
    /// A subscription cannot be used (its key hashes, its state).
    #[error("subscription '{name}'")]
    Subscription {
        /// The subscription's name.
        name: String,
        /// What is wrong with it.
        #[source]
        source: SubscriptionError,
    },
    /// The API's client certificate rules cannot be compiled.
    #[error("API '{api}'")]
    ClientCertificate {
        /// The API's id.
        api: String,
        /// What is wrong with them.
        #[source]
        source: ClientCertificateError,
    },
    /// A client CA of a hostname cannot be used to check client certificates.
    #[error("hostname '{name}'")]
    ClientCa {
        /// The hostname's name.
        name: String,
        /// What is wrong with the CA certificate.
        #[source]
        source: AuthorityError,
    },
    /// More APIs than `--max-routes`.
    #[error("the configuration has {routes} APIs; this data plane accepts at most {limit} (--max-routes)")]
    TooManyRoutes {
        /// APIs in the configuration.
        routes: usize,
        /// The limit.
        limit: usize,
    },
}

impl TableError {
    /// The API (by id) or hostname (by name) the error is about; None when it is about the
    /// whole configuration.
    pub fn resource_id(&self) -> Option<&str> {
        match self {
            Self::ServiceUrl { api, .. }
            | Self::Upstream { api, .. }
            | Self::Header { api, .. }
            | Self::ApiHostname { api, .. }
            | Self::ClientCertificate { api, .. } => Some(api),
            Self::ClientCa { name, .. } => Some(name),
            Self::Hostname { name, .. } | Self::Subscription { name, .. } => Some(name),
            Self::TooManyRoutes { .. } => None,
        }
    }
}

// === impl RoutingTable ===

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
        let mut upstreams = Upstreams::builder(previous.map(|table| &table.upstreams), config, trust);
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut authorities = Authorities::builder(config, previous.map(|table| &table.client_authorities));
        for route in config.routes.values() {
            let api = || route.api_id.clone();
            let service = gatehouse_shared::api::parse_service_url(&route.service_url)
                .map_err(|source| TableError::ServiceUrl { api: api(), source })?;
            let key = UpstreamKey {
                scheme: service.scheme_str().unwrap_or("https").to_string(),
                authority: service.authority().map(|a| a.to_string()).unwrap_or_default(),
                client_thumbprint: route.client_certificate_thumbprint.clone(),
                tls: TlsPolicy::from_route(route.tls.as_ref()),
            };
            let upstream = upstreams.pool(key).map_err(|source| TableError::Upstream { api: api(), source })?;
            let headers = route
                .headers
                .iter()
                .map(HeaderRule::compile)
                .collect::<Result<_, _>>()
                .map_err(|source| TableError::Header { api: api(), source })?;
            let host = service.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
            let hosts = route
                .hostnames
                .iter()
                .map(|name| HostPattern::parse(name))
                .collect::<Result<_, _>>()
                .map_err(|source| TableError::ApiHostname { api: api(), source })?;
            let subscription_key =
                KeyRequirement::of_route(route).map_err(|source| TableError::Header { api: api(), source })?;
            let metrics = crate::metrics::global().for_api(&route.api_id);
            let client_certificate = ClientCertificatePolicy::compile(route, &mut authorities)
                .map_err(|source| TableError::ClientCertificate { api: api(), source })?;
            routes.push(Route {
                api_id: api(),
                hosts,
                prefix: route.path.clone(),
                depth: gatehouse_shared::request_path::depth(&route.path),
                backend_timeout: (route.backend_timeout_seconds > 0)
                    .then(|| std::time::Duration::from_secs(route.backend_timeout_seconds.into())),
                service,
                upstream,
                headers,
                host,
                metrics,
                client_certificate,
                subscription_key,
            });
        }
        // Longest prefix first, and APIs sharing a prefix next to each other (in id order), so a
        // lookup stops at the end of the first prefix that matches.
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then_with(|| a.prefix.cmp(&b.prefix)));
        let index = PrefixIndex::new(&routes);
        let certificates = config
            .identities
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
        let hostnames = Hostnames::build(config, previous.map(|table| &table.hostnames))
            .map_err(|(name, source)| TableError::Hostname { name, source })?;
        let client_authorities =
            authorities.finish().map_err(|(name, source)| TableError::ClientCa { name, source })?;
        let subscriptions =
            Subscriptions::build(config).map_err(|(name, source)| TableError::Subscription { name, source })?;
        Ok(Self {
            revision,
            routes,
            index,
            upstreams: upstreams.finish(),
            certificates,
            hostnames,
            subscriptions,
            client_authorities,
        })
    }

    /// The API for a request to `host` (normalized: lowercase, no port; None when the request
    /// names none) and `path` (normalized): the longest prefix on whole path segments ("/orders"
    /// matches "/orders" and "/orders/1", never "/ordersx") among the APIs answering on the host,
    /// and among those with that prefix the one naming the host most closely (exact, then
    /// wildcard, then any host). `over_tls`: the request came over HTTPS; APIs that list
    /// hostnames are HTTPS APIs (their hostnames have certificates) and do not answer over
    /// plaintext, so what they require (keys, client certificates) never travels in clear.
    ///
    /// The cost does not grow with the number of APIs: the path's own prefixes, longest first,
    /// are looked up in a map, at most one lookup per segment of the deepest API prefix.
    pub fn route(&self, host: Option<&str>, path: &str, over_tls: bool) -> Option<&Route> {
        // Prefixes are kept lowercased; most paths already are, and are not copied.
        let lower: std::borrow::Cow<'_, str> =
            if path.bytes().any(|b| b.is_ascii_uppercase()) { path.to_ascii_lowercase().into() } else { path.into() };
        let mut end = self.index.longest_candidate(&lower);
        loop {
            let prefix = if end <= 1 { "/" } else { &lower[..end] };
            if let Some(best) =
                self.index.sharing(prefix).and_then(|sharing| self.closest_host(sharing, host, over_tls))
            {
                return Some(best);
            }
            if end <= 1 {
                return None;
            }
            // The next shorter prefix on a segment boundary.
            end = lower[..end].rfind('/').unwrap_or(0);
        }
    }

    /// Among routes sharing a prefix, the one naming `host` most closely (first in id order
    /// on a tie).
    fn closest_host(&self, sharing: &[usize], host: Option<&str>, over_tls: bool) -> Option<&Route> {
        let mut best: Option<(&Route, HostMatch)> = None;
        for route in sharing.iter().map(|&i| &self.routes[i]) {
            if !over_tls && !route.hosts.is_empty() {
                continue;
            }
            let Some(matched) = route.host_match(host) else { continue };
            if best.is_none_or(|(_, so_far)| matched > so_far) {
                best = Some((route, matched));
            }
        }
        best.map(|(route, _)| route)
    }

    /// Number of APIs in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The client certificates of the configuration, for the expiry metric.
    pub fn certificates(&self) -> &[CertificateInUse] {
        &self.certificates
    }

    /// Whether the table has no API.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The APIs by prefix, so a lookup costs what the request's path is deep, not how many APIs
/// there are. Prefixes match on whole segments ("/orders" matches "/orders" and "/orders/1",
/// never "/ordersx"), ignoring ASCII case as APIM does (backends such as IIS do too, so
/// `/SEC/a` must meet `/sec`'s rules, not another API's).
struct PrefixIndex {
    /// ASCII-lowercased prefix → the routes with it, in the table's order.
    by_prefix: std::collections::HashMap<Box<str>, Vec<usize>>,
    /// Segments in the deepest prefix: no longer part of a path can match.
    deepest: usize,
}

impl PrefixIndex {
    fn new(routes: &[Route]) -> Self {
        let mut by_prefix: std::collections::HashMap<Box<str>, Vec<usize>> = std::collections::HashMap::new();
        for (i, route) in routes.iter().enumerate() {
            by_prefix.entry(route.prefix.to_ascii_lowercase().into()).or_default().push(i);
        }
        Self { by_prefix, deepest: routes.iter().map(|r| r.depth).max().unwrap_or(0) }
    }

    /// Where the longest prefix of the (lowercased) `path` worth looking up ends: after as many
    /// segments as the deepest prefix has, or the whole path.
    fn longest_candidate(&self, path: &str) -> usize {
        path.match_indices('/').nth(self.deepest).map_or(path.len(), |(i, _)| i)
    }

    /// The routes whose prefix is `prefix` (lowercased).
    fn sharing(&self, prefix: &str) -> Option<&[usize]> {
        self.by_prefix.get(prefix).map(Vec::as_slice)
    }
}

/// How closely an API's hostnames name a request's host; closer wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum HostMatch {
    /// The API has no hostnames: it answers on any host.
    AnyHost,
    /// One of its wildcard hostnames covers the host.
    Wildcard,
    /// One of its hostnames is the host.
    Exact,
}

// === impl Route ===

impl Route {
    /// None when the API does not answer on `host`.
    fn host_match(&self, host: Option<&str>) -> Option<HostMatch> {
        if self.hosts.is_empty() {
            return Some(HostMatch::AnyHost);
        }
        let host = host?;
        self.hosts
            .iter()
            .filter(|pattern| pattern.covers(host))
            .map(|pattern| if pattern.is_wildcard() { HostMatch::Wildcard } else { HostMatch::Exact })
            .max()
    }

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

#[cfg(test)]
mod tests {
    use gatehouse_proto::v1 as pb;

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
            hostnames: vec![],
            ..Default::default()
        }
    }

    fn on_hosts(mut route: pb::RouteConfig, hosts: &[&str]) -> pb::RouteConfig {
        route.hostnames = hosts.iter().map(|h| h.to_string()).collect();
        route
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let config =
            configuration(vec![route("root", "/"), route("orders", "/orders"), route("items", "/orders/items")]);
        let table = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap();
        let api = |p: &str| table.route(None, p, true).map(|r| r.api_id.as_str());
        assert_eq!(api("/orders/items/3"), Some("items"));
        assert_eq!(api("/ORDERS/Items/3"), Some("items"), "prefixes match ignoring ASCII case");
        assert_eq!(api("/orders/3"), Some("orders"));
        assert_eq!(api("/orders"), Some("orders"));
        assert_eq!(api("/ordersx"), Some("root"));
    }

    #[test]
    fn lookups_find_the_longest_prefix_among_many_apis_at_any_depth() {
        let mut routes: Vec<_> = (0..2000).map(|i| route(&format!("api-{i}"), &format!("/svc/{i}/v1"))).collect();
        routes.push(route("shallow", "/a"));
        routes.push(route("deep", "/a/b/c/d"));
        let table = RoutingTable::build(&configuration(routes), None, &TrustAnchors::system(), usize::MAX).unwrap();
        let api = |p: &str| table.route(None, p, true).map(|r| r.api_id.as_str());
        assert_eq!(api("/svc/1234/v1/orders/7"), Some("api-1234"));
        assert_eq!(api("/SVC/77/V1"), Some("api-77"));
        assert_eq!(api("/svc/77/v2"), None, "no API, and no root API");
        assert_eq!(api("/a/b/c/d/e/f/g/h"), Some("deep"), "deeper than every prefix");
        assert_eq!(api("/a/b/c/x/e/f/g/h"), Some("shallow"));
        assert_eq!(api("/a/"), Some("shallow"));
        assert_eq!(api("/ab"), None);
        assert_eq!(api("/"), None);
    }

    #[test]
    fn the_longest_prefix_wins_then_the_api_naming_the_host_most_closely() {
        let config = configuration(vec![
            route("any-root", "/"),
            on_hosts(route("api-root", "/"), &["api.example.com"]),
            route("any-orders", "/orders"),
            on_hosts(route("wild-orders", "/orders"), &["*.example.com"]),
            on_hosts(route("exact-orders", "/orders"), &["shop.example.com", "*.example.org"]),
            on_hosts(route("other-items", "/orders/items"), &["other.example.com"]),
        ]);
        let table = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap();
        let api = |host: Option<&str>, path: &str| table.route(host, path, true).map(|r| r.api_id.as_str());
        // Same prefix: exact beats wildcard beats any host.
        assert_eq!(api(Some("shop.example.com"), "/orders/1"), Some("exact-orders"));
        assert_eq!(api(Some("api.example.com"), "/orders/1"), Some("wild-orders"));
        assert_eq!(api(Some("a.example.org"), "/orders/1"), Some("exact-orders"), "its wildcard covers the host");
        assert_eq!(api(Some("b.example.net"), "/orders/1"), Some("any-orders"));
        assert_eq!(api(None, "/orders/1"), Some("any-orders"), "no host: only APIs answering on any host");
        // A longer prefix wins even over an API that names the host.
        assert_eq!(api(Some("other.example.com"), "/orders/items/1"), Some("other-items"));
        assert_eq!(api(Some("api.example.com"), "/orders/items/1"), Some("wild-orders"), "other-items is not on api.");
        assert_eq!(api(Some("api.example.com"), "/customers"), Some("api-root"));
        assert_eq!(api(Some("a.b.example.com"), "/customers"), Some("any-root"));
    }

    #[test]
    fn an_api_on_hosts_only_answers_there() {
        let config = configuration(vec![on_hosts(route("a", "/a"), &["a.example.com", "*.a.test"])]);
        let table = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap();
        let api = |host: Option<&str>| table.route(host, "/a", true).map(|r| r.api_id.as_str());
        assert!(table.route(Some("api.example.com"), "/a", false).is_none_or(|r| r.hosts.is_empty()), "over plaintext");
        assert_eq!(api(Some("a.example.com")), Some("a"));
        assert_eq!(api(Some("x.a.test")), Some("a"));
        assert_eq!(api(Some("a.test")), None);
        assert_eq!(api(Some("b.example.com")), None);
        assert_eq!(api(None), None);
    }

    #[test]
    fn a_bad_api_hostname_is_an_error_naming_the_api() {
        let config = configuration(vec![on_hosts(route("a", "/a"), &["*.*.example.com"])]);
        let error = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).err().unwrap();
        assert_eq!(error.resource_id(), Some("a"));
        let reason = gatehouse_shared::error_chain(&error);
        assert!(reason.starts_with("API 'a': '*.*.example.com' is not a host name"), "{reason}");
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
        assert_eq!(error.resource_id(), Some("a"));
    }

    #[test]
    fn a_bad_header_rule_is_an_error_naming_the_api_and_the_header() {
        let mut r = route("a", "/a");
        r.headers = vec![pb::HeaderAction { name: "bad name".into(), values: vec!["x".into()], action: 0 }];
        let config = configuration(vec![r]);
        let error = RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).err().unwrap();
        assert!(matches!(&error, TableError::Header { source: HeaderError::Name { .. }, .. }), "{error:?}");
        let reason = gatehouse_shared::error_chain(&error);
        assert!(reason.starts_with("API 'a': invalid header name 'bad name': "), "{reason}");
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
