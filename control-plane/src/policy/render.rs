//! Writing a policy back as the document [`super::parse`] reads to the same [`Policy`].

use std::fmt::Write as _;

use super::{Binding, MASK, Policy};

/// Renders a policy document; with `mask`, secrets (the Basic password, `secret="true"` header
/// values) are shown as [`MASK`].
pub fn render(policy: &Policy, mask: bool) -> String {
    let mut xml = String::from("<policies>\n  <inbound>\n    <base />\n");
    let (validation, forward) = (policy.client_certificate.as_ref(), policy.forward_client_certificate.as_ref());
    super::client_certificate::render(validation, forward, &mut xml);
    match &policy.certificate {
        Binding::None => {}
        Binding::CertificateId(id) => {
            let _ = writeln!(xml, "    <authentication-certificate certificate-id=\"{}\" />", escape(id));
        }
        Binding::Thumbprint(t) => {
            let _ = writeln!(xml, "    <authentication-certificate thumbprint=\"{t}\" />");
        }
    }
    if let Some(basic) = &policy.basic {
        // A lone named value reference is no secret: the secret is in the named value.
        let reference = super::named_values::is_reference(&basic.password);
        let password = if mask && !reference { MASK } else { basic.password.as_str() };
        let _ = writeln!(
            xml,
            "    <authentication-basic username=\"{}\" password=\"{}\" />",
            escape(&basic.username),
            escape(password)
        );
    }
    for header in &policy.headers {
        let secret = if header.secret { " secret=\"true\"" } else { "" };
        let (name, action) = (escape(&header.name), header.action.as_str());
        if header.values.is_empty() {
            let _ = writeln!(xml, "    <set-header name=\"{name}\" exists-action=\"{action}\"{secret} />");
            continue;
        }
        let _ = writeln!(xml, "    <set-header name=\"{name}\" exists-action=\"{action}\"{secret}>");
        for value in &header.values {
            let reference = super::named_values::is_reference(value);
            let value = if mask && header.secret && !reference { MASK } else { value.as_str() };
            let _ = writeln!(xml, "      <value>{}</value>", escape(value));
        }
        xml.push_str("    </set-header>\n");
    }
    xml.push_str("  </inbound>\n  <backend>\n");
    match policy.backend_timeout {
        Some(seconds) => {
            let _ = writeln!(xml, "    <forward-request timeout=\"{seconds}\" />");
        }
        None => xml.push_str("    <base />\n"),
    }
    xml.push_str("  </backend>\n  <outbound>\n    <base />\n  </outbound>\n");
    xml.push_str("  <on-error>\n    <base />\n  </on-error>\n</policies>\n");
    xml
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{BasicAuth, ExistsAction, SetHeader, parse};

    fn everything() -> Policy {
        Policy {
            certificate: Binding::CertificateId("orders-client".into()),
            basic: Some(BasicAuth { username: "svc".into(), password: "p&ss\"<>'".into() }),
            headers: vec![
                SetHeader {
                    name: "x-api-key".into(),
                    action: ExistsAction::Override,
                    values: vec!["k1".into(), "k2".into()],
                    secret: true,
                },
                SetHeader {
                    name: "host".into(),
                    action: ExistsAction::Override,
                    values: vec!["a.example:8443".into()],
                    secret: false,
                },
                SetHeader { name: "x-drop".into(), action: ExistsAction::Delete, values: vec![], secret: false },
            ],
            backend_timeout: Some(45),
            ..Policy::default()
        }
    }

    #[test]
    fn render_then_parse_is_identity() {
        let policy = everything();
        assert_eq!(parse(&render(&policy, false)).unwrap(), policy);
        let without_timeout = Policy { backend_timeout: None, ..policy };
        assert_eq!(parse(&render(&without_timeout, false)).unwrap(), without_timeout);
    }

    #[test]
    fn the_backend_timeout_is_written_back() {
        let xml = render(&everything(), true);
        assert!(xml.contains("<backend>\n    <forward-request timeout=\"45\" />\n  </backend>"), "{xml}");
        assert!(render(&Policy::default(), true).contains("<backend>\n    <base />\n  </backend>"));
    }

    #[test]
    fn masked_rendering_shows_no_secret() {
        let xml = render(&everything(), true);
        assert!(!xml.contains("p&amp;ss") && !xml.contains("k1") && !xml.contains("k2"), "{xml}");
        assert_eq!(xml.matches(MASK).count(), 3, "{xml}");
        assert!(xml.contains("a.example:8443"), "a Host is not a secret: {xml}");
    }
}
