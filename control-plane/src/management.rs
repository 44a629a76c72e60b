//! The operators' `Management` API. Domain errors become gRPC statuses here, at the edge.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::v1::{self as pb, management_server::Management};
use tonic::{Request, Response, Status};

mod apis;
mod apply;
mod backup;
mod certificates;
mod errors;
mod fleet;
mod hostnames;
mod named_values;
mod rollout;
mod subscriptions;
mod update_mask;
mod views;

use views::{api_view, ca_view, certificate_view, hostname_view, policy_view, token_view};

use crate::audit::audited;
use crate::gateways::Gateways;
use crate::model::SubscriptionState;
use crate::store::Store;
use crate::tokens::{Role, Tokens};

/// The operators' `Management` gRPC service.
#[derive(Clone)]
pub struct ManagementService {
    store: Arc<Store>,
    gateways: Arc<Gateways>,
    tokens: Arc<Tokens>,
    /// A gateway behind the latest revision for longer than this is STALE.
    stale_after: Duration,
    limits: Limits,
}

/// Size limits on what operators send.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest gRPC message accepted.
    pub max_message_bytes: usize,
    /// Largest PKCS#12 upload, in bytes.
    pub max_pfx_bytes: usize,
    /// Most certificates in an uploaded PFX.
    pub max_chain_length: usize,
    /// Largest policy XML, in bytes.
    pub max_policy_bytes: usize,
    /// Most sync streams one gateway token may hold open.
    pub max_streams_per_token: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_pfx_bytes: crate::certificate::MAX_PFX_BYTES,
            max_chain_length: crate::certificate::MAX_CHAIN_LENGTH,
            max_policy_bytes: crate::policy::MAX_POLICY_BYTES,
            max_streams_per_token: crate::config_sync::MAX_STREAMS_PER_TOKEN,
        }
    }
}

impl ManagementService {
    /// A service over the store, the gateway registry and the tokens; gateways behind for longer
    /// than `stale_after` are STALE.
    pub fn new(
        store: Arc<Store>,
        gateways: Arc<Gateways>,
        tokens: Arc<Tokens>,
        stale_after: Duration,
        limits: Limits,
    ) -> Self {
        Self { store, gateways, tokens, stale_after, limits }
    }
}

#[tonic::async_trait]
impl Management for ManagementService {
    async fn upload_certificate(
        &self,
        request: Request<pb::UploadCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        audited(request, "UploadCertificate", |r| r.id.clone(), |r| self.upload_certificate_inner(r), |r| r.revision)
            .await
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let id = request.into_inner().id;
        let state = self.store.state();
        let stored =
            state.certificates.get(&id).ok_or_else(|| Status::not_found(format!("certificate '{id}' not found")))?;
        Ok(Response::new(certificate_view(&state, stored)))
    }

    async fn link_certificate(
        &self,
        request: Request<pb::LinkCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        audited(request, "LinkCertificate", |r| r.id.clone(), |r| self.link_certificate_inner(r), |r| r.revision).await
    }

    async fn refresh_certificate(
        &self,
        request: Request<pb::RefreshCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        audited(request, "RefreshCertificate", |r| r.id.clone(), |r| self.refresh_certificate_inner(r), |r| r.revision)
            .await
    }

    async fn list_certificates(
        &self,
        _: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let state = self.store.state();
        let certificates = state.certificates.values().map(|c| certificate_view(&state, c)).collect();
        Ok(Response::new(pb::ListCertificatesResponse { certificates, revision: state.revision }))
    }

    async fn delete_certificate(
        &self,
        request: Request<pb::DeleteCertificateRequest>,
    ) -> Result<Response<pb::DeleteCertificateResponse>, Status> {
        audited(request, "DeleteCertificate", |r| r.id.clone(), |r| self.delete_certificate_inner(r), |r| r.revision)
            .await
    }

    async fn put_api(&self, request: Request<pb::PutApiRequest>) -> Result<Response<pb::Api>, Status> {
        audited(request, "PutApi", |r| r.id.clone(), |r| self.put_api_inner(r), |r| r.revision).await
    }

    async fn update_api(&self, request: Request<pb::UpdateApiRequest>) -> Result<Response<pb::Api>, Status> {
        let id = |r: &pb::UpdateApiRequest| r.api.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        audited(request, "UpdateApi", id, |r| self.update_api_inner(r), |r| r.revision).await
    }

    async fn get_api(&self, request: Request<pb::GetApiRequest>) -> Result<Response<pb::Api>, Status> {
        let id = request.into_inner().id;
        let state = self.store.state();
        let api = state.apis.get(&id).ok_or_else(|| Status::not_found(format!("API '{id}' not found")))?;
        Ok(Response::new(api_view(&state, api)))
    }

    async fn list_apis(&self, _: Request<pb::ListApisRequest>) -> Result<Response<pb::ListApisResponse>, Status> {
        let state = self.store.state();
        let apis = state.apis.values().map(|a| api_view(&state, a)).collect();
        Ok(Response::new(pb::ListApisResponse { apis, revision: state.revision }))
    }

