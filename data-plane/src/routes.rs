//! The routing table: built from a snapshot off the request path, swapped in atomically, and
//! loaded once per request.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use gatehouse_proto::v1 as pb;
use http::Uri;
use tokio::sync::watch;

use crate::upstream::{TrustAnchors, Upstream, UpstreamError, UpstreamKey};

pub struct Route {
    pub api_id: String,
    /// Normalized path prefix ("/" or "/a/b", no trailing slash).
    pub prefix: String,
    pub service: Uri,
    pub upstream: Arc<Upstream>,
}

pub struct RoutingTable {
    pub revision: u64,
    /// Longest prefix first, so the first match wins.
    routes: Vec<Route>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("API '{api}': {source}")]
    ServiceUrl { api: String, #[source] source: gatehouse_shared::api::ApiDefinitionError },
    #[error("API '{api}': {source}")]
    Upstream { api: String, #[source] source: UpstreamError },
}

impl TableError {
    pub fn api_id(&self) -> &str {
        match self {
            Self::ServiceUrl { api, .. } | Self::Upstream { api, .. } => api,
        }
    }
}

impl RoutingTable {
    /// Builds a table, reusing the previous table's pools (and their warm connections) where
    /// the TLS identity is unchanged.
    pub fn build(
        revision: u64,
        snapshot: &pb::Snapshot,
        previous: Option<&RoutingTable>,
        trust: &TrustAnchors,
    ) -> Result<Self, TableError> {
        let identities: HashMap<&str, &pb::ClientIdentity> =
            snapshot.identities.iter().map(|i| (i.thumbprint.as_str(), i)).collect();
        let mut pools: HashMap<UpstreamKey, Arc<Upstream>> = previous
            .map(|table| table.routes.iter().map(|r| (r.upstream.key.clone(), r.upstream.clone())).collect())
            .unwrap_or_default();
        let mut routes = Vec::with_capacity(snapshot.routes.len());
        for config in &snapshot.routes {
            let service = gatehouse_shared::api::parse_service_url(&config.service_url)
                .map_err(|source| TableError::ServiceUrl { api: config.api_id.clone(), source })?;
            let key = UpstreamKey {
                scheme: service.scheme_str().unwrap_or("https").to_string(),
                authority: service.authority().map(|a| a.to_string()).unwrap_or_default(),
                client_thumbprint: config.client_certificate_thumbprint.clone(),
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
                    let pool = Arc::new(
                        Upstream::new(key.clone(), identity, trust)
                            .map_err(|source| TableError::Upstream { api: config.api_id.clone(), source })?,
                    );
                    pools.insert(key, pool.clone());
                    pool
                }
            };
            routes.push(Route { api_id: config.api_id.clone(), prefix: config.path.clone(), service, upstream });
        }
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()));
        Ok(Self { revision, routes })
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

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The data plane's current table, shared by the proxy (readers) and the config client (writer).
pub struct Routing {
    current: ArcSwapOption<RoutingTable>,
    applied: watch::Sender<u64>,
}

impl Default for Routing {
    fn default() -> Self {
        Self { current: ArcSwapOption::empty(), applied: watch::Sender::new(0) }
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
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let snapshot = pb::Snapshot {
            routes: vec![route("root", "/"), route("orders", "/orders"), route("items", "/orders/items")],
            identities: vec![],
        };
        let table = RoutingTable::build(1, &snapshot, None, &TrustAnchors::system()).unwrap();
        let api = |p: &str| table.route(p).map(|r| r.api_id.as_str());
        assert_eq!(api("/orders/items/3"), Some("items"));
        assert_eq!(api("/orders/3"), Some("orders"));
        assert_eq!(api("/orders"), Some("orders"));
        assert_eq!(api("/ordersx"), Some("root"));
    }

    #[test]
    fn unchanged_identity_keeps_its_pool() {
        let snapshot = pb::Snapshot { routes: vec![route("a", "/a")], identities: vec![] };
        let first = RoutingTable::build(1, &snapshot, None, &TrustAnchors::system()).unwrap();
        let second = RoutingTable::build(2, &snapshot, Some(&first), &TrustAnchors::system()).unwrap();
        assert!(Arc::ptr_eq(&first.routes[0].upstream, &second.routes[0].upstream));
    }

    #[test]
    fn missing_identity_is_an_error_naming_the_api() {
        let mut r = route("a", "/a");
        r.client_certificate_thumbprint = "AB".repeat(20);
        let snapshot = pb::Snapshot { routes: vec![r], identities: vec![] };
        let error = RoutingTable::build(1, &snapshot, None, &TrustAnchors::system()).err().unwrap();
        assert_eq!(error.api_id(), "a");
    }
}
