//! Writes of hostnames: put (create or replace) and delete; the rules live in the store.

use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::views::hostname_view;
use crate::store::{HostnameDefinition, WriteOptions};

impl ManagementService {
    pub(super) async fn put_hostname_inner(
        &self,
        request: Request<pb::PutHostnameRequest>,
    ) -> Result<Response<pb::Hostname>, Status> {
        let request = request.into_inner();
        let definition = HostnameDefinition {
            name: request.name,
            certificate_id: request.certificate_id,
            default: request.default,
            negotiate_client_certificate: request.negotiate_client_certificate,
            client_ca_ids: request.client_ca_ids,
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let hostname = self.store.put_hostname(definition, &options).await?;
        tracing::info!(
            name = %hostname.name,
            certificate = %hostname.certificate_id,
            default = hostname.default,
            revision = hostname.revision,
            "hostname saved"
        );
        Ok(Response::new(hostname_view(&self.store.state(), &hostname)))
    }

    pub(super) async fn delete_hostname_inner(
        &self,
        request: Request<pb::DeleteHostnameRequest>,
    ) -> Result<Response<pb::DeleteHostnameResponse>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_hostname(&request.name, &options).await?;
        tracing::info!(name = %request.name, revision, "hostname deleted");
        Ok(Response::new(pb::DeleteHostnameResponse { revision }))
    }
}
