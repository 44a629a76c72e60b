//! The CA certificates client certificates are checked against, made ready once per routing
//! table: each a webpki trust anchor with its CRL (signature checked against the CA here, off
//! the request path), and each hostname's client CAs as one list, so a request only looks its
//! connection's hostname up.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rustls::pki_types::{CertificateDer, Der, TrustAnchor};
use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::configuration::Configuration;
use crate::hostnames::HostPattern;

/// One CA certificate, ready for path building.
pub struct Authority {
    /// Its thumbprint.
    pub thumbprint: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    anchor: TrustAnchor<'static>,
    /// Its revocation list, when one was uploaded.
    pub crl: Option<AuthorityCrl>,
    /// The CRL as sent, to tell whether the next table can keep this one.
    crl_der: Vec<u8>,
}

/// A CA's revocation list, its signature verified.
pub struct AuthorityCrl {
    /// As webpki reads it.
    pub list: CertRevocationList<'static>,
    /// When a newer one is due, seconds since the Unix epoch: past it, the list is out of date.
    pub next_update: i64,
}

/// Why a CA certificate cannot be used for client certificates (the data plane NACKs).
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The CA certificate is not in the snapshot.
    #[error("CA certificate {thumbprint} is not in the snapshot")]
    Missing {
        /// Its thumbprint.
        thumbprint: String,
    },
    /// webpki cannot make a trust anchor of it.
    #[error("CA certificate {thumbprint} cannot be a trust anchor")]
    BadCertificate {
        /// Its thumbprint.
        thumbprint: String,
        /// Why.
        #[source]
        source: webpki::Error,
    },
    /// Its CRL cannot be read, was not issued by it, or its signature does not verify.
    #[error("the CRL of CA certificate {thumbprint} cannot be used: {reason}")]
    BadCrl {
        /// The CA's thumbprint.
        thumbprint: String,
        /// Why.
        reason: String,
    },
}

/// The authorities of one routing table.
#[derive(Default)]
pub struct Authorities {
    by_thumbprint: HashMap<String, Arc<Authority>>,
    /// Client CAs of the hostnames that ask for client certificates.
    by_hostname: HashMap<HostPattern, Vec<Arc<Authority>>>,
}

/// Makes the authorities a table needs, reusing the previous table's where unchanged.
pub struct AuthoritiesBuilder<'a> {
    config: &'a Configuration,
    previous: Option<&'a Authorities>,
    built: Authorities,
}

// === impl Authorities ===

impl Authorities {
    /// Starts a table's authorities; hostnames' client CAs are added by [`AuthoritiesBuilder::finish`].
    pub fn builder<'a>(config: &'a Configuration, previous: Option<&'a Authorities>) -> AuthoritiesBuilder<'a> {
        AuthoritiesBuilder { config, previous, built: Authorities::default() }
    }

    /// The client CAs of the hostname a connection was made for (none if it asks for no
    /// client certificate).
    pub fn for_hostname(&self, hostname: &HostPattern) -> &[Arc<Authority>] {
        self.by_hostname.get(hostname).map(Vec::as_slice).unwrap_or_default()
    }

    /// A CA certificate of the snapshot, if one was made ready.
    pub fn get(&self, thumbprint: &str) -> Option<&Arc<Authority>> {
        self.by_thumbprint.get(thumbprint)
    }
}

// === impl AuthoritiesBuilder ===

impl AuthoritiesBuilder<'_> {
    /// The CA certificate with this thumbprint, made ready (once per table).
    pub fn get(&mut self, thumbprint: &str) -> Result<Arc<Authority>, AuthorityError> {
        if let Some(done) = self.built.by_thumbprint.get(thumbprint) {
            return Ok(done.clone());
        }
        let ca = self
            .config
            .cas
            .get(thumbprint)
            .ok_or_else(|| AuthorityError::Missing { thumbprint: thumbprint.to_string() })?;
        let reused = self
            .previous
            .and_then(|p| p.by_thumbprint.get(thumbprint))
            .filter(|p| p.der.as_ref() == ca.certificate.as_slice() && p.crl_der == ca.crl);
        let authority = match reused {
            Some(previous) => previous.clone(),
            None => Arc::new(Authority::new(ca)?),
        };
        self.built.by_thumbprint.insert(thumbprint.to_string(), authority.clone());
        Ok(authority)
    }

    /// Adds each hostname's client CAs (hostnames that ask for client certificates) and
    /// returns the table's authorities; an error names the hostname. A hostname whose name does
    /// not parse is left out: the hostnames table refuses it.
    pub fn finish(mut self) -> Result<Authorities, (String, AuthorityError)> {
        for hostname in self.config.hostnames.values().filter(|h| h.negotiate_client_certificate) {
            let Ok(name) = HostPattern::parse(&hostname.name) else { continue };
            let cas = hostname.client_ca_thumbprints.iter().map(|t| self.get(t)).collect::<Result<Vec<_>, _>>();
            self.built.by_hostname.insert(name, cas.map_err(|error| (hostname.name.clone(), error))?);
        }
        Ok(self.built)
    }
}

// === impl Authority ===

impl Authority {
    fn new(ca: &pb::TrustedCa) -> Result<Self, AuthorityError> {
        let thumbprint = ca.thumbprint.clone();
        let der = CertificateDer::from(ca.certificate.clone());
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .map(|anchor| anchor.to_owned())
            .map_err(|source| AuthorityError::BadCertificate { thumbprint: thumbprint.clone(), source })?;
        let crl = match ca.crl.is_empty() {
            true => None,
            false => Some(
                read_crl(&ca.crl, &ca.certificate)
                    .map_err(|reason| AuthorityError::BadCrl { thumbprint: thumbprint.clone(), reason })?,
            ),
        };
        Ok(Self { thumbprint, der, anchor, crl, crl_der: ca.crl.clone() })
    }

    /// As webpki takes anchors, borrowing this one's bytes.
    pub fn anchor(&self) -> TrustAnchor<'_> {
        TrustAnchor {
            subject: Der::from(self.anchor.subject.as_ref()),
            subject_public_key_info: Der::from(self.anchor.subject_public_key_info.as_ref()),
            name_constraints: self.anchor.name_constraints.as_ref().map(|n| Der::from(n.as_ref())),
        }
    }
}

/// The CRL `der` of CA certificate `ca_der`: issued by it and signed with its key (the control
/// plane checked as much at upload; a data plane trusts no one's word for a revocation list).
fn read_crl(der: &[u8], ca_der: &[u8]) -> Result<AuthorityCrl, String> {
    let (_, parsed) = CertificateRevocationList::from_der(der).map_err(|e| format!("not a CRL ({e})"))?;
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| format!("the CA certificate does not parse ({e})"))?;
    if parsed.issuer().as_raw() != ca.subject().as_raw() {
        return Err("it was not issued by this CA".into());
    }
    parsed
        .verify_signature(ca.public_key())
        .map_err(|_| "its signature does not verify with the CA's key".to_string())?;
    let next_update = parsed.next_update().map(|t| t.timestamp()).ok_or("it has no nextUpdate")?;
    let list = OwnedCertRevocationList::from_der(der).map_err(|e| format!("webpki cannot use it ({e})"))?;
    Ok(AuthorityCrl { list: CertRevocationList::from(list), next_update })
}
