//! Named values in a policy, APIM's way: `{{name}}` inside an `authentication-basic` username or
//! password or a `set-header` value stands for the named value's value. The stored policy keeps
//! the references; data planes receive the values substituted, so a changed value is a new
//! revision like any change.

use std::collections::BTreeSet;

use super::Policy;

/// Longest named value name (APIM's limit).
pub const MAX_NAME_LEN: usize = 256;

/// Whether `name` can be a named value's name: 1 to 256 letters, digits, '-', '_' or '.'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The names `text` refers to, in order; an error names a reference that is not a valid name.
pub(super) fn references(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else { break };
        let name = &rest[open + 2..open + 2 + close];
        if !is_valid_name(name) {
            // Not echoed: what sits between the braces may be a secret typed in by mistake.
            return Err(format!(
                "a '{{{{...}}}}' here is not a named value reference: names are 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
            ));
        }
        names.push(name);
        rest = &rest[open + 2 + close + 2..];
    }
    Ok(names)
}

/// Whether `text` is one named value reference and nothing else (`{{name}}`): it shows no
/// secret, so reads need not mask it.
pub fn is_reference(text: &str) -> bool {
    text.strip_prefix("{{").and_then(|rest| rest.strip_suffix("}}")).is_some_and(is_valid_name)
}

/// Every named value the policy refers to.
pub fn referenced(policy: &Policy) -> BTreeSet<String> {
    let mut texts: Vec<&str> = Vec::new();
    if let Some(basic) = &policy.basic {
        texts.extend([basic.username.as_str(), basic.password.as_str()]);
    }
    for header in &policy.headers {
        texts.extend(header.values.iter().map(String::as_str));
    }
    // The parser let only valid references in.
    texts.iter().flat_map(|t| references(t).unwrap_or_default()).map(str::to_string).collect()
}

/// Why a policy's references cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No named value has the name.
    #[error("the policy names '{{{{{0}}}}}', and there is no such named value (gatehousectl nv put {0} ...)")]
    Unknown(String),
    /// With the value substituted, the username or a header value is not valid.
    #[error("with named value '{name}' substituted, {what}")]
    Invalid {
        /// The named value.
        name: String,
        /// What breaks (never the value itself: it may be a secret).
        what: &'static str,
    },
}

/// The policy with every `{{name}}` replaced by `value_of(name)`; checks that the results are
/// still a valid Basic username and valid header values.
pub fn resolve<'a>(policy: &Policy, value_of: impl Fn(&str) -> Option<&'a str>) -> Result<Policy, ResolveError> {
    let substitute = |text: &str| -> Result<String, ResolveError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open + 2..].find("}}") else { break };
            let name = &rest[open + 2..open + 2 + close];
            let value = value_of(name).ok_or_else(|| ResolveError::Unknown(name.to_string()))?;
            out.push_str(&rest[..open]);
            out.push_str(value);
            rest = &rest[open + 2 + close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    };
    let first_name =
        |text: &str| references(text).ok().and_then(|n| n.first().map(|s| s.to_string())).unwrap_or_default();
    let mut resolved = policy.clone();
    if let Some(basic) = resolved.basic.as_mut() {
        let username = substitute(&basic.username)?;
        if username.contains(':') || http::HeaderValue::from_str(&username).is_err() {
            let what = "the authentication-basic username holds ':' or a control character";
            return Err(ResolveError::Invalid { name: first_name(&basic.username), what });
        }
        let password = substitute(&basic.password)?;
        if http::HeaderValue::from_str(&password).is_err() {
            let what = "the authentication-basic password holds a control character";
            return Err(ResolveError::Invalid { name: first_name(&basic.password), what });
        }
        (basic.username, basic.password) = (username, password);
    }
    for header in &mut resolved.headers {
        for value in &mut header.values {
            let substituted = substitute(value)?;
            if http::HeaderValue::from_str(&substituted).is_err() {
                let what = "a set-header value is not a valid header value";
                return Err(ResolveError::Invalid { name: first_name(value), what });
            }
            *value = substituted;
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{BasicAuth, ExistsAction, SetHeader};

    fn policy() -> Policy {
        Policy {
            basic: Some(BasicAuth { username: "{{user}}".into(), password: "p-{{pw}}-!".into() }),
            headers: vec![SetHeader {
                name: "x-key".into(),
                action: ExistsAction::Override,
                values: vec!["Bearer {{token}}".into(), "{{ lone".into()],
                secret: false,
            }],
            ..Policy::default()
        }
    }

    #[test]
    fn references_are_found_and_substituted_everywhere_they_may_be() {
        let names: Vec<String> = referenced(&policy()).into_iter().collect();
        assert_eq!(names, ["pw", "token", "user"]);
        let values = |name: &str| match name {
            "user" => Some("svc"),
            "pw" => Some("s3cret"),
            "token" => Some("t0k"),
            _ => None,
        };
        let resolved = resolve(&policy(), values).unwrap();
        assert_eq!(resolved.basic, Some(BasicAuth { username: "svc".into(), password: "p-s3cret-!".into() }));
        assert_eq!(resolved.headers[0].values, ["Bearer t0k", "{{ lone"]);
    }

    #[test]
    fn an_unknown_name_or_a_value_that_breaks_the_header_is_refused_without_showing_it() {
        let missing = resolve(&policy(), |name| (name != "token").then_some("v"));
        assert_eq!(missing, Err(ResolveError::Unknown("token".into())));
        let colon = resolve(&policy(), |name| Some(if name == "user" { "a:b" } else { "v" })).unwrap_err();
        assert!(matches!(&colon, ResolveError::Invalid { name, .. } if name == "user"), "{colon:?}");
        let newline = resolve(&policy(), |name| Some(if name == "token" { "SECRET\nx" } else { "v" })).unwrap_err();
        assert!(!newline.to_string().contains("SECRET"), "{newline}");
    }

    #[test]
    fn names_are_letters_digits_and_three_marks() {
        assert!(is_valid_name("backend-pw_1.v2"));
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(257)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(references("{{a b}}").unwrap_err().contains("not a named value reference"));
    }
}
