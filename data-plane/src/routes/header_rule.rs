//! Headers an API's policy sets on requests to its backend (`set-header`, Basic credentials),
//! compiled once per routing table and applied to each request in order.

use gatehouse_proto::v1 as pb;
use http::header::{HeaderMap, HeaderName, HeaderValue, InvalidHeaderName, InvalidHeaderValue};

/// One compiled `set-header` (or Basic credentials) of an API's policy.
pub struct HeaderRule {
    name: HeaderName,
    action: pb::header_action::Action,
    values: Vec<HeaderValue>,
}

/// Why a header action from the control plane cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not a valid HTTP header name.
    #[error("invalid header name '{name}'")]
    Name {
        /// The name as sent.
        name: String,
        /// What `http` said.
        #[source]
        source: InvalidHeaderName,
    },
    /// One of the values is not a valid HTTP header value.
    #[error("invalid value for header '{name}'")]
    Value {
        /// The header's name.
        name: String,
        /// What `http` said.
        #[source]
        source: InvalidHeaderValue,
    },
    /// An action this data plane does not know (a newer control plane's).
    #[error("unknown header action {action}")]
    Action {
        /// The action's number.
        action: i32,
        /// What prost said.
        #[source]
        source: prost::UnknownEnumValue,
    },
}

// === impl HeaderRule ===

impl HeaderRule {
    /// Checks the name and every value once, so applying the rule cannot fail.
    pub fn compile(action: &pb::HeaderAction) -> Result<Self, HeaderError> {
        let name = HeaderName::from_bytes(action.name.as_bytes())
            .map_err(|source| HeaderError::Name { name: action.name.clone(), source })?;
        let values = action
            .values
            .iter()
            .map(|v| {
                HeaderValue::from_str(v).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|source| HeaderError::Value { name: action.name.clone(), source })?;
        let action = pb::header_action::Action::try_from(action.action)
            .map_err(|source| HeaderError::Action { action: action.action, source })?;
        Ok(Self { name, action, values })
    }

    /// Sets, appends or deletes the header in a request to the backend.
    pub fn apply(&self, headers: &mut HeaderMap) {
        use pb::header_action::Action;
        match self.action {
            Action::Override => {
                headers.remove(&self.name);
                for value in &self.values {
                    headers.append(self.name.clone(), value.clone());
                }
            }
            Action::Skip => {
                if !headers.contains_key(&self.name) {
                    for value in &self.values {
                        headers.append(self.name.clone(), value.clone());
                    }
                }
            }
            Action::Append => {
                for value in &self.values {
                    headers.append(self.name.clone(), value.clone());
                }
            }
            Action::Delete => {
                headers.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(name: &str, values: &[&str], action: i32) -> pb::HeaderAction {
        pb::HeaderAction { name: name.into(), values: values.iter().map(|v| v.to_string()).collect(), action }
    }

    #[test]
    fn each_refusal_names_the_header_and_keeps_its_cause() {
        let error = HeaderRule::compile(&action("bad name", &["x"], 0)).err().unwrap();
        assert!(matches!(&error, HeaderError::Name { name, .. } if name == "bad name"), "{error}");
        assert!(std::error::Error::source(&error).is_some());
        let error = HeaderRule::compile(&action("x-key", &["line\nbreak"], 0)).err().unwrap();
        assert!(matches!(&error, HeaderError::Value { name, .. } if name == "x-key"), "{error}");
        let error = HeaderRule::compile(&action("x-key", &["v"], 99)).err().unwrap();
        assert!(matches!(error, HeaderError::Action { action: 99, .. }));
    }

    #[test]
    fn override_replaces_and_skip_keeps_what_the_client_sent() {
        use pb::header_action::Action;
        let mut headers = HeaderMap::new();
        headers.insert("x-key", HeaderValue::from_static("client"));
        HeaderRule::compile(&action("x-key", &["skip"], Action::Skip as i32)).unwrap().apply(&mut headers);
        assert_eq!(headers.get_all("x-key").iter().collect::<Vec<_>>(), ["client"]);
        HeaderRule::compile(&action("x-key", &["gateway"], Action::Override as i32)).unwrap().apply(&mut headers);
        assert_eq!(headers.get_all("x-key").iter().collect::<Vec<_>>(), ["gateway"]);
    }
}
