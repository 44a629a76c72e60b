//! The control plane's view of the configuration: certificates, CA certificates, hostnames,
//! APIs and their policies, subscriptions, as one immutable `State` per revision. What data
//! planes receive is built from it in `snapshot.rs`.

use crate::certificate::ClientCertificate;
pub use crate::policy::{BasicAuth, Binding, ClientCertificateValidation, ExistsAction, Policy, SetHeader};
use gatehouse_shared::{CertificateInfo, Thumbprint};

mod subscription;

pub use subscription::{KeySlot, NewKey, Scope, Subscription, SubscriptionSettings, SubscriptionState};

/// A configuration revision: increases by one with every committed write.
pub type Revision = u64;

/// The etag of a resource last written at `revision`: every write makes a new revision.
pub fn etag(revision: Revision) -> String {
    revision.to_string()
}

/// A client certificate stored under an operator-chosen id.
#[derive(Clone, Debug)]
pub struct StoredCertificate {
    /// The operator-chosen id.
    pub id: String,
    /// The certificate chain and private key.
    pub certificate: ClientCertificate,
    /// The revision it was last written at.
    pub revision: Revision,
}

/// Files on the control plane's host a certificate is read from.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceFiles {
    /// A PKCS#12 file and its password.
    Pfx {
        /// Path of the PFX file.
        path: String,
        /// Its password; sealed at rest, never returned.
        password: String,
    },
    /// A CA certificate, PEM or DER (for CA certificates only).
    Ca {
        /// Path of the CA certificate file.
        path: String,
    },
    /// A PEM certificate (with its chain) and a PEM private key.
    Pem {
        /// Path of the PEM certificate chain.
        certificate_path: String,
        /// Path of the PEM private key.
        key_path: String,
    },
}

impl SourceFiles {
    /// The paths of the files, in the order they are read.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Self::Pfx { path, .. } | Self::Ca { path } => vec![path],
            Self::Pem { certificate_path, key_path } => vec![certificate_path, key_path],
        }
    }
}

impl std::fmt::Debug for SourceFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pfx { path, .. } => {
                f.debug_struct("Pfx").field("path", path).field("password", &"<redacted>").finish()
            }
            Self::Ca { path } => f.debug_struct("Ca").field("path", path).finish(),
            Self::Pem { certificate_path, key_path } => {
                f.debug_struct("Pem").field("certificate_path", certificate_path).field("key_path", key_path).finish()
            }
        }
    }
}

/// The outcome of the last read of a certificate's or a named value's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRefresh {
    /// When, in Unix seconds.
    pub at: i64,
    /// Whether the files held what was applied (or what was stored already).
    pub ok: bool,
    /// Why the files were refused; empty when ok. Never holds a named value's value.
    pub message: String,
}

/// Where a linked certificate comes from, and how its last read went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSource {
    /// The files.
    pub files: SourceFiles,
    /// SHA-256 of what the files held at the last read (or of the read error), so an unchanged
    /// file is neither parsed again nor counted as a new failure.
    pub content_hash: Vec<u8>,
    /// The last read.
    pub last_refresh: Option<LastRefresh>,
}

/// A CA certificate an API may trust for its backend.
#[derive(Clone, Debug)]
pub struct StoredCaCertificate {
    /// The operator-chosen id.
    pub id: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject, thumbprint and validity.
    pub info: CertificateInfo,
    /// Its certificate revocation list, when one was uploaded with it.
    pub crl: Option<crate::certificate::Crl>,
    /// The revision it was last written at.
    pub revision: Revision,
}

/// How the gateway checks a backend's server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTls {
    /// Verify the chain up to a trusted root.
    pub validate_chain: bool,
    /// Verify that the certificate names the backend's host.
    pub validate_name: bool,
    /// Ids of stored CA certificates trusted for this backend.
    pub ca_ids: Vec<String>,
    /// Trust the system roots in addition to `ca_ids`.
    pub system_roots: bool,
}

impl Default for BackendTls {
    fn default() -> Self {
        Self { validate_chain: true, validate_name: true, ca_ids: Vec::new(), system_roots: true }
    }
}

