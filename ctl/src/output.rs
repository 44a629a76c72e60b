//! How results look: aligned tables for people, JSON for scripts.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

/// Left-aligned columns separated by two spaces; no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    // Values come from the server and, through it, from other callers: never let them move
    // the cursor, clear the screen or start a new line.
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| escape_controls(cell)).collect()).collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Control characters (newlines, ANSI escapes) shown as `\u{1b}` instead of acted on.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// "4s ago", "3m ago", "2h ago", "5d ago".
pub fn ago(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return "-".into() };
    let seconds = (gatehouse_shared::unix_now() - ts.seconds).max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    time::OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// "in 23 days", "EXPIRED 3 days ago": what matters about an expiry date at a glance.
pub fn expiry(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    let now = gatehouse_shared::unix_now();
    let date = rfc3339(Some(ts)).get(..10).unwrap_or_default().to_string();
    let days = (ts.seconds - now) / 86_400;
    if ts.seconds < now {
        format!("{date} (EXPIRED {} ago)", plural(-days, "day"))
    } else {
        format!("{date} (in {})", plural(days, "day"))
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

pub fn certificate_json(c: &pb::Certificate) -> Value {
    json!({
        "id": c.id,
        "subject": c.subject,
        "issuer": c.issuer,
        "thumbprint": c.thumbprint,
        "not_before": rfc3339(c.not_before.as_ref()),
        "not_after": rfc3339(c.not_after.as_ref()),
        "key_algorithm": c.key_algorithm,
        "chain_length": c.chain_length,
        "used_by": c.used_by,
        "revision": c.revision,
        "etag": c.etag,
        "expired": c.expired,
    })
}

pub fn ca_json(c: &pb::CaCertificate) -> Value {
    json!({
        "id": c.id,
        "subject": c.subject,
        "thumbprint": c.thumbprint,
        "not_before": rfc3339(c.not_before.as_ref()),
        "not_after": rfc3339(c.not_after.as_ref()),
        "used_by": c.used_by,
        "revision": c.revision,
        "etag": c.etag,
        "expired": c.expired,
    })
}

pub fn cas_table(cas: &[pb::CaCertificate]) -> String {
    certificate_rows(cas.iter().map(|c| (&c.id, &c.subject, &c.thumbprint, c.not_after.as_ref(), &c.used_by)))
}

pub fn certificates_table(certs: &[pb::Certificate]) -> String {
    certificate_rows(certs.iter().map(|c| (&c.id, &c.subject, &c.thumbprint, c.not_after.as_ref(), &c.used_by)))
}

/// One table for client and CA certificates alike: id, subject, thumbprint, expiry, users.
fn certificate_rows<'a>(
    certs: impl Iterator<Item = (&'a String, &'a String, &'a String, Option<&'a prost_types::Timestamp>, &'a Vec<String>)>,
) -> String {
    let rows: Vec<Vec<String>> = certs
        .map(|(id, subject, thumbprint, not_after, used_by)| {
            vec![
                id.clone(),
                subject.clone(),
                thumbprint.clone(),
                expiry(not_after),
                if used_by.is_empty() { "-".into() } else { used_by.join(",") },
            ]
        })
        .collect();
    table(&["ID", "SUBJECT", "THUMBPRINT", "EXPIRES", "USED BY"], &rows)
}

pub fn certificate_details(c: &pb::Certificate) -> String {
    let rows = vec![
        vec!["id:".into(), c.id.clone()],
        vec!["subject:".into(), c.subject.clone()],
        vec!["issuer:".into(), c.issuer.clone()],
        vec!["thumbprint:".into(), c.thumbprint.clone()],
        vec!["key:".into(), c.key_algorithm.clone()],
        vec!["chain length:".into(), c.chain_length.to_string()],
        vec!["not before:".into(), rfc3339(c.not_before.as_ref())],
        vec!["not after:".into(), expiry(c.not_after.as_ref())],
        vec!["used by:".into(), if c.used_by.is_empty() { "-".into() } else { c.used_by.join(", ") }],
        vec!["revision:".into(), c.revision.to_string()],
        vec!["etag:".into(), c.etag.clone()],
    ];
    details(&rows)
}

/// A CA certificate the way `certificate_details` shows a client certificate.
pub fn ca_details(c: &pb::CaCertificate) -> String {
    let rows = vec![
        vec!["id:".into(), c.id.clone()],
        vec!["subject:".into(), c.subject.clone()],
        vec!["thumbprint:".into(), c.thumbprint.clone()],
        vec!["not before:".into(), rfc3339(c.not_before.as_ref())],
        vec!["not after:".into(), expiry(c.not_after.as_ref())],
        vec!["used by:".into(), if c.used_by.is_empty() { "-".into() } else { c.used_by.join(", ") }],
        vec!["revision:".into(), c.revision.to_string()],
        vec!["etag:".into(), c.etag.clone()],
    ];
    details(&rows)
}

fn details(rows: &[Vec<String>]) -> String {
    let text = table(&["", ""], rows);
    // The empty header line of `table` is not wanted here.
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

pub fn binding_text(api: &pb::Api) -> String {
    use pb::credential_binding::Kind;
    match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        None => "none".into(),
        Some(Kind::CertificateId(id)) => format!("certificate {id}"),
        Some(Kind::Thumbprint(t)) => format!("thumbprint {t}"),
    }
}

pub fn api_json(api: &pb::Api) -> Value {
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

pub fn apis_table(apis: &[pb::Api]) -> String {
    let rows: Vec<Vec<String>> = apis
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.path.clone(),
                a.service_url.clone(),
                binding_text(a),
                dash(&a.client_certificate_thumbprint),
            ]
        })
        .collect();
    table(&["ID", "PATH", "SERVICE URL", "CLIENT CERTIFICATE", "THUMBPRINT"], &rows)
}

