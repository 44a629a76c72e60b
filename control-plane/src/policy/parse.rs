//! Reading a policy document: strict, and every refusal names the element, line and column.

use roxmltree::Node;

use super::value::{Named, check_header_name, check_header_value, check_host_header, check_literal};
use super::{BasicAuth, Binding, ExistsAction, InboundElement, MAX_POLICY_BYTES, Policy, PolicyError, SetHeader};
use gatehouse_shared::Thumbprint;

mod backend;
mod client_certificate;

use backend::backend;

/// Parses a policy document.
pub fn parse(xml: &str) -> Result<Policy, PolicyError> {
    parse_limited(xml, MAX_POLICY_BYTES)
}

/// As [`parse`], refusing documents larger than `max_bytes`.
pub fn parse_limited(xml: &str, max_bytes: usize) -> Result<Policy, PolicyError> {
    if xml.len() > max_bytes {
        return Err(PolicyError::TooLarge { limit: max_bytes });
    }
    let doc = document(xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "policies" || root.tag_name().namespace().is_some() {
        return Err(invalid(root, "the root element must be <policies>"));
    }
    no_attributes(root)?;
    let mut policy = Policy::default();
    let mut seen_sections = Vec::new();
    for section in elements(root)? {
        let name = section.tag_name().name();
        if seen_sections.contains(&name) {
            return Err(invalid(section, "this section appears twice"));
        }
        seen_sections.push(name);
        no_attributes(section)?;
        match name {
            "inbound" => inbound(section, &mut policy)?,
            "backend" => policy.backend_timeout = backend(section)?,
            "outbound" | "on-error" => {
                for element in elements(section)? {
                    match element.tag_name().name() {
                        "base" => base(element)?,
                        _ => return Err(unknown_in(element, name, "<base />")),
                    }
                }
            }
            _ => {
                return Err(invalid(
                    section,
                    "unknown section; expected <inbound>, <backend>, <outbound> or <on-error>",
                ));
            }
        }
    }
    Ok(policy)
}

/// A refusal of `element` of a document [`parse`] accepted, for a reason found after parsing,
/// with the element's line and column. Should `xml` hold no such element (not the document that
/// was parsed), the refusal points at line 1, column 1.
pub fn refusal_at(xml: &str, element: InboundElement, message: impl Into<String>) -> PolicyError {
    let message = message.into();
    let (name, n) = match element {
        InboundElement::AuthenticationCertificate => ("authentication-certificate", 0),
        InboundElement::AuthenticationBasic => ("authentication-basic", 0),
        InboundElement::SetHeader(n) => ("set-header", n),
        InboundElement::Identity(n) => ("identity", n),
    };
    let doc = roxmltree::Document::parse(xml).ok();
    let found = doc.as_ref().and_then(|doc| {
        let inbound = doc.root_element().children().filter(|section| section.has_tag_name("inbound"));
        let mut candidates: Box<dyn Iterator<Item = Node<'_, '_>>> = Box::new(inbound.flat_map(|i| i.children()));
        if let InboundElement::Identity(_) = element {
            candidates = Box::new(
                candidates
                    .filter(|c| c.has_tag_name("validate-client-certificate"))
                    .flat_map(|v| v.children())
                    .filter(|c| c.has_tag_name("identities"))
                    .flat_map(|i| i.children()),
            );
        }
        candidates.filter(|candidate| candidate.has_tag_name(name)).nth(n)
    });
    match found {
        Some(node) => invalid(node, message),
        None => PolicyError::Invalid { element: name.into(), line: 1, column: 1, message },
    }
}

fn document(xml: &str) -> Result<roxmltree::Document<'_>, PolicyError> {
    // DTDs stay disallowed (roxmltree's default): no entity expansion tricks.
    roxmltree::Document::parse(xml).map_err(|error| {
        let pos = error.pos();
        let mut message = error.to_string();
        // An expression's C# (`<`, `&&`, quotes) is the usual reason an APIM policy is not XML.
        if xml.contains("@(") || xml.contains("@{") {
            message.push_str(
                "; the document holds '@(' or '@{': policy expressions are not supported, give literal values",
            );
        }
        PolicyError::Malformed { line: pos.row, column: pos.col, message }
    })
}

