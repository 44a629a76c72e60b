//! Subscription keys, Azure API Management's default client authentication. An API that
//! requires one takes the key from its header (by default `Ocp-Apim-Subscription-Key`) or from
//! the query parameter `subscription-key`, and the key must belong to an active subscription
//! scoped to the API or to all APIs. The snapshot carries only the keys' SHA-256 hashes; the
//! lookup by hash is built with the routing table, off the request path, and the key is
//! removed from the request before anything goes to the backend.

use std::borrow::Cow;
use std::collections::HashMap;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::subscription_key::{self, KeyHash};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::configuration::Configuration;
use crate::routes::HeaderError;

/// Every subscription of a configuration, by the hash of each of its keys.
#[derive(Default)]
pub struct Subscriptions {
    by_hash: HashMap<KeyHash, Vec<Holder>>,
}

/// A subscription as a key finds it.
struct Holder {
    /// The API id its keys open; None: every API.
    scope: Option<String>,
    active: bool,
}

/// Why a subscription from the control plane cannot be used (the data plane NACKs it).
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// A key hash that is not 32 bytes.
    #[error("its {0} key hash is not 32 bytes")]
    Hash(&'static str),
    /// A state this data plane does not know (a newer control plane's).
    #[error("unknown state {0}")]
    State(i32),
}

/// What an API asks of its callers: a key, in this header or in the query.
pub struct KeyRequirement {
    header: HeaderName,
    /// As the operator wrote it, for messages.
    shown: String,
}

/// Why a request does not get through; each becomes a problem+json response.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No key in the header or the query (401).
    Missing,
    /// More than one key (401): which one was meant is not for the gateway to guess.
    Several,
    /// No subscription for this API has the key (401): unknown, or scoped to another API.
    Unknown,
    /// The key's subscription is suspended (403).
    Suspended,
}

// === impl Subscriptions ===

impl Subscriptions {
    /// The lookup for `config`'s subscriptions; the error names the subscription.
    pub fn build(config: &Configuration) -> Result<Self, (String, SubscriptionError)> {
        use pb::subscription_config::State;
        let mut by_hash: HashMap<KeyHash, Vec<Holder>> = HashMap::new();
        for subscription in config.subscriptions.values() {
            let failed = |error| (subscription.name.clone(), error);
            let active = match State::try_from(subscription.state) {
                Ok(State::Active) => true,
                Ok(State::Suspended) => false,
                _ => return Err(failed(SubscriptionError::State(subscription.state))),
            };
            let hash =
                |bytes: &[u8], which| KeyHash::try_from(bytes).map_err(|_| failed(SubscriptionError::Hash(which)));
            let keys = [
                hash(&subscription.primary_key_sha256, "primary")?,
                hash(&subscription.secondary_key_sha256, "secondary")?,
            ];
            let scope = Some(subscription.scope.clone()).filter(|s| !s.is_empty());
            for key in keys {
                by_hash.entry(key).or_default().push(Holder { scope: scope.clone(), active });
            }
        }
        Ok(Self { by_hash })
    }

    /// Whether `key` opens API `api_id`: some active subscription scoped to it or to all APIs
    /// has it.
    fn check(&self, api_id: &str, key: &str) -> Result<(), Refusal> {
        let holders = self.by_hash.get(&subscription_key::hash(key)).map(Vec::as_slice).unwrap_or_default();
        let for_api = || holders.iter().filter(|h| h.scope.as_deref().is_none_or(|scope| scope == api_id));
        if for_api().any(|h| h.active) {
            Ok(())
        } else if for_api().next().is_some() {
            Err(Refusal::Suspended)
        } else {
            Err(Refusal::Unknown)
        }
    }

