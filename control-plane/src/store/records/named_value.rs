//! A named value as the store keeps it: the value in clear, or sealed under the master key when
//! it is secret; and, for a linked one, the file it is read from and how its last read went.

use gatehouse_shared::sealed::SealingKey;

use super::{NAMED_VALUE_PREFIX, NAMED_VALUE_SOURCE_PREFIX, SECRET_CONTEXT};
use crate::model::{LastRefresh, NamedValue, NamedValueSource};

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct NamedValueRecord {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    /// Empty when secret.
    #[prost(string, tag = "2")]
    pub(super) value: String,
    #[prost(bool, tag = "3")]
    pub(super) secret: bool,
    /// The value sealed, when secret.
    #[prost(bytes = "vec", tag = "4")]
    pub(super) sealed_value: Vec<u8>,
    #[prost(uint64, tag = "5")]
    pub(super) revision: u64,
}

impl NamedValueRecord {
    /// The named value, unsealing a secret one.
    pub(super) fn into_named_value(
        self,
        seal: &SealingKey,
    ) -> Result<NamedValue, Box<dyn std::error::Error + Send + Sync>> {
        let value = match self.secret {
            true => String::from_utf8(seal.open(SECRET_CONTEXT, &self.sealed_value)?)?,
            false => self.value,
        };
        Ok(NamedValue { name: self.name, value, secret: self.secret, revision: self.revision })
    }
}

/// The batch entry for a named value (at its own revision).
pub(in crate::store) fn named_value_entry(named: &NamedValue, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    let record = NamedValueRecord {
        name: named.name.clone(),
        value: if named.secret { String::new() } else { named.value.clone() },
        secret: named.secret,
        sealed_value: if named.secret { seal.seal(SECRET_CONTEXT, named.value.as_bytes()) } else { Vec::new() },
        revision: named.revision,
    };
    (named_value_key(&named.name), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn named_value_key(name: &str) -> Vec<u8> {
    format!("{NAMED_VALUE_PREFIX}{name}").into_bytes()
}

/// Where a linked named value comes from. Holds no value: that is in the named value's record
/// (sealed when secret), and a failed read's message never carries one.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct NamedValueSourceRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    path: String,
    #[prost(bytes = "vec", tag = "3")]
    content_hash: Vec<u8>,
    #[prost(bool, tag = "4")]
    refreshed: bool,
    #[prost(int64, tag = "5")]
    refreshed_at: i64,
    #[prost(bool, tag = "6")]
    refresh_ok: bool,
    #[prost(string, tag = "7")]
    refresh_message: String,
}

impl NamedValueSourceRecord {
    /// The name and its source.
    pub(super) fn into_source(self) -> (String, NamedValueSource) {
        let last_refresh = self.refreshed.then_some(LastRefresh {
            at: self.refreshed_at,
            ok: self.refresh_ok,
            message: self.refresh_message,
        });
        (self.name, NamedValueSource { path: self.path, content_hash: self.content_hash, last_refresh })
    }
}

/// The batch entry for a named value's source.
pub(in crate::store) fn named_value_source_entry(name: &str, source: &NamedValueSource) -> (Vec<u8>, Vec<u8>) {
    let mut record = NamedValueSourceRecord {
        name: name.to_string(),
        path: source.path.clone(),
        content_hash: source.content_hash.clone(),
        ..NamedValueSourceRecord::default()
    };
    if let Some(last) = &source.last_refresh {
        record.refreshed = true;
        record.refreshed_at = last.at;
        record.refresh_ok = last.ok;
        record.refresh_message = last.message.clone();
    }
    (named_value_source_key(name), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn named_value_source_key(name: &str) -> Vec<u8> {
    format!("{NAMED_VALUE_SOURCE_PREFIX}{name}").into_bytes()
}