// === sections ===

fn inbound(section: Node<'_, '_>, policy: &mut Policy) -> Result<(), PolicyError> {
    let mut forward = None;
    for element in elements(section)? {
        match element.tag_name().name() {
            "base" => base(element)?,
            "authentication-certificate" => {
                if policy.certificate != Binding::None {
                    return Err(invalid(element, "only one authentication-certificate is allowed"));
                }
                policy.certificate = certificate(element)?;
            }
            "authentication-basic" => {
                if policy.basic.is_some() {
                    return Err(invalid(element, "only one authentication-basic is allowed"));
                }
                policy.basic = Some(basic(element)?);
            }
            "set-header" => policy.headers.push(set_header(element)?),
            "validate-client-certificate" => {
                if policy.client_certificate.is_some() {
                    return Err(invalid(element, "only one validate-client-certificate is allowed"));
                }
                policy.client_certificate = Some(client_certificate::validate_client_certificate(element)?);
            }
            "forward-client-certificate" => {
                if forward.is_some() {
                    return Err(invalid(element, "only one forward-client-certificate is allowed"));
                }
                policy.forward_client_certificate = Some(client_certificate::forward_client_certificate(element)?);
                forward = Some(element);
            }
            _ => {
                let supported = "<base />, <authentication-certificate>, <authentication-basic>, <set-header>, \
                                 <validate-client-certificate> and <forward-client-certificate>";
                return Err(unknown_in(element, "inbound", supported));
            }
        }
    }
    match forward {
        Some(element) => client_certificate::check_forward(element, policy),
        None => Ok(()),
    }
}

// === elements ===

fn base(element: Node<'_, '_>) -> Result<(), PolicyError> {
    no_attributes(element)?;
    if elements(element)?.next().is_some() {
        return Err(invalid(element, "<base /> has no content"));
    }
    Ok(())
}

fn certificate(element: Node<'_, '_>) -> Result<Binding, PolicyError> {
    let [thumbprint, id] = attributes(element, ["thumbprint", "certificate-id"], &[], &[])?;
    no_content(element)?;
    match (thumbprint, id) {
        (Some(t), None) => Ok(Binding::Thumbprint(Thumbprint::parse(t).map_err(|e| invalid(element, e.to_string()))?)),
        (None, Some(id)) if !id.is_empty() => Ok(Binding::CertificateId(id.to_string())),
        _ => Err(invalid(element, "give exactly one of thumbprint=\"...\" or certificate-id=\"...\"")),
    }
}

fn basic(element: Node<'_, '_>) -> Result<BasicAuth, PolicyError> {
    let [username, password] =
        attributes(element, ["username", "password"], &["username", "password"], &["username", "password"])?;
    no_content(element)?;
    let (username, password) = (username.unwrap_or_default(), password.unwrap_or_default());
    if username.contains(':') {
        return Err(invalid(element, "a Basic username cannot contain ':'"));
    }
    Ok(BasicAuth { username: username.into(), password: password.into() })
}

fn set_header(element: Node<'_, '_>) -> Result<SetHeader, PolicyError> {
    let [name, action, secret] = attributes(element, ["name", "exists-action", "secret"], &["name"], &[])?;
    let name = name.unwrap_or_default();
    check_header_name(name).map_err(|m| invalid(element, m))?;
    let action = match action.unwrap_or("override") {
        "override" => ExistsAction::Override,
        "skip" => ExistsAction::Skip,
        "append" => ExistsAction::Append,
        "delete" => ExistsAction::Delete,
        other => {
            let message = format!("exists-action=\"{other}\" is not one of override, skip, append, delete");
            return Err(invalid(element, message));
        }
    };
    let secret = match secret.unwrap_or("false") {
        "true" => true,
        "false" => false,
        other => return Err(invalid(element, format!("secret=\"{other}\" must be true or false"))),
    };
    let mut values = Vec::new();
    for value in elements(element)? {
        if value.tag_name().name() != "value" {
            return Err(invalid(value, "unknown element in <set-header>; expected <value>"));
        }
        no_attributes(value)?;
        values.push(text(value)?);
    }
    match (action, values.is_empty()) {
        (ExistsAction::Delete, false) => return Err(invalid(element, "exists-action=\"delete\" takes no <value>")),
        (ExistsAction::Delete, true) => {}
        (_, true) => return Err(invalid(element, "give at least one <value>")),
        _ => {}
    }
    let name = name.to_ascii_lowercase();
    if name == "host" {
        check_host_header(action, secret, &values).map_err(|m| invalid(element, m))?;
    }
    Ok(SetHeader { name, action, values, secret })
}

