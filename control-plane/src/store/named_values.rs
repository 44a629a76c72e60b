//! Writes of named values: put (create or replace) and delete. A value must keep every policy
//! that names it valid once substituted; one that a policy names cannot be deleted.

use super::rules::{check_etag, existing};
use super::{Change, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{NamedValue, Revision};
use crate::policy::named_values::is_valid_name;

/// Longest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

impl Store {
    /// Creates or replaces a named value. Its name is 1 to 256 letters, digits, '-', '_', '.';
    /// its value at most 4096 bytes without control characters (it is sent in headers). Every
    /// API whose policy names it must stay valid with the new value substituted.
    pub async fn put_named_value(
        &self,
        name: &str,
        value: &str,
        secret: bool,
        options: &WriteOptions,
    ) -> Result<NamedValue, StoreError> {
        let invalid = |reason| StoreError::InvalidNamedValue { name: gatehouse_shared::api::quote(name), reason };
        if !is_valid_name(name) {
            return Err(invalid("names are 1 to 256 letters, digits, '-', '_' or '.'"));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(invalid("the value is longer than 4096 bytes"));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid("the value holds a control character (a line break?); it is sent in headers"));
        }
        self.write(|state| {
            let current = state.named_values.get(name);
            check_etag(ResourceKind::NamedValue, name, current.map(|v| v.revision), &options.if_match)?;
            if current.is_some_and(|c| c.value == value && c.secret == secret) {
                return Ok(Plan::Done(current.expect("checked").clone()));
            }
            let named = NamedValue { name: name.into(), value: value.into(), secret, revision: state.revision + 1 };
            let mut next = state.clone();
            next.named_values.insert(name.into(), named.clone());
            for api in state.apis_naming(name) {
                next.resolved_policy(&state.apis[&api].policy).map_err(|source| StoreError::NamedValueBreaksApi {
                    name: name.into(),
                    api,
                    source,
                })?;
            }
            Ok(Plan::Commit(Change { put_named_values: vec![named.clone()], ..Change::default() }, named))
        })
        .await
    }

    /// Deletes a named value no policy names; returns the new revision.
    pub async fn delete_named_value(&self, name: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::NamedValue, name, &state.named_values, |v| v.revision, &options.if_match)?;
            let apis = state.apis_naming(name);
            if !apis.is_empty() {
                return Err(StoreError::NamedValueInUse { name: name.into(), apis });
            }
            let change = Change { remove_named_values: vec![name.into()], ..Change::default() };
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }
}
