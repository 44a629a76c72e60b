//! Named values: put, link to a file, refresh, get, list and delete; the rules live in the store.
//! Secret values are never returned (reads show the mask), nor logged.

use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::certificates::check_absolute;
use super::views::last_refresh_view;
use crate::model::{NamedValue, NamedValueSource, State, etag};
use crate::sources::{ValueFile, ValueFileError};
use crate::store::{RefreshOutcome, WriteOptions};

/// A named value as operators read it: a secret one's value masked; a linked one with its file
/// and last read.
pub(super) fn named_value_view(state: &State, named: &NamedValue) -> pb::NamedValue {
    let source = state.named_value_sources.get(&named.name);
    pb::NamedValue {
        name: named.name.clone(),
        value: if named.secret { crate::policy::MASK.to_string() } else { named.value.clone() },
        secret: named.secret,
        used_by: state.apis_naming(&named.name),
        revision: named.revision,
        etag: etag(named.revision),
        source_path: source.map(|s| s.path.clone()).unwrap_or_default(),
        last_refresh: last_refresh_view(source.and_then(|s| s.last_refresh.as_ref())),
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

    pub(super) async fn link_named_value_inner(
        &self,
        request: Request<pb::LinkNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        let request = request.into_inner();
        check_absolute(&[&request.path])?;
        let (name, path) = (request.name.clone(), request.path.clone());
        // A file read can block (a network file system).
        let read = tokio::task::spawn_blocking(move || ValueFile::read(&name, &path))
            .await
            .map_err(|_| Status::internal("named value file reading task failed"))?;
        let value = read.value.map_err(|error| {
            tracing::info!(
                name = %request.name.escape_debug(),
                error = %gatehouse_shared::error_chain(&error),
                "named value link refused"
            );
            match error {
                ValueFileError::Refused(error) => Status::from(error),
                read @ ValueFileError::Read { .. } => Status::invalid_argument(gatehouse_shared::error_chain(&read)),
            }
        })?;
        let source_path = request.path.clone();
        let source = NamedValueSource { path: request.path, content_hash: read.content_hash, last_refresh: None };
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let named = self.store.link_named_value(&request.name, &value, request.secret, source, &options).await?;
        tracing::info!(
            name = %named.name,
            path = %source_path.escape_debug(),
            secret = named.secret,
            revision = named.revision,
            "named value linked to a file"
        );
        Ok(Response::new(named_value_view(&self.store.state(), &named)))
    }

    pub(super) async fn refresh_named_value_inner(
        &self,
        request: Request<pb::RefreshNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        let name = request.into_inner().name;
        match crate::sources::refresh_named_value(&self.store, &name, true).await? {
            RefreshOutcome::Refused(message) => Err(Status::invalid_argument(message)),
            RefreshOutcome::Rotated(_) | RefreshOutcome::Unchanged => {
                Ok(Response::new(self.get_named_value_inner(&name)?))
            }
        }
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
