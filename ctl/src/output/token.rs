//! Tokens: the secret once at creation, then names and roles only.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{rfc3339, table};
use crate::args::Format;

/// A new token. As a table only the secret, on its own line, so `> file` makes a token file.
pub fn print_token_created(format: Format, created: &pb::CreatedToken, role: pb::Role) {
    match format {
        Format::Json => print_json(&json!({
            "name": created.token.as_ref().map(|t| t.name.clone()),
            "role": role.as_str_name().to_lowercase(),
            "secret": created.secret,
        })),
        Format::Table => println!("{}", created.secret),
    }
}

/// Tokens, as `token list` prints them.
pub fn print_tokens(format: Format, tokens: &[pb::Token]) {
    match format {
        Format::Json => print_json(&Value::Array(
            tokens
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "role": role_text(t),
                        "created": rfc3339(t.created.as_ref()),
                    })
                })
                .collect(),
        )),
        Format::Table => {
            let rows: Vec<Vec<String>> =
                tokens.iter().map(|t| vec![t.name.clone(), role_text(t), rfc3339(t.created.as_ref())]).collect();
            print!("{}", table(&["NAME", "ROLE", "CREATED"], &rows));
        }
    }
}

/// The confirmation of `token revoke`.
pub fn print_token_revoked(format: Format, name: &str) {
    match format {
        Format::Json => print_json(&json!({ "revoked": name })),
        Format::Table => println!("token {name} revoked"),
    }
}

/// "operator" or "gateway"; empty for a role this gatehousectl does not know.
fn role_text(token: &pb::Token) -> String {
    pb::Role::try_from(token.role).map(|r| r.as_str_name().to_lowercase()).unwrap_or_default()
}
