//! Named values: JSON, tables and details. A secret value arrives already masked by the
//! control plane and is printed as it came; a linked one shows its file and last read as
//! certificates show theirs.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::certificate::{last_refresh_json, last_refresh_text};
use super::print_json;
use super::text::{ago, details, table};
use crate::args::Format;

/// The most characters of a value the `nv list` table shows; `nv show` shows it whole.
const LIST_VALUE_CHARS: usize = 48;

/// A named value, as `nv put` and `nv show` print it.
pub fn print_named_value(format: Format, named: &pb::NamedValue) {
    match format {
        Format::Json => print_json(&named_value_json(named)),
        Format::Table => print!("{}", named_value_details(named)),
    }
}

/// Named values, as `nv list` prints them.
pub fn print_named_values(format: Format, named_values: &[pb::NamedValue]) {
    match format {
        Format::Json => print_json(&Value::Array(named_values.iter().map(named_value_json).collect())),
        Format::Table => print!("{}", named_values_table(named_values)),
    }
}

/// A named value for `-o json`.
fn named_value_json(n: &pb::NamedValue) -> Value {
    json!({
        "name": n.name,
        "value": n.value,
        "secret": n.secret,
        "used_by": n.used_by,
        "revision": n.revision,
        "etag": n.etag,
        "source": (!n.source_path.is_empty()).then(|| json!({ "file": n.source_path })),
        "last_refresh": n.last_refresh.as_ref().map(last_refresh_json),
    })
}

/// "file /path", or "put" when the value was put by hand.
fn source_text(n: &pb::NamedValue) -> String {
    match n.source_path.is_empty() {
        true => "put".into(),
        false => format!("file {}", n.source_path),
    }
}

/// "ok 4s ago", "FAILED 4s ago" or "-": the table's short form (`nv show` says why).
fn last_refresh_short(last: Option<&pb::LastRefresh>) -> String {
    match last {
        None => "-".into(),
        Some(r) => format!("{} {}", if r.ok { "ok" } else { "FAILED" }, ago(r.at.as_ref())),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn list(values: &[String], separator: &str) -> String {
    if values.is_empty() { "-".into() } else { values.join(separator) }
}

/// The value cut to [`LIST_VALUE_CHARS`] characters, "…" marking the cut.
fn shortened(value: &str) -> String {
    match value.char_indices().nth(LIST_VALUE_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// Named values, one per row.
fn named_values_table(named_values: &[pb::NamedValue]) -> String {
    let rows: Vec<Vec<String>> = named_values
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                yes_no(n.secret),
                shortened(&n.value),
                if n.source_path.is_empty() { "-".into() } else { n.source_path.clone() },
                last_refresh_short(n.last_refresh.as_ref()),
                list(&n.used_by, ","),
            ]
        })
        .collect();
    table(&["NAME", "SECRET", "VALUE", "SOURCE", "REFRESHED", "USED BY"], &rows)
}

/// One named value, a field per line.
fn named_value_details(n: &pb::NamedValue) -> String {
    let rows = vec![
        vec!["name:".into(), n.name.clone()],
        vec!["secret:".into(), yes_no(n.secret)],
        vec!["value:".into(), n.value.clone()],
        vec!["used by:".into(), list(&n.used_by, ", ")],
        vec!["revision:".into(), n.revision.to_string()],
        vec!["etag:".into(), n.etag.clone()],
        vec!["source:".into(), source_text(n)],
        vec!["last refresh:".into(), last_refresh_text(n.last_refresh.as_ref())],
    ];
    details(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_mask_for_secrets_and_who_names_each_value() {
        let named = |name: &str, value: &str, secret: bool, used_by: &[&str]| pb::NamedValue {
            name: name.into(),
            value: value.into(),
            secret,
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let text = named_values_table(&[
            named("backend-pw", "********", true, &["orders", "billing"]),
            named("long", &"é".repeat(LIST_VALUE_CHARS + 1), false, &[]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].ends_with("USED BY"), "{text}");
        assert!(lines[1].contains(" yes ") && lines[1].contains("********") && lines[1].ends_with("orders,billing"));
        let shown = format!("{}…", "é".repeat(LIST_VALUE_CHARS));
        assert!(lines[2].contains(" no ") && lines[2].contains(&shown) && lines[2].ends_with('-'), "{text}");
    }

    #[test]
    fn a_linked_value_shows_its_file_and_how_its_last_read_went_never_the_value() {
        let now = gatehouse_shared::unix_now();
        let failed = pb::NamedValue {
            name: "backend-pw".into(),
            value: "********".into(),
            secret: true,
            source_path: "/vault/secrets/pw".into(),
            last_refresh: Some(pb::LastRefresh {
                at: Some(prost_types::Timestamp { seconds: now, nanos: 0 }),
                ok: false,
                message: "named value 'backend-pw' refused: the value holds a control character".into(),
            }),
            ..Default::default()
        };
        let put = pb::NamedValue { name: "user".into(), value: "svc".into(), ..Default::default() };
        let text = named_values_table(&[failed.clone(), put.clone()]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("SOURCE") && lines[0].contains("REFRESHED"), "{text}");
        assert!(lines[1].contains("/vault/secrets/pw") && lines[1].contains("FAILED 0s ago"), "{text}");
        assert!(lines[2].starts_with("user ") && !lines[2].contains("FAILED"), "{text}");
        let details = named_value_details(&failed);
        assert!(details.contains("file /vault/secrets/pw") && details.contains("FAILED at "), "{details}");
        assert!(details.contains("control character"), "{details}");
        assert!(named_value_details(&put).contains("source:        put"), "{}", named_value_details(&put));
        let json = named_value_json(&failed);
        assert_eq!(json["source"]["file"], "/vault/secrets/pw");
        assert_eq!(json["last_refresh"]["ok"], false);
        assert!(named_value_json(&put)["source"].is_null() && named_value_json(&put)["last_refresh"].is_null());
    }
}
