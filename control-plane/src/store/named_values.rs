//! Writes of named values: put (create or replace) and delete. A value must keep every policy
//! that names it valid once substituted; one that a policy names cannot be deleted. The rules a
//! value follows live here, whoever gives it: an operator's put, or a linked file.

use super::rules::{check_etag, existing};
use super::{Change, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{NamedValue, NamedValueSource, Revision, State};
use crate::policy::named_values::is_valid_name;

/// Longest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Checks a named value's name and value (as bytes, so that a file's content is checked before
/// it is text): the name is 1 to 256 letters, digits, '-', '_', '.'; the value at most 4096
/// bytes of UTF-8 without control characters (it is sent in headers). Returns the value as
/// text. A refusal names the rule, never the value.
pub fn check_named_value<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, StoreError> {
    let invalid = |reason| StoreError::InvalidNamedValue { name: gatehouse_shared::api::quote(name), reason };
    if !is_valid_name(name) {
        return Err(invalid("names are 1 to 256 letters, digits, '-', '_' or '.'"));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid("the value is longer than 4096 bytes"));
    }
    let value = std::str::from_utf8(value).map_err(|_| invalid("the value is not UTF-8 text"))?;
    if value.chars().any(char::is_control) {
        return Err(invalid("the value holds a control character (a line break?); it is sent in headers"));
    }
    Ok(value)
}

/// Checks that every API whose policy names `name` stays valid with `value` substituted.
pub(super) fn check_named_by(state: &State, name: &str, value: &str) -> Result<(), StoreError> {
    let value_of = |n: &str| match n == name {
        true => Some(value),
        false => state.named_values.get(n).map(|v| v.value.as_str()),
    };
    for api in state.apis_naming(name) {
        crate::policy::named_values::resolve(&state.apis[&api].policy, value_of)
            .map_err(|source| StoreError::NamedValueBreaksApi { name: name.into(), api, source })?;
    }
    Ok(())
}

impl Store {
    /// Creates or replaces a named value, with the rules of [`check_named_value`]. Every API
    /// whose policy names it must stay valid with the new value substituted. A put drops the
    /// name's link to a file, if it had one: the operator's value is what stays.
    pub async fn put_named_value(
        &self,
        name: &str,
        value: &str,
        secret: bool,
        options: &WriteOptions,
    ) -> Result<NamedValue, StoreError> {
        self.write_named_value(name, value, secret, None, options).await
    }

    /// Stores a named value as a put does, with the file it was read from (`source`), or
    /// dropping any link (`None`). The same value with another source records only the source
    /// (data planes see no change, so there is no new revision).
    pub(super) async fn write_named_value(
        &self,
        name: &str,
        value: &str,
        secret: bool,
        source: Option<NamedValueSource>,
        options: &WriteOptions,
    ) -> Result<NamedValue, StoreError> {
        check_named_value(name, value.as_bytes())?;
        self.write(|state| {
            let current = state.named_values.get(name);
            check_etag(ResourceKind::NamedValue, name, current.map(|v| v.revision), &options.if_match)?;
            let relink = match &source {
                Some(source) => {
                    Some(Change { put_named_value_sources: vec![(name.into(), source.clone())], ..Change::default() })
                }
                None if state.named_value_sources.contains_key(name) => {
                    Some(Change { remove_named_value_sources: vec![name.into()], ..Change::default() })
                }
                None => None,
            };
            if let Some(current) = current.filter(|c| c.value == value && c.secret == secret) {
                // Data planes would see nothing new: at most the link is recorded, without a revision.
                return Ok(match relink {
                    Some(change) => Plan::Record(change, current.clone()),
                    None => Plan::Done(current.clone()),
                });
            }
            check_named_by(state, name, value)?;
            let named = NamedValue { name: name.into(), value: value.into(), secret, revision: state.revision + 1 };
            let change = Change { put_named_values: vec![named.clone()], ..relink.unwrap_or_default() };
            Ok(Plan::Commit(change, named))
        })
        .await
    }

    /// Deletes a named value no policy names, and its link to a file if it has one; returns
    /// the new revision.
    pub async fn delete_named_value(&self, name: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::NamedValue, name, &state.named_values, |v| v.revision, &options.if_match)?;
            let apis = state.apis_naming(name);
            if !apis.is_empty() {
                return Err(StoreError::NamedValueInUse { name: name.into(), apis });
            }
            let mut change = Change { remove_named_values: vec![name.into()], ..Change::default() };
            if state.named_value_sources.contains_key(name) {
                change.remove_named_value_sources.push(name.into());
            }
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }
}
