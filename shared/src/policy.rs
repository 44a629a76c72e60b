//! API policy XML in Azure API Management's dialect, limited to backend credentials:
//! `authentication-certificate`, `authentication-basic` and `set-header` in `<inbound>`.
//! Parsing is strict: an unknown element or attribute is an error that says where it is.

use std::fmt::Write as _;

use crate::Thumbprint;

/// How the gateway authenticates to an API's backend with a client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Binding {
    #[default]
    None,
    /// Follows rotation of the certificate stored under this id.
    CertificateId(String),
    /// Pins one exact certificate.
    Thumbprint(Thumbprint),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistsAction {
    /// Replace any value the client sent.
    Override,
    /// Keep the client's value if it sent one.
    Skip,
    /// Add to the client's values.
    Append,
    /// Remove the header.
    Delete,
}

impl ExistsAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Skip => "skip",
            Self::Append => "append",
            Self::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetHeader {
    pub name: String,
    pub action: ExistsAction,
    pub values: Vec<String>,
    /// Write-only: reads show the values masked.
    pub secret: bool,
}

/// The backend credentials of one API.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub certificate: Binding,
    pub basic: Option<BasicAuth>,
    pub headers: Vec<SetHeader>,
}

/// What reads show instead of a secret. Setting it back keeps the stored secret.
pub const MASK: &str = "********";

/// Largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy XML is malformed at line {line}, column {column}: {message}")]
    Malformed { line: u32, column: u32, message: String },
    #[error("policy XML, line {line}, column {column}, <{element}>: {message}")]
    Invalid { element: String, line: u32, column: u32, message: String },
    #[error("policy XML is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

// === parse ===

/// Parses a policy document.
pub fn parse(xml: &str) -> Result<Policy, PolicyError> {
    parse_limited(xml, MAX_POLICY_BYTES)
}

