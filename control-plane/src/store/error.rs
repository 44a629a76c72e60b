//! Why the store refuses a write or cannot read what it holds: one error type for every rule,
//! each variant saying what is in the way (and, for resources in use, which APIs and hostnames).

use crate::certificate::ServerCertificateError;
use crate::policy::UnmaskError;
use gatehouse_shared::Thumbprint;

use crate::model::Revision;

/// The kinds of resource the store keeps, as messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// A client certificate.
    Certificate,
    /// A CA certificate.
    CaCertificate,
    /// An API.
    Api,
    /// A hostname API clients reach over HTTPS.
    Hostname,
    /// A subscription: keys API clients present.
    Subscription,
    /// A named value policies refer to.
    NamedValue,
}

impl ResourceKind {
    /// How messages name the kind ("certificate", "CA certificate", "API").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::CaCertificate => "CA certificate",
            Self::Api => "API",
            Self::Hostname => "hostname",
            Self::Subscription => "subscription",
            Self::NamedValue => "named value",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a write was refused or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No resource of that kind has that id.
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// The kind asked for.
        kind: ResourceKind,
        /// The id asked for.
        id: String,
    },
    /// Creating a resource under a name that is taken.
    #[error("{kind} '{id}' exists already")]
    Exists {
        /// The kind created.
        kind: ResourceKind,
        /// The name taken.
        id: String,
    },
    /// Deleting an API that subscriptions are scoped to: their keys would open nothing, and a
    /// new API under the same id would inherit them.
    #[error(
        "API '{id}' has subscriptions scoped to it: {}; delete them first (gatehousectl subscription delete NAME)",
        .subscriptions.join(", ")
    )]
    ApiHasSubscriptions {
        /// The API.
        id: String,
        /// The subscriptions scoped to it.
        subscriptions: Vec<String>,
    },
    /// An API's subscription key header that cannot be used.
    #[error("subscription key header '{name}' is invalid: {reason}")]
    InvalidSubscriptionKeyHeader {
        /// The header name given (quoted).
        name: String,
        /// Why it cannot.
        reason: &'static str,
    },
    /// A binding pins a thumbprint no stored certificate has.
    #[error("no certificate has thumbprint {0}")]
    ThumbprintNotFound(Thumbprint),
    /// Another API already has the path prefix on a host this one would answer on (see
    /// [`crate::model::State::api_with_path`]).
    #[error(
        "path '{path}' is already used by API '{api}'{}; two APIs share a path only when both list hostnames and no hostname is in both",
        on_hostnames(.hostnames)
    )]
    PathTaken {
        /// The path prefix.
        path: String,
        /// The API that has it.
        api: String,
        /// The hostnames both APIs list; empty when one of them lists none (any host).
        hostnames: Vec<String>,
    },
    /// Deleting a certificate that APIs would be left without, or that hostnames are served with.
    #[error("certificate '{id}' is used by {}; remove it from them first", users(.apis, .hostnames))]
    CertificateInUse {
        /// The certificate.
        id: String,
        /// The APIs that would be bound to nothing.
        apis: Vec<String>,
        /// The hostnames served with it.
        hostnames: Vec<String>,
    },
    /// Deleting a CA certificate that APIs trust for their backends or hostnames for clients.
    #[error("CA certificate '{id}' is trusted by {}; remove it from them first", users(.apis, .hostnames))]
    CaInUse {
        /// The CA certificate.
        id: String,
        /// The APIs that trust it.
        apis: Vec<String>,
        /// The hostnames that trust it for client certificates.
        hostnames: Vec<String>,
    },
    /// A hostname that is not a lowercase DNS name, exact or `*.` wildcard.
    #[error("hostname '{name}' is invalid: {reason}")]
    InvalidHostname {
        /// The name given (quoted).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A certificate that cannot serve TLS for the hostname.
    #[error("certificate '{id}' cannot serve hostname '{hostname}': {reason}")]
    NotServerCertificate {
        /// The certificate.
        id: String,
        /// The hostname.
        hostname: String,
        /// Why it cannot.
        reason: ServerCertificateError,
    },
    /// Uploading under a certificate id a certificate that could not serve the hostnames using it.
    #[error(
        "uploading this certificate under '{id}' would break the hostnames served with it: {}; upload a certificate valid for them, or move them to another certificate first",
        broken_hostnames(.hostnames)
    )]
    BreaksHostnames {
        /// The certificate id uploaded to.
        id: String,
        /// Each hostname it would break, and why.
        hostnames: Vec<(String, ServerCertificateError)>,
    },
    /// Making a hostname the default while another one is. Refused rather than moving the
    /// default silently: which hostname clients without SNI reach is a choice to make on purpose.
    #[error(
        "hostname '{default}' is the default already (at most one hostname is); put it again without default first, then '{name}' with default"
    )]
    DefaultHostnameTaken {
        /// The hostname that was to become the default.
        name: String,
        /// The hostname that is the default.
        default: String,
    },
    /// Deleting a hostname that APIs answer on.
    #[error("hostname '{name}' is used by APIs: {}; remove it from them first", .apis.join(", "))]
    HostnameInUse {
        /// The hostname.
        name: String,
        /// The APIs that list it.
        apis: Vec<String>,
    },
    /// Replacing a certificate with another thumbprint while APIs pin the old one.
    #[error(
        "uploading a certificate with another thumbprint under '{id}' would leave APIs pinned to thumbprint {thumbprint} without a certificate: {}; bind them by certificate id or to the new thumbprint first",
        .apis.join(", ")
    )]
    PinnedByThumbprint {
        /// The certificate id uploaded to.
        id: String,
        /// The thumbprint stored there now.
        thumbprint: Thumbprint,
        /// The APIs that pin it.
        apis: Vec<String>,
    },
    /// Refreshing a certificate or a named value that is not linked to files.
    #[error("{kind} '{id}' has no source to refresh from: {}", how_to_link(*.kind))]
    NotLinked {
        /// Certificate, CA certificate or named value.
        kind: ResourceKind,
        /// Its id.
        id: String,
    },
    /// Binding an expired certificate without `allow_expired`.
    #[error(
        "certificate '{id}' expired on {not_after}; pass allow_expired (gatehousectl --allow-expired) to use it anyway"
    )]
    Expired {
        /// The certificate.
        id: String,
        /// Its expiry date, YYYY-MM-DD (UTC).
        not_after: String,
    },
    /// `if_match` names another etag than the current one.
    #[error("{kind} '{id}' changed since it was read (etag is now {current}, if_match was {given}); read it again")]
    EtagMismatch {
        /// The resource's kind.
        kind: ResourceKind,
        /// Its id.
        id: String,
        /// Its etag now.
        current: String,
        /// The etag `if_match` gave.
        given: String,
    },
    /// `if_match` given for a resource that does not exist.
    #[error("{kind} '{id}' does not exist, but if_match {given} expected it to")]
    EtagOnMissing {
        /// The resource's kind.
        kind: ResourceKind,
        /// Its id.
        id: String,
        /// The etag `if_match` gave.
        given: String,
    },
    /// An id that [`super::is_plain_id`] refuses.
    #[error("{kind} id '{id}' is invalid: use 1 to 128 letters, digits, '-', '_' or '.' (not '.' or '..' alone)")]
    InvalidId {
        /// The resource's kind.
        kind: ResourceKind,
        /// The id given.
        id: String,
    },
    /// The path prefix or service URL breaks the API rules.
    #[error(transparent)]
    Definition(#[from] gatehouse_shared::api::ApiDefinitionError),
    /// `http://` with a client certificate: the certificate could never be presented.
    #[error(
        "service URL '{0}' is plain http://, so the API's client certificate could never be presented: use https://, or remove the binding"
    )]
    CertificateOverPlainHttp(String),
    /// Chain validation on, but neither CA ids nor the system roots to validate against.
    #[error("the API trusts no roots: give CA certificate ids, trust the system roots, or turn off chain validation")]
    NoTrustedRoots,
    /// A mask in the policy with nothing stored behind it.
    #[error(transparent)]
    Unmask(#[from] UnmaskError),
    /// sled failed.
    #[error("the configuration store failed")]
    Storage(#[from] sled::Error),
    /// A declared certificate does not have the thumbprint the declaration says.
    #[error("certificate '{id}' has thumbprint {actual}, the declaration says {declared}")]
    DeclaredThumbprint {
        /// The certificate id.
        id: String,
        /// The thumbprint declared.
        declared: Thumbprint,
        /// The certificate's.
        actual: Thumbprint,
    },
    /// A declared resource cannot be read (a bad PFX, CA certificate, thumbprint or policy).
    #[error("{reason}")]
    Unreadable {
        /// Why, as the resource's own upload or write would say it.
        reason: String,
    },
    /// A declaration was refused: every resource that breaks a rule, with why.
    #[error("the declaration was refused, nothing was changed: {}", declaration_errors(.0))]
    Declaration(Vec<(ResourceKind, String, StoreError)>),
    /// A named value's name or value breaks the rules.
    #[error("named value '{name}' refused: {reason}")]
    InvalidNamedValue {
        /// The name given, quoted.
        name: String,
        /// Which rule.
        reason: &'static str,
    },
    /// A policy names a named value that does not exist, or that breaks it once substituted.
    #[error(transparent)]
    NamedValueUnresolved(#[from] crate::policy::named_values::ResolveError),
    /// The new value would break a policy that names it.
    #[error("named value '{name}' cannot take this value: in API '{api}', {source}")]
    NamedValueBreaksApi {
        /// The named value.
        name: String,
        /// The API whose policy it breaks.
        api: String,
        /// How.
        source: crate::policy::named_values::ResolveError,
    },
    /// Deleting a named value that policies name.
    #[error("named value '{name}' is named by the policy of APIs: {}; remove it from them first", apis.join(", "))]
    NamedValueInUse {
        /// The named value.
        name: String,
        /// The APIs whose policies name it.
        apis: Vec<String>,
    },
    /// Another control plane committed first (revision `revision`), and planning the write
    /// again kept losing the race.
    #[error(
        "the configuration kept changing under this write (now at revision {revision}): other control planes are writing at the same time; try again"
    )]
    Moved {
        /// The revision the store holds now.
        revision: Revision,
    },
    /// The store cannot be reached (etcd down or without a leader); nothing was written, or
    /// (a timeout after sending) the outcome is unknown and shows in the next read.
    #[error("the store ({store}) is unreachable: {reason}")]
    Unavailable {
        /// "etcd".
        store: &'static str,
        /// What the client said.
        reason: String,
    },
    /// A `gatehouse-cp migrate` into this prefix did not finish.
    #[error("a migration into the etcd prefix {prefix} did not finish: run gatehouse-cp migrate --to-etcd again")]
    UnfinishedMigration {
        /// The etcd prefix.
        prefix: String,
    },
    /// The store answered, and refused: its permissions or limits need fixing.
    #[error("the store ({store}) refused the request: {reason}")]
    BackendRefused {
        /// "etcd".
        store: &'static str,
        /// What it said.
        reason: String,
    },
    /// The master key does not open the store's key check.
    #[error(
        "the master key does not match the one this store was sealed with (its key check does not open): give that key (--master-key-file); every control plane on one store needs the same one"
    )]
    WrongMasterKey,
    /// The revision watermark cannot be read or written, or is ahead of the database.
    #[error(transparent)]
    Watermark(#[from] crate::watermark::WatermarkError),
    /// A stored record does not decode or unseal.
    #[error(
        "stored record '{key}' is corrupt: restore DATA_DIR/sled from a backup of the data directory (with the same master key)"
    )]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How a resource of `kind` that was written by hand comes to have a source.
