//! Everything gatehousectl prints: aligned tables for people, JSON for scripts. Commands say
//! what to show and when; this module says how.

mod api;
mod certificate;
mod context;
mod declaration;
mod gateway;
mod hostname;
mod named_value;
mod rollout;
mod subscription;
mod text;
mod token;

pub use api::{print_api, print_apis, print_policy, print_replaced};
pub use certificate::{print_ca, print_cas, print_certificate, print_certificates};
pub use context::{ContextChange, print_context_change, print_contexts, print_current_context};
pub use declaration::{print_applied, print_declaration};
pub use gateway::{print_gateways, print_trust_bundle_warning};
pub use hostname::{print_hostname, print_hostnames};
pub use named_value::{print_named_value, print_named_values};
pub use rollout::print_rollout;
pub use subscription::{print_subscription, print_subscription_created, print_subscription_key, print_subscriptions};
pub use token::{print_token_created, print_token_revoked, print_tokens};

use crate::args::Format;

/// The confirmation of a delete, with the revision it made.
pub fn print_deleted(format: Format, kind: &str, id: &str, revision: u64) {
    match format {
        Format::Json => print_json(&serde_json::json!({ "deleted": id, "revision": revision })),
        Format::Table => println!("{kind} {id} deleted (revision {revision})"),
    }
}

/// Pretty-printed JSON on stdout.
fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialize"));
}