/// An API: requests under a path prefix go to one backend service, with its policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// The operator-chosen id.
    pub id: String,
    /// The name shown to operators.
    pub display_name: String,
    /// Normalized path prefix.
    pub path: String,
    /// Backend base URL, checked by `gatehouse_shared::api::parse_service_url`.
    pub service_url: String,
    /// Backend credentials; `policy.certificate` is the client certificate binding.
    pub policy: Policy,
    /// How the backend's server certificate is checked.
    pub tls: BackendTls,
    /// Names of the hostnames it answers on, lowercase and sorted; empty: any host.
    pub hostnames: Vec<String>,
    /// Whether callers need a subscription key, and where they send it.
    pub subscription: SubscriptionSettings,
    /// The revision it was last written at.
    pub revision: Revision,
}

/// A hostname API clients reach over HTTPS: the server certificate data planes present for it,
/// and whether they ask clients for a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname {
    /// Lowercase; exact (`api.example.com`) or wildcard (`*.example.com`).
    pub name: String,
    /// The id of the stored certificate served for it (so it follows rotation).
    pub certificate_id: String,
    /// Served to clients that send no SNI or an unknown one; at most one hostname is.
    pub default: bool,
    /// Ask clients for a certificate during the handshake.
    pub negotiate_client_certificate: bool,
    /// Ids of stored CA certificates client certificates may chain to.
    pub client_ca_ids: Vec<String>,
    /// The revision it was last written at.
    pub revision: Revision,
}

/// A named value, APIM's way: policies name it `{{name}}`.
#[derive(Clone, PartialEq, Eq)]
pub struct NamedValue {
    /// Letters, digits, '-', '_', '.'.
    pub name: String,
    /// The value (sealed at rest when secret; never shown when secret).
    pub value: String,
    /// Write-only: reads show the mask.
    pub secret: bool,
    /// The revision it was last written at.
    pub revision: Revision,
}

impl std::fmt::Debug for NamedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secret { crate::policy::MASK } else { self.value.as_str() };
        f.debug_struct("NamedValue")
            .field("name", &self.name)
            .field("value", &value)
            .field("secret", &self.secret)
            .field("revision", &self.revision)
            .finish()
    }
}

/// Where a linked named value comes from (a file Vault Agent or a Kubernetes Secret volume
/// writes), and how its last read went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedValueSource {
    /// Absolute path of the file on the control plane's host.
    pub path: String,
    /// SHA-256 of what the file held at the last read (or of the read error), so an unchanged
    /// file is neither checked again nor counted as a new failure.
    pub content_hash: Vec<u8>,
    /// The last read.
    pub last_refresh: Option<LastRefresh>,
}

/// A map by id or name, persistent: a copy costs nothing and a change copies only its path,
/// so each revision of a large configuration shares all but what changed with the previous one.
pub type Map<V> = imbl::OrdMap<String, V>;

/// Everything the control plane knows at one revision.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The revision this state is.
    pub revision: Revision,
    /// Client certificates by id.
    pub certificates: Map<StoredCertificate>,
    /// CA certificates by id.
    pub ca_certificates: Map<StoredCaCertificate>,
    /// APIs by id.
    pub apis: Map<Api>,
    /// Hostnames by name.
    pub hostnames: Map<Hostname>,
    /// Subscriptions by name.
    pub subscriptions: Map<Subscription>,
    /// Sources of linked client certificates, by certificate id. Not sent to data planes.
    pub certificate_sources: Map<CertificateSource>,
    /// Sources of linked CA certificates, by CA certificate id. Not sent to data planes.
    pub ca_sources: Map<CertificateSource>,
    /// Named values by name (data planes get them substituted into policies).
    pub named_values: Map<NamedValue>,
    /// Sources of linked named values, by name. Not sent to data planes.
    pub named_value_sources: Map<NamedValueSource>,
}

impl State {
    /// Ids of the APIs whose policy names the named value `name`.
    pub fn apis_naming(&self, name: &str) -> Vec<String> {
        self.apis
            .values()
            .filter(|api| crate::policy::named_values::referenced(&api.policy).contains(name))
            .map(|api| api.id.clone())
            .collect()
    }