/// As [`parse`], refusing documents larger than `max_bytes`.
pub fn parse_limited(xml: &str, max_bytes: usize) -> Result<Policy, PolicyError> {
    if xml.len() > max_bytes {
        return Err(PolicyError::TooLarge { limit: max_bytes });
    }
    // DTDs stay disallowed (roxmltree's default): no entity expansion tricks.
    let doc = roxmltree::Document::parse(xml).map_err(|e| {
        let pos = e.pos();
        PolicyError::Malformed { line: pos.row, column: pos.col, message: e.to_string() }
    })?;
    let root = doc.root_element();
    let invalid = |node: roxmltree::Node<'_, '_>, message: String| {
        let pos = doc.text_pos_at(node.range().start);
        PolicyError::Invalid { element: node.tag_name().name().to_string(), line: pos.row, column: pos.col, message }
    };
    if root.tag_name().name() != "policies" || root.tag_name().namespace().is_some() {
        return Err(invalid(root, "the root element must be <policies>".into()));
    }
    no_attributes(root, &invalid)?;
    let mut policy = Policy::default();
    let mut seen_sections = Vec::new();
    for section in elements(root, &invalid)? {
        let name = section.tag_name().name();
        if !matches!(name, "inbound" | "backend" | "outbound" | "on-error") {
            return Err(invalid(
                section,
                "unknown section; expected <inbound>, <backend>, <outbound> or <on-error>".into(),
            ));
        }
        if seen_sections.contains(&name) {
            return Err(invalid(section, "this section appears twice".into()));
        }
        seen_sections.push(name);
        no_attributes(section, &invalid)?;
        for element in elements(section, &invalid)? {
            let element_name = element.tag_name().name();
            match (name, element_name) {
                (_, "base") => {
                    no_attributes(element, &invalid)?;
                    if elements(element, &invalid)?.next().is_some() {
                        return Err(invalid(element, "<base /> has no content".into()));
                    }
                }
                ("inbound", "authentication-certificate") => {
                    if policy.certificate != Binding::None {
                        return Err(invalid(element, "only one authentication-certificate is allowed".into()));
                    }
                    let attrs = attributes(element, &["thumbprint", "certificate-id"], &[], &invalid)?;
                    policy.certificate = match (attrs[0], attrs[1]) {
                        (Some(t), None) => {
                            Binding::Thumbprint(Thumbprint::parse(t).map_err(|e| invalid(element, e.to_string()))?)
                        }
                        (None, Some(id)) if !id.is_empty() => Binding::CertificateId(id.to_string()),
                        _ => {
                            return Err(invalid(
                                element,
                                "give exactly one of thumbprint=\"...\" or certificate-id=\"...\"".into(),
                            ));
                        }
                    };
                    no_content(element, &invalid)?;
                }
                ("inbound", "authentication-basic") => {
                    if policy.basic.is_some() {
                        return Err(invalid(element, "only one authentication-basic is allowed".into()));
                    }
                    let attrs = attributes(element, &["username", "password"], &["username", "password"], &invalid)?;
                    let (username, password) = (attrs[0].unwrap_or_default(), attrs[1].unwrap_or_default());
                    if username.contains(':') {
                        return Err(invalid(element, "a Basic username cannot contain ':'".into()));
                    }
                    policy.basic = Some(BasicAuth { username: username.into(), password: password.into() });
                    no_content(element, &invalid)?;
                }
                ("inbound", "set-header") => {
                    let attrs = attributes(element, &["name", "exists-action", "secret"], &["name"], &invalid)?;
                    let name = attrs[0].unwrap_or_default();
                    check_header_name(name).map_err(|m| invalid(element, m))?;
                    let action = match attrs[1].unwrap_or("override") {
                        "override" => ExistsAction::Override,
                        "skip" => ExistsAction::Skip,
                        "append" => ExistsAction::Append,
                        "delete" => ExistsAction::Delete,
                        other => {
                            return Err(invalid(
                                element,
                                format!("exists-action=\"{other}\" is not one of override, skip, append, delete"),
                            ));
                        }
                    };
                    let secret = match attrs[2].unwrap_or("false") {
                        "true" => true,
                        "false" => false,
                        other => return Err(invalid(element, format!("secret=\"{other}\" must be true or false"))),
                    };
                    let mut values = Vec::new();
                    for value in elements(element, &invalid)? {
                        if value.tag_name().name() != "value" {
                            return Err(invalid(value, "unknown element in <set-header>; expected <value>".into()));
                        }
                        no_attributes(value, &invalid)?;
                        if elements(value, &invalid)?.next().is_some() {
                            return Err(invalid(
                                value,
                                "<value> holds text only (policy expressions are not supported)".into(),
                            ));
                        }
                        let text: String = value.children().filter_map(|n| n.text()).collect();
                        if text.starts_with("@(") || text.starts_with("@{") {
                            return Err(invalid(
                                value,
                                "policy expressions are not supported; use a literal value".into(),
                            ));
                        }
                        check_header_value(&text).map_err(|m| invalid(value, m))?;
                        values.push(text);
                    }
                    match (action, values.is_empty()) {
                        (ExistsAction::Delete, false) => {
                            return Err(invalid(element, "exists-action=\"delete\" takes no <value>".into()));
                        }
                        (ExistsAction::Delete, true) => {}
                        (_, true) => return Err(invalid(element, "give at least one <value>".into())),
                        _ => {}
                    }
                    policy.headers.push(SetHeader { name: name.to_ascii_lowercase(), action, values, secret });
                }
                (section, _) => {
                    let supported = if section == "inbound" {
                        "<base />, <authentication-certificate>, <authentication-basic> and <set-header>"
                    } else {
                        "<base />"
                    };
                    return Err(invalid(
                        element,
                        format!("unknown element in <{section}>; supported here: {supported}"),
                    ));
                }
            }
        }
    }
    Ok(policy)
}

