//! The control plane's view of the configuration: certificates, CA certificates, APIs and
//! their policies, as one immutable `State` per revision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use gatehouse_proto::v1 as pb;
pub use gatehouse_shared::policy::{BasicAuth, Binding, ExistsAction, Policy, SetHeader};
use gatehouse_shared::{CertificateInfo, ClientCertificate, Thumbprint};

/// A configuration revision: increases by one with every committed write.
pub type Revision = u64;

/// The etag of a resource last written at `revision`: every write makes a new revision.
pub fn etag(revision: Revision) -> String {
    revision.to_string()
}

/// A client certificate stored under an operator-chosen id.
#[derive(Clone, Debug)]
pub struct StoredCertificate {
    pub id: String,
    pub certificate: ClientCertificate,
    pub revision: Revision,
}

/// A CA certificate an API may trust for its backend.
#[derive(Clone, Debug)]
pub struct StoredCaCertificate {
    pub id: String,
    pub der: Vec<u8>,
    pub info: CertificateInfo,
    pub revision: Revision,
}

/// How the gateway checks a backend's server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTls {
    pub validate_chain: bool,
    pub validate_name: bool,
    pub ca_ids: Vec<String>,
    /// Trust the system roots in addition to `ca_ids`.
    pub system_roots: bool,
}

impl Default for BackendTls {
    fn default() -> Self {
        Self { validate_chain: true, validate_name: true, ca_ids: Vec::new(), system_roots: true }
    }
}

#[derive(Clone, Debug)]
pub struct Api {
    pub id: String,
    pub display_name: String,
    /// Normalized path prefix.
    pub path: String,
    pub service_url: String,
    /// Backend credentials; `policy.certificate` is the client certificate binding.
    pub policy: Policy,
    pub tls: BackendTls,
    pub revision: Revision,
}

/// Everything the control plane knows at one revision.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub revision: Revision,
    pub certificates: BTreeMap<String, StoredCertificate>,
    pub ca_certificates: BTreeMap<String, StoredCaCertificate>,
    pub apis: BTreeMap<String, Api>,
}

impl State {
    /// The certificate a binding points at now, if any.
    pub fn resolve(&self, binding: &Binding) -> Option<&StoredCertificate> {
        match binding {
            Binding::None => None,
            Binding::CertificateId(id) => self.certificates.get(id),
            Binding::Thumbprint(t) => self.certificate_by_thumbprint(t),
        }
    }

    pub fn certificate_by_thumbprint(&self, thumbprint: &Thumbprint) -> Option<&StoredCertificate> {
        self.certificates.values().find(|c| &c.certificate.info.thumbprint == thumbprint)
    }

    /// Ids of the APIs whose binding resolves to this certificate.
    pub fn used_by(&self, certificate_id: &str) -> Vec<String> {
        let Some(cert) = self.certificates.get(certificate_id) else { return Vec::new() };
        self.apis
            .values()
            .filter(|api| match &api.policy.certificate {
                Binding::None => false,
                Binding::CertificateId(id) => id == certificate_id,
                Binding::Thumbprint(t) => t == &cert.certificate.info.thumbprint,
            })
            .map(|api| api.id.clone())
            .collect()
    }

    /// APIs that would be left bound to nothing if `certificate_id` no longer held the
    /// certificate it holds now (deleted, or replaced by one with another thumbprint).
    pub fn orphaned_without(&self, certificate_id: &str) -> Vec<String> {
        let Some(cert) = self.certificates.get(certificate_id) else { return Vec::new() };
        let thumbprint = &cert.certificate.info.thumbprint;
        let held_elsewhere =
            self.certificates.values().any(|c| c.id != certificate_id && &c.certificate.info.thumbprint == thumbprint);
        self.apis
            .values()
            .filter(|api| match &api.policy.certificate {
                Binding::None => false,
                Binding::CertificateId(id) => id == certificate_id,
                Binding::Thumbprint(t) => t == thumbprint && !held_elsewhere,
            })
            .map(|api| api.id.clone())
            .collect()
    }

    /// Ids of the APIs that trust this CA certificate.
    pub fn ca_used_by(&self, ca_id: &str) -> Vec<String> {
        self.apis.values().filter(|api| api.tls.ca_ids.iter().any(|id| id == ca_id)).map(|api| api.id.clone()).collect()
    }

    /// The API that already claims `path`, other than `except_id`.
    pub fn api_with_path(&self, path: &str, except_id: &str) -> Option<&Api> {
        self.apis.values().find(|api| api.path == path && api.id != except_id)
    }