pub fn api_details(api: &pb::Api) -> String {
    let rows = vec![
        vec!["id:".into(), api.id.clone()],
        vec!["display name:".into(), dash(&api.display_name)],
        vec!["path:".into(), api.path.clone()],
        vec!["service url:".into(), api.service_url.clone()],
        vec!["client certificate:".into(), binding_text(api)],
        vec!["thumbprint:".into(), dash(&api.client_certificate_thumbprint)],
        vec!["backend trust:".into(), trust_text(api)],
        vec!["revision:".into(), api.revision.to_string()],
        vec!["etag:".into(), api.etag.clone()],
    ];
    details(&rows)
}

pub fn gateway_json(g: &pb::Gateway) -> Value {
    json!({
        "name": g.name,
        "address": g.address,
        "version": g.version,
        "connected": g.connected,
        "connected_since": rfc3339(g.connected_since.as_ref()),
        "last_seen": rfc3339(g.last_seen.as_ref()),
        "applied_revision": g.applied_revision,
        "state": gateway_state(g).split_whitespace().next().unwrap_or_default(),
        "last_error": g.last_error,
        "rejected_revision": g.rejected_revision,
        "instance_id": g.instance_id,
        "listen_addresses": g.listen_addresses,
        "backend_ca_fingerprint": g.backend_ca_fingerprint,
        "token": g.token,
    })
}

pub fn gateway_state(g: &pb::Gateway) -> String {
    match pb::GatewayState::try_from(g.state).unwrap_or(pb::GatewayState::Unspecified) {
        pb::GatewayState::Synced => "SYNCED".into(),
        pb::GatewayState::Syncing => "SYNCING".into(),
        pb::GatewayState::Stale => "STALE".into(),
        pb::GatewayState::Nacked => format!("NACKED (revision {}): {}", g.rejected_revision, g.last_error),
        pb::GatewayState::Disconnected => "DISCONNECTED".into(),
        pb::GatewayState::Unspecified => "UNKNOWN".into(),
    }
}

