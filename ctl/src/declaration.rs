//! The declaration file: the whole configuration as `export` writes it and `diff`/`apply` read
//! it, kubectl-like (`apiVersion`, `kind`, camelCase keys), in YAML or JSON.
//!
//! Unknown keys are refused, naming the key and where it is: a misspelt key would otherwise
//! declare a default without a word. `export` builds one from the control plane's resources,
//! `request` turns one (and the files it names) into an `ApplyConfigurationRequest`.

mod export;
mod request;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use export::Resources;
pub use request::{CaReference, request};

/// The `apiVersion` of the files this gatehousectl reads and writes.
pub const API_VERSION: &str = "gatehouse/v1";
/// The `kind` of a whole configuration.
pub const KIND: &str = "Configuration";

/// A whole configuration. Each list is in id order when exported, so exports diff well.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Declaration {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// CA certificates APIs trust for backends and client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<CaCertificate>,
    /// Client and server certificates (with their private keys on the control plane).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// Hostnames API clients reach over HTTPS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<Hostname>,
    /// Named values policies name as `{{name}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_values: Vec<NamedValue>,
    /// APIs with their whole policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<Api>,
    /// Subscriptions (never their keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<Subscription>,
}

/// A CA certificate: a reference to the stored one (`id`, `thumbprint`), or its certificate
/// (inline PEM or a file), optionally with its CRL.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaCertificate {
    /// Its id.
    pub id: String,
    /// The thumbprint it must have (checked by gatehousectl before anything is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// The certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The certificate, PEM or DER, in a file (relative to the declaration's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<PathBuf>,
    /// Its CRL, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<String>,
    /// Its CRL, PEM or DER, in a file (relative to the declaration's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<PathBuf>,
    /// The file on the control plane's host it is linked to (`ca link`); `apply` sends it as a
    /// reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FileSource>,
}

/// The file on the control plane's host a linked CA certificate or named value is read from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSource {
    /// Its absolute path.
    pub file: String,
}

/// A certificate with its private key: a reference to the stored one (`id`, `thumbprint`), a
/// PKCS#12 file to upload (`pfx`, `passwordFile`), or a linked one (`source`, a reference too).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// Its id.
    pub id: String,
    /// The thumbprint it must have (stored or uploaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// A PKCS#12 file here (relative to the declaration's folder), uploaded when its
    /// certificate differs from the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfx: Option<PathBuf>,
    /// The file holding the PFX's password (one trailing newline is ignored); none: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The files on the control plane's host it is linked to (`cert link`); `apply` sends it
    /// as a reference by id (the files decide its thumbprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CertificateSource>,
}

/// Where a linked certificate is read from, on the control plane's host (never its password).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSource {
    /// A PKCS#12 file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfx: Option<String>,
    /// A PEM certificate with its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// Its PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

/// A hostname, as `hostname put` takes it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hostname {
    /// The DNS name (exact or wildcard).
    pub name: String,
    /// The id of the certificate it is served with.
    pub certificate_id: String,
    /// Served to clients that send no SNI or an unknown one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Ask API clients for a certificate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub negotiate_client_certificate: bool,
    /// CA certificates client certificates may chain to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_ca_ids: Vec<String>,
}

/// A named value: its value inline or in a file; a secret or linked one without either keeps
/// the stored value.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedValue {
    /// Its name.
    pub name: String,
    /// Its value (never exported for a secret one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A file holding the value (relative to the declaration's folder; one trailing newline is
    /// ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_file: Option<PathBuf>,
    /// Sealed at rest and masked on every read.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// The file on the control plane's host it is linked to (`nv link`), which decides its
    /// value: exported without one, and sent without one unless `value` or `valueFile` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FileSource>,
}

/// An API: every field `api put` takes, and its whole policy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    /// Its id.
    pub id: String,
    /// The name shown to operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Its path prefix on the data planes.
    pub path: String,
    /// Where requests go.
    pub service_url: String,
    /// Hostnames it answers on; none: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// How the backend's server certificate is checked; none: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_tls: Option<BackendTls>,
    /// Requests need a subscription key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub subscription_required: bool,
    /// The header clients send the key in; empty: Ocp-Apim-Subscription-Key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscription_key_header: String,
    /// The client certificate presented to the backend; a policy, when given, decides instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// The whole policy XML (secrets masked as ******** keep the stored ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Backend trust; a field left out takes its default.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTls {
    /// Validate the backend's certificate chain (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_certificate_chain: Option<bool>,
    /// Validate that its certificate names the service URL's host (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_certificate_name: Option<bool>,
    /// CA certificates trusted as roots for the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_ids: Vec<String>,
    /// Trust the system roots too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_system_roots: Option<bool>,
}

