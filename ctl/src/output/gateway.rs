//! Data planes: JSON, the table, and the warning when they trust different CA bundles.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{ago, dash, escape_controls, rfc3339, table};
use crate::args::Format;

/// Data planes and the latest revision, as `gateway list` prints them.
pub fn print_gateways(format: Format, list: &pb::ListGatewaysResponse) {
    match format {
        Format::Json => print_json(&json!({
            "revision": list.revision,
            "gateways": list.gateways.iter().map(gateway_json).collect::<Vec<_>>(),
        })),
        Format::Table => print!("{}", gateways_table(list)),
    }
}

/// On stderr, a warning when connected data planes trust different extra CA bundles.
pub fn print_trust_bundle_warning(gateways: &[pb::Gateway]) {
    if let Some(warning) = trust_bundle_warning(gateways) {
        eprintln!("{warning}");
    }
}

/// A data plane for `-o json`.
fn gateway_json(g: &pb::Gateway) -> Value {
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

/// The data plane's state in capitals; a rejection says which revision and why.
fn gateway_state(g: &pb::Gateway) -> String {
    match pb::GatewayState::try_from(g.state).unwrap_or(pb::GatewayState::Unspecified) {
        pb::GatewayState::Synced => "SYNCED".into(),
        pb::GatewayState::Syncing => "SYNCING".into(),
        pb::GatewayState::Stale => "STALE".into(),
        pb::GatewayState::Nacked => format!("NACKED (revision {}): {}", g.rejected_revision, g.last_error),
        pb::GatewayState::Disconnected => "DISCONNECTED".into(),
        pb::GatewayState::Unspecified => "UNKNOWN".into(),
    }
}

/// A warning when connected data planes trust different extra CA bundles (--backend-ca-file),
/// so the same API may validate its backend differently depending on which one serves it.
fn trust_bundle_warning(gateways: &[pb::Gateway]) -> Option<String> {
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
            let bundle = if fingerprint.is_empty() {
                "no --backend-ca-file".to_string()
            } else {
                format!("CA bundle {}", &fingerprint[..fingerprint.len().min(12)])
            };
            format!("{bundle}: {}", names.join(", "))
        })
        .collect();
    Some(escape_controls(&format!(
        "warning: data planes trust different extra CA bundles, so backend trust may differ between them ({})",
        groups.join("; ")
    )))
}

/// Data planes, one per row, then the latest revision.
fn gateways_table(list: &pb::ListGatewaysResponse) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
