//! Writes of APIs: put (create or replace), update (named fields), delete, the credential
//! binding and the policy; each checked by the same rules before it is committed.

use crate::policy;

use super::rules::{
    api_hostnames, check_binding, check_etag, check_issuer_cas, check_scheme, check_tls, existing, validate_id,
};
use super::{ApiDefinition, Change, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{Api, Binding, Policy, Revision, State};

impl Store {
    /// Creates or replaces an API: every field of the definition is written, so what the
    /// request leaves out returns to its default (its binding and the rest of its policy are
    /// kept unless a binding is given). [`Self::update_api`] changes named fields only.
    pub async fn put_api(&self, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
        validate_id(ResourceKind::Api, &definition.id)?;
        self.write(|state| plan_api(state, definition.clone(), options)).await
    }

    /// Creates an API, refusing when one with its id exists (never a replacement).
    pub async fn create_api(&self, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
        validate_id(ResourceKind::Api, &definition.id)?;
        self.write(|state| {
            if state.apis.contains_key(&definition.id) {
                return Err(StoreError::Exists { kind: ResourceKind::Api, id: definition.id.clone() });
            }
            plan_api(state, definition.clone(), options)
        })
        .await
    }

    /// Changes some fields of an existing API (AIP-134): `update` gets the stored API and
    /// returns the whole new definition, which is then checked exactly as a put is.
    pub async fn update_api(
        &self,
        id: &str,
        update: impl Fn(&Api) -> ApiDefinition,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        self.write(|state| {
            let definition = update(existing(ResourceKind::Api, id, &state.apis, |a| a.revision, &options.if_match)?);
            plan_api(state, definition, options)
        })
        .await
    }

    /// Deletes an API that no subscription is scoped to; returns the new revision.
    pub async fn delete_api(&self, id: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::Api, id, &state.apis, |a| a.revision, &options.if_match)?;
            let subscriptions = state.subscriptions_scoped_to(id);
            if !subscriptions.is_empty() {
                return Err(StoreError::ApiHasSubscriptions { id: id.to_string(), subscriptions });
            }
            Ok(Plan::Commit(Change { remove_apis: vec![id.to_string()], ..Change::default() }, state.revision + 1))
        })
        .await
    }

    /// Sets an API's client certificate binding: the certificate must exist (unexpired, unless
    /// allowed) and the API's service URL be https.
    pub async fn set_api_binding(
        &self,
        api_id: &str,
        binding: Binding,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        self.write(|state| {
            let api = existing(ResourceKind::Api, api_id, &state.apis, |a| a.revision, &options.if_match)?;
            check_binding(state, &binding, options.allow_expired)?;
            check_scheme(&api.service_url, &binding)?;
            let mut api = api.clone();
            api.policy.certificate = binding.clone();
            api.revision = state.revision + 1;
            Ok(Plan::Commit(Change { put_apis: vec![api.clone()], ..Change::default() }, api))
        })
        .await
    }

    /// Replaces an API's policy. Masked secrets keep their stored values; a policy equal to the
    /// current one writes nothing.
    pub async fn set_api_policy(
        &self,
        api_id: &str,
        policy: Policy,
        options: &WriteOptions,
    ) -> Result<Api, StoreError> {
        self.write(|state| {
            let api = existing(ResourceKind::Api, api_id, &state.apis, |a| a.revision, &options.if_match)?;
            let policy = policy::unmask(policy.clone(), &api.policy)?;
            if policy == api.policy {
                return Ok(Plan::Done(api.clone()));
            }
            check_issuer_cas(state, &policy)?;
            // Every {{name}} it names exists, and the substituted values are valid.
            state.resolved_policy(&policy)?;
            if policy.certificate != api.policy.certificate {
                check_binding(state, &policy.certificate, options.allow_expired)?;
                check_scheme(&api.service_url, &policy.certificate)?;
            }
            let mut api = api.clone();
            api.policy = policy;
            api.revision = state.revision + 1;
            Ok(Plan::Commit(Change { put_apis: vec![api.clone()], ..Change::default() }, api))
        })
        .await
    }
}

/// The API a definition makes on `state` (at the next revision), checked: its hostnames must
/// exist; its path must not be another API's on a host both would answer on (see
/// [`State::api_with_path`]).
pub(super) fn checked_api(state: &State, definition: ApiDefinition, options: &WriteOptions) -> Result<Api, StoreError> {
    let path = gatehouse_shared::api::normalize_path(&definition.path)?;
    gatehouse_shared::api::parse_service_url(&definition.service_url)?;
    let existing = state.apis.get(&definition.id);
    check_etag(ResourceKind::Api, &definition.id, existing.map(|a| a.revision), &options.if_match)?;
    let hostnames = api_hostnames(state, &definition.hostnames)?;
    if let Some(other) = state.api_with_path(&path, &hostnames, &definition.id) {
        let shared = other.hostnames.iter().filter(|h| hostnames.contains(h)).cloned().collect();
        return Err(StoreError::PathTaken { path, api: other.id.clone(), hostnames: shared });
    }
    check_tls(state, &definition.tls)?;
    let subscription = super::subscriptions::subscription_settings(definition.subscription)?;
    let mut policy = existing.map(|a| a.policy.clone()).unwrap_or_default();
    if let Some(binding) = definition.binding {
        if binding != policy.certificate {
            check_binding(state, &binding, options.allow_expired)?;
        }
        policy.certificate = binding;
    }
    check_scheme(&definition.service_url, &policy.certificate)?;
    let api = Api {
        id: definition.id,
        display_name: definition.display_name,
        path,
        service_url: definition.service_url,
        policy,
        tls: definition.tls,
        hostnames,
        subscription,
        revision: state.revision + 1,
    };
    Ok(api)
}

/// Commits the checked API.
fn plan_api(state: &State, definition: ApiDefinition, options: &WriteOptions) -> Result<Plan<Api>, StoreError> {
    let api = checked_api(state, definition, options)?;
    Ok(Plan::Commit(Change { put_apis: vec![api.clone()], ..Change::default() }, api))
}
