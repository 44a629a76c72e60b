//! Hostnames: JSON, tables and details.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{dash, details, expiry, rfc3339, table};
use crate::args::Format;

/// A hostname, as `hostname put` and `hostname show` print it.
pub fn print_hostname(format: Format, hostname: &pb::Hostname) {
    match format {
        Format::Json => print_json(&hostname_json(hostname)),
        Format::Table => print!("{}", hostname_details(hostname)),
    }
}

/// Hostnames, as `hostname list` prints them.
pub fn print_hostnames(format: Format, hostnames: &[pb::Hostname]) {
    match format {
        Format::Json => print_json(&Value::Array(hostnames.iter().map(hostname_json).collect())),
        Format::Table => print!("{}", hostnames_table(hostnames)),
    }
}

/// A hostname for `-o json`.
fn hostname_json(h: &pb::Hostname) -> Value {
    json!({
        "name": h.name,
        "certificate_id": h.certificate_id,
        "thumbprint": h.thumbprint,
        "not_after": rfc3339(h.not_after.as_ref()),
        "default": h.default,
        "negotiate_client_certificate": h.negotiate_client_certificate,
        "client_ca_ids": h.client_ca_ids,
        "used_by": h.used_by,
        "revision": h.revision,
        "etag": h.etag,
    })
}

/// Whether clients are asked for a certificate, and which CAs the hostname trusts for them.
fn client_certificates_text(h: &pb::Hostname) -> String {
    match (h.negotiate_client_certificate, h.client_ca_ids.is_empty()) {
        (false, true) => "-".into(),
        (true, true) => "requested".into(),
        (requested, false) => {
            let cas = format!("CA {}", h.client_ca_ids.join(", "));
            if requested { format!("requested; {cas}") } else { format!("not requested; {cas}") }
        }
    }
}

fn list(values: &[String], separator: &str) -> String {
    if values.is_empty() { "-".into() } else { values.join(separator) }
}

/// Hostnames, one per row.
fn hostnames_table(hostnames: &[pb::Hostname]) -> String {
    let rows: Vec<Vec<String>> = hostnames
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.certificate_id.clone(),
                dash(&h.thumbprint),
                expiry(h.not_after.as_ref()),
                if h.default { "yes".into() } else { "-".into() },
                client_certificates_text(h),
                list(&h.used_by, ","),
            ]
        })
        .collect();
    table(&["NAME", "CERTIFICATE", "THUMBPRINT", "EXPIRES", "DEFAULT", "CLIENT CERTIFICATES", "USED BY"], &rows)
}

/// One hostname, a field per line.
fn hostname_details(h: &pb::Hostname) -> String {
    let rows = vec![
        vec!["name:".into(), h.name.clone()],
        vec!["certificate:".into(), h.certificate_id.clone()],
        vec!["thumbprint:".into(), dash(&h.thumbprint)],
        vec!["not after:".into(), expiry(h.not_after.as_ref())],
        vec!["default:".into(), if h.default { "yes".into() } else { "no".into() }],
        vec!["client certificates:".into(), client_certificates_text(h)],
        vec!["used by:".into(), list(&h.used_by, ", ")],
        vec!["revision:".into(), h.revision.to_string()],
        vec!["etag:".into(), h.etag.clone()],
    ];
    details(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_which_hostname_is_the_default_and_who_uses_it() {
        let hostname = |name: &str, default: bool, used_by: &[&str]| pb::Hostname {
            name: name.into(),
            certificate_id: "server".into(),
            default,
            negotiate_client_certificate: default,
            client_ca_ids: if default { vec!["partners".into()] } else { Vec::new() },
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let text =
            hostnames_table(&[hostname("*.example.com", false, &[]), hostname("api.example.com", true, &["a", "b"])]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[1].starts_with("*.example.com") && lines[1].ends_with('-'), "{text}");
        assert!(
            lines[2].contains("yes") && lines[2].contains("requested; CA partners") && lines[2].ends_with("a,b"),
            "{text}"
        );
    }
}
