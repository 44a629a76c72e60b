//! One `<identity>` of a `<validate-client-certificate>`, compiled when the routing table is
//! built, and matched against the certificate a client presented: every claim it makes must
//! hold. Names and serial numbers compare as `gatehouse_shared::certificate::claims` reads them
//! (the control plane read the policy with the same code).

use std::cell::OnceCell;
use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::Thumbprint;
use gatehouse_shared::certificate::claims::{
    DistinguishedName, InvalidName, InvalidSerial, normalize_serial, serial_hex,
};
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::authorities::{AuthoritiesBuilder, Authority, AuthorityError};

/// An identity's claims, ready to compare.
pub(super) struct Identity {
    thumbprint: Option<String>,
    serial_number: Option<String>,
    common_name: Option<String>,
    subject: Option<DistinguishedName>,
    dns_name: Option<String>,
    issuer_subject: Option<DistinguishedName>,
    issuer: Option<Issuer>,
}

/// `issuer-thumbprint` (or `issuer-certificate-id`, which the control plane sends as the CA's
/// thumbprint): the certificate with this thumbprint signed the client's.
struct Issuer {
    thumbprint: String,
    /// The CA certificate of the snapshot with that thumbprint, when there is one; otherwise
    /// the issuer must be among the certificates the client presented.
    known: Option<Arc<Authority>>,
}

/// Why an identity cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `thumbprint` or `issuer-thumbprint` is not one.
    #[error(transparent)]
    Thumbprint(#[from] gatehouse_shared::thumbprint::InvalidThumbprint),
    /// `serial-number` is not hex.
    #[error(transparent)]
    Serial(#[from] InvalidSerial),
    /// `subject` or `issuer-subject` is not a distinguished name.
    #[error(transparent)]
    Name(#[from] InvalidName),
    /// The CA certificate an issuer claim names cannot be used.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// No claim at all: it would match every certificate.
    #[error("an identity has no claim")]
    Empty,
}

/// What the identities need of the presented certificate, each worked out at most once.
pub(super) struct Presented<'a> {
    chain: &'a [CertificateDer<'static>],
    leaf: &'a X509Certificate<'a>,
    thumbprint: OnceCell<String>,
    subject: OnceCell<DistinguishedName>,
    issuer_subject: OnceCell<DistinguishedName>,
}

// === impl Identity ===

impl Identity {
    pub(super) fn compile(
        identity: &pb::CertificateIdentity,
        cas: &mut AuthoritiesBuilder<'_>,
    ) -> Result<Self, IdentityError> {
        let given = |value: &str| Some(value.trim()).filter(|v| !v.is_empty()).map(str::to_string);
        let thumbprint = |value: &str| given(value).map(|t| Thumbprint::parse(&t).map(|t| t.to_string())).transpose();
        let name = |value: &str| given(value).map(|n| DistinguishedName::parse(&n)).transpose();
        let issuer = match thumbprint(&identity.issuer_thumbprint)? {
            None => None,
            Some(thumbprint) => {
                let known = match cas.get(&thumbprint) {
                    Ok(authority) => Some(authority),
                    Err(AuthorityError::Missing { .. }) => None,
                    Err(other) => return Err(other.into()),
                };
                Some(Issuer { thumbprint, known })
            }
        };
        let compiled = Self {
            thumbprint: thumbprint(&identity.thumbprint)?,
            serial_number: given(&identity.serial_number).map(|s| normalize_serial(&s)).transpose()?,
            common_name: given(&identity.common_name),
            subject: name(&identity.subject)?,
            dns_name: given(&identity.dns_name).map(|d| dns_key(&d)),
            issuer_subject: name(&identity.issuer_subject)?,
            issuer,
        };
        let empty = compiled.thumbprint.is_none()
            && compiled.serial_number.is_none()
            && compiled.common_name.is_none()
            && compiled.subject.is_none()
            && compiled.dns_name.is_none()
            && compiled.issuer_subject.is_none()
            && compiled.issuer.is_none();
        if empty {
            return Err(IdentityError::Empty);
        }
        Ok(compiled)
    }