// === helpers ===

fn invalid(node: Node<'_, '_>, message: impl Into<String>) -> PolicyError {
    let pos = node.document().text_pos_at(node.range().start);
    let element = node.tag_name().name().to_string();
    PolicyError::Invalid { element, line: pos.row, column: pos.col, message: message.into() }
}

fn unknown_in(element: Node<'_, '_>, section: &str, supported: &str) -> PolicyError {
    invalid(element, format!("unknown element in <{section}>; supported here: {supported}"))
}

/// Child elements; text other than white space, or an element in a namespace, is an error.
fn elements<'a, 'input>(node: Node<'a, 'input>) -> Result<impl Iterator<Item = Node<'a, 'input>>, PolicyError> {
    if node.children().any(|n| n.is_text() && !n.text().unwrap_or("").trim().is_empty()) {
        return Err(invalid(node, "unexpected text; only elements belong here"));
    }
    if let Some(foreign) = node.children().find(|n| n.is_element() && n.tag_name().namespace().is_some()) {
        return Err(invalid(foreign, "elements in an XML namespace are not policy elements"));
    }
    Ok(node.children().filter(|n| n.is_element()))
}

/// The text of a `<value>`: literal, and a valid header value. Comments inside are not part of it.
fn text(value: Node<'_, '_>) -> Result<String, PolicyError> {
    if value.children().any(|n| n.is_element()) {
        return Err(invalid(value, "<value> holds text only (policy expressions are not supported)"));
    }
    let text: String = value.children().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
    check_literal(&text, Named::Read).map_err(|m| invalid(value, m))?;
    check_header_value(&text).map_err(|m| invalid(value, m))?;
    Ok(text)
}

fn no_attributes(node: Node<'_, '_>) -> Result<(), PolicyError> {
    match node.attributes().next() {
        Some(attr) => Err(invalid(node, format!("unknown attribute '{}'", attr.name()))),
        None => Ok(()),
    }
}

fn no_content(node: Node<'_, '_>) -> Result<(), PolicyError> {
    if node.children().any(|n| n.is_element() || (n.is_text() && n.text().is_some_and(|t| !t.trim().is_empty()))) {
        return Err(invalid(node, "this element has no content"));
    }
    Ok(())
}

