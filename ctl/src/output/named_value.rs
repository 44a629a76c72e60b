//! Named values: JSON, tables and details. A secret value arrives already masked by the
//! control plane and is printed as it came.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{details, table};
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
    })
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
        .map(|n| vec![n.name.clone(), yes_no(n.secret), shortened(&n.value), list(&n.used_by, ",")])
        .collect();
    table(&["NAME", "SECRET", "VALUE", "USED BY"], &rows)
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
}
