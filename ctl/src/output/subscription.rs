//! Subscriptions: their keys once (at creation and regeneration), otherwise names, scopes and
//! states only.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{dash, details, rfc3339, table};
use crate::args::Format;

/// A subscription, as `subscription show`, `suspend` and `resume` print it.
pub fn print_subscription(format: Format, subscription: &pb::Subscription) {
    match format {
        Format::Json => print_json(&subscription_json(subscription)),
        Format::Table => print!("{}", details(&subscription_rows(subscription))),
    }
}

/// Subscriptions, as `subscription list` prints them.
pub fn print_subscriptions(format: Format, subscriptions: &[pb::Subscription]) {
    match format {
        Format::Json => print_json(&Value::Array(subscriptions.iter().map(subscription_json).collect())),
        Format::Table => print!("{}", subscriptions_table(subscriptions)),
    }
}

/// A new subscription with both keys: the only time they are shown.
pub fn print_subscription_created(format: Format, created: &pb::CreatedSubscription) {
    let subscription = created.subscription.clone().unwrap_or_default();
    match format {
        Format::Json => {
            let mut value = subscription_json(&subscription);
            value["primary_key"] = json!(created.primary_key);
            value["secondary_key"] = json!(created.secondary_key);
            print_json(&value);
        }
        Format::Table => {
            let mut rows = subscription_rows(&subscription);
            rows.push(vec!["primary key:".into(), created.primary_key.clone()]);
            rows.push(vec!["secondary key:".into(), created.secondary_key.clone()]);
            print!("{}", details(&rows));
        }
    }
    eprintln!("the keys are shown only now: keep them (a lost key can be regenerated, not read)");
}

/// A regenerated key: the only time it is shown.
pub fn print_subscription_key(format: Format, regenerated: &pb::RegeneratedSubscriptionKey) {
    let which = key_text(regenerated.which);
    let name = regenerated.subscription.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    match format {
        Format::Json => print_json(&json!({
            "name": name,
            "which": which,
            "key": regenerated.key,
            "revision": regenerated.subscription.as_ref().map(|s| s.revision),
        })),
        Format::Table => print!("{}", details(&[vec![format!("{which} key:"), regenerated.key.clone()]])),
    }
    eprintln!("the new {which} key of {name} is shown only now; the old one stops working once data planes apply it");
}

/// A subscription for `-o json`: never a key.
fn subscription_json(s: &pb::Subscription) -> Value {
    json!({
        "name": s.name,
        "display_name": s.display_name,
        "scope": s.scope,
        "all_apis": s.scope.is_empty(),
        "state": state_text(s),
        "created": rfc3339(s.created.as_ref()),
        "revision": s.revision,
        "etag": s.etag,
    })
}

/// "API orders" or "all APIs".
fn scope_text(s: &pb::Subscription) -> String {
    if s.scope.is_empty() { "all APIs".into() } else { format!("API {}", s.scope) }
}

/// "active" or "suspended"; empty for a state this gatehousectl does not know.
fn state_text(s: &pb::Subscription) -> String {
    match pb::SubscriptionState::try_from(s.state) {
        Ok(pb::SubscriptionState::Active) => "active".into(),
        Ok(pb::SubscriptionState::Suspended) => "suspended".into(),
        _ => String::new(),
    }
}

/// "primary" or "secondary".
fn key_text(which: i32) -> &'static str {
    match pb::SubscriptionKey::try_from(which) {
        Ok(pb::SubscriptionKey::Secondary) => "secondary",
        _ => "primary",
    }
}

fn subscription_rows(s: &pb::Subscription) -> Vec<Vec<String>> {
    vec![
        vec!["name:".into(), s.name.clone()],
        vec!["display name:".into(), dash(&s.display_name)],
        vec!["scope:".into(), scope_text(s)],
        vec!["state:".into(), state_text(s)],
        vec!["created:".into(), rfc3339(s.created.as_ref())],
        vec!["revision:".into(), s.revision.to_string()],
        vec!["etag:".into(), s.etag.clone()],
    ]
}

/// Subscriptions, one per row.
fn subscriptions_table(subscriptions: &[pb::Subscription]) -> String {
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|s| vec![s.name.clone(), dash(&s.display_name), scope_text(s), state_text(s), rfc3339(s.created.as_ref())])
        .collect();
    table(&["NAME", "DISPLAY NAME", "SCOPE", "STATE", "CREATED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_each_subscription_opens_and_whether_it_is_suspended() {
        let subscription = |name: &str, scope: &str, state: pb::SubscriptionState| pb::Subscription {
            name: name.into(),
            scope: scope.into(),
            state: state as i32,
            ..Default::default()
        };
        let text = subscriptions_table(&[
            subscription("everything", "", pb::SubscriptionState::Active),
            subscription("partner", "orders", pb::SubscriptionState::Suspended),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].contains("SCOPE"), "{text}");
        assert!(lines[1].contains("all APIs") && lines[1].contains("active"), "{text}");
        assert!(lines[2].contains("API orders") && lines[2].contains("suspended"), "{text}");
    }
}