/// Child elements; text other than white space is an error.
fn elements<'a, 'input: 'a>(
    node: roxmltree::Node<'a, 'input>,
    invalid: &impl Fn(roxmltree::Node<'a, 'input>, String) -> PolicyError,
) -> Result<impl Iterator<Item = roxmltree::Node<'a, 'input>>, PolicyError> {
    if node.tag_name().name() != "value"
        && let Some(text) = node.children().find(|n| n.is_text() && !n.text().unwrap_or("").trim().is_empty())
    {
        let _ = text;
        return Err(invalid(node, "unexpected text; only elements belong here".into()));
    }
    Ok(node.children().filter(|n| n.is_element()))
}

fn no_attributes<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    invalid: &impl Fn(roxmltree::Node<'a, 'input>, String) -> PolicyError,
) -> Result<(), PolicyError> {
    match node.attributes().next() {
        Some(attr) => Err(invalid(node, format!("unknown attribute '{}'", attr.name()))),
        None => Ok(()),
    }
}

fn no_content<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    invalid: &impl Fn(roxmltree::Node<'a, 'input>, String) -> PolicyError,
) -> Result<(), PolicyError> {
    if node.children().any(|n| n.is_element() || n.text().is_some_and(|t| !t.trim().is_empty())) {
        return Err(invalid(node, "this element has no content".into()));
    }
    Ok(())
}

/// The values of `known` attributes in order; unknown attributes and missing `required` ones
/// are errors.
fn attributes<'a, 'input: 'a>(
    node: roxmltree::Node<'a, 'input>,
    known: &[&str],
    required: &[&str],
    invalid: &impl Fn(roxmltree::Node<'a, 'input>, String) -> PolicyError,
) -> Result<Vec<Option<&'a str>>, PolicyError> {
    for attr in node.attributes() {
        if attr.namespace().is_some() || !known.contains(&attr.name()) {
            return Err(invalid(node, format!("unknown attribute '{}'; known: {}", attr.name(), known.join(", "))));
        }
    }
    let values: Vec<Option<&str>> = known.iter().map(|name| node.attribute(*name)).collect();
    for name in required {
        if node.attribute(*name).is_none() {
            return Err(invalid(node, format!("attribute '{name}' is required")));
        }
    }
    Ok(values)
}

/// Header names the gateway owns or that describe the connection cannot be set by policy.
fn check_header_name(name: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{name}' is not a valid header name"));
    }
    let reserved = [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    if reserved.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("the header '{name}' cannot be set by policy"));
    }
    Ok(())
}

fn check_header_value(value: &str) -> Result<(), String> {
    http::HeaderValue::from_str(value)
        .map(|_| ())
        .map_err(|_| "the value is not a valid header value (control characters?)".to_string())
}

// === render ===

/// Renders a policy document; with `mask`, secrets are shown as [`MASK`].
pub fn render(policy: &Policy, mask: bool) -> String {
    let mut xml = String::from("<policies>\n  <inbound>\n    <base />\n");
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
        let password = if mask { MASK } else { basic.password.as_str() };
        let _ = writeln!(
            xml,
            "    <authentication-basic username=\"{}\" password=\"{}\" />",
            escape(&basic.username),
            escape(password)
        );
    }
    for header in &policy.headers {
        let secret = if header.secret { " secret=\"true\"" } else { "" };
        if header.values.is_empty() {
            let _ = writeln!(
                xml,
                "    <set-header name=\"{}\" exists-action=\"{}\"{secret} />",
                escape(&header.name),
                header.action.as_str()
            );
            continue;
        }
        let _ = writeln!(
            xml,
            "    <set-header name=\"{}\" exists-action=\"{}\"{secret}>",
            escape(&header.name),
            header.action.as_str()
        );
        for value in &header.values {
            let value = if mask && header.secret { MASK } else { value.as_str() };
            let _ = writeln!(xml, "      <value>{}</value>", escape(value));
        }
        xml.push_str("    </set-header>\n");
    }
    xml.push_str("  </inbound>\n  <backend>\n    <base />\n  </backend>\n  <outbound>\n    <base />\n  </outbound>\n  <on-error>\n    <base />\n  </on-error>\n</policies>\n");
    xml
}

