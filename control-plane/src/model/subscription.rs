//! Subscriptions: who may call which APIs, by key (Azure API Management's subscription keys),
//! and what an API asks of its callers. A subscription holds only its keys' SHA-256 hashes: the
//! keys themselves exist once, in the answer that made them.

use gatehouse_shared::subscription_key::{self, KeyHash};

use super::Revision;

/// Whether an API asks its callers for a subscription key, and where they send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSettings {
    /// Requests need the key of an active subscription scoped to the API or to all APIs.
    pub required: bool,
    /// The header the key comes in (as the operator wrote it; compared without case); the query
    /// parameter `subscription-key` works too.
    pub header: String,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        Self { required: false, header: subscription_key::DEFAULT_HEADER.to_string() }
    }
}

/// Which APIs a subscription's keys open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every API, present and future.
    AllApis,
    /// The API with this id.
    Api(String),
}

impl Scope {
    /// From the wire: an API id, or empty for every API.
    pub fn from_api_id(api_id: &str) -> Self {
        if api_id.is_empty() { Self::AllApis } else { Self::Api(api_id.to_string()) }
    }

    /// The API id, or empty for every API (the wire's and the store's form).
    pub fn api_id(&self) -> &str {
        match self {
            Self::AllApis => "",
            Self::Api(id) => id,
        }
    }
}

/// Whether a subscription's keys are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    /// They are.
    Active,
    /// They get 403 until it is resumed.
    Suspended,
}

impl SubscriptionState {
    /// "active" or "suspended", for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// One of a subscription's two keys: two, so clients can move to a regenerated one while the
/// other still works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    /// The primary key.
    Primary,
    /// The secondary key.
    Secondary,
}

impl KeySlot {
    /// "primary" or "secondary".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }
}

/// A subscription as the control plane keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The operator-chosen name (a plain id).
    pub name: String,
    /// The name shown to operators.
    pub display_name: String,
    /// Which APIs its keys open.
    pub scope: Scope,
    /// Whether its keys are accepted.
    pub state: SubscriptionState,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// SHA-256 of the primary key.
    pub primary_key_sha256: KeyHash,
    /// SHA-256 of the secondary key.
    pub secondary_key_sha256: KeyHash,
    /// The revision it was last written at.
    pub revision: Revision,
}

/// A key made just now: the key itself (to be shown once) and its hash (to be stored).
pub struct NewKey {
    /// The key; never stored, never logged.
    pub key: String,
    /// Its SHA-256.
    pub sha256: KeyHash,
}

impl NewKey {
    /// A random key (`ghsk_` and 256 bits in URL-safe base64).
    pub fn generate() -> Self {
        let key = crate::random::secret(subscription_key::PREFIX);
        let sha256 = subscription_key::hash(&key);
        Self { key, sha256 }
    }
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewKey(********)")
    }
}
