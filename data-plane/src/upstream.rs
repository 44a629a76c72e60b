//! Connections to backends. One pool per TLS identity: (scheme, authority, client certificate
//! thumbprint, trust settings). A connection opened with certificate A is never reused for a
//! request that must present B, and TLS sessions are never resumed across identities, because
//! each pool has its own rustls configuration (and session cache).
//!
//! This module owns the pools, as a proxy's connector owns its pool: a routing table only asks
//! [`UpstreamsBuilder::pool`] for the pool of a key, and each table's [`Upstreams`] is built
//! from the previous table's, so an unchanged identity keeps its pool and warm connections.
//! Inside: `pool` (the client of one identity), `trust` (the process-wide anchors),
//! `verifier` (the backend certificate check) and `failure` (what a failed call means).

mod failure;
mod pool;
mod trust;
mod verifier;

use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rustls::client::danger::ServerCertVerifier;

use crate::configuration::Configuration;

pub use failure::BackendFailure;
pub use pool::{PooledBody, SendError, Upstream};
pub use trust::{DEFAULT_MAX_CONNECTIONS_PER_POOL, TrustAnchors, TrustError};

/// Identifies a pool: requests may share connections only when all of this is equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    /// `http` or `https`.
    pub scheme: String,
    /// The backend's host and port.
    pub authority: String,
    /// Uppercase SHA-1 of the client certificate presented; empty for none.
    pub client_thumbprint: String,
    /// How the backend's certificate is checked.
    pub tls: TlsPolicy,
}

/// How a pool checks its backend's server certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsPolicy {
    /// Accept any chain (the name is still checked unless `skip_name_validation`).
    pub skip_chain_validation: bool,
    /// Accept any host name.
    pub skip_name_validation: bool,
    /// Thumbprints of the API's own CA certificates, sorted.
    pub ca_thumbprints: Vec<String>,
    /// Trust only `ca_thumbprints`, not the system roots (nor --backend-ca-file).
    pub exclude_system_roots: bool,
}

impl TlsPolicy {
    /// The policy a route's TLS settings ask for (the default: chain and name checked).
    pub fn from_route(tls: Option<&pb::RouteTls>) -> Self {
        let Some(tls) = tls else { return Self::default() };
        let mut ca_thumbprints = tls.ca_thumbprints.clone();
        ca_thumbprints.sort();
        Self {
            skip_chain_validation: tls.skip_chain_validation,
            skip_name_validation: tls.skip_name_validation,
            ca_thumbprints,
            exclude_system_roots: tls.exclude_system_roots,
        }
    }
}

