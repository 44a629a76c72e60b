//! APIs and their policy: JSON, tables, details, and what a replace removed.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{dash, details, escape_controls, table};
use crate::args::Format;

/// An API, as `api put`, `api update`, `api show` and `api credentials` print it.
pub fn print_api(format: Format, api: &pb::Api) {
    match format {
        Format::Json => print_json(&api_json(api)),
        Format::Table => print!("{}", api_details(api)),
    }
}

/// APIs, as `api list` prints them.
pub fn print_apis(format: Format, apis: &[pb::Api]) {
    match format {
        Format::Json => print_json(&Value::Array(apis.iter().map(api_json).collect())),
        Format::Table => print!("{}", apis_table(apis)),
    }
}

/// On stderr, what replacing `before` with `after` removed or reset, if anything.
pub fn print_replaced(before: &pb::Api, after: &pb::Api) {
    if let Some(removed) = replaced(before, after) {
        eprintln!("replaced API {}; {removed} (use `api update` to change fields one by one)", after.id);
    }
}

/// An API's policy: the XML itself, or JSON with its etag and revision.
pub fn print_policy(format: Format, policy: &pb::ApiPolicy) {
    match format {
        Format::Json => print_json(&json!({
            "api_id": policy.api_id,
            "xml": policy.xml,
            "etag": policy.etag,
            "revision": policy.revision,
        })),
        Format::Table => print!("{}", policy.xml),
    }
}

/// The client certificate an API presents, in words.
fn binding_text(api: &pb::Api) -> String {
    use pb::credential_binding::Kind;
    match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        None => "none".into(),
        Some(Kind::CertificateId(id)) => format!("certificate {id}"),
        Some(Kind::Thumbprint(t)) => format!("thumbprint {t}"),
    }
}

/// An API for `-o json`.
fn api_json(api: &pb::Api) -> Value {
    use pb::credential_binding::Kind;
    let credentials = match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        None => Value::Null,
        Some(Kind::CertificateId(id)) => json!({ "certificate_id": id }),
        Some(Kind::Thumbprint(t)) => json!({ "thumbprint": t }),
    };
    json!({
        "id": api.id,
        "display_name": api.display_name,
        "path": api.path,
        "service_url": api.service_url,
        "credentials": credentials,
        "client_certificate_thumbprint": api.client_certificate_thumbprint,
        "hostnames": api.hostnames,
        "subscription_required": api.subscription_required,
        "subscription_key_header": api.subscription_key_header,
        "backend_tls": api.backend_tls.as_ref().map(|t| json!({
            "validate_certificate_chain": t.validate_certificate_chain.unwrap_or(true),
            "validate_certificate_name": t.validate_certificate_name.unwrap_or(true),
            "ca_certificate_ids": t.ca_certificate_ids,
            "trust_system_roots": t.trust_system_roots.unwrap_or(true),
        })),
        "revision": api.revision,
        "etag": api.etag,
    })
}

/// How the API's backend certificate is checked, in words.
fn trust_text(api: &pb::Api) -> String {
    let Some(t) = api.backend_tls.as_ref() else { return "default".into() };
    let mut roots = Vec::new();
    if t.trust_system_roots.unwrap_or(true) {
        roots.push("system roots".to_string());
    }
    roots.extend(t.ca_certificate_ids.iter().map(|id| format!("CA {id}")));
    let chain = if t.validate_certificate_chain.unwrap_or(true) {
        format!("chain validated against {}", roots.join(" + "))
    } else {
        "chain NOT validated".into()
    };
    let name = if t.validate_certificate_name.unwrap_or(true) { "name validated" } else { "name NOT validated" };
    format!("{chain}; {name}")
}

/// Whether callers need a subscription key, and where they send it.
fn subscription_text(api: &pb::Api) -> String {
    match api.subscription_required {
        true => format!("required (header {}, or query subscription-key)", api.subscription_key_header),
        false => "not required".into(),
    }
}

/// APIs, one per row.
fn apis_table(apis: &[pb::Api]) -> String {
    let rows: Vec<Vec<String>> = apis
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                hosts_text(a, ","),
                a.path.clone(),
                a.service_url.clone(),
                binding_text(a),
                dash(&a.client_certificate_thumbprint),
            ]
        })
        .collect();
    table(&["ID", "HOSTS", "PATH", "SERVICE URL", "CLIENT CERTIFICATE", "THUMBPRINT"], &rows)
}

