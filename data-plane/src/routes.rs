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

use gatehouse_proto::v1 as pb;
use gatehouse_shared::request_path::NormalizedPath;
use http::Uri;

use crate::client_certificates::{
    Authorities, AuthoritiesBuilder, AuthorityError, ClientCertificateError, ClientCertificatePolicy,
};
use crate::configuration::Configuration;
use crate::hostnames::{HostPattern, HostnameError, Hostnames, InvalidHostName};
use crate::subscriptions::{KeyRequirement, SubscriptionError, Subscriptions};
use crate::upstream::{TlsPolicy, TrustAnchors, Upstream, UpstreamError, UpstreamKey, Upstreams, UpstreamsBuilder};

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

/// Every API of one configuration revision, ready for requests. Persistent: a table built on
/// the previous one shares every route, pool and index entry that did not change, so applying
/// a one-API change costs about as much at 10,000 APIs as at ten.
pub struct RoutingTable {
    /// The revision it was built from.
    pub revision: u64,
    /// By API id.
    routes: imbl::OrdMap<String, Arc<Route>>,
    /// Where to look a request up: see [`RoutingTable::route`].
    index: PrefixIndex,
    /// The pools the routes use: where the next table's pools start from.
    upstreams: Upstreams,
    /// The client certificates of the configuration, by thumbprint, for expiry metrics.
    certificates: imbl::OrdMap<String, Arc<CertificateInUse>>,
    /// The hostnames served over HTTPS, with their certificates.
    pub hostnames: Arc<Hostnames>,
    /// The CA certificates client certificates are checked against.
    pub client_authorities: Arc<Authorities>,
    /// The subscriptions' keys (hashes), for APIs that require one.
    pub subscriptions: Arc<Subscriptions>,
    /// The configuration it was built from: the next table is built from the difference.
    source: Configuration,
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

impl CertificateInUse {
    /// The certificate of an identity, if its leaf can be read.
    fn of(identity: &pb::ClientIdentity) -> Option<Self> {
        let leaf = identity.certificate_chain.first()?;
        let info = gatehouse_shared::certificate::describe_der(leaf).ok()?;
        Some(Self {
            certificate_id: identity.certificate_id.clone(),
            thumbprint: identity.thumbprint.clone(),
            not_after: info.not_after,
        })
    }
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
    /// Builds a table. On `previous`, when only routes and identities changed since it (the
    /// usual change), only the changed routes are built and the rest is shared; otherwise the
    /// whole table is built, reusing `previous`'s pools (and their warm connections) where the
    /// TLS identity is unchanged.
    pub fn build(
        config: &Configuration,
        previous: Option<&RoutingTable>,
        trust: &TrustAnchors,
        max_routes: usize,
    ) -> Result<Self, TableError> {
        if config.routes.len() > max_routes {
            return Err(TableError::TooManyRoutes { routes: config.routes.len(), limit: max_routes });
        }
        match previous {
            Some(previous) if previous.changes_only_routes_to(config) => previous.changed_to(config, trust),
            _ => Self::whole(config, previous, trust),
        }
    }

    /// Whether `config` differs from this table's configuration in routes and identities
    /// only: CA certificates, hostnames and subscriptions are shared with it.
    fn changes_only_routes_to(&self, config: &Configuration) -> bool {
        self.source.config_id == config.config_id
            && self.source.cas.ptr_eq(&config.cas)
            && self.source.hostnames.ptr_eq(&config.hostnames)
            && self.source.subscriptions.ptr_eq(&config.subscriptions)
    }