    /// The API's policy with its named values substituted, as data planes apply it.
    pub fn resolved_policy(&self, policy: &Policy) -> Result<Policy, crate::policy::named_values::ResolveError> {
        crate::policy::named_values::resolve(policy, |name| self.named_values.get(name).map(|v| v.value.as_str()))
    }

    /// Whether the CA certificate is linked to a file and its last read was refused.
    pub fn refresh_failed_ca(&self, id: &str) -> bool {
        self.ca_sources.get(id).and_then(|s| s.last_refresh.as_ref()).is_some_and(|last| !last.ok)
    }

    /// Whether the named value is linked to a file and its last read was refused.
    pub fn refresh_failed_named_value(&self, name: &str) -> bool {
        self.named_value_sources.get(name).and_then(|s| s.last_refresh.as_ref()).is_some_and(|last| !last.ok)
    }

    /// Whether the certificate is linked to files and their last read was refused.
    pub fn refresh_failed(&self, id: &str) -> bool {
        self.certificate_sources.get(id).and_then(|s| s.last_refresh.as_ref()).is_some_and(|last| !last.ok)
    }

    /// The certificate a binding points at now, if any.
    pub fn resolve(&self, binding: &Binding) -> Option<&StoredCertificate> {
        match binding {
            Binding::None => None,
            Binding::CertificateId(id) => self.certificates.get(id),
            Binding::Thumbprint(t) => self.certificate_by_thumbprint(t),
        }
    }

    /// The stored client certificate with this thumbprint, if any.
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

    /// Ids of the APIs that trust this CA certificate (for their backend), or name it as the
    /// issuer of the client certificates they accept (`issuer-certificate-id`).
    pub fn ca_used_by(&self, ca_id: &str) -> Vec<String> {
        let names_issuer = |api: &Api| {
            let identities = api.policy.client_certificate.iter().flat_map(|v| &v.identities);
            identities.into_iter().any(|i| i.issuer_certificate_id.as_deref() == Some(ca_id))
        };
        self.apis
            .values()
            .filter(|api| api.tls.ca_ids.iter().any(|id| id == ca_id) || names_issuer(api))
            .map(|api| api.id.clone())
            .collect()
    }

    /// Names of the hostnames that trust this CA certificate for client certificates.
    pub fn ca_used_by_hostnames(&self, ca_id: &str) -> Vec<String> {
        self.hostnames
            .values()
            .filter(|h| h.client_ca_ids.iter().any(|id| id == ca_id))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Names of the hostnames served with this certificate.
    pub fn hostnames_using(&self, certificate_id: &str) -> Vec<String> {
        self.hostnames.values().filter(|h| h.certificate_id == certificate_id).map(|h| h.name.clone()).collect()
    }

    /// Ids of the APIs that answer on this hostname.
    pub fn apis_on_hostname(&self, name: &str) -> Vec<String> {
        self.apis.values().filter(|api| api.hostnames.iter().any(|h| h == name)).map(|api| api.id.clone()).collect()
    }

    /// Names of the subscriptions scoped to this API (not those scoped to all APIs).
    pub fn subscriptions_scoped_to(&self, api_id: &str) -> Vec<String> {
        self.subscriptions
            .values()
            .filter(|s| s.scope == Scope::Api(api_id.to_string()))
            .map(|s| s.name.clone())
            .collect()
    }

    /// The default hostname, other than `except_name`.
    pub fn default_hostname(&self, except_name: &str) -> Option<&Hostname> {
        self.hostnames.values().find(|h| h.default && h.name != except_name)
    }

    /// The API other than `except_id` that already claims `path` on a host that `hostnames`
    /// (empty: any host) would also answer on. Two APIs share a path only when both list
    /// hostnames and no hostname is in both: an API without hostnames answers on every host,
    /// so it shares its path with no other API. Hostnames compare by name: `*.example.com` and
    /// `api.example.com` are two hostnames. Paths compare ignoring ASCII case, as data planes
    /// route them.
    pub fn api_with_path(&self, path: &str, hostnames: &[String], except_id: &str) -> Option<&Api> {
        self.apis.values().find(|api| {
            api.path.eq_ignore_ascii_case(path)
                && api.id != except_id
                && (api.hostnames.is_empty()
                    || hostnames.is_empty()
                    || api.hostnames.iter().any(|h| hostnames.contains(h)))
        })
    }
}