fn how_to_link(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::CaCertificate => "it was uploaded; link it to files first (gatehousectl ca link)",
        ResourceKind::NamedValue => "it was put; link it to a file first (gatehousectl nv link NAME --file PATH)",
        _ => "it was uploaded; link it to files first (gatehousectl cert link)",
    }
}

/// "api 'a': why; hostname 'b': why".
fn declaration_errors(errors: &[(ResourceKind, String, StoreError)]) -> String {
    errors.iter().map(|(kind, id, error)| format!("{kind} '{id}': {error}")).collect::<Vec<_>>().join("; ")
}

/// "APIs: a, b; hostnames: x", leaving out an empty kind.
fn users(apis: &[String], hostnames: &[String]) -> String {
    let mut parts = Vec::new();
    if !apis.is_empty() {
        parts.push(format!("APIs: {}", apis.join(", ")));
    }
    if !hostnames.is_empty() {
        parts.push(format!("hostnames: {}", hostnames.join(", ")));
    }
    parts.join("; ")
}

/// " on hostnames x, y" for `PathTaken`, or why the APIs meet on every host.
fn on_hostnames(hostnames: &[String]) -> String {
    match hostnames {
        [] => " (an API without hostnames answers on every host)".into(),
        names => format!(" on hostnames {}", names.join(", ")),
    }
}

/// "a.example.com (why), b.example.com (why)".
fn broken_hostnames(hostnames: &[(String, ServerCertificateError)]) -> String {
    hostnames.iter().map(|(name, reason)| format!("{name} ({reason})")).collect::<Vec<_>>().join(", ")
}