/// A credential binding: one of the two.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// The certificate stored under this id (follows its rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// Exactly the certificate with this thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

/// A subscription (never its keys: new ones get keys, shown once by `apply`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// Its name.
    pub name: String,
    /// The name shown to operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The one API its keys open; none: every API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Active (the default) or suspended.
    #[serde(default)]
    pub state: SubscriptionState,
}

/// Whether a subscription's keys are accepted.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionState {
    /// Its keys are accepted.
    #[default]
    Active,
    /// Its keys get 403.
    Suspended,
}

/// Errors one per line under a summary (`SUMMARY, 2 errors:` then `  api/orders: why`): how
/// gatehousectl's own checks and the control plane's refusals of a declaration are both shown.
pub fn error_list(summary: &str, lines: &[String]) -> anyhow::Error {
    let count = if lines.len() == 1 { "1 error".to_string() } else { format!("{} errors", lines.len()) };
    anyhow::anyhow!("{summary}, {count}:\n  {}", lines.join("\n  "))
}

fn is_false(value: &bool) -> bool {
    !value
}

// === impl Declaration ===

impl Declaration {
    /// An empty configuration.
    pub fn new() -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            ca_certificates: Vec::new(),
            certificates: Vec::new(),
            hostnames: Vec::new(),
            named_values: Vec::new(),
            apis: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    /// Reads a declaration from `text` (YAML, of which JSON is a subset); `origin` names it in
    /// errors. Unknown keys are refused with their place (e.g. `apis[1].backendTls`).
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let declaration: Self =
            serde_norway::from_str(text).with_context(|| format!("{origin} is not a declaration"))?;
        if declaration.api_version != API_VERSION {
            bail!("{origin}: apiVersion is '{}'; this gatehousectl reads '{API_VERSION}'", declaration.api_version);
        }
        if declaration.kind != KIND {
            bail!("{origin}: kind is '{}'; this gatehousectl reads '{KIND}'", declaration.kind);
        }
        Ok(declaration)
    }

    /// The declaration as YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("declarations serialize")
    }

    /// The declaration as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("declarations serialize")
    }
}

impl Default for Declaration {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"apiVersion: gatehouse/v1
kind: Configuration
certificates:
- id: orders-client
  pfx: orders.pfx
  passwordFile: orders.pw
namedValues:
- name: backend-pw
  secret: true
apis:
- id: orders
  path: /orders
  serviceUrl: https://orders.internal:8443
  backendTls:
    trustSystemRoots: false
    caCertificateIds:
    - internal-root
  policy: |
    <policies>
      <inbound>
        <set-header name="X-Key" exists-action="override"><value>{{backend-pw}}</value></set-header>
      </inbound>
    </policies>
subscriptions:
- name: partner-a
  scope: orders
"#;

    #[test]
    fn a_declaration_reads_and_writes_back_the_same() {
        let declaration = Declaration::parse(EXAMPLE, "gatehouse.yaml").unwrap();
        assert_eq!(declaration.apis[0].backend_tls.as_ref().unwrap().trust_system_roots, Some(false));
        assert_eq!(declaration.subscriptions[0].state, SubscriptionState::Active);
        assert!(declaration.apis[0].policy.as_ref().unwrap().contains("{{backend-pw}}"));
        let yaml = declaration.to_yaml();
        assert_eq!(Declaration::parse(&yaml, "again").unwrap(), declaration);
        assert_eq!(Declaration::parse(&declaration.to_json(), "json").unwrap(), declaration);
        // The policy stays readable: a block, not one quoted line.
        assert!(yaml.contains("  policy: |"), "{yaml}");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name_and_place() {
        let text = EXAMPLE.replace("    trustSystemRoots: false", "    trustSystemRoot: false");
        let error = format!("{:#}", Declaration::parse(&text, "gatehouse.yaml").unwrap_err());
        assert!(error.contains("gatehouse.yaml"), "{error}");
        assert!(error.contains("unknown field `trustSystemRoot`"), "{error}");
        assert!(error.contains("apis[0].backendTls"), "{error}");
        assert!(error.contains("line 15"), "{error}");
    }

    #[test]
    fn another_kind_or_version_is_refused() {
        let text = EXAMPLE.replace("kind: Configuration", "kind: Deployment");
        let error = Declaration::parse(&text, "f.yaml").unwrap_err().to_string();
        assert!(error.contains("kind is 'Deployment'"), "{error}");
        let text = EXAMPLE.replace("gatehouse/v1", "gatehouse/v2");
        assert!(Declaration::parse(&text, "f.yaml").unwrap_err().to_string().contains("apiVersion"));
    }
}