    async fn delete_api(
        &self,
        request: Request<pb::DeleteApiRequest>,
    ) -> Result<Response<pb::DeleteApiResponse>, Status> {
        audited(request, "DeleteApi", |r| r.id.clone(), |r| self.delete_api_inner(r), |r| r.revision).await
    }

    async fn set_api_credentials(
        &self,
        request: Request<pb::SetApiCredentialsRequest>,
    ) -> Result<Response<pb::Api>, Status> {
        audited(
            request,
            "SetApiCredentials",
            |r| r.api_id.clone(),
            |r| self.set_api_credentials_inner(r),
            |r| r.revision,
        )
        .await
    }

    async fn get_api_policy(
        &self,
        request: Request<pb::GetApiPolicyRequest>,
    ) -> Result<Response<pb::ApiPolicy>, Status> {
        let id = request.into_inner().api_id;
        let state = self.store.state();
        let api = state.apis.get(&id).ok_or_else(|| Status::not_found(format!("API '{id}' not found")))?;
        Ok(Response::new(policy_view(api)))
    }

    async fn set_api_policy(
        &self,
        request: Request<pb::SetApiPolicyRequest>,
    ) -> Result<Response<pb::ApiPolicy>, Status> {
        audited(request, "SetApiPolicy", |r| r.api_id.clone(), |r| self.set_api_policy_inner(r), |r| r.revision).await
    }

    async fn upload_ca_certificate(
        &self,
        request: Request<pb::UploadCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        audited(
            request,
            "UploadCaCertificate",
            |r| r.id.clone(),
            |r| self.upload_ca_certificate_inner(r),
            |r| r.revision,
        )
        .await
    }

    async fn link_ca_certificate(
        &self,
        request: Request<pb::LinkCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        audited(request, "LinkCaCertificate", |r| r.id.clone(), |r| self.link_ca_certificate_inner(r), |r| r.revision)
            .await
    }

    async fn refresh_ca_certificate(
        &self,
        request: Request<pb::RefreshCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        audited(
            request,
            "RefreshCaCertificate",
            |r| r.id.clone(),
            |r| self.refresh_ca_certificate_inner(r),
            |r| r.revision,
        )
        .await
    }

    async fn list_ca_certificates(
        &self,
        _: Request<pb::ListCaCertificatesRequest>,
    ) -> Result<Response<pb::ListCaCertificatesResponse>, Status> {
        let state = self.store.state();
        let ca_certificates = state.ca_certificates.values().map(|c| ca_view(&state, c)).collect();
        Ok(Response::new(pb::ListCaCertificatesResponse { ca_certificates, revision: state.revision }))
    }

    async fn delete_ca_certificate(
        &self,
        request: Request<pb::DeleteCaCertificateRequest>,
    ) -> Result<Response<pb::DeleteCaCertificateResponse>, Status> {
        audited(
            request,
            "DeleteCaCertificate",
            |r| r.id.clone(),
            |r| self.delete_ca_certificate_inner(r),
            |r| r.revision,
        )
        .await
    }

    async fn put_hostname(&self, request: Request<pb::PutHostnameRequest>) -> Result<Response<pb::Hostname>, Status> {
        audited(request, "PutHostname", |r| r.name.clone(), |r| self.put_hostname_inner(r), |r| r.revision).await
    }

    async fn get_hostname(&self, request: Request<pb::GetHostnameRequest>) -> Result<Response<pb::Hostname>, Status> {
        let name = request.into_inner().name.to_ascii_lowercase();
        let state = self.store.state();
        let hostname = state.hostnames.get(&name).ok_or_else(|| {
            Status::not_found(format!("hostname '{}' not found", gatehouse_shared::api::quote(&name)))
        })?;
        Ok(Response::new(hostname_view(&state, hostname)))
    }

    async fn list_hostnames(
        &self,
        _: Request<pb::ListHostnamesRequest>,
    ) -> Result<Response<pb::ListHostnamesResponse>, Status> {
        let state = self.store.state();
        let hostnames = state.hostnames.values().map(|h| hostname_view(&state, h)).collect();
        Ok(Response::new(pb::ListHostnamesResponse { hostnames, revision: state.revision }))
    }

    async fn delete_hostname(
        &self,
        request: Request<pb::DeleteHostnameRequest>,
    ) -> Result<Response<pb::DeleteHostnameResponse>, Status> {
        audited(request, "DeleteHostname", |r| r.name.clone(), |r| self.delete_hostname_inner(r), |r| r.revision).await
    }

    async fn apply_configuration(
        &self,
        request: Request<pb::ApplyConfigurationRequest>,
    ) -> Result<Response<pb::ApplyConfigurationResponse>, Status> {
        audited(
            request,
            "ApplyConfiguration",
            |_| "configuration".to_string(),
            |r| self.apply_configuration_inner(r),
            |r| r.revision,
        )
        .await
    }

    async fn put_named_value(
        &self,
        request: Request<pb::PutNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        audited(request, "PutNamedValue", |r| r.name.clone(), |r| self.put_named_value_inner(r), |r| r.revision).await
    }

