//! The client's certificate in a policy: APIM's `<validate-client-certificate>` (which client
//! certificates an API accepts) and Gatehouse's own `<forward-client-certificate>` (whether the
//! backend learns which one was accepted), and how both are written back.
//!
//! `<validate-client-certificate>` means what it means in APIM: the certificate must pass every
//! check its attributes leave on (defaults: validate-revocation, validate-trust,
//! validate-not-before and validate-not-after `true`, ignore-error `false`) and, when
//! `<identities>` are listed (at most 10), match every claim of at least one `<identity>`.
//! `issuer-certificate-id` names an uploaded CA certificate and excludes the other issuer
//! claims, as in APIM.
//!
//! `<forward-client-certificate thumbprint-header="…" subject-header="…" />` is a Gatehouse
//! extension (APIM has no element for it): the validated certificate's thumbprint (uppercase
//! hex SHA-1) and subject (RFC 4514, ASCII) go to the backend in the headers named; whatever
//! the client sent under those names is removed, whether or not a certificate was validated.
//! It needs a `<validate-client-certificate>` in the same `<inbound>`: only a validated
//! certificate is passed on.

use std::fmt::Write as _;

use gatehouse_shared::Thumbprint;

/// Most `<identity>` elements in one `<identities>`, as in APIM.
pub const MAX_IDENTITIES: usize = 10;

/// `<validate-client-certificate>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificateValidation {
    /// `validate-revocation`: the certificate must not be on its issuer's CRL (and a CRL must
    /// be known for the issuer).
    pub validate_revocation: bool,
    /// `validate-trust`: the certificate must chain to a trusted CA (the hostname's client CAs
    /// or the API's CA certificates).
    pub validate_trust: bool,
    /// `validate-not-before`: refuse a certificate not valid yet.
    pub validate_not_before: bool,
    /// `validate-not-after`: refuse an expired certificate.
    pub validate_not_after: bool,
    /// `ignore-error`: a failure is logged and counted, and the request goes on.
    pub ignore_error: bool,
    /// `<identities>`: none, or the certificate must match one.
    pub identities: Vec<CertificateIdentity>,
}

/// APIM's defaults: every check on, errors not ignored, no identities.
impl Default for ClientCertificateValidation {
    fn default() -> Self {
        Self {
            validate_revocation: true,
            validate_trust: true,
            validate_not_before: true,
            validate_not_after: true,
            ignore_error: false,
            identities: Vec::new(),
        }
    }
}

/// One `<identity>`: every claim given must hold. At least one is given.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CertificateIdentity {
    /// `thumbprint`: the certificate's.
    pub thumbprint: Option<Thumbprint>,
    /// `serial-number`: uppercase hex without leading zeros (as written, normalized).
    pub serial_number: Option<String>,
    /// `common-name`: one of the subject's CNs.
    pub common_name: Option<String>,
    /// `subject`: the subject's distinguished name, as written (it parses).
    pub subject: Option<String>,
    /// `dns-name`: one of the subjectAltName DNS names.
    pub dns_name: Option<String>,
    /// `issuer-subject`: the issuer's distinguished name, as written (it parses).
    pub issuer_subject: Option<String>,
    /// `issuer-thumbprint`: the thumbprint of the certificate that signed it.
    pub issuer_thumbprint: Option<Thumbprint>,
    /// `issuer-certificate-id`: the id of the uploaded CA certificate that signed it.
    pub issuer_certificate_id: Option<String>,
}

/// `<forward-client-certificate>` (a Gatehouse extension): header names, lowercase; at least
/// one is given.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ForwardClientCertificate {
    /// `thumbprint-header`.
    pub thumbprint_header: Option<String>,
    /// `subject-header`.
    pub subject_header: Option<String>,
}

// === impl CertificateIdentity ===