/// What replacing `before` with `after` removed or reset, in words ("removed: CA certificates
/// a, b; chain validation back on"), or None when nothing was lost.
pub fn replaced(before: &pb::Api, after: &pb::Api) -> Option<String> {
    let tls = |api: &pb::Api| api.backend_tls.clone().unwrap_or_default();
    let (old, new) = (tls(before), tls(after));
    let mut lost = Vec::new();
    if !before.display_name.is_empty() && after.display_name.is_empty() {
        lost.push(format!("display name '{}'", before.display_name));
    }
    let removed: Vec<&str> = old
        .ca_certificate_ids
        .iter()
        .filter(|id| !new.ca_certificate_ids.contains(id))
        .map(String::as_str)
        .collect();
    if !removed.is_empty() {
        lost.push(format!("CA certificates {}", removed.join(", ")));
    }
    let mut changed = Vec::new();
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

/// A warning when connected data planes trust different extra CA bundles (--backend-ca-file),
/// so the same API may validate its backend differently depending on which one serves it.
pub fn trust_bundle_warning(gateways: &[pb::Gateway]) -> Option<String> {
    let mut bundles: Vec<(&str, Vec<&str>)> = Vec::new();
    for g in gateways.iter().filter(|g| g.connected) {
        let fingerprint = g.backend_ca_fingerprint.as_str();
        match bundles.iter_mut().find(|(f, _)| *f == fingerprint) {
            Some((_, names)) => names.push(&g.name),
            None => bundles.push((fingerprint, vec![&g.name])),
        }
    }
    if bundles.len() < 2 {
        return None;
    }
    let groups: Vec<String> = bundles
        .iter()
        .map(|(fingerprint, names)| {
            let bundle = if fingerprint.is_empty() { "no --backend-ca-file".to_string() } else { format!("CA bundle {}", &fingerprint[..fingerprint.len().min(12)]) };
            format!("{bundle}: {}", names.join(", "))
        })
        .collect();
    Some(escape_controls(&format!(
        "warning: data planes trust different extra CA bundles, so backend trust may differ between them ({})",
        groups.join("; ")
    )))
}

pub fn gateways_table(list: &pb::ListGatewaysResponse) -> String {
    let rows: Vec<Vec<String>> = list
        .gateways
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                dash(&g.listen_addresses.join(",")),
                g.address.clone(),
                g.version.clone(),
                g.applied_revision.to_string(),
                ago(g.last_seen.as_ref()),
                dash(g.backend_ca_fingerprint.get(..12).unwrap_or(&g.backend_ca_fingerprint)),
                gateway_state(g),
            ]
        })
        .collect();
    let mut text =
        table(&["NAME", "LISTENS ON", "FROM", "VERSION", "REVISION", "LAST SEEN", "CA BUNDLE", "STATE"], &rows);
    text.push_str(&format!("latest revision: {}\n", list.revision));
    text
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(&["ID", "PATH"], &[vec!["orders".into(), "/orders".into()], vec!["a".into(), "/a".into()]]);
        assert_eq!(text, "ID      PATH\norders  /orders\na       /a\n");
    }

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
    }

    #[test]
    fn differing_ca_bundles_are_warned_about() {
        let gateway = |name: &str, fingerprint: &str| pb::Gateway {
            name: name.into(),
            connected: true,
            backend_ca_fingerprint: fingerprint.into(),
            ..Default::default()
        };
        assert_eq!(trust_bundle_warning(&[gateway("a", "ab12"), gateway("b", "ab12")]), None);
        let warning = trust_bundle_warning(&[gateway("a", "ab12"), gateway("b", ""), gateway("c", "ab12")]).unwrap();
        assert!(warning.contains("CA bundle ab12: a, c") && warning.contains("no --backend-ca-file: b"), "{warning}");
    }

    #[test]
    fn control_characters_are_shown_not_acted_on() {
        let text = table(&["ID"], &[vec!["a\nb\u{1b}[2J".into()]]);
        assert_eq!(text, "ID\na\\u{a}b\\u{1b}[2J\n");
    }
}
