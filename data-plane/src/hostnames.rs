//! The hostnames API clients reach over HTTPS, as one table per routing snapshot: each with its
//! server certificate (a rustls `CertifiedKey`, built with the table, off the request path) and
//! its own `ServerConfig` (with or without a client certificate request). The HTTPS listener
//! reads a ClientHello, asks [`Hostnames::resolve`] for the hostname of its SNI, and finishes
//! the handshake with that hostname's configuration; the proxy asks the same rule whether a
//! request's Host belongs to the connection.
//!
//! Selection (our own resolver: rustls's `ResolvesServerCertUsingSni` has no wildcard, no
//! default and refuses clients without SNI): the exact name, then the wildcard covering it
//! (`*.example.com` covers one label: `a.example.com`, not `a.b.example.com` nor
//! `example.com`), then the default hostname; otherwise none.

mod client_auth;
mod pattern;

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use crate::configuration::Configuration;

pub use pattern::{HostPattern, InvalidHostName, normalize_host};

/// ALPN protocols offered to API clients, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// One hostname, ready for handshakes.
pub struct Hostname {
    /// Its name, exact or wildcard.
    pub name: HostPattern,
    /// Whether its handshakes ask the client for a certificate.
    pub negotiates_client_certificate: bool,
    /// The configuration its handshakes finish with: its certificate, ALPN, client auth.
    pub server_config: Arc<ServerConfig>,
    /// What it was built from: an unchanged hostname keeps its configuration (and its TLS
    /// session cache) across routing tables.
    source: Source,
}

/// Everything a hostname's `ServerConfig` depends on.
#[derive(PartialEq)]
struct Source {
    hostname: pb::HostnameConfig,
    certificate: pb::ClientIdentity,
    client_cas: Vec<pb::TrustedCa>,
}

/// How [`Hostnames::resolve`] chose a hostname.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// The name equals it.
    Exact,
    /// A wildcard hostname covers the name.
    Wildcard,
    /// No name, or one no hostname covers: the default hostname.
    Default,
}

/// The hostname a name resolves to.
#[derive(Clone)]
pub struct Selection {
    /// The hostname.
    pub hostname: Arc<Hostname>,
    /// How it was chosen.
    pub chosen: Chosen,
}

