//! Named values linked to files (Vault Agent, a Kubernetes Secret volume): the link (a put that
//! remembers its file), and each refresh, which applies a new value through the put's rules or
//! keeps the last good one and records why.

use super::certificate_sources::now;
use super::named_values::{check_named_by, check_named_value};
use super::{Change, Plan, RefreshOutcome, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{LastRefresh, NamedValue, NamedValueSource};

impl Store {
    /// Stores the value read from `source`'s file under `name` (with the rules of a put) and
    /// remembers the source, so the file is watched from now on.
    pub async fn link_named_value(
        &self,
        name: &str,
        value: &str,
        secret: bool,
        mut source: NamedValueSource,
        options: &WriteOptions,
    ) -> Result<NamedValue, StoreError> {
        source.last_refresh = Some(LastRefresh { at: now(), ok: true, message: String::new() });
        self.write_named_value(name, value, secret, Some(source), options).await
    }

    /// Applies one read of `name`'s file `path`: `read` is the value it held (one trailing
    /// newline dropped), or why it was refused; `content_hash` identifies what was read. A read
    /// of a file the name is no longer linked to (relinked meanwhile) is dropped. A new value
    /// becomes a revision if it passes the put's rules (every policy naming it stays valid);
    /// anything else keeps the stored value and records the failure in `last_refresh`, in
    /// words that never hold the value.
    pub async fn refresh_named_value(
        &self,
        name: &str,
        path: &str,
        content_hash: Vec<u8>,
        read: Result<String, String>,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(|state| {
            let Some(current) = state.named_values.get(name) else {
                return Err(StoreError::NotFound { kind: ResourceKind::NamedValue, id: name.to_string() });
            };
            let Some(source) = state.named_value_sources.get(name) else {
                return Err(StoreError::NotLinked { kind: ResourceKind::NamedValue, id: name.to_string() });
            };
            if source.path != path {
                return Ok(Plan::Done(RefreshOutcome::Unchanged));
            }
            let mut source = NamedValueSource { content_hash: content_hash.clone(), ..source.clone() };
            let checked = read.clone().and_then(|value| {
                check_named_value(name, value.as_bytes()).map_err(|e| e.to_string())?;
                if value != current.value {
                    check_named_by(state, name, &value).map_err(|e| e.to_string())?;
                }
                Ok(value)
            });
            let sources =
                |source| Change { put_named_value_sources: vec![(name.to_string(), source)], ..Change::default() };
            let ok = LastRefresh { at: now(), ok: true, message: String::new() };
            Ok(match checked {
                Ok(value) if value == current.value => {
                    source.last_refresh = Some(ok);
                    Plan::Record(sources(source), RefreshOutcome::Unchanged)
                }
                Ok(value) => {
                    source.last_refresh = Some(ok);
                    let named = NamedValue { value, revision: state.revision + 1, ..current.clone() };
                    let change = Change { put_named_values: vec![named], ..sources(source) };
                    Plan::Commit(change, RefreshOutcome::Rotated(state.revision + 1))
                }
                Err(message) => {
                    source.last_refresh = Some(LastRefresh { at: now(), ok: false, message: message.clone() });
                    Plan::Record(sources(source), RefreshOutcome::Refused(message))
                }
            })
        })
        .await
    }
}