    /// What data planes receive: every route, and the identities (with private keys) and CA
    /// certificates that routes use, and nothing else. Entries equal to `previous`'s are shared
    /// with it, so a revision costs memory only for what changed.
    pub fn publish(&self, previous: Option<&Published>) -> Published {
        let mut identities: BTreeMap<String, Arc<pb::ClientIdentity>> = BTreeMap::new();
        let mut cas: BTreeMap<String, Arc<pb::TrustedCa>> = BTreeMap::new();
        let mut routes: BTreeMap<String, Arc<pb::RouteConfig>> = BTreeMap::new();
        for api in self.apis.values() {
            let thumbprint = match self.resolve(&api.policy.certificate) {
                Some(stored) => {
                    let t = stored.certificate.info.thumbprint.to_string();
                    if !identities.contains_key(&t) {
                        let identity = pb::ClientIdentity {
                            thumbprint: t.clone(),
                            certificate_chain: stored.certificate.chain.clone(),
                            private_key: stored.certificate.private_key.clone(),
                            certificate_id: stored.id.clone(),
                        };
                        identities.insert(t.clone(), reuse(previous.and_then(|p| p.identities.get(&t)), identity));
                    }
                    t
                }
                None => String::new(),
            };
            let mut ca_thumbprints = BTreeSet::new();
            for ca in api.tls.ca_ids.iter().filter_map(|id| self.ca_certificates.get(id)) {
                let t = ca.info.thumbprint.to_string();
                if !cas.contains_key(&t) {
                    let trusted = pb::TrustedCa { thumbprint: t.clone(), certificate: ca.der.clone() };
                    cas.insert(t.clone(), reuse(previous.and_then(|p| p.cas.get(&t)), trusted));
                }
                ca_thumbprints.insert(t);
            }
            let route = pb::RouteConfig {
                api_id: api.id.clone(),
                path: api.path.clone(),
                service_url: api.service_url.clone(),
                client_certificate_thumbprint: thumbprint,
                tls: Some(pb::RouteTls {
                    skip_chain_validation: !api.tls.validate_chain,
                    skip_name_validation: !api.tls.validate_name,
                    ca_thumbprints: ca_thumbprints.into_iter().collect(),
                    exclude_system_roots: !api.tls.system_roots,
                }),
                headers: header_actions(&api.policy),
                backend_timeout_seconds: api.policy.backend_timeout.unwrap_or(0),
            };
            routes.insert(api.id.clone(), reuse(previous.and_then(|p| p.routes.get(&api.id)), route));
        }
        Published { revision: self.revision, committed_at: std::time::SystemTime::now(), routes, identities, cas }
    }
}

/// The previous entry when it is equal, so unchanged entries are shared between revisions.
fn reuse<T: PartialEq>(previous: Option<&Arc<T>>, current: T) -> Arc<T> {
    match previous {
        Some(p) if **p == current => p.clone(),
        _ => Arc::new(current),
    }
}

/// The policy's header work, compiled for data planes: Basic credentials first, then each
/// set-header in order.
fn header_actions(policy: &Policy) -> Vec<pb::HeaderAction> {
    use pb::header_action::Action;
    let mut actions = Vec::new();
    if let Some(basic) = &policy.basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", basic.username, basic.password));
        actions.push(pb::HeaderAction {
            name: "authorization".into(),
            action: Action::Override as i32,
            values: vec![format!("Basic {token}")],
        });
    }
    for header in &policy.headers {
        let action = match header.action {
            ExistsAction::Override => Action::Override,
            ExistsAction::Skip => Action::Skip,
            ExistsAction::Append => Action::Append,
            ExistsAction::Delete => Action::Delete,
        };
        actions.push(pb::HeaderAction {
            name: header.name.clone(),
            action: action as i32,
            values: header.values.clone(),
        });
    }
    actions
}

/// A committed revision as data planes receive it, keyed for diffing.
#[derive(Debug)]
pub struct Published {
    pub revision: Revision,
    pub committed_at: std::time::SystemTime,
    /// By API id.
    pub routes: BTreeMap<String, Arc<pb::RouteConfig>>,
    /// By thumbprint.
    pub identities: BTreeMap<String, Arc<pb::ClientIdentity>>,
    /// By thumbprint.
    pub cas: BTreeMap<String, Arc<pb::TrustedCa>>,
}

pub type PublishedRef = Arc<Published>;

impl Published {
    /// The whole configuration.
    pub fn full(&self) -> pb::Snapshot {
        pb::Snapshot {
            routes: self.routes.values().map(|r| (**r).clone()).collect(),
            identities: self.identities.values().map(|i| (**i).clone()).collect(),
            trusted_cas: self.cas.values().map(|c| (**c).clone()).collect(),
        }
    }

    /// What changed since `base`: new or different entries, and removed keys.
    pub fn diff(&self, base: &Published) -> (pb::Snapshot, pb::Removed) {
        fn changed<T: PartialEq + Clone>(now: &BTreeMap<String, Arc<T>>, before: &BTreeMap<String, Arc<T>>) -> Vec<T> {
            now.iter()
                .filter(|(k, v)| before.get(*k).is_none_or(|b| !Arc::ptr_eq(b, v) && **b != ***v))
                .map(|(_, v)| (**v).clone())
                .collect()
        }
        fn removed<T>(now: &BTreeMap<String, Arc<T>>, before: &BTreeMap<String, Arc<T>>) -> Vec<String> {
            before.keys().filter(|k| !now.contains_key(*k)).cloned().collect()
        }
        let snapshot = pb::Snapshot {
            routes: changed(&self.routes, &base.routes),
            identities: changed(&self.identities, &base.identities),
            trusted_cas: changed(&self.cas, &base.cas),
        };
        let gone = pb::Removed {
            api_ids: removed(&self.routes, &base.routes),
            identity_thumbprints: removed(&self.identities, &base.identities),
            ca_thumbprints: removed(&self.cas, &base.cas),
        };
        (snapshot, gone)
    }
}