    /// Checks the key of a request to API `api_id` when `requirement` asks for one, and takes
    /// it out of the request: every value of the key header from `headers`, every
    /// `subscription-key` parameter from `query`. Returns the query to forward (the rest of it
    /// as the client sent it); without a requirement, the request is not touched.
    pub fn admit<'q>(
        &self,
        requirement: Option<&KeyRequirement>,
        api_id: &str,
        headers: &mut HeaderMap,
        query: Option<&'q str>,
    ) -> Result<Option<Cow<'q, str>>, Refusal> {
        let Some(requirement) = requirement else { return Ok(query.map(Cow::Borrowed)) };
        let from_header: Vec<HeaderValue> = headers.get_all(&requirement.header).iter().cloned().collect();
        headers.remove(&requirement.header);
        let (rest, from_query) = split_query(query);
        // The header wins over the query parameter; a header that is not text is no key.
        let presented: Vec<Cow<'_, str>> = if from_header.is_empty() {
            from_query
        } else {
            from_header
                .iter()
                .map(|v| v.to_str().map(Cow::Borrowed).map_err(|_| Refusal::Unknown))
                .collect::<Result<_, _>>()?
        };
        match presented.as_slice() {
            [] => Err(Refusal::Missing),
            [key] if key.is_empty() => Err(Refusal::Missing),
            [key] => self.check(api_id, key).map(|()| rest),
            _ => Err(Refusal::Several),
        }
    }
}

/// The query without its `subscription-key` parameters (None when nothing is left; the
/// client's text, borrowed, when it had none) and their values, percent-decoded. A parameter
/// counts as the key however a backend's framework might read its name (percent-escaped, any
/// case, `+` or spaces around it, `;` as a separator), so no spelling carries a key through;
/// when one is found the rest is rejoined with `&`.
fn split_query(query: Option<&str>) -> (Option<Cow<'_, str>>, Vec<Cow<'_, str>>) {
    let Some(query) = query else { return (None, Vec::new()) };
    let pairs = || query.split(['&', ';']);
    let is_key = |pair: &&str| {
        let name = percent_decode(pair.split('=').next().unwrap_or_default()).replace('+', " ");
        name.trim().eq_ignore_ascii_case(subscription_key::QUERY_PARAMETER)
    };
    if !pairs().any(|pair| is_key(&pair)) {
        return (Some(Cow::Borrowed(query)), Vec::new());
    }
    let keys = pairs()
        .filter(is_key)
        .map(|pair| pair.split_once('=').map_or(Cow::Borrowed(""), |(_, value)| percent_decode(value)))
        .collect();
    let rest: Vec<&str> = pairs().filter(|pair| !is_key(pair)).collect();
    let rest = Some(rest.join("&")).filter(|r| !r.is_empty()).map(Cow::Owned);
    (rest, keys)
}

/// `%XX` escapes decoded; a malformed one (or one that is not UTF-8) leaves a value no key has.
fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else { return Cow::Borrowed("\u{0}") };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_or(Cow::Borrowed("\u{0}"), Cow::Owned)
}

// === impl KeyRequirement ===

impl KeyRequirement {
    /// What `route` asks of its callers: None when it requires no subscription.
    pub fn of_route(route: &pb::RouteConfig) -> Result<Option<Self>, HeaderError> {
        if !route.subscription_required {
            return Ok(None);
        }
        let shown = match route.subscription_key_header.as_str() {
            "" => subscription_key::DEFAULT_HEADER,
            name => name,
        };
        let header = HeaderName::from_bytes(shown.as_bytes())
            .map_err(|source| HeaderError::Name { name: shown.to_string(), source })?;
        Ok(Some(Self { header, shown: shown.to_string() }))
    }
}

// === impl Refusal ===