    /// Every route, hostname and subscription of `config` built anew (pools and unchanged
    /// hostnames and authorities taken over from `previous`).
    fn whole(
        config: &Configuration,
        previous: Option<&RoutingTable>,
        trust: &TrustAnchors,
    ) -> Result<Self, TableError> {
        let mut upstreams = Upstreams::builder(previous.map(|table| &table.upstreams), config, trust);
        let mut authorities = Authorities::builder(config, previous.map(|table| &*table.client_authorities));
        let (mut routes, mut index) = (imbl::OrdMap::new(), PrefixIndex::default());
        for route in config.routes.values() {
            let built = Arc::new(Route::build(route, &mut upstreams, &mut authorities)?);
            index.insert(&built);
            routes.insert(route.api_id.clone(), built);
        }
        let certificates = config
            .identities
            .values()
            .filter_map(|identity| Some((identity.thumbprint.clone(), Arc::new(CertificateInUse::of(identity)?))))
            .collect();
        let hostnames = Hostnames::build(config, previous.map(|table| &*table.hostnames))
            .map_err(|(name, source)| TableError::Hostname { name, source })?;
        let client_authorities =
            authorities.finish().map_err(|(name, source)| TableError::ClientCa { name, source })?;
        let subscriptions =
            Subscriptions::build(config).map_err(|(name, source)| TableError::Subscription { name, source })?;
        Ok(Self {
            revision: config.revision,
            routes,
            index,
            upstreams: upstreams.finish(),
            certificates,
            hostnames: Arc::new(hostnames),
            client_authorities: Arc::new(client_authorities),
            subscriptions: Arc::new(subscriptions),
            source: config.clone(),
        })
    }