    async fn get_named_value(
        &self,
        request: Request<pb::GetNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        Ok(Response::new(self.get_named_value_inner(&request.into_inner().name)?))
    }

    async fn list_named_values(
        &self,
        _: Request<pb::ListNamedValuesRequest>,
    ) -> Result<Response<pb::ListNamedValuesResponse>, Status> {
        Ok(Response::new(self.list_named_values_inner()))
    }

    async fn delete_named_value(
        &self,
        request: Request<pb::DeleteNamedValueRequest>,
    ) -> Result<Response<pb::DeleteNamedValueResponse>, Status> {
        audited(request, "DeleteNamedValue", |r| r.name.clone(), |r| self.delete_named_value_inner(r), |r| r.revision)
            .await
    }

    async fn link_named_value(
        &self,
        request: Request<pb::LinkNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        audited(request, "LinkNamedValue", |r| r.name.clone(), |r| self.link_named_value_inner(r), |r| r.revision).await
    }

    async fn refresh_named_value(
        &self,
        request: Request<pb::RefreshNamedValueRequest>,
    ) -> Result<Response<pb::NamedValue>, Status> {
        audited(request, "RefreshNamedValue", |r| r.name.clone(), |r| self.refresh_named_value_inner(r), |r| r.revision)
            .await
    }

    async fn list_gateways(
        &self,
        request: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        self.list_gateways_page(request.into_inner()).map(Response::new)
    }

    async fn wait_for_rollout(
        &self,
        request: Request<pb::WaitForRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        self.wait_for(request.into_inner()).await.map(Response::new)
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        audited(request, "CreateToken", |r| r.name.clone(), |r| self.create_token_inner(r), |_| 0).await
    }

    async fn list_tokens(&self, _: Request<pb::ListTokensRequest>) -> Result<Response<pb::ListTokensResponse>, Status> {
        let tokens = self.tokens.list().iter().map(token_view).collect();
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let revoke = |request: Request<pb::RevokeTokenRequest>| async move {
            let request = request.into_inner();
            self.tokens.revoke(&request.name, request.force).await?;
            Ok(Response::new(pb::RevokeTokenResponse {}))
        };
        audited(request, "RevokeToken", |r| r.name.clone(), revoke, |_| 0).await
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreatedSubscription>, Status> {
        let revision = |r: &pb::CreatedSubscription| r.subscription.as_ref().map_or(0, |s| s.revision);
        audited(request, "CreateSubscription", |r| r.name.clone(), |r| self.create_subscription_inner(r), revision)
            .await
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        self.get_subscription_view(&request.into_inner().name).map(Response::new)
    }

    async fn list_subscriptions(
        &self,
        _: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        Ok(Response::new(self.list_subscriptions_view()))
    }

    async fn suspend_subscription(
        &self,
        request: Request<pb::SuspendSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let suspend = |r: Request<pb::SuspendSubscriptionRequest>| async move {
            let r = r.into_inner();
            self.set_subscription_state_inner(&r.name, r.if_match, SubscriptionState::Suspended).await
        };
        audited(request, "SuspendSubscription", |r| r.name.clone(), suspend, |r| r.revision).await
    }

    async fn resume_subscription(
        &self,
        request: Request<pb::ResumeSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let resume = |r: Request<pb::ResumeSubscriptionRequest>| async move {
            let r = r.into_inner();
            self.set_subscription_state_inner(&r.name, r.if_match, SubscriptionState::Active).await
        };
        audited(request, "ResumeSubscription", |r| r.name.clone(), resume, |r| r.revision).await
    }

    async fn regenerate_subscription_key(
        &self,
        request: Request<pb::RegenerateSubscriptionKeyRequest>,
    ) -> Result<Response<pb::RegeneratedSubscriptionKey>, Status> {
        let revision = |r: &pb::RegeneratedSubscriptionKey| r.subscription.as_ref().map_or(0, |s| s.revision);
        let regenerate = |r| self.regenerate_subscription_key_inner(r);
        audited(request, "RegenerateSubscriptionKey", |r| r.name.clone(), regenerate, revision).await
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let delete = |r| self.delete_subscription_inner(r);
        audited(request, "DeleteSubscription", |r| r.name.clone(), delete, |r| r.revision).await
    }

    type CreateBackupStream = backup::BackupChunks;

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<Self::CreateBackupStream>, Status> {
        // Not a write, but every sealed record leaves with it: audited like one.
        audited(request, "CreateBackup", |_| "store".into(), |_| self.create_backup_inner(), |_| 0).await
    }
}

impl ManagementService {
    async fn create_token_inner(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        let request = request.into_inner();
        let role = match pb::Role::try_from(request.role) {
            Ok(pb::Role::Operator) => Role::Operator,
            Ok(pb::Role::Gateway) => Role::Gateway,
            _ => return Err(Status::invalid_argument("role must be OPERATOR or GATEWAY")),
        };
        let data_plane_names = Some(request.data_plane_names).filter(|n| !n.is_empty());
        let (record, secret) = self.tokens.create(&request.name, role, data_plane_names.as_deref()).await?;
        Ok(Response::new(pb::CreatedToken { token: Some(token_view(&record)), secret }))
    }
}