impl Refusal {
    /// The response's status, title and detail. None of them says whether a key exists for
    /// another API.
    pub fn status_title_detail(&self, requirement: Option<&KeyRequirement>) -> (StatusCode, &'static str, String) {
        let header = requirement.map_or(subscription_key::DEFAULT_HEADER, |r| r.shown.as_str());
        let parameter = subscription_key::QUERY_PARAMETER;
        match self {
            Self::Missing => (
                StatusCode::UNAUTHORIZED,
                "Subscription key required",
                format!(
                    "this API needs a subscription key: send it in the {header} header or the {parameter} query parameter"
                ),
            ),
            Self::Several => (
                StatusCode::UNAUTHORIZED,
                "Invalid subscription key",
                format!(
                    "send one subscription key, in the {header} header or the {parameter} query parameter, not several"
                ),
            ),
            Self::Unknown => (
                StatusCode::UNAUTHORIZED,
                "Invalid subscription key",
                "the subscription key is not valid for this API".to_string(),
            ),
            Self::Suspended => (
                StatusCode::FORBIDDEN,
                "Subscription suspended",
                "the subscription this key belongs to is suspended".to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_key_parameter_is_taken_out() {
        for query in
            ["subscription%2Dkey=K&a=1", "Subscription-Key=K&a=1", "a=1;subscription-key=K", "subscription-key+=K&a=1"]
        {
            let (rest, keys) = split_query(Some(query));
            assert_eq!(keys, [Cow::Borrowed("K")], "{query}");
            assert_eq!(rest.as_deref(), Some("a=1"), "{query}");
        }
        let (rest, keys) = split_query(Some("a=1;b=2"));
        assert!(keys.is_empty());
        assert_eq!(rest.as_deref(), Some("a=1;b=2"), "a query without a key stays as sent");
    }

    fn subscription(name: &str, scope: &str, active: bool, keys: [&str; 2]) -> pb::SubscriptionConfig {
        use pb::subscription_config::State;
        pb::SubscriptionConfig {
            name: name.into(),
            scope: scope.into(),
            state: if active { State::Active } else { State::Suspended } as i32,
            primary_key_sha256: subscription_key::hash(keys[0]).to_vec(),
            secondary_key_sha256: subscription_key::hash(keys[1]).to_vec(),
        }
    }

    fn table(subscriptions: Vec<pb::SubscriptionConfig>) -> Subscriptions {
        let config = Configuration {
            subscriptions: subscriptions.into_iter().map(|s| (s.name.clone(), s)).collect(),
            ..Default::default()
        };
        Subscriptions::build(&config).unwrap()
    }

    fn required(header: &str) -> KeyRequirement {
        let route = pb::RouteConfig {
            subscription_required: true,
            subscription_key_header: header.into(),
            ..Default::default()
        };
        KeyRequirement::of_route(&route).unwrap().unwrap()
    }

    #[test]
    fn a_key_opens_the_apis_of_its_scope_while_its_subscription_is_active() {
        let subscriptions = table(vec![
            subscription("orders-only", "orders", true, ["k1", "k2"]),
            subscription("everything", "", true, ["k3", "k4"]),
            subscription("paused", "orders", false, ["k5", "k6"]),
        ]);
        assert_eq!(subscriptions.check("orders", "k1"), Ok(()));
        assert_eq!(subscriptions.check("orders", "k2"), Ok(()), "the secondary key works too");
        assert_eq!(subscriptions.check("billing", "k1"), Err(Refusal::Unknown), "scoped to another API");
        assert_eq!(subscriptions.check("billing", "k4"), Ok(()));
        assert_eq!(subscriptions.check("orders", "k5"), Err(Refusal::Suspended));
        assert_eq!(subscriptions.check("billing", "k5"), Err(Refusal::Unknown), "suspended, and not for billing");
        assert_eq!(subscriptions.check("orders", "nope"), Err(Refusal::Unknown));
    }

    #[test]
    fn the_key_comes_from_the_header_or_the_query_and_is_removed() {
        let subscriptions = table(vec![subscription("s", "", true, ["key-1", "key-2"])]);
        let requirement = required("X-Api-Key");
        let admit = |headers: &mut HeaderMap, query: Option<&str>| {
            subscriptions.admit(Some(&requirement), "a", headers, query).map(|q| q.map(|q| q.into_owned()))
        };

        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "key-1".parse().unwrap());
        headers.insert("accept", "*/*".parse().unwrap());
        assert_eq!(admit(&mut headers, Some("a=1")), Ok(Some("a=1".into())));
        assert!(!headers.contains_key("x-api-key") && headers.contains_key("accept"));

        let mut headers = HeaderMap::new();
        let query = "a=1&subscription-key=key-2&b=%20x&subscription-key";
        assert_eq!(admit(&mut headers, Some(query)), Err(Refusal::Several));
        assert_eq!(admit(&mut headers, Some("a=1&subscription-key=key-2&b=%20x")), Ok(Some("a=1&b=%20x".into())));
        assert_eq!(admit(&mut headers, Some("subscription-key=key%2D1")), Ok(None), "escapes are decoded");
        assert_eq!(admit(&mut headers, Some("subscription-keyx=key-1")), Err(Refusal::Missing));
        assert_eq!(admit(&mut headers, Some("subscription-key=")), Err(Refusal::Missing));
        assert_eq!(admit(&mut headers, None), Err(Refusal::Missing));
        assert_eq!(admit(&mut headers, Some("subscription-key=key-3")), Err(Refusal::Unknown));
        assert_eq!(admit(&mut headers, Some("subscription-key=%zz")), Err(Refusal::Unknown));

        // The header wins over the query; both leave the request.
        headers.insert("x-api-key", "key-1".parse().unwrap());
        assert_eq!(admit(&mut headers, Some("subscription-key=wrong&c=3")), Ok(Some("c=3".into())));
        assert!(headers.is_empty());
        // Two header values are two keys.
        headers.append("x-api-key", "key-1".parse().unwrap());
        headers.append("x-api-key", "key-1".parse().unwrap());
        assert_eq!(admit(&mut headers, None), Err(Refusal::Several));
        assert!(headers.is_empty(), "every value is removed");

        // An API that requires no key leaves the request as it is.
        let mut headers = HeaderMap::new();
        headers.insert("ocp-apim-subscription-key", "key-1".parse().unwrap());
        let query = Some("subscription-key=key-1");
        assert_eq!(subscriptions.admit(None, "a", &mut headers, query).unwrap().as_deref(), query);
        assert!(headers.contains_key("ocp-apim-subscription-key"));
    }

    #[test]
    fn the_default_header_is_apims_and_any_case_matches() {
        let requirement = required("");
        assert_eq!(requirement.header, "ocp-apim-subscription-key");
        let (status, _, detail) = Refusal::Missing.status_title_detail(Some(&requirement));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            detail.contains("Ocp-Apim-Subscription-Key header or the subscription-key query parameter"),
            "{detail}"
        );
        assert_eq!(Refusal::Suspended.status_title_detail(None).0, StatusCode::FORBIDDEN);
        let route = pb::RouteConfig { subscription_required: false, ..Default::default() };
        assert!(KeyRequirement::of_route(&route).unwrap().is_none());
        let bad = pb::RouteConfig {
            subscription_required: true,
            subscription_key_header: "a b".into(),
            ..Default::default()
        };
        assert!(KeyRequirement::of_route(&bad).is_err());
    }

    #[test]
    fn a_malformed_subscription_is_an_error_naming_it() {
        let mut broken = subscription("broken", "", true, ["a", "b"]);
        broken.secondary_key_sha256.pop();
        let config = Configuration {
            subscriptions: [("broken".to_string(), std::sync::Arc::new(broken))].into_iter().collect(),
            ..Default::default()
        };
        let (name, error) = Subscriptions::build(&config).err().unwrap();
        assert_eq!((name.as_str(), error.to_string().as_str()), ("broken", "its secondary key hash is not 32 bytes"));
    }
}