impl CertificateIdentity {
    /// The claims given, as (attribute, value), in the order APIM documents them.
    pub fn claims(&self) -> Vec<(&'static str, String)> {
        let mut claims = Vec::new();
        let mut add = |name, value: Option<String>| {
            if let Some(value) = value {
                claims.push((name, value));
            }
        };
        add("thumbprint", self.thumbprint.as_ref().map(ToString::to_string));
        add("serial-number", self.serial_number.clone());
        add("common-name", self.common_name.clone());
        add("subject", self.subject.clone());
        add("dns-name", self.dns_name.clone());
        add("issuer-subject", self.issuer_subject.clone());
        add("issuer-thumbprint", self.issuer_thumbprint.as_ref().map(ToString::to_string));
        add("issuer-certificate-id", self.issuer_certificate_id.clone());
        claims
    }
}

// === rendering ===

/// Writes both elements (those present) as `<inbound>` children, indented for it.
pub(super) fn render(
    validation: Option<&ClientCertificateValidation>,
    forward: Option<&ForwardClientCertificate>,
    xml: &mut String,
) {
    if let Some(v) = validation {
        let _ = write!(
            xml,
            "    <validate-client-certificate validate-revocation=\"{}\" validate-trust=\"{}\" \
             validate-not-before=\"{}\" validate-not-after=\"{}\" ignore-error=\"{}\"",
            v.validate_revocation, v.validate_trust, v.validate_not_before, v.validate_not_after, v.ignore_error
        );
        if v.identities.is_empty() {
            xml.push_str(" />\n");
        } else {
            xml.push_str(">\n      <identities>\n");
            for identity in &v.identities {
                xml.push_str("        <identity");
                for (name, value) in identity.claims() {
                    let _ = write!(xml, " {name}=\"{}\"", super::render::escape(&value));
                }
                xml.push_str(" />\n");
            }
            xml.push_str("      </identities>\n    </validate-client-certificate>\n");
        }
    }
    if let Some(f) = forward {
        xml.push_str("    <forward-client-certificate");
        for (name, value) in [("thumbprint-header", &f.thumbprint_header), ("subject-header", &f.subject_header)] {
            if let Some(value) = value {
                let _ = write!(xml, " {name}=\"{}\"", super::render::escape(value));
            }
        }
        xml.push_str(" />\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, parse, render};

    fn everything() -> Policy {
        Policy {
            client_certificate: Some(ClientCertificateValidation {
                validate_revocation: false,
                ignore_error: true,
                identities: vec![
                    CertificateIdentity {
                        thumbprint: Some(Thumbprint::parse(&"AB".repeat(20)).unwrap()),
                        serial_number: Some("1A2B".into()),
                        common_name: Some("orders & co".into()),
                        subject: Some("CN=orders, O=\"Example, Inc.\"".into()),
                        dns_name: Some("orders.example.com".into()),
                        issuer_subject: Some("CN=Partners CA".into()),
                        issuer_thumbprint: Some(Thumbprint::parse(&"CD".repeat(20)).unwrap()),
                        issuer_certificate_id: None,
                    },
                    CertificateIdentity { issuer_certificate_id: Some("partners-ca".into()), ..Default::default() },
                ],
                ..ClientCertificateValidation::default()
            }),
            forward_client_certificate: Some(ForwardClientCertificate {
                thumbprint_header: Some("x-client-thumbprint".into()),
                subject_header: Some("x-client-subject".into()),
            }),
            ..Policy::default()
        }
    }

    #[test]
    fn render_then_parse_is_identity() {
        let policy = everything();
        let xml = render(&policy, true);
        assert_eq!(parse(&xml).unwrap(), policy, "{xml}");
        assert!(xml.contains("validate-revocation=\"false\" validate-trust=\"true\""), "{xml}");
        let plain = Policy {
            client_certificate: Some(ClientCertificateValidation::default()),
            forward_client_certificate: Some(ForwardClientCertificate {
                subject_header: Some("x-subject".into()),
                ..Default::default()
            }),
            ..Policy::default()
        };
        assert_eq!(parse(&render(&plain, false)).unwrap(), plain);
    }
}
