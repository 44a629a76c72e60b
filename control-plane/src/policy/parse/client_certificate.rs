//! `<validate-client-certificate>` and `<forward-client-certificate>` in `<inbound>`: every
//! claim is read the way the data plane will compare it, so a claim it could not compare (a
//! subject that is not a distinguished name, a serial number that is not hex) is refused here,
//! at its element, instead of never matching.

use gatehouse_shared::Thumbprint;
use gatehouse_shared::certificate::claims::{DistinguishedName, normalize_serial};
use roxmltree::Node;

use super::{attributes, elements, invalid, no_attributes, no_content};
use crate::policy::value::check_header_name;
use crate::policy::{
    CertificateIdentity, ClientCertificateValidation, ForwardClientCertificate, MAX_IDENTITIES, Policy, PolicyError,
};

/// Headers the gateway sets itself (or that carry credentials): a certificate's thumbprint or
/// subject cannot take their place.
const GATEWAY_HEADERS: [&str; 6] =
    ["host", "authorization", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"];

/// `<validate-client-certificate>`, with APIM's defaults for the attributes left out.
pub(super) fn validate_client_certificate(element: Node<'_, '_>) -> Result<ClientCertificateValidation, PolicyError> {
    const FLAGS: [&str; 5] =
        ["validate-revocation", "validate-trust", "validate-not-before", "validate-not-after", "ignore-error"];
    let values = attributes(element, FLAGS, &[], &[])?;
    let defaults = ClientCertificateValidation::default();
    let mut flags = [
        defaults.validate_revocation,
        defaults.validate_trust,
        defaults.validate_not_before,
        defaults.validate_not_after,
        defaults.ignore_error,
    ];
    for ((name, value), flag) in FLAGS.iter().zip(values).zip(flags.iter_mut()) {
        if let Some(value) = value {
            *flag = boolean(element, name, value)?;
        }
    }
    let [validate_revocation, validate_trust, validate_not_before, validate_not_after, ignore_error] = flags;
    let mut identities = Vec::new();
    let mut listed = false;
    for child in elements(element)? {
        match child.tag_name().name() {
            "identities" if listed => return Err(invalid(child, "only one <identities> is allowed")),
            "identities" => {
                listed = true;
                no_attributes(child)?;
                for entry in elements(child)? {
                    if entry.tag_name().name() != "identity" {
                        return Err(invalid(entry, "unknown element in <identities>; expected <identity>"));
                    }
                    if identities.len() == MAX_IDENTITIES {
                        return Err(invalid(entry, format!("at most {MAX_IDENTITIES} identities are allowed")));
                    }
                    identities.push(identity(entry)?);
                }
            }
            _ => {
                return Err(invalid(child, "unknown element in <validate-client-certificate>; expected <identities>"));
            }
        }
    }
    Ok(ClientCertificateValidation {
        validate_revocation,
        validate_trust,
        validate_not_before,
        validate_not_after,
        ignore_error,
        identities,
    })
}

fn identity(element: Node<'_, '_>) -> Result<CertificateIdentity, PolicyError> {
    const CLAIMS: [&str; 8] = [
        "thumbprint",
        "serial-number",
        "common-name",
        "subject",
        "dns-name",
        "issuer-subject",
        "issuer-thumbprint",
        "issuer-certificate-id",
    ];
    let values = attributes(element, CLAIMS, &[], &[])?;
    no_content(element)?;
    if values.iter().all(Option::is_none) {
        return Err(invalid(
            element,
            format!(
                "an <identity> needs at least one claim ({}); one without matches every certificate",
                CLAIMS.join(", ")
            ),
        ));
    }
    if let Some((name, _)) = CLAIMS.iter().zip(values).find(|(_, v)| v.is_some_and(|v| v.trim().is_empty())) {
        return Err(invalid(element, format!("attribute '{name}' is empty; give a value or leave the attribute out")));
    }
    let [thumbprint, serial_number, common_name, subject, dns_name, issuer_subject, issuer_thumbprint, issuer_id] =
        values;
    if issuer_id.is_some() && (issuer_subject.is_some() || issuer_thumbprint.is_some()) {
        return Err(invalid(
            element,
            "issuer-certificate-id cannot be combined with issuer-subject or issuer-thumbprint (as in APIM)",
        ));
    }
    let thumbprint_of = |text: &str| Thumbprint::parse(text).map_err(|e| invalid(element, e.to_string()));
    let name = |attribute: &str, text: &str| {
        DistinguishedName::parse(text)
            .map(|_| text.to_string())
            .map_err(|e| invalid(element, format!("{attribute}: {e}")))
    };
    if let Some(dns) = dns_name
        && (dns.chars().any(|c| c.is_whitespace() || c.is_control()) || dns.contains('/'))
    {
        return Err(invalid(element, format!("dns-name '{dns}' is not a DNS name")));
    }
    Ok(CertificateIdentity {
        thumbprint: thumbprint.map(thumbprint_of).transpose()?,
        serial_number: serial_number
            .map(|s| normalize_serial(s).map_err(|e| invalid(element, e.to_string())))
            .transpose()?,
        common_name: common_name.map(str::to_string),
        subject: subject.map(|s| name("subject", s)).transpose()?,
        dns_name: dns_name.map(str::to_string),
        issuer_subject: issuer_subject.map(|s| name("issuer-subject", s)).transpose()?,
        issuer_thumbprint: issuer_thumbprint.map(thumbprint_of).transpose()?,
        issuer_certificate_id: issuer_id.map(str::to_string),
    })
}

/// `<forward-client-certificate>`: the header names, lowercase.
pub(super) fn forward_client_certificate(element: Node<'_, '_>) -> Result<ForwardClientCertificate, PolicyError> {
    let [thumbprint, subject] = attributes(element, ["thumbprint-header", "subject-header"], &[], &[])?;
    no_content(element)?;
    if thumbprint.is_none() && subject.is_none() {
        return Err(invalid(element, "give thumbprint-header=\"...\", subject-header=\"...\" or both"));
    }
    let header = |name: &str| {
        check_header_name(name).map_err(|m| invalid(element, m))?;
        let name = name.to_ascii_lowercase();
        if GATEWAY_HEADERS.contains(&name.as_str()) {
            return Err(invalid(element, format!("the header '{name}' is the gateway's own; name another header")));
        }
        Ok(name)
    };
    let forward = ForwardClientCertificate {
        thumbprint_header: thumbprint.map(header).transpose()?,
        subject_header: subject.map(header).transpose()?,
    };
    if forward.thumbprint_header.is_some() && forward.thumbprint_header == forward.subject_header {
        return Err(invalid(element, "thumbprint-header and subject-header name the same header"));
    }
    Ok(forward)
}

/// Once the whole `<inbound>` is read: `<forward-client-certificate>` (at `element`) passes on
/// only a validated certificate, so it needs `<validate-client-certificate>`; and a header it
/// sets cannot also be a `<set-header>`'s (one of them would silently lose).
pub(super) fn check_forward(element: Node<'_, '_>, policy: &Policy) -> Result<(), PolicyError> {
    if policy.client_certificate.is_none() {
        return Err(invalid(
            element,
            "forward-client-certificate passes on a validated certificate only; add <validate-client-certificate> to \
             <inbound>",
        ));
    }
    let Some(forward) = &policy.forward_client_certificate else { return Ok(()) };
    for name in [&forward.thumbprint_header, &forward.subject_header].into_iter().flatten() {
        if policy.headers.iter().any(|h| &h.name == name) {
            return Err(invalid(element, format!("a <set-header> sets '{name}' too; the certificate's header cannot")));
        }
    }
    Ok(())
}

/// APIM's booleans: `true` or `false`, in any case.
fn boolean(element: Node<'_, '_>, name: &str, value: &str) -> Result<bool, PolicyError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(element, format!("{name}=\"{value}\" must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{
        CertificateIdentity, ClientCertificateValidation, ForwardClientCertificate, InboundElement, parse, refusal_at,
    };
    use gatehouse_shared::Thumbprint;

    fn inbound(elements: &str) -> String {
        format!("<policies>\n  <inbound>\n    {elements}\n  </inbound>\n</policies>")
    }

    fn validation(xml: &str) -> ClientCertificateValidation {
        parse(&inbound(xml)).unwrap().client_certificate.unwrap()
    }

    fn refusal(elements: &str) -> String {
        parse(&inbound(elements)).unwrap_err().to_string()
    }

    #[test]
    fn attributes_left_out_take_apims_defaults() {
        assert_eq!(validation("<validate-client-certificate />"), ClientCertificateValidation::default());
        let v = validation(
            "<validate-client-certificate validate-revocation=\"false\" validate-trust=\"False\" \
             validate-not-before=\"FALSE\" validate-not-after=\"false\" ignore-error=\"true\"><identities /></validate-client-certificate>",
        );
        assert!(!v.validate_revocation && !v.validate_trust && !v.validate_not_before && !v.validate_not_after);
        assert!(v.ignore_error && v.identities.is_empty());
    }

    #[test]
    fn every_claim_is_read_as_the_data_plane_compares_it() {
        let v = validation(
            r#"<validate-client-certificate>
      <identities>
        <identity thumbprint="ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab" serial-number="00:1a:2b" />
        <identity common-name="orders" subject="CN=orders, O=Example" dns-name="orders.example.com" />
        <identity issuer-subject="CN=Partners CA" issuer-thumbprint="CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD" />
        <identity issuer-certificate-id="partners-ca" />
      </identities>
    </validate-client-certificate>"#,
        );
        assert_eq!(v.identities.len(), 4);
        assert_eq!(v.identities[0].thumbprint, Some(Thumbprint::parse(&"AB".repeat(20)).unwrap()));
        assert_eq!(v.identities[0].serial_number.as_deref(), Some("1A2B"));
        assert_eq!(v.identities[1].subject.as_deref(), Some("CN=orders, O=Example"));
        assert_eq!(v.identities[2].issuer_subject.as_deref(), Some("CN=Partners CA"));
        assert_eq!(
            v.identities[3],
            CertificateIdentity { issuer_certificate_id: Some("partners-ca".into()), ..Default::default() }
        );
    }

    #[test]
    fn refusals_say_where_and_why() {
        let vcc = |attrs: &str, inner: &str| {
            format!("<validate-client-certificate {attrs}>{inner}</validate-client-certificate>")
        };
        let identity = |attrs: &str| vcc("", &format!("<identities><identity {attrs} /></identities>"));
        let eleven = vcc("", &format!("<identities>{}</identities>", "<identity common-name=\"a\" />".repeat(11)));
        let cases = [
            (vcc("validate-trust=\"yes\"", ""), "validate-trust=\"yes\" must be true or false"),
            (vcc("validate-crl=\"true\"", ""), "unknown attribute 'validate-crl'"),
            (vcc("", "<identity common-name=\"a\" />"), "expected <identities>"),
            (vcc("", "<identities /><identities />"), "only one <identities>"),
            (vcc("", "<identities><id common-name=\"a\" /></identities>"), "expected <identity>"),
            (eleven, "at most 10 identities"),
            (identity(""), "needs at least one claim"),
            (identity("common-name=\" \""), "attribute 'common-name' is empty"),
            (identity("thumbprint=\"AB\""), "not a certificate thumbprint"),
            (identity("serial-number=\"xyz\""), "not a certificate serial number"),
            (identity("subject=\"Orders Client\""), "subject: 'Orders Client' is not a distinguished name"),
            (identity("issuer-subject=\"XX=1\""), "unknown attribute 'XX'"),
            (identity("dns-name=\"a b\""), "not a DNS name"),
            (identity("issuer-certificate-id=\"ca\" issuer-subject=\"CN=x\""), "cannot be combined"),
            (identity("common-name=\"{{cn}}\""), "named values are read only in"),
            (format!("{}{}", vcc("", ""), vcc("", "")), "only one validate-client-certificate"),
            ("<forward-client-certificate thumbprint-header=\"x-t\" />".into(), "add <validate-client-certificate>"),
        ];
        for (xml, says) in cases {
            let error = refusal(&xml);
            assert!(error.contains(says) && error.contains("line 3"), "{xml}\n=> {error}");
        }
    }

    #[test]
    fn forwarded_headers_are_named_lowercase_and_owned_by_nobody_else() {
        let vcc = "<validate-client-certificate />";
        let forward = |attrs: &str| inbound(&format!("{vcc}\n    <forward-client-certificate {attrs} />"));
        let policy =
            parse(&forward("thumbprint-header=\"X-Client-Thumbprint\" subject-header=\"X-Client-Subject\"")).unwrap();
        assert_eq!(
            policy.forward_client_certificate,
            Some(ForwardClientCertificate {
                thumbprint_header: Some("x-client-thumbprint".into()),
                subject_header: Some("x-client-subject".into()),
            })
        );
        for (attrs, says) in [
            ("", "give thumbprint-header"),
            ("thumbprint-header=\"a b\"", "not a valid header name"),
            ("subject-header=\"Host\"", "the gateway's own"),
            ("subject-header=\"X-Forwarded-For\"", "the gateway's own"),
            ("subject-header=\"Connection\"", "cannot be set"),
            ("thumbprint-header=\"x-a\" subject-header=\"X-A\"", "the same header"),
        ] {
            let error = parse(&forward(attrs)).unwrap_err().to_string();
            assert!(error.contains(says) && error.contains("line 4"), "{attrs}\n=> {error}");
        }
        let both = inbound(&format!(
            "{vcc}\n    <forward-client-certificate thumbprint-header=\"x-t\" />\n    \
             <set-header name=\"X-T\"><value>forged</value></set-header>"
        ));
        let error = parse(&both).unwrap_err().to_string();
        assert!(error.contains("line 4") && error.contains("a <set-header> sets 'x-t' too"), "{error}");
    }

    #[test]
    fn an_identity_refused_later_is_pointed_at() {
        let xml = inbound(
            "<validate-client-certificate>\n      <identities>\n        <identity common-name=\"a\" />\n        \
             <identity issuer-certificate-id=\"gone\" />\n      </identities>\n    </validate-client-certificate>",
        );
        parse(&xml).unwrap();
        let error = refusal_at(&xml, InboundElement::Identity(1), "CA certificate 'gone' not found").to_string();
        assert_eq!(error, "policy XML, line 6, column 9, <identity>: CA certificate 'gone' not found");
    }
}