/// The values of `known` attributes in order, each a literal (or, for those in `named`, a
/// literal with named value references); unknown attributes and missing `required` ones are
/// errors.
fn attributes<'a, const N: usize>(
    node: Node<'a, '_>,
    known: [&str; N],
    required: &[&str],
    named: &[&str],
) -> Result<[Option<&'a str>; N], PolicyError> {
    for attr in node.attributes() {
        if attr.namespace().is_some() || !known.contains(&attr.name()) {
            return Err(invalid(node, format!("unknown attribute '{}'; known: {}", attr.name(), known.join(", "))));
        }
        let reads = if named.contains(&attr.name()) { Named::Read } else { Named::Refused };
        check_literal(attr.value(), reads).map_err(|m| invalid(node, format!("attribute '{}': {m}", attr.name())))?;
    }
    for name in required {
        if node.attribute(*name).is_none() {
            return Err(invalid(node, format!("attribute '{name}' is required")));
        }
    }
    Ok(known.map(|name| node.attribute(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"<policies>
  <inbound>
    <base />
    <authentication-certificate thumbprint="8d292672a59e787d257b77e4df2d9d6fd261af68" />
    <authentication-basic username="svc" password="p&amp;ss" />
    <set-header name="X-Api-Key" exists-action="override" secret="true"><value>k1</value></set-header>
    <set-header name="X-Trace" exists-action="append"><value>a</value><value>b</value></set-header>
    <set-header name="X-Drop" exists-action="delete" />
    <set-header name="Host" exists-action="override"><value>api.example.com:8443</value></set-header>
  </inbound>
  <backend><forward-request timeout="30" /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

    fn refusal(xml: &str) -> String {
        parse(xml).unwrap_err().to_string()
    }

    fn inbound(element: &str) -> String {
        format!("<policies>\n  <inbound>\n    {element}\n  </inbound>\n</policies>")
    }

    #[test]
    fn parses_every_supported_element() {
        let policy = parse(FULL).unwrap();
        assert_eq!(
            policy.certificate,
            Binding::Thumbprint(Thumbprint::parse("8D292672A59E787D257B77E4DF2D9D6FD261AF68").unwrap())
        );
        assert_eq!(policy.basic, Some(BasicAuth { username: "svc".into(), password: "p&ss".into() }));
        assert_eq!(policy.headers.len(), 4);
        assert_eq!(policy.headers[0].name, "x-api-key");
        assert!(policy.headers[0].secret);
        assert_eq!(policy.headers[1].values, ["a", "b"]);
        assert_eq!(policy.headers[2].action, ExistsAction::Delete);
        assert_eq!(
            (policy.headers[3].name.as_str(), policy.headers[3].values.as_slice()),
            ("host", &["api.example.com:8443".to_string()][..])
        );
        assert_eq!(policy.backend_timeout, Some(30));
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("<policies><inbound>", "malformed at line 1"),
            (
                "<policies>\n  <inbound>\n    <rate-limit calls=\"1\" />\n  </inbound>\n</policies>",
                "line 3, column 5, <rate-limit>",
            ),
            (&inbound("<authentication-certificate thumbprint=\"AB\" />"), "not a certificate thumbprint"),
            (
                &inbound("<authentication-certificate id=\"x\" />"),
                "line 3, column 5, <authentication-certificate>: unknown attribute 'id'",
            ),
            (&inbound("<set-header name=\"Connection\"><value>x</value></set-header>"), "cannot be set"),
            (&inbound("<set-header name=\"a\" exists-action=\"replace\"><value>x</value></set-header>"), "replace"),
            (&inbound("<x:set-header xmlns:x=\"urn:x\" name=\"a\"><value>x</value></x:set-header>"), "namespace"),
            ("<!DOCTYPE x [<!ENTITY a \"b\">]><policies/>", "malformed"),
            ("<policy/>", "root element must be <policies>"),
        ];
        for (xml, expected) in cases {
            let error = refusal(xml);
            assert!(error.contains(expected), "{xml}\n=> {error}");
        }
    }

    #[test]
    fn expressions_are_refused_everywhere_and_named_values_outside_credentials_and_header_values() {
        let expression = "policy expressions are not supported";
        let named = "named values are read only in";
        let cases = [
            ("<authentication-certificate thumbprint=\"@(context.Variables[&quot;t&quot;])\" />", expression),
            ("<authentication-certificate certificate-id=\"{{client-cert}}\" />", named),
            ("<authentication-basic username=\"u\" password=\" @(1)\" />", expression),
            ("<authentication-basic username=\"{{a b}}\" password=\"p\" />", "not a named value reference"),
            ("<set-header name=\"{{header}}\"><value>x</value></set-header>", named),
            ("<set-header name=\"a\" exists-action=\"@(x)\"><value>x</value></set-header>", expression),
            ("<set-header name=\"a\" secret=\"{{flag}}\"><value>x</value></set-header>", named),
            ("<set-header name=\"a\"><value>\n      @{ return 1; }</value></set-header>", expression),
            ("<set-header name=\"a\"><value><![CDATA[@(x)]]></value></set-header>", expression),
            ("<set-header name=\"a\"><value>&#64;(x)</value></set-header>", expression),
            ("<set-header name=\"Host\"><value>{{host}}</value></set-header>", "not host or host:port"),
        ];
        for (element, expected) in cases {
            let xml = inbound(element);
            let error = refusal(&xml);
            assert!(error.contains(expected) && error.contains("line 3"), "{xml}\n=> {error}");
        }
        let error = refusal("<policies><backend><forward-request timeout=\"{{t}}\" /></backend></policies>");
        assert!(error.contains("attribute 'timeout': named values"), "{error}");
        // Where APIM reads them, references are kept as written.
        let policy = parse(&inbound(
            "<authentication-basic username=\"{{user}}\" password=\"{{pw}}\" />\
             <set-header name=\"a\"><value>Bearer {{token}}</value></set-header>",
        ))
        .unwrap();
        assert_eq!(policy.basic.unwrap().password, "{{pw}}");
        assert_eq!(policy.headers[0].values, ["Bearer {{token}}"]);
    }

    #[test]
    fn malformed_documents_with_expressions_get_a_hint() {
        let error = refusal(&inbound("<set-header name=\"a\"><value>@(1 < 2)</value></set-header>"));
        assert!(
            error.contains("malformed at line 3") && error.contains("policy expressions are not supported"),
            "{error}"
        );
        assert!(!refusal("<policies><inbound>").contains("expressions"));
    }

    #[test]
    fn host_is_accepted_only_as_an_override_of_one_host() {
        let host = |attrs: &str, value: &str| {
            inbound(&format!("<set-header name=\"Host\" {attrs}><value>{value}</value></set-header>"))
        };
        let policy = parse(&host("exists-action=\"override\"", "api.example.com")).unwrap();
        assert_eq!(policy.headers[0].values, ["api.example.com"]);
        for (attrs, value, expected) in [
            ("exists-action=\"append\"", "a.example", "only exists-action=\"override\""),
            ("exists-action=\"skip\"", "a.example", "only exists-action=\"override\""),
            ("", "a.example/path", "not host or host:port"),
            ("", "user@a.example", "not host or host:port"),
            ("", "a example", "not host or host:port"),
            ("secret=\"true\"", "a.example", "not a credential"),
        ] {
            let error = refusal(&host(attrs, value));
            assert!(
                error.contains(expected) && error.contains("line 3, column 5, <set-header>"),
                "{attrs} {value}\n=> {error}"
            );
        }
        let error = refusal(&inbound("<set-header name=\"host\" exists-action=\"delete\" />"));
        assert!(error.contains("exists-action=\"delete\" is not supported for Host"), "{error}");
    }

    #[test]
    fn comments_are_not_part_of_a_value() {
        let policy = parse(&inbound("<set-header name=\"a\"><value>x<!-- not this -->y</value></set-header>")).unwrap();
        assert_eq!(policy.headers[0].values, ["xy"]);
    }

    #[test]
    fn refusals_found_later_say_where() {
        let xml = inbound(
            &[
                "<authentication-certificate certificate-id=\"missing\" />",
                "<set-header name=\"a\" exists-action=\"delete\" />",
                "<set-header name=\"b\" exists-action=\"delete\" />",
            ]
            .join("\n    "),
        );
        let error = refusal_at(&xml, InboundElement::AuthenticationCertificate, "certificate 'missing' not found");
        assert_eq!(
            error.to_string(),
            "policy XML, line 3, column 5, <authentication-certificate>: certificate 'missing' not found"
        );
        let error = refusal_at(&xml, InboundElement::SetHeader(1), "no stored secret").to_string();
        assert!(error.starts_with("policy XML, line 5, column 5, <set-header>"), "{error}");
        let error = refusal_at(&xml, InboundElement::AuthenticationBasic, "no stored password").to_string();
        assert!(error.starts_with("policy XML, line 1, column 1, <authentication-basic>"), "{error}");
    }
}
