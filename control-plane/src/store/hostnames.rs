//! Writes of hostnames: put (create or replace) and delete, each checked by the same rules
//! (`rules.rs`) before it is committed.

use super::rules::{check_etag, check_hostname, existing, normalize_hostname};
use super::{Change, HostnameDefinition, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{Hostname, Revision};

impl Store {
    /// Creates or replaces a hostname, its name normalized to lowercase. Its certificate must
    /// exist, be unexpired (unless `allow_expired`) and be able to serve the name (serverAuth,
    /// a subjectAltName DNS entry covering it); its client CA certificates must exist. Making it
    /// the default while another hostname is the default is refused
    /// ([`StoreError::DefaultHostnameTaken`]) rather than moving the default silently: the
    /// operator first puts the current default without `default`.
    pub async fn put_hostname(
        &self,
        definition: HostnameDefinition,
        options: &WriteOptions,
    ) -> Result<Hostname, StoreError> {
        let name = normalize_hostname(&definition.name)?;
        self.write(|state| {
            check_etag(
                ResourceKind::Hostname,
                &name,
                state.hostnames.get(&name).map(|h| h.revision),
                &options.if_match,
            )?;
            let hostname = hostname_of(&definition, name.clone(), state.revision + 1);
            check_hostname(state, &hostname, options.allow_expired)?;
            Ok(Plan::Commit(Change { put_hostnames: vec![hostname.clone()], ..Change::default() }, hostname))
        })
        .await
    }

    /// Deletes a hostname no API lists; returns the new revision.
    pub async fn delete_hostname(&self, name: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        let name = name.to_ascii_lowercase();
        self.write(|state| {
            existing(ResourceKind::Hostname, &name, &state.hostnames, |h| h.revision, &options.if_match)?;
            let apis = state.apis_on_hostname(&name);
            if !apis.is_empty() {
                return Err(StoreError::HostnameInUse { name: name.clone(), apis });
            }
            let change = Change { remove_hostnames: vec![name.clone()], ..Change::default() };
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }
}

/// The hostname a definition describes, under its normalized `name`, at `revision`.
pub(super) fn hostname_of(definition: &HostnameDefinition, name: String, revision: Revision) -> Hostname {
    Hostname {
        name,
        certificate_id: definition.certificate_id.clone(),
        default: definition.default,
        negotiate_client_certificate: definition.negotiate_client_certificate,
        client_ca_ids: definition.client_ca_ids.clone(),
        revision,
    }
}