    /// Whether every claim holds for the presented certificate.
    pub(super) fn matches(&self, presented: &Presented<'_>) -> bool {
        let leaf = presented.leaf;
        self.thumbprint.as_ref().is_none_or(|t| presented.thumbprint() == t)
            && self.serial_number.as_ref().is_none_or(|s| serial_hex(leaf.raw_serial()) == *s)
            && self.common_name.as_ref().is_none_or(|cn| presented.subject().has_common_name(cn))
            && self.subject.as_ref().is_none_or(|dn| dn.matches(presented.subject()))
            && self.dns_name.as_ref().is_none_or(|name| dns_names(leaf).any(|d| dns_key(d) == *name))
            && self.issuer_subject.as_ref().is_none_or(|dn| dn.matches(presented.issuer_subject()))
            && self.issuer.as_ref().is_none_or(|issuer| issuer.signed(presented))
    }
}

// === impl Issuer ===

impl Issuer {
    /// Whether the certificate with this thumbprint (the snapshot's CA, or one the client
    /// presented) is the client certificate's issuer: its subject is the certificate's issuer
    /// name, and its key verifies the certificate's signature.
    fn signed(&self, presented: &Presented<'_>) -> bool {
        let from_chain = || presented.chain.iter().skip(1).find(|c| Thumbprint::of_der(c).as_str() == self.thumbprint);
        let der: &[u8] = match (&self.known, from_chain()) {
            (Some(known), _) => known.der.as_ref(),
            (None, Some(presented)) => presented.as_ref(),
            (None, None) => return false,
        };
        let Ok((_, issuer)) = X509Certificate::from_der(der) else { return false };
        let leaf = presented.leaf;
        issuer.subject().as_raw() == leaf.issuer().as_raw() && leaf.verify_signature(Some(issuer.public_key())).is_ok()
    }
}

// === impl Presented ===

impl<'a> Presented<'a> {
    /// `chain` as the client sent it (leaf first); `leaf` is its first certificate, parsed.
    pub(super) fn new(chain: &'a [CertificateDer<'static>], leaf: &'a X509Certificate<'a>) -> Self {
        Self { chain, leaf, thumbprint: OnceCell::new(), subject: OnceCell::new(), issuer_subject: OnceCell::new() }
    }

    fn thumbprint(&self) -> &str {
        self.thumbprint.get_or_init(|| Thumbprint::of_der(&self.chain[0]).to_string())
    }

    fn subject(&self) -> &DistinguishedName {
        self.subject.get_or_init(|| DistinguishedName::of(self.leaf.subject()))
    }

    fn issuer_subject(&self) -> &DistinguishedName {
        self.issuer_subject.get_or_init(|| DistinguishedName::of(self.leaf.issuer()))
    }
}

/// The subjectAltName DNS names of a certificate.
fn dns_names<'a>(leaf: &'a X509Certificate<'a>) -> impl Iterator<Item = &'a str> {
    let names = leaf.subject_alternative_name().ok().flatten().map(|ext| ext.value.general_names.iter());
    names.into_iter().flatten().filter_map(|name| match name {
        GeneralName::DNSName(dns) => Some(*dns),
        _ => None,
    })
}