/// The hostnames an API answers on, or "*" for any host.
fn hosts_text(api: &pb::Api, separator: &str) -> String {
    if api.hostnames.is_empty() { "*".into() } else { api.hostnames.join(separator) }
}

/// One API, a field per line.
fn api_details(api: &pb::Api) -> String {
    let rows = vec![
        vec!["id:".into(), api.id.clone()],
        vec!["display name:".into(), dash(&api.display_name)],
        vec!["hosts:".into(), if api.hostnames.is_empty() { "any".into() } else { hosts_text(api, ", ") }],
        vec!["path:".into(), api.path.clone()],
        vec!["service url:".into(), api.service_url.clone()],
        vec!["client certificate:".into(), binding_text(api)],
        vec!["thumbprint:".into(), dash(&api.client_certificate_thumbprint)],
        vec!["backend trust:".into(), trust_text(api)],
        vec!["subscription key:".into(), subscription_text(api)],
        vec!["revision:".into(), api.revision.to_string()],
        vec!["etag:".into(), api.etag.clone()],
    ];
    details(&rows)
}

/// What replacing `before` with `after` removed or reset, in words ("removed: CA certificates
/// a, b; chain validation back on"), or None when nothing was lost.
fn replaced(before: &pb::Api, after: &pb::Api) -> Option<String> {
    let tls = |api: &pb::Api| api.backend_tls.clone().unwrap_or_default();
    let (old, new) = (tls(before), tls(after));
    let mut lost = Vec::new();
    if !before.display_name.is_empty() && after.display_name.is_empty() {
        lost.push(format!("display name '{}'", before.display_name));
    }
    let removed: Vec<&str> =
        old.ca_certificate_ids.iter().filter(|id| !new.ca_certificate_ids.contains(id)).map(String::as_str).collect();
    if !removed.is_empty() {
        lost.push(format!("CA certificates {}", removed.join(", ")));
    }
    let hosts: Vec<&str> =
        before.hostnames.iter().filter(|h| !after.hostnames.contains(h)).map(String::as_str).collect();
    if !hosts.is_empty() {
        lost.push(format!("hostnames {}", hosts.join(", ")));
    }
    let mut changed = Vec::new();
    if before.subscription_required && !after.subscription_required {
        changed.push("subscription key not required".to_string());
    }
    if before.subscription_key_header != after.subscription_key_header && !before.subscription_key_header.is_empty() {
        changed.push(format!("subscription key header {}", after.subscription_key_header));
    }
    let flag = |value: Option<bool>| value.unwrap_or(true);
    for (name, was, now) in [
        ("chain validation", old.validate_certificate_chain, new.validate_certificate_chain),
        ("name validation", old.validate_certificate_name, new.validate_certificate_name),
        ("system roots", old.trust_system_roots, new.trust_system_roots),
    ] {
        if flag(was) != flag(now) {
            changed.push(format!("{name} {}", if flag(now) { "on" } else { "off" }));
        }
    }
    let mut parts = Vec::new();
    if !lost.is_empty() {
        parts.push(format!("removed: {}", lost.join("; ")));
    }
    if !changed.is_empty() {
        parts.push(format!("now: {}", changed.join(", ")));
    }
    (!parts.is_empty()).then(|| escape_controls(&parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replace_says_what_it_removed() {
        let api = |name: &str, cas: &[&str], chain: Option<bool>| pb::Api {
            display_name: name.into(),
            backend_tls: Some(pb::BackendTls {
                ca_certificate_ids: cas.iter().map(|s| s.to_string()).collect(),
                validate_certificate_chain: chain,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(replaced(&api("A", &["x"], None), &api("A", &["x"], Some(true))), None);
        let said = replaced(&api("A", &["test-ca", "y"], Some(false)), &api("", &["y"], None)).unwrap();
        assert_eq!(said, "removed: display name 'A'; CA certificates test-ca; now: chain validation on");
        let on = |hosts: &[&str]| pb::Api {
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            ..api("A", &[], None)
        };
        let said = replaced(&on(&["a.example.com", "b.example.com"]), &on(&["b.example.com"])).unwrap();
        assert_eq!(said, "removed: hostnames a.example.com");
        let keyed =
            pb::Api { subscription_required: true, subscription_key_header: "X-Key".into(), ..api("A", &[], None) };
        let open = pb::Api { subscription_key_header: "Ocp-Apim-Subscription-Key".into(), ..api("A", &[], None) };
        let said = replaced(&keyed, &open).unwrap();
        assert_eq!(said, "now: subscription key not required, subscription key header Ocp-Apim-Subscription-Key");
    }
}
