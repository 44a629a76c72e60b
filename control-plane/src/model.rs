//! The control plane's view of the configuration: certificates, APIs and their bindings,
//! as one immutable `State` per revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::{ClientCertificate, Thumbprint};

/// A configuration revision: increases by one with every committed write.
pub type Revision = u64;

/// A client certificate stored under an operator-chosen id.
#[derive(Clone, Debug)]
pub struct StoredCertificate {
    pub id: String,
    pub certificate: ClientCertificate,
    pub revision: Revision,
}

/// How the gateway authenticates to an API's backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    None,
    /// Follows rotation of the certificate stored under this id.
    CertificateId(String),
    /// Pins one exact certificate.
    Thumbprint(Thumbprint),
}

#[derive(Clone, Debug)]
pub struct Api {
    pub id: String,
    pub display_name: String,
    /// Normalized path prefix.
    pub path: String,
    pub service_url: String,
    pub binding: Binding,
    pub revision: Revision,
}

/// Everything the control plane knows at one revision.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub revision: Revision,
    pub certificates: BTreeMap<String, StoredCertificate>,
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
            .filter(|api| match &api.binding {
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
        let held_elsewhere = self
            .certificates
            .values()
            .any(|c| c.id != certificate_id && &c.certificate.info.thumbprint == thumbprint);
        self.apis
            .values()
            .filter(|api| match &api.binding {
                Binding::None => false,
                Binding::CertificateId(id) => id == certificate_id,
                Binding::Thumbprint(t) => t == thumbprint && !held_elsewhere,
            })
            .map(|api| api.id.clone())
            .collect()
    }

    /// The API that already claims `path`, other than `except_id`.
    pub fn api_with_path(&self, path: &str, except_id: &str) -> Option<&Api> {
        self.apis.values().find(|api| api.path == path && api.id != except_id)
    }

    /// What data planes receive: every route, and the identities (with private keys) that
    /// routes present, and nothing else.
    pub fn snapshot(&self) -> pb::Snapshot {
        let mut identities: BTreeMap<String, pb::ClientIdentity> = BTreeMap::new();
        let routes = self
            .apis
            .values()
            .map(|api| {
                let thumbprint = match self.resolve(&api.binding) {
                    Some(stored) => {
                        let t = stored.certificate.info.thumbprint.to_string();
                        identities.entry(t.clone()).or_insert_with(|| pb::ClientIdentity {
                            thumbprint: t.clone(),
                            certificate_chain: stored.certificate.chain.clone(),
                            private_key: stored.certificate.private_key.clone(),
                            certificate_id: stored.id.clone(),
                        });
                        t
                    }
                    None => String::new(),
                };
                pb::RouteConfig {
                    api_id: api.id.clone(),
                    path: api.path.clone(),
                    service_url: api.service_url.clone(),
                    client_certificate_thumbprint: thumbprint,
                }
            })
            .collect();
        pb::Snapshot { routes, identities: identities.into_values().collect() }
    }
}

/// A committed revision as data planes receive it.
#[derive(Debug)]
pub struct Published {
    pub revision: Revision,
    pub snapshot: pb::Snapshot,
}

pub type PublishedRef = Arc<Published>;