/// Why a pool cannot be made for a key.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The route names a client certificate the snapshot does not carry.
    #[error("client certificate {thumbprint} is not in the snapshot")]
    MissingIdentity {
        /// The certificate's thumbprint.
        thumbprint: String,
    },
    /// The client certificate or its key cannot be used by rustls.
    #[error("client certificate {thumbprint} cannot be used")]
    BadIdentity {
        /// The certificate's thumbprint.
        thumbprint: String,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The TLS client configuration cannot be made.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    /// The route trusts a CA certificate the snapshot does not carry.
    #[error("CA certificate {thumbprint} is not in the snapshot")]
    MissingCa {
        /// The CA certificate's thumbprint.
        thumbprint: String,
    },
    /// A CA certificate cannot anchor a chain.
    #[error("CA certificate {thumbprint} cannot be used as a trust anchor")]
    BadCa {
        /// The CA certificate's thumbprint.
        thumbprint: String,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The backend certificate verifier cannot be made from the roots.
    #[error("the backend's certificate cannot be verified")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

// === impl Upstreams ===

/// The backend pools of one routing table, by TLS identity, each with the number of routes
/// using it. Persistent: the next table's set starts as a copy of this one that costs nothing.
#[derive(Clone, Default)]
pub struct Upstreams {
    pools: imbl::HashMap<UpstreamKey, Pool>,
    /// One verifier per trust settings, so a thousand identities do not mean a thousand root
    /// stores. Made from the configuration's CA certificates: a set built on this one keeps
    /// them only while those are unchanged.
    verifiers: imbl::HashMap<TlsPolicy, Arc<dyn ServerCertVerifier>>,
}

#[derive(Clone)]
struct Pool {
    upstream: Arc<Upstream>,
    /// Routes using it.
    users: usize,
}

impl Upstreams {
    /// Starts the pools of a table built whole from `config`: a key that `previous` holds gets
    /// the same pool back (with its warm connections); any other key gets a new one.
    pub fn builder<'a>(
        previous: Option<&'a Upstreams>,
        config: &'a Configuration,
        trust: &'a TrustAnchors,
    ) -> UpstreamsBuilder<'a> {
        UpstreamsBuilder { previous, config, trust, built: Upstreams::default() }
    }

    /// Starts the pools of a table built from this one's by changing some routes: every pool
    /// stays unless [`UpstreamsBuilder::release`] lets its last user go. `config`'s CA
    /// certificates must be those this set was made with.
    pub fn changing<'a>(&'a self, config: &'a Configuration, trust: &'a TrustAnchors) -> UpstreamsBuilder<'a> {
        // `previous` too: a pool whose last route is rebuilt (released, then asked for again)
        // is the same pool, with its warm connections.
        UpstreamsBuilder { previous: Some(self), config, trust, built: self.clone() }
    }

    /// Number of pools (distinct TLS identities).
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// The pools this set has and `other` has not.
    pub fn not_in<'a>(&'a self, other: Option<&'a Upstreams>) -> impl Iterator<Item = &'a Arc<Upstream>> + 'a {
        self.pools
            .iter()
            .filter(move |(key, _)| other.is_none_or(|other| !other.pools.contains_key(*key)))
            .map(|(_, pool)| &pool.upstream)
    }

    /// Whether there is no pool at all.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }
}

// === impl UpstreamsBuilder ===

/// The pools of a routing table being built: see [`Upstreams::builder`] and
/// [`Upstreams::changing`].
pub struct UpstreamsBuilder<'a> {
    previous: Option<&'a Upstreams>,
    config: &'a Configuration,
    trust: &'a TrustAnchors,
    /// What [`Self::finish`] returns.
    built: Upstreams,
}

