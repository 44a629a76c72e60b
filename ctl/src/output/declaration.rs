//! Declarations (`export`) and what applying one changed (`diff`, `apply`).

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{details, escape_controls};
use crate::args::{DocumentFormat, Format};
use crate::declaration::Declaration;

/// A declaration on stdout, as `export` writes it.
pub fn print_declaration(format: DocumentFormat, declaration: &Declaration) -> anyhow::Result<()> {
    use std::io::Write as _;
    let text = match format {
        DocumentFormat::Yaml => declaration.to_yaml(),
        DocumentFormat::Json => format!("{}\n", declaration.to_json()),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        // `gatehousectl export | head` is not a failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// The changes of an apply or a dry run (`diff`), one line each; for an apply, the revision
/// and the keys of subscriptions it created (the only time they are shown).
pub fn print_applied(format: Format, applied: &pb::ApplyConfigurationResponse) {
    match format {
        Format::Json => print_json(&applied_json(applied)),
        Format::Table => print!("{}", applied_text(applied)),
    }
    if !applied.created_subscriptions.is_empty() {
        eprintln!("the keys are shown only now: keep them (a lost key can be regenerated, not read)");
    }
}

/// `+ api orders`, `~ hostname api.example.com`, `- certificate old`; then, unless a dry run,
/// the revision or "no changes", and new subscriptions' keys.
fn applied_text(applied: &pb::ApplyConfigurationResponse) -> String {
    let mut text = String::new();
    for change in &applied.changes {
        let sign = match change.action.as_str() {
            "create" => "+",
            "delete" => "-",
            _ => "~",
        };
        text.push_str(&format!("{sign} {} {}\n", escape_controls(&change.kind), escape_controls(&change.id)));
    }
    if applied.dry_run {
        return text;
    }
    if applied.changes.is_empty() {
        text.push_str(&format!("no changes (revision {})\n", applied.revision));
    } else {
        text.push_str(&format!("revision {}\n", applied.revision));
    }
    let mut keys = Vec::new();
    for created in &applied.created_subscriptions {
        let name = created.subscription.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
        keys.push(vec![format!("subscription {name} primary key:"), created.primary_key.clone()]);
        keys.push(vec![format!("subscription {name} secondary key:"), created.secondary_key.clone()]);
    }
    text.push_str(&details(&keys));
    text
}

fn applied_json(applied: &pb::ApplyConfigurationResponse) -> Value {
    let changes: Vec<Value> =
        applied.changes.iter().map(|c| json!({ "kind": c.kind, "id": c.id, "action": c.action })).collect();
    let created: Vec<Value> = applied
        .created_subscriptions
        .iter()
        .map(|c| {
            json!({
                "name": c.subscription.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                "primary_key": c.primary_key,
                "secondary_key": c.secondary_key,
            })
        })
        .collect();
    json!({
        "revision": applied.revision,
        "dry_run": applied.dry_run,
        "changes": changes,
        "created_subscriptions": created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: &str, id: &str, action: &str) -> pb::ConfigurationChange {
        pb::ConfigurationChange { kind: kind.into(), id: id.into(), action: action.into() }
    }

    #[test]
    fn each_change_is_one_line_with_its_sign() {
        let mut applied = pb::ApplyConfigurationResponse {
            revision: 7,
            changes: vec![
                change("api", "orders", "create"),
                change("hostname", "api.example.com", "update"),
                change("certificate", "old", "delete"),
            ],
            dry_run: true,
            ..Default::default()
        };
        assert_eq!(applied_text(&applied), "+ api orders\n~ hostname api.example.com\n- certificate old\n");
        applied.dry_run = false;
        assert!(applied_text(&applied).ends_with("- certificate old\nrevision 7\n"));
        applied.changes.clear();
        assert_eq!(applied_text(&applied), "no changes (revision 7)\n");
    }

    #[test]
    fn created_subscriptions_show_their_keys() {
        let applied = pb::ApplyConfigurationResponse {
            revision: 3,
            changes: vec![change("subscription", "partner", "create")],
            created_subscriptions: vec![pb::CreatedSubscription {
                subscription: Some(pb::Subscription { name: "partner".into(), ..Default::default() }),
                primary_key: "p-key".into(),
                secondary_key: "s-key".into(),
            }],
            ..Default::default()
        };
        let text = applied_text(&applied);
        assert!(text.contains("subscription partner primary key:") && text.contains("p-key"), "{text}");
        assert!(text.contains("s-key"), "{text}");
    }
}
