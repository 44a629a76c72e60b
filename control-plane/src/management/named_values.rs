//! Named values: put, get, list and delete; the rules live in the store. Secret values are
//! never returned (reads show the mask), nor logged.

use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use crate::model::{NamedValue, State, etag};
use crate::store::WriteOptions;

/// A named value as operators read it: a secret one's value masked.
pub(super) fn named_value_view(state: &State, named: &NamedValue) -> pb::NamedValue {
    pb::NamedValue {
        name: named.name.clone(),
        value: if named.secret { crate::policy::MASK.to_string() } else { named.value.clone() },
        secret: named.secret,
        used_by: state.apis_naming(&named.name),
        revision: named.revision,
        etag: etag(named.revision),
    }
}

impl ManagementService {
    pub(super) async fn put_named_value_inner(
        &self,
        request: Request<pb::PutNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let named = self.store.put_named_value(&request.name, &request.value, request.secret, &options).await?;
        tracing::info!(name = %named.name, secret = named.secret, revision = named.revision, "named value saved");
        Ok(Response::new(named_value_view(&self.store.state(), &named)))
    }

    pub(super) fn get_named_value_inner(&self, name: &str) -> Result<pb::NamedValue, Status> {
        let state = self.store.state();
        let named = state.named_values.get(name).ok_or_else(|| {
            Status::not_found(format!("named value '{}' not found", gatehouse_shared::api::quote(name)))
        })?;
        Ok(named_value_view(&state, named))
    }

    pub(super) fn list_named_values_inner(&self) -> pb::ListNamedValuesResponse {
        let state = self.store.state();
        let named_values = state.named_values.values().map(|n| named_value_view(&state, n)).collect();
        pb::ListNamedValuesResponse { named_values, revision: state.revision }
    }

    pub(super) async fn delete_named_value_inner(
        &self,
        request: Request<pb::DeleteNamedValueRequest>,
    ) -> Result<Response<pb::DeleteNamedValueResponse>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_named_value(&request.name, &options).await?;
        tracing::info!(name = %request.name, revision, "named value deleted");
        Ok(Response::new(pb::DeleteNamedValueResponse { revision }))
    }
}