impl UpstreamsBuilder<'_> {
    /// The pool for `key`, for one more route: the one already handed out, else the previous
    /// set's, else a new one presenting the client certificate `key` names.
    pub fn pool(&mut self, key: UpstreamKey) -> Result<Arc<Upstream>, UpstreamError> {
        if let Some(pool) = self.built.pools.get_mut(&key) {
            pool.users += 1;
            return Ok(pool.upstream.clone());
        }
        let upstream = match self.previous.and_then(|previous| previous.pools.get(&key)) {
            Some(pool) => pool.upstream.clone(),
            None => Arc::new(self.connect(&key)?),
        };
        self.built.pools.insert(key, Pool { upstream: upstream.clone(), users: 1 });
        Ok(upstream)
    }

    /// One route fewer uses `key`'s pool; after the last, the pool goes with the table that
    /// had it (its idle connections close then).
    pub fn release(&mut self, key: &UpstreamKey) {
        let unused = match self.built.pools.get_mut(key) {
            Some(pool) => {
                pool.users -= 1;
                pool.users == 0
            }
            None => false,
        };
        if unused {
            self.built.pools.remove(key);
        }
    }

    /// The pools handed out; those of the previous set no route asked for are dropped with it.
    pub fn finish(self) -> Upstreams {
        self.built
    }

    fn connect(&mut self, key: &UpstreamKey) -> Result<Upstream, UpstreamError> {
        let identity = match key.client_thumbprint.as_str() {
            "" => None,
            thumbprint => Some(
                self.config
                    .identities
                    .get(thumbprint)
                    .ok_or_else(|| UpstreamError::MissingIdentity { thumbprint: thumbprint.to_string() })?,
            ),
        };
        let verifier = match self.built.verifiers.get(&key.tls) {
            Some(verifier) => verifier.clone(),
            None => {
                let verifier = verifier::backend_verifier(&key.tls, &self.config.cas, self.trust)?;
                self.built.verifiers.insert(key.tls.clone(), verifier.clone());
                verifier
            }
        };
        Upstream::new(key.clone(), identity.map(|i| &**i), verifier, self.trust)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client_thumbprint: &str) -> UpstreamKey {
        UpstreamKey {
            scheme: "https".into(),
            authority: "backend.test:443".into(),
            client_thumbprint: client_thumbprint.into(),
            tls: TlsPolicy::default(),
        }
    }

    /// A self-signed client certificate and its key, as the control plane sends them.
    fn identity(name: &str) -> pb::ClientIdentity {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let der = certified.cert.der().to_vec();
        pb::ClientIdentity {
            thumbprint: gatehouse_shared::Thumbprint::of_der(&der).to_string(),
            certificate_chain: vec![der],
            private_key: certified.signing_key.serialize_der(),
            certificate_id: name.into(),
        }
    }

    fn configuration(identities: &[&pb::ClientIdentity]) -> Configuration {
        Configuration {
            identities: identities.iter().map(|i| (i.thumbprint.clone(), (*i).clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_unchanged_key_keeps_its_pool_across_tables() {
        let a = identity("client-a");
        let config = configuration(&[&a]);
        let trust = TrustAnchors::system();
        let mut first = Upstreams::builder(None, &config, &trust);
        let pool = first.pool(key(&a.thumbprint)).unwrap();
        assert!(Arc::ptr_eq(&pool, &first.pool(key(&a.thumbprint)).unwrap()), "one pool per key in a table");
        let first = first.finish();
        let mut second = Upstreams::builder(Some(&first), &config, &trust);
        assert!(Arc::ptr_eq(&pool, &second.pool(key(&a.thumbprint)).unwrap()));
    }

    #[test]
    fn a_changed_client_thumbprint_gets_a_different_pool() {
        let (a, b) = (identity("client-a"), identity("client-b"));
        let config = configuration(&[&a, &b]);
        let trust = TrustAnchors::system();
        let mut first = Upstreams::builder(None, &config, &trust);
        let with_a = first.pool(key(&a.thumbprint)).unwrap();
        let first = first.finish();
        let mut second = Upstreams::builder(Some(&first), &config, &trust);
        let with_b = second.pool(key(&b.thumbprint)).unwrap();
        assert!(!Arc::ptr_eq(&with_a, &with_b), "a connection made with A must never carry a request for B");
        assert_eq!(with_b.key.client_thumbprint, b.thumbprint);
        let without = second.pool(key("")).unwrap();
        assert!(!Arc::ptr_eq(&with_b, &without));
        assert_eq!(second.finish().len(), 2, "the pool of A, no longer asked for, is not kept");
    }

    #[test]
    fn a_changed_trust_setting_gets_a_different_pool() {
        let config = configuration(&[]);
        let trust = TrustAnchors::system();
        let mut first = Upstreams::builder(None, &config, &trust);
        let checked = first.pool(key("")).unwrap();
        let first = first.finish();
        let mut second = Upstreams::builder(Some(&first), &config, &trust);
        let relaxed = UpstreamKey { tls: TlsPolicy { skip_name_validation: true, ..Default::default() }, ..key("") };
        assert!(!Arc::ptr_eq(&checked, &second.pool(relaxed).unwrap()));
    }

    #[test]
    fn a_client_certificate_missing_from_the_snapshot_is_an_error() {
        let config = configuration(&[]);
        let trust = TrustAnchors::system();
        let error = Upstreams::builder(None, &config, &trust).pool(key(&"AB".repeat(20))).err().unwrap();
        assert!(matches!(error, UpstreamError::MissingIdentity { .. }), "{error}");
    }
}