    /// This table with the routes that differ in `config` built again, the others shared; a
    /// pool no route uses any more goes. (A route that checks client certificates holds its
    /// authorities itself; the table's are those of hostnames, which did not change.)
    fn changed_to(&self, config: &Configuration, trust: &TrustAnchors) -> Result<Self, TableError> {
        use imbl::ordmap::DiffItem;
        let mut upstreams = self.upstreams.changing(config, trust);
        let mut authorities = Authorities::builder(config, Some(&self.client_authorities));
        let (mut routes, mut index) = (self.routes.clone(), self.index.clone());
        for item in self.source.routes.diff(&config.routes) {
            let (id, now) = match item {
                DiffItem::Add(id, now) | DiffItem::Update { new: (id, now), .. } => (id, Some(now)),
                DiffItem::Remove(id, _) => (id, None),
            };
            if let Some(before) = routes.remove(id) {
                index.remove(&before);
                upstreams.release(&before.upstream.key);
            }
            let Some(now) = now else { continue };
            let built = Arc::new(Route::build(now, &mut upstreams, &mut authorities)?);
            index.insert(&built);
            routes.insert(id.clone(), built);
        }
        let mut certificates = self.certificates.clone();
        for item in self.source.identities.diff(&config.identities) {
            match item {
                DiffItem::Add(thumbprint, identity) | DiffItem::Update { new: (thumbprint, identity), .. } => {
                    match CertificateInUse::of(identity) {
                        Some(certificate) => certificates.insert(thumbprint.clone(), Arc::new(certificate)),
                        None => certificates.remove(thumbprint),
                    };
                }
                DiffItem::Remove(thumbprint, _) => {
                    certificates.remove(thumbprint);
                }
            }
        }
        // Hostnames name their certificates by thumbprint: checked again when identities changed.
        let hostnames = match self.source.identities.ptr_eq(&config.identities) {
            true => self.hostnames.clone(),
            false => Arc::new(
                Hostnames::build(config, Some(&self.hostnames))
                    .map_err(|(name, source)| TableError::Hostname { name, source })?,
            ),
        };
        Ok(Self {
            revision: config.revision,
            routes,
            index,
            upstreams: upstreams.finish(),
            certificates,
            hostnames,
            client_authorities: self.client_authorities.clone(),
            subscriptions: self.subscriptions.clone(),
            source: config.clone(),
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
    fn closest_host<'a>(&self, sharing: &'a [Arc<Route>], host: Option<&str>, over_tls: bool) -> Option<&'a Route> {
        let mut best: Option<(&Route, HostMatch)> = None;
        for route in sharing.iter().map(|route| &**route) {
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

    /// Opens a connection for each of the (at most `limit`) pools this table has and
    /// `previous` had not, all at once, for at most `within`: the first request with a new
    /// identity then finds its TLS handshake done.
    pub async fn warm_new_pools(&self, previous: Option<&RoutingTable>, limit: usize, within: std::time::Duration) {
        let fresh: Vec<Arc<Upstream>> =
            self.upstreams.not_in(previous.map(|table| &table.upstreams)).take(limit).cloned().collect();
        if fresh.is_empty() {
            return;
        }
        // Tasks of their own: one that outlasts `within` finishes (or fails) in the background.
        let warming = fresh.into_iter().map(|pool| tokio::spawn(async move { pool.warm().await }));
        let warming = futures_util::future::join_all(warming.collect::<Vec<_>>());
        if tokio::time::timeout(within, warming).await.is_err() {
            tracing::debug!(?within, "new backend pools still warming; the table is swapped in anyway");
        }
    }

    /// Number of APIs in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The client certificates of the configuration, for the expiry metric.
    pub fn certificates(&self) -> impl Iterator<Item = &CertificateInUse> {
        self.certificates.values().map(|certificate| &**certificate)
    }

    /// Whether the table has no API.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The APIs by prefix, so a lookup costs what the request's path is deep, not how many APIs
/// there are. Prefixes match on whole segments ("/orders" matches "/orders" and "/orders/1",
/// never "/ordersx"), ignoring ASCII case as APIM does (backends such as IIS do too, so
/// `/SEC/a` must meet `/sec`'s rules, not another API's). Persistent, like the table.
#[derive(Clone, Default)]
struct PrefixIndex {
    /// ASCII-lowercased prefix → the routes with it, in id order.
    by_prefix: imbl::HashMap<String, Vec<Arc<Route>>>,
    /// How many routes have a prefix of each depth (segments): no part of a path deeper than
    /// the deepest prefix can match.
    depths: imbl::OrdMap<usize, usize>,
}

impl PrefixIndex {
    fn insert(&mut self, route: &Arc<Route>) {
        let sharing = self.by_prefix.entry(route.prefix.to_ascii_lowercase()).or_default();
        let at = sharing.partition_point(|other| other.api_id < route.api_id);
        sharing.insert(at, route.clone());
        *self.depths.entry(route.depth).or_default() += 1;
    }

    fn remove(&mut self, route: &Route) {
        let key = route.prefix.to_ascii_lowercase();
        if let Some(sharing) = self.by_prefix.get_mut(&key) {
            sharing.retain(|other| other.api_id != route.api_id);
            if sharing.is_empty() {
                self.by_prefix.remove(&key);
            }
        }
        if let Some(count) = self.depths.get_mut(&route.depth) {
            *count -= 1;
            if *count == 0 {
                self.depths.remove(&route.depth);
            }
        }
    }

    /// Where the longest prefix of the (lowercased) `path` worth looking up ends: after as many
    /// segments as the deepest prefix has, or the whole path.
    fn longest_candidate(&self, path: &str) -> usize {
        let deepest = self.depths.get_max().map_or(0, |(depth, _)| *depth);
        path.match_indices('/').nth(deepest).map_or(path.len(), |(i, _)| i)
    }

    /// The routes whose prefix is `prefix` (lowercased).
    fn sharing(&self, prefix: &str) -> Option<&[Arc<Route>]> {
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
    /// The route of one API: its backend URL, the pool of the identity it presents (from
    /// `upstreams`), its header rules, hosts, key requirement and client certificate rules.
    fn build(
        route: &pb::RouteConfig,
        upstreams: &mut UpstreamsBuilder<'_>,
        authorities: &mut AuthoritiesBuilder<'_>,
    ) -> Result<Self, TableError> {
        let api = || route.api_id.clone();
        let service = gatehouse_shared::api::parse_service_url(&route.service_url)
            .map_err(|source| TableError::ServiceUrl { api: api(), source })?;
        let key = UpstreamKey {
            scheme: service.scheme_str().unwrap_or("https").to_string(),
            authority: service.authority().map(|a| a.to_string()).unwrap_or_default(),
            client_thumbprint: route.client_certificate_thumbprint.clone(),
            tls: TlsPolicy::from_route(route.tls.as_ref()),
        };
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
        let client_certificate = ClientCertificatePolicy::compile(route, authorities)
            .map_err(|source| TableError::ClientCertificate { api: api(), source })?;
        // Last: a route that fails above takes no pool.
        let upstream = upstreams.pool(key).map_err(|source| TableError::Upstream { api: api(), source })?;
        Ok(Route {
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
            metrics: crate::metrics::global().for_api(&route.api_id),
            client_certificate,
            subscription_key,
        })
    }

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
        assert!(Arc::ptr_eq(&first.routes["a"].upstream, &second.routes["a"].upstream));
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
            routes: routes.into_iter().map(|r| (r.api_id.clone(), Arc::new(r))).collect(),
            ..Default::default()
        }
    }

    /// `config` with `change` made to its routes, as a delta would leave it.
    fn changed(
        config: &Configuration,
        change: impl FnOnce(&mut crate::configuration::Entries<pb::RouteConfig>),
    ) -> Configuration {
        let mut next = config.clone();
        change(&mut next.routes);
        next.revision += 1;
        next
    }

    #[test]
    fn a_table_built_on_the_previous_one_routes_and_pools_like_one_built_whole() {
        let trust = TrustAnchors::system();
        let on = |api: &str, path: &str, backend: &str| pb::RouteConfig {
            service_url: format!("http://{backend}"),
            ..route(api, path)
        };
        let mut config = configuration((0..50).map(|i| on(&format!("api-{i}"), &format!("/s/{i}"), "b1:1")).collect());
        let mut table = RoutingTable::build(&config, None, &trust, usize::MAX).unwrap();
        type Step<'a> = Box<dyn Fn(&mut crate::configuration::Entries<pb::RouteConfig>) + 'a>;
        let steps: Vec<Step<'_>> = vec![
            // A new API deeper than any, one moved to another backend, one removed.
            Box::new(|routes| {
                routes.insert("deep".into(), Arc::new(on("deep", "/s/1/x/y", "b1:1")));
            }),
            Box::new(|routes| {
                routes.insert("api-7".into(), Arc::new(on("api-7", "/s/7", "b2:2")));
            }),
            Box::new(|routes| {
                routes.remove("api-7");
            }),
            Box::new(|routes| {
                routes.remove("deep");
                routes.insert("api-3".into(), Arc::new(on("api-3", "/S/3/v2", "b1:1")));
            }),
        ];
        let paths = ["/s/1/x/y/z", "/s/1/x", "/s/7/a", "/s/3/v2/q", "/s/3", "/s/49", "/t"];
        for (n, step) in steps.iter().enumerate() {
            let next = changed(&config, step);
            let built_on = RoutingTable::build(&next, Some(&table), &trust, usize::MAX).unwrap();
            let whole = RoutingTable::build(&next, None, &trust, usize::MAX).unwrap();
            for path in paths {
                let api = |t: &RoutingTable| t.route(None, path, true).map(|r| r.api_id.clone());
                assert_eq!(api(&built_on), api(&whole), "step {n}, {path}");
            }
            assert_eq!(built_on.len(), whole.len(), "step {n}");
            assert_eq!(built_on.upstreams.len(), whole.upstreams.len(), "step {n}: pools no route uses must go");
            (config, table) = (next, built_on);
        }
        assert_eq!(table.upstreams.len(), 1, "only b1's pool is left");
        // The only route of a pool changes something else: the pool (and its connections) stays.
        let solo = |timeout| pb::RouteConfig { backend_timeout_seconds: timeout, ..on("solo", "/solo", "b3:3") };
        let next = changed(&config, |routes| {
            routes.insert("solo".into(), Arc::new(solo(5)));
        });
        let table = RoutingTable::build(&next, Some(&table), &trust, usize::MAX).unwrap();
        let sole = table.routes["solo"].upstream.clone();
        let next = changed(&next, |routes| {
            routes.insert("solo".into(), Arc::new(solo(9)));
        });
        let rebuilt = RoutingTable::build(&next, Some(&table), &trust, usize::MAX).unwrap();
        assert!(Arc::ptr_eq(&sole, &rebuilt.routes["solo"].upstream), "a rebuilt route keeps its pool");
        assert_eq!(table.route(None, "/s/3/v2/q", true).unwrap().api_id, "api-3");
    }
}