/// DNS names compare without case and without a trailing dot.
fn dns_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::super::test_pki::{Pki, client_params};
    use super::*;
    use crate::client_certificates::authorities::Authorities;
    use crate::configuration::Configuration;

    fn compile(identity: pb::CertificateIdentity, config: &Configuration) -> Identity {
        let mut cas = Authorities::builder(config, None);
        Identity::compile(&identity, &mut cas).unwrap()
    }

    fn matches(identity: &Identity, chain: &[CertificateDer<'static>]) -> bool {
        let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
        identity.matches(&Presented::new(chain, &leaf))
    }

    #[test]
    fn each_claim_matches_its_certificate_and_no_other() {
        let pki = Pki::new();
        let mut params = client_params("orders");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        params.subject_alt_names = vec![rcgen::SanType::DnsName("Orders.Example.com".try_into().unwrap())];
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x3A, 0x0F]));
        let orders = pki.root.issue(params);
        let other = pki.root.issue(client_params("billing"));
        let chain = vec![orders.der.clone()];
        let config = pki.configuration(&[]);
        let root_thumbprint = pki.root.thumbprint();
        let claim = |identity: pb::CertificateIdentity| compile(identity, &config);
        let cases: Vec<(&str, pb::CertificateIdentity)> = vec![
            ("thumbprint", pb::CertificateIdentity { thumbprint: orders.thumbprint(), ..Default::default() }),
            ("serial-number", pb::CertificateIdentity { serial_number: "3a:0f".into(), ..Default::default() }),
            ("common-name", pb::CertificateIdentity { common_name: "ORDERS".into(), ..Default::default() }),
            (
                "subject",
                pb::CertificateIdentity { subject: r"CN=orders, O=Example\, Inc.".into(), ..Default::default() },
            ),
            ("dns-name", pb::CertificateIdentity { dns_name: "orders.example.com.".into(), ..Default::default() }),
            ("issuer-subject", pb::CertificateIdentity { issuer_subject: "CN=Test Root".into(), ..Default::default() }),
            (
                "issuer-thumbprint",
                pb::CertificateIdentity { issuer_thumbprint: root_thumbprint.clone(), ..Default::default() },
            ),
        ];
        for (kind, identity) in cases {
            let compiled = claim(identity);
            assert!(matches(&compiled, &chain), "{kind} should match");
            assert!(
                !matches(&compiled, std::slice::from_ref(&other.der)) || kind.starts_with("issuer"),
                "{kind} matched another"
            );
        }
        // Mismatches, claim by claim.
        let mismatches: Vec<(&str, pb::CertificateIdentity)> = vec![
            ("thumbprint", pb::CertificateIdentity { thumbprint: other.thumbprint(), ..Default::default() }),
            ("serial-number", pb::CertificateIdentity { serial_number: "3A0E".into(), ..Default::default() }),
            ("common-name", pb::CertificateIdentity { common_name: "order".into(), ..Default::default() }),
            ("subject", pb::CertificateIdentity { subject: "CN=orders".into(), ..Default::default() }),
            ("dns-name", pb::CertificateIdentity { dns_name: "billing.example.com".into(), ..Default::default() }),
            (
                "issuer-subject",
                pb::CertificateIdentity { issuer_subject: "CN=Other Root".into(), ..Default::default() },
            ),
            ("issuer-thumbprint", pb::CertificateIdentity { issuer_thumbprint: "AB".repeat(20), ..Default::default() }),
        ];
        for (kind, identity) in mismatches {
            assert!(!matches(&claim(identity), &chain), "{kind} should not match");
        }
        // Every claim of one identity must hold.
        let both = claim(pb::CertificateIdentity {
            common_name: "orders".into(),
            dns_name: "billing.example.com".into(),
            ..Default::default()
        });
        assert!(!matches(&both, &chain));
    }

    #[test]
    fn the_issuer_is_the_certificate_that_signed_not_one_with_the_same_name() {
        let pki = Pki::new();
        // An intermediate the client presents; the root is the snapshot's CA.
        let intermediate = pki.root.intermediate("Test Intermediate");
        let leaf = intermediate.issue(client_params("orders"));
        let chain = vec![leaf.der.clone(), intermediate.certificate.der.clone()];
        let config = pki.configuration(&[]);
        let by = |thumbprint: String| {
            compile(pb::CertificateIdentity { issuer_thumbprint: thumbprint, ..Default::default() }, &config)
        };
        assert!(matches(&by(intermediate.certificate.thumbprint()), &chain), "presented issuer");
        assert!(!matches(&by(pki.root.thumbprint()), &chain), "the root did not sign the leaf");
        // An impostor CA with the intermediate's name but another key did not sign it either.
        let impostor = pki.root.intermediate("Test Intermediate");
        let forged = vec![leaf.der.clone(), impostor.certificate.der.clone()];
        assert!(!matches(&by(impostor.certificate.thumbprint()), &forged));
        // A snapshot CA (issuer-certificate-id) is found without the client presenting it.
        let direct = pki.root.issue(client_params("direct"));
        assert!(matches(&by(pki.root.thumbprint()), std::slice::from_ref(&direct.der)));
    }
}
