//! A named value as the store keeps it: the value in clear, or sealed under the master key when
//! it is secret.

use gatehouse_shared::sealed::SealingKey;

use super::{NAMED_VALUE_PREFIX, SECRET_CONTEXT};
use crate::model::NamedValue;

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