fn escape(text: &str) -> String {
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

// === secrets ===

#[derive(Debug, thiserror::Error)]
pub enum UnmaskError {
    #[error("authentication-basic password is the mask '{MASK}' but no password is stored; give the real password")]
    NoStoredPassword,
    #[error("set-header '{0}' has the mask '{MASK}' as a value but no secret is stored for it; give the real value")]
    NoStoredHeader(String),
}

/// Replaces masked secrets in `incoming` with the ones stored in `current`, so that a policy
/// read (masked) and written back keeps its secrets.
pub fn unmask(mut incoming: Policy, current: &Policy) -> Result<Policy, UnmaskError> {
    if let Some(basic) = incoming.basic.as_mut()
        && basic.password == MASK
    {
        basic.password = current.basic.as_ref().map(|b| b.password.clone()).ok_or(UnmaskError::NoStoredPassword)?;
    }
    for header in incoming.headers.iter_mut() {
        for (i, value) in header.values.iter_mut().enumerate() {
            if value == MASK {
                *value = current
                    .headers
                    .iter()
                    .find(|h| h.name == header.name && h.secret)
                    .and_then(|h| h.values.get(i))
                    .cloned()
                    .ok_or_else(|| UnmaskError::NoStoredHeader(header.name.clone()))?;
            }
        }
    }
    Ok(incoming)
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
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

    #[test]
    fn parses_every_supported_element() {
        let policy = parse(FULL).unwrap();
        assert_eq!(
            policy.certificate,
            Binding::Thumbprint(Thumbprint::parse("8D292672A59E787D257B77E4DF2D9D6FD261AF68").unwrap())
        );
        assert_eq!(policy.basic, Some(BasicAuth { username: "svc".into(), password: "p&ss".into() }));
        assert_eq!(policy.headers.len(), 3);
        assert_eq!(policy.headers[0].name, "x-api-key");
        assert!(policy.headers[0].secret);
        assert_eq!(policy.headers[1].values, ["a", "b"]);
        assert_eq!(policy.headers[2].action, ExistsAction::Delete);
    }

    #[test]
    fn render_then_parse_is_identity_and_masked_round_trip_keeps_secrets() {
        let policy = parse(FULL).unwrap();
        assert_eq!(parse(&render(&policy, false)).unwrap(), policy);
        let masked = render(&policy, true);
        assert!(!masked.contains("p&amp;ss") && !masked.contains("k1"), "{masked}");
        assert_eq!(unmask(parse(&masked).unwrap(), &policy).unwrap(), policy);
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("<policies><inbound>", "malformed at line 1"),
            (
                "<policies>\n  <inbound>\n    <rate-limit calls=\"1\" />\n  </inbound>\n</policies>",
                "line 3, column 5, <rate-limit>",
            ),
            (
                "<policies><inbound><authentication-certificate thumbprint=\"AB\" /></inbound></policies>",
                "not a certificate thumbprint",
            ),
            (
                "<policies><inbound><authentication-certificate id=\"x\" /></inbound></policies>",
                "unknown attribute 'id'",
            ),
            (
                "<policies><inbound><set-header name=\"Host\"><value>x</value></set-header></inbound></policies>",
                "cannot be set",
            ),
            (
                "<policies><inbound><set-header name=\"a\" exists-action=\"replace\"><value>x</value></set-header></inbound></policies>",
                "replace",
            ),
            ("<!DOCTYPE x [<!ENTITY a \"b\">]><policies/>", "malformed"),
            ("<policy/>", "root element must be <policies>"),
        ];
        for (xml, expected) in cases {
            let error = parse(xml).unwrap_err().to_string();
            assert!(error.contains(expected), "{xml}\n=> {error}");
        }
    }

    #[test]
    fn unmask_without_stored_secret_is_refused() {
        let incoming = parse(&format!(
            "<policies><inbound><authentication-basic username=\"u\" password=\"{MASK}\" /></inbound></policies>"
        ))
        .unwrap();
        assert!(unmask(incoming, &Policy::default()).is_err());
    }
}
