//! A subscription as sled stores it: the SHA-256 of its keys, never the keys.

use super::SUBSCRIPTION_PREFIX;
use crate::model::{Scope, Subscription, SubscriptionState};

/// A subscription: the SHA-256 of its keys, never the keys.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SubscriptionRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    display_name: String,
    /// An API id; empty: every API.
    #[prost(string, tag = "3")]
    scope: String,
    /// 1 active, 2 suspended; anything else does not load.
    #[prost(uint32, tag = "4")]
    state: u32,
    #[prost(int64, tag = "5")]
    created: i64,
    #[prost(bytes = "vec", tag = "6")]
    primary_key_sha256: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    secondary_key_sha256: Vec<u8>,
    #[prost(uint64, tag = "8")]
    revision: u64,
}

/// The batch entry for a subscription (at its own revision): its keys' hashes, never the keys.
pub(in crate::store) fn subscription_entry(subscription: &Subscription) -> (Vec<u8>, Vec<u8>) {
    let record = SubscriptionRecord {
        name: subscription.name.clone(),
        display_name: subscription.display_name.clone(),
        scope: subscription.scope.api_id().to_string(),
        state: match subscription.state {
            SubscriptionState::Active => 1,
            SubscriptionState::Suspended => 2,
        },
        created: subscription.created,
        primary_key_sha256: subscription.primary_key_sha256.to_vec(),
        secondary_key_sha256: subscription.secondary_key_sha256.to_vec(),
        revision: subscription.revision,
    };
    (subscription_key(&subscription.name), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn subscription_key(name: &str) -> Vec<u8> {
    format!("{SUBSCRIPTION_PREFIX}{name}").into_bytes()
}

impl SubscriptionRecord {
    pub(super) fn into_subscription(self) -> Result<Subscription, String> {
        let state = match self.state {
            1 => SubscriptionState::Active,
            2 => SubscriptionState::Suspended,
            other => return Err(format!("unknown subscription state {other}")),
        };
        let hash = |bytes: Vec<u8>| <[u8; 32]>::try_from(bytes).map_err(|_| "a key hash is not 32 bytes".to_string());
        Ok(Subscription {
            scope: Scope::from_api_id(&self.scope),
            name: self.name,
            display_name: self.display_name,
            state,
            created: self.created,
            primary_key_sha256: hash(self.primary_key_sha256)?,
            secondary_key_sha256: hash(self.secondary_key_sha256)?,
            revision: self.revision,
        })
    }
}