/// Why the hostnames of a configuration cannot be served (the data plane NACKs it).
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// Not an exact or one-label wildcard DNS name.
    #[error(transparent)]
    Name(#[from] InvalidHostName),
    /// The server certificate is not in the snapshot.
    #[error("server certificate {thumbprint} is not in the snapshot")]
    MissingCertificate {
        /// The certificate's thumbprint.
        thumbprint: String,
    },
    /// The server certificate or its key cannot be used (no chain, a key rustls cannot load,
    /// a key that does not belong to the certificate).
    #[error("server certificate {thumbprint} cannot be used")]
    BadCertificate {
        /// The certificate's thumbprint.
        thumbprint: String,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// A client CA certificate is not in the snapshot.
    #[error("client CA certificate {thumbprint} is not in the snapshot")]
    MissingClientCa {
        /// The CA certificate's thumbprint.
        thumbprint: String,
    },
    /// A client CA certificate cannot be parsed for its subject.
    #[error("client CA certificate {thumbprint} cannot be used")]
    BadClientCa {
        /// The CA certificate's thumbprint.
        thumbprint: String,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The TLS server configuration cannot be made.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    /// Another hostname is already the default.
    #[error("'{other}' is the default hostname too; there can be only one")]
    SecondDefault {
        /// The other default hostname.
        other: String,
    },
    /// Another hostname has the same name once normalized.
    #[error("'{other}' is the same name")]
    Duplicate {
        /// The other hostname.
        other: String,
    },
}

/// Every hostname of one routing snapshot.
#[derive(Default)]
pub struct Hostnames {
    /// By name.
    exact: HashMap<String, Arc<Hostname>>,
    /// By the suffix after the wildcard's `*.` ("example.com").
    wildcard: HashMap<String, Arc<Hostname>>,
    default: Option<Arc<Hostname>>,
}

// === impl Hostnames ===

impl Hostnames {
    /// The hostnames of `config`, each with its certificate and server configuration. A
    /// hostname unchanged since `previous` keeps its configuration (and TLS session cache). An
    /// error names the hostname it is about.
    pub fn build(config: &Configuration, previous: Option<&Hostnames>) -> Result<Self, (String, HostnameError)> {
        let mut table = Self::default();
        for hostname in config.hostnames.values() {
            let built = build_one(hostname, config, previous).map_err(|error| (hostname.name.clone(), error))?;
            table.insert(Arc::new(built)).map_err(|error| (hostname.name.clone(), error))?;
        }
        Ok(table)
    }

    fn insert(&mut self, hostname: Arc<Hostname>) -> Result<(), HostnameError> {
        if hostname.source.hostname.default {
            if let Some(other) = &self.default {
                return Err(HostnameError::SecondDefault { other: other.name.to_string() });
            }
            self.default = Some(hostname.clone());
        }
        let slot = match &hostname.name {
            HostPattern::Exact(name) => self.exact.entry(name.clone()),
            HostPattern::Wildcard(suffix) => self.wildcard.entry(suffix.clone()),
        };
        match slot {
            std::collections::hash_map::Entry::Occupied(other) => {
                Err(HostnameError::Duplicate { other: other.get().source.hostname.name.clone() })
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(hostname);
                Ok(())
            }
        }
    }

    /// The hostname serving `name` (an SNI, or a request's host): exact, then wildcard, then
    /// the default; None when none applies. Case and a trailing dot do not matter.
    pub fn resolve(&self, name: Option<&str>) -> Option<Selection> {
        if let Some(name) = name {
            let name = normalize_host(name);
            if let Some(hostname) = self.exact.get(name.as_ref()) {
                return Some(Selection { hostname: hostname.clone(), chosen: Chosen::Exact });
            }
            if let Some(hostname) = pattern::wildcard_suffix(&name).and_then(|suffix| self.wildcard.get(suffix)) {
                return Some(Selection { hostname: hostname.clone(), chosen: Chosen::Wildcard });
            }
        }
        self.default.as_ref().map(|hostname| Selection { hostname: hostname.clone(), chosen: Chosen::Default })
    }

    /// Number of hostnames.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether there is no hostname (every HTTPS handshake fails).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, name: &HostPattern) -> Option<&Arc<Hostname>> {
        match name {
            HostPattern::Exact(name) => self.exact.get(name),
            HostPattern::Wildcard(suffix) => self.wildcard.get(suffix),
        }
    }
}

fn build_one(
    hostname: &pb::HostnameConfig,
    config: &Configuration,
    previous: Option<&Hostnames>,
) -> Result<Hostname, HostnameError> {
    let name = HostPattern::parse(&hostname.name)?;
    let thumbprint = &hostname.certificate_thumbprint;
    let certificate = config
        .identities
        .get(thumbprint)
        .ok_or_else(|| HostnameError::MissingCertificate { thumbprint: thumbprint.clone() })?;
    let client_cas = hostname
        .client_ca_thumbprints
        .iter()
        .map(|thumbprint| {
            config
                .cas
                .get(thumbprint)
                .map(|ca| (**ca).clone())
                .ok_or_else(|| HostnameError::MissingClientCa { thumbprint: thumbprint.clone() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let source = Source { hostname: hostname.clone(), certificate: (**certificate).clone(), client_cas };
    if let Some(unchanged) = previous.and_then(|p| p.get(&name)).filter(|p| p.source == source) {
        return Ok(Hostname {
            name,
            negotiates_client_certificate: unchanged.negotiates_client_certificate,
            server_config: unchanged.server_config.clone(),
            source,
        });
    }
    let server_config = server_config(&source)?;
    Ok(Hostname { name, negotiates_client_certificate: hostname.negotiate_client_certificate, server_config, source })
}

/// TLS 1.2 and 1.3 with the one provider, ALPN h2 and http/1.1, the hostname's certificate, and
/// a client certificate request when the hostname asks for one.
fn server_config(source: &Source) -> Result<Arc<ServerConfig>, HostnameError> {
    let provider = gatehouse_shared::crypto::provider();
    let identity = &source.certificate;
    let bad = |source| HostnameError::BadCertificate { thumbprint: identity.thumbprint.clone(), source };
    if identity.certificate_chain.is_empty() {
        return Err(bad(rustls::Error::NoCertificatesPresented));
    }
    let chain: Vec<CertificateDer<'static>> = identity.certificate_chain.iter().map(|der| der.clone().into()).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.private_key.clone()));
    // Checks that the key belongs to the certificate: a mismatch is a NACK, not failed handshakes.
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(bad)?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(HostnameError::Tls)?;
    let builder = if source.hostname.negotiate_client_certificate {
        builder.with_client_cert_verifier(Arc::new(client_auth::RequestClientCertificate::new(&source.client_cas)?))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed server certificate and its key, as the control plane sends them.
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

    fn hostname(name: &str, identity: &pb::ClientIdentity, default: bool) -> pb::HostnameConfig {
        pb::HostnameConfig {
            name: name.into(),
            certificate_thumbprint: identity.thumbprint.clone(),
            default,
            ..Default::default()
        }
    }

    fn configuration(hostnames: &[pb::HostnameConfig], identities: &[&pb::ClientIdentity]) -> Configuration {
        Configuration {
            hostnames: hostnames.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            identities: identities.iter().map(|i| (i.thumbprint.clone(), (*i).clone())).collect(),
            ..Default::default()
        }
    }

    fn resolved(table: &Hostnames, sni: Option<&str>) -> Option<(String, Chosen)> {
        table.resolve(sni).map(|s| (s.hostname.name.to_string(), s.chosen))
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let (api, wild, www) = (identity("api.example.com"), identity("*.example.com"), identity("www.example.org"));
        let config = configuration(
            &[
                hostname("api.example.com", &api, false),
                hostname("*.example.com", &wild, false),
                hostname("www.example.org", &www, true),
            ],
            &[&api, &wild, &www],
        );
        let table = Hostnames::build(&config, None).unwrap();
        let exact = Some(("api.example.com".to_string(), Chosen::Exact));
        let wildcard = Some(("*.example.com".to_string(), Chosen::Wildcard));
        let default = Some(("www.example.org".to_string(), Chosen::Default));
        assert_eq!(resolved(&table, Some("api.example.com")), exact);
        assert_eq!(resolved(&table, Some("API.Example.COM.")), exact, "case and a trailing dot do not matter");
        assert_eq!(resolved(&table, Some("shop.example.com")), wildcard);
        assert_eq!(resolved(&table, Some("a.b.example.com")), default, "a wildcard covers one label only");
        assert_eq!(resolved(&table, Some("example.com")), default, "a wildcard does not cover its parent");
        assert_eq!(resolved(&table, Some("unknown.test")), default);
        assert_eq!(resolved(&table, None), default, "a client without SNI gets the default");
        assert_eq!(resolved(&table, Some("www.example.org")), Some(("www.example.org".to_string(), Chosen::Exact)));
    }

    #[test]
    fn without_a_default_an_unknown_name_or_no_sni_resolves_to_nothing() {
        let api = identity("api.example.com");
        let table =
            Hostnames::build(&configuration(&[hostname("api.example.com", &api, false)], &[&api]), None).unwrap();
        assert!(table.resolve(Some("other.example.com")).is_none());
        assert!(table.resolve(None).is_none());
        assert!(Hostnames::default().resolve(Some("api.example.com")).is_none(), "no configuration, no hostname");
    }

    #[test]
    fn each_hostname_has_its_own_configuration_kept_while_unchanged() {
        let (a, b, rotated) = (identity("a.test"), identity("b.test"), identity("a.test"));
        let first = Hostnames::build(
            &configuration(&[hostname("a.test", &a, false), hostname("b.test", &b, false)], &[&a, &b]),
            None,
        )
        .unwrap();
        let config = |t: &Hostnames, n: &str| t.resolve(Some(n)).unwrap().hostname.server_config.clone();
        assert!(!Arc::ptr_eq(&config(&first, "a.test"), &config(&first, "b.test")));
        assert_eq!(config(&first, "a.test").alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);

        // b.test unchanged keeps its configuration (and session cache); a.test's new certificate
        // gets a new one.
        let second = Hostnames::build(
            &configuration(&[hostname("a.test", &rotated, false), hostname("b.test", &b, false)], &[&rotated, &b]),
            Some(&first),
        )
        .unwrap();
        assert!(Arc::ptr_eq(&config(&first, "b.test"), &config(&second, "b.test")));
        assert!(!Arc::ptr_eq(&config(&first, "a.test"), &config(&second, "a.test")));
    }

    #[test]
    fn refusals_name_the_hostname_and_what_is_wrong() {
        let (a, b) = (identity("a.test"), identity("b.test"));
        let refused = |hostnames: &[pb::HostnameConfig], identities: &[&pb::ClientIdentity]| {
            Hostnames::build(&configuration(hostnames, identities), None).err().unwrap()
        };
        let (name, error) = refused(&[hostname("a.test", &a, false)], &[]);
        assert_eq!(name, "a.test");
        assert!(matches!(error, HostnameError::MissingCertificate { .. }), "{error}");

        let mut wrong_key = a.clone();
        wrong_key.private_key = b.private_key.clone();
        let (_, error) = refused(&[hostname("a.test", &wrong_key, false)], &[&wrong_key]);
        assert!(matches!(error, HostnameError::BadCertificate { .. }), "{error}");

        let (_, error) = refused(&[hostname("a.test", &a, true), hostname("b.test", &b, true)], &[&a, &b]);
        assert!(matches!(error, HostnameError::SecondDefault { .. }), "{error}");

        let (name, error) = refused(&[hostname("*.*.test", &a, false)], &[&a]);
        assert_eq!(name, "*.*.test");
        assert!(matches!(error, HostnameError::Name(_)), "{error}");

        let mut with_ca = hostname("a.test", &a, false);
        with_ca.negotiate_client_certificate = true;
        with_ca.client_ca_thumbprints = vec!["AB".repeat(20)];
        let (_, error) = refused(&[with_ca], &[&a]);
        assert!(matches!(error, HostnameError::MissingClientCa { .. }), "{error}");
    }
}
