//! The operators' `Management` API. Domain errors become gRPC statuses here, at the edge.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_proto::v1::{self as pb, management_server::Management};
use gatehouse_shared::policy;
use gatehouse_shared::{CertificateError, ClientCertificate, Thumbprint};
use tonic::{Request, Response, Status};

use crate::audit::audited;
use crate::gateways::{Gateway, GatewayState, Gateways};
use crate::model::{Api, BackendTls, Binding, State, StoredCaCertificate, StoredCertificate, etag};
use crate::store::{ApiDefinition, ResourceKind, Store, StoreError, WriteOptions};
use crate::tokens::{Role, Tokens};

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
    pub max_pfx_bytes: usize,
    /// Most certificates in an uploaded PFX.
    pub max_chain_length: usize,
    pub max_policy_bytes: usize,
    /// Most sync streams one gateway token may hold open.
    pub max_streams_per_token: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_pfx_bytes: gatehouse_shared::certificate::MAX_PFX_BYTES,
            max_chain_length: gatehouse_shared::certificate::MAX_CHAIN_LENGTH,
            max_policy_bytes: gatehouse_shared::policy::MAX_POLICY_BYTES,
            max_streams_per_token: crate::config_sync::MAX_STREAMS_PER_TOKEN,
        }
    }
}

impl ManagementService {
    pub fn new(
        store: Arc<Store>,
        gateways: Arc<Gateways>,
        tokens: Arc<Tokens>,
        stale_after: Duration,
        limits: Limits,
    ) -> Self {
        Self { store, gateways, tokens, stale_after, limits }
    }

    fn gateway_state(&self, gateway: &Gateway, latest: u64) -> GatewayState {
        let behind_since = self.store.committed_at(gateway.applied_revision + 1);
        gateway.state(latest, behind_since, self.stale_after)
    }
}

/// The fields of an API an `UpdateApi` changes (AIP-134 update mask).
#[derive(Debug, Default, PartialEq, Eq)]
struct ApiFields {
    display_name: bool,
    path: bool,
    service_url: bool,
    credentials: bool,
    validate_chain: bool,
    validate_name: bool,
    ca_ids: bool,
    system_roots: bool,
}

impl ApiFields {
    /// From the mask's paths; without a mask, the fields set in `api`.
    fn from_mask(mask: Option<&prost_types::FieldMask>, api: &pb::Api) -> Result<Self, Status> {
        let mut fields = Self::default();
        let paths: Vec<&str> = match mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
            _ => {
                let tls = api.backend_tls.as_ref();
                fields.display_name = !api.display_name.is_empty();
                fields.path = !api.path.is_empty();
                fields.service_url = !api.service_url.is_empty();
                fields.credentials = api.credentials.is_some();
                fields.validate_chain = tls.is_some_and(|t| t.validate_certificate_chain.is_some());
                fields.validate_name = tls.is_some_and(|t| t.validate_certificate_name.is_some());
                fields.ca_ids = tls.is_some_and(|t| !t.ca_certificate_ids.is_empty());
                fields.system_roots = tls.is_some_and(|t| t.trust_system_roots.is_some());
                if fields == Self::default() {
                    return Err(Status::invalid_argument("nothing to update: set update_mask or some fields of api"));
                }
                return Ok(fields);
            }
        };
        for path in paths {
            match path {
                "display_name" => fields.display_name = true,
                "path" => fields.path = true,
                "service_url" => fields.service_url = true,
                "credentials" => fields.credentials = true,
                "backend_tls.validate_certificate_chain" => fields.validate_chain = true,
                "backend_tls.validate_certificate_name" => fields.validate_name = true,
                "backend_tls.ca_certificate_ids" => fields.ca_ids = true,
                "backend_tls.trust_system_roots" => fields.system_roots = true,
                "backend_tls" => {
                    (fields.validate_chain, fields.validate_name, fields.ca_ids, fields.system_roots) =
                        (true, true, true, true)
                }
                "*" => {
                    fields = Self {
                        display_name: true,
                        path: true,
                        service_url: true,
                        credentials: true,
                        validate_chain: true,
                        validate_name: true,
                        ca_ids: true,
                        system_roots: true,
                    }
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "update_mask path '{}' is not an updatable field of an API",
                        gatehouse_shared::api::quote(other)
                    )));
                }
            }
        }
        Ok(fields)
    }
}

const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

fn millis_between(from: SystemTime, to: SystemTime) -> u32 {
    to.duration_since(from).unwrap_or_default().as_millis().min(u32::MAX as u128) as u32
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } | StoreError::ThumbprintNotFound(_) => Status::not_found(error.to_string()),
            StoreError::PathTaken { .. } => Status::already_exists(error.to_string()),
            StoreError::CertificateInUse { .. }
            | StoreError::CaInUse { .. }
            | StoreError::PinnedByThumbprint { .. }
            | StoreError::Expired { .. }
            | StoreError::EtagMismatch { .. }
            | StoreError::EtagOnMissing { .. } => Status::failed_precondition(error.to_string()),
            StoreError::InvalidId { .. }
            | StoreError::Definition(_)
            | StoreError::NoTrustedRoots
            | StoreError::Unmask(_) => Status::invalid_argument(error.to_string()),
            StoreError::Storage(_) | StoreError::Corrupt { .. } | StoreError::Watermark(_) => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "store failure");
                Status::internal(error.to_string())
            }
        }
    }
}

fn certificate_status(error: CertificateError) -> Status {
    Status::invalid_argument(format!("certificate refused: {error}"))
}

fn timestamp(unix_seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix_seconds, nanos: 0 }
}

fn system_timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

fn certificate_view(state: &State, stored: &StoredCertificate) -> pb::Certificate {
    let info = &stored.certificate.info;
    pb::Certificate {
        id: stored.id.clone(),
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        thumbprint: info.thumbprint.to_string(),
        not_before: Some(timestamp(info.not_before)),
        not_after: Some(timestamp(info.not_after)),
        used_by: state.used_by(&stored.id),
        key_algorithm: info.key_algorithm.clone(),
        chain_length: stored.certificate.chain.len() as u32,
        revision: stored.revision,
        etag: etag(stored.revision),
        expired: info.is_expired(),
    }
}

fn ca_view(state: &State, stored: &StoredCaCertificate) -> pb::CaCertificate {
    let info = &stored.info;
    pb::CaCertificate {
        id: stored.id.clone(),
        subject: info.subject.clone(),
        thumbprint: info.thumbprint.to_string(),
        not_before: Some(timestamp(info.not_before)),
        not_after: Some(timestamp(info.not_after)),
        used_by: state.ca_used_by(&stored.id),
        revision: stored.revision,
        etag: etag(stored.revision),
        expired: info.is_expired(),
    }
}

fn binding_view(binding: &Binding) -> Option<pb::CredentialBinding> {
    use pb::credential_binding::Kind;
    let kind = match binding {
        Binding::None => return None,
        Binding::CertificateId(id) => Kind::CertificateId(id.clone()),
        Binding::Thumbprint(t) => Kind::Thumbprint(t.to_string()),
    };
    Some(pb::CredentialBinding { kind: Some(kind) })
}

fn api_view(state: &State, api: &Api) -> pb::Api {
    pb::Api {
        id: api.id.clone(),
        display_name: api.display_name.clone(),
        path: api.path.clone(),
        service_url: api.service_url.clone(),
        credentials: binding_view(&api.policy.certificate),
        client_certificate_thumbprint: state
            .resolve(&api.policy.certificate)
            .map(|c| c.certificate.info.thumbprint.to_string())
            .unwrap_or_default(),
        revision: api.revision,
        // Effective values, every field explicit.
        backend_tls: Some(pb::BackendTls {
            validate_certificate_chain: Some(api.tls.validate_chain),
            validate_certificate_name: Some(api.tls.validate_name),
            ca_certificate_ids: api.tls.ca_ids.clone(),
            trust_system_roots: Some(api.tls.system_roots),
        }),
        etag: etag(api.revision),
    }
}

fn tls_from(tls: Option<pb::BackendTls>) -> BackendTls {
    let Some(tls) = tls else { return BackendTls::default() };
    BackendTls {
        validate_chain: tls.validate_certificate_chain.unwrap_or(true),
        validate_name: tls.validate_certificate_name.unwrap_or(true),
        ca_ids: tls.ca_certificate_ids,
        system_roots: tls.trust_system_roots.unwrap_or(true),
    }
}

fn policy_view(api: &Api) -> pb::ApiPolicy {
    pb::ApiPolicy {
        api_id: api.id.clone(),
        xml: gatehouse_shared::policy::render(&api.policy, true),
        etag: etag(api.revision),
        revision: api.revision,
    }
}

fn parse_thumbprint(text: &str) -> Result<Thumbprint, Status> {
    Thumbprint::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn binding_from(binding: pb::CredentialBinding) -> Result<Binding, Status> {
    use pb::credential_binding::Kind;
    match binding.kind {
        None => Ok(Binding::None),
        Some(Kind::CertificateId(id)) => Ok(Binding::CertificateId(id)),
        Some(Kind::Thumbprint(t)) => Ok(Binding::Thumbprint(parse_thumbprint(&t)?)),
    }
}

// The write handlers; the trait methods wrap each in an audit record.
impl ManagementService {
    async fn upload_certificate_inner(
        &self,
        request: Request<pb::UploadCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let request = request.into_inner();
        // Decrypting a PFX is CPU work (PBKDF2): keep it off the async workers.
        let (pfx, password) = (request.pfx, request.password);
        let (max_bytes, max_chain) = (self.limits.max_pfx_bytes, self.limits.max_chain_length);
        let parsed = tokio::task::spawn_blocking(move || {
            ClientCertificate::from_pkcs12_limited(&pfx, &password, max_bytes, max_chain)
        })
        .await
        .map_err(|_| Status::internal("certificate parsing task failed"))?;
        let certificate = match parsed {
            Ok(c) => c,
            Err(error) => {
                tracing::info!(id = %request.id, %error, "certificate upload refused");
                return Err(certificate_status(error));
            }
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let stored = self.store.upload_certificate(&request.id, certificate, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.certificate.info.thumbprint, revision = stored.revision, "certificate uploaded");
        Ok(Response::new(certificate_view(&self.store.state(), &stored)))
    }

    async fn delete_certificate_inner(
        &self,
        request: Request<pb::DeleteCertificateRequest>,
    ) -> Result<Response<pb::DeleteCertificateResponse>, Status> {
        let request = request.into_inner();
        let id = request.id;
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_certificate(&id, &options).await?;
        tracing::info!(%id, revision, "certificate deleted");
        Ok(Response::new(pb::DeleteCertificateResponse { revision }))
    }

    async fn put_api_inner(&self, request: Request<pb::PutApiRequest>) -> Result<Response<pb::Api>, Status> {
        let request = request.into_inner();
        let binding = request.credentials.map(binding_from).transpose()?;
        let definition = ApiDefinition {
            id: request.id,
            display_name: request.display_name,
            path: request.path,
            service_url: request.service_url,
            binding,
            tls: tls_from(request.backend_tls),
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = self.store.put_api(definition, &options).await?;
        tracing::info!(id = %api.id, path = %api.path, revision = api.revision, "API saved");
        Ok(Response::new(api_view(&self.store.state(), &api)))
    }

    async fn update_api_inner(&self, request: Request<pb::UpdateApiRequest>) -> Result<Response<pb::Api>, Status> {
        let request = request.into_inner();
        let patch = request.api.ok_or_else(|| Status::invalid_argument("api is required (api.id names the API)"))?;
        let fields = ApiFields::from_mask(request.update_mask.as_ref(), &patch)?;
        let binding = match fields.credentials {
            true => Some(patch.credentials.clone().map(binding_from).transpose()?.unwrap_or(Binding::None)),
            false => None,
        };
        let tls = patch.backend_tls.clone().unwrap_or_default();
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = self
            .store
            .update_api(
                &patch.id,
                |current| {
                    let mut next = current.tls.clone();
                    let defaults = tls_from(Some(tls.clone()));
                    if fields.validate_chain {
                        next.validate_chain = defaults.validate_chain;
                    }
                    if fields.validate_name {
                        next.validate_name = defaults.validate_name;
                    }
                    if fields.ca_ids {
                        next.ca_ids = defaults.ca_ids.clone();
                    }
                    if fields.system_roots {
                        next.system_roots = defaults.system_roots;
                    }
                    ApiDefinition {
                        id: current.id.clone(),
                        display_name: if fields.display_name { patch.display_name.clone() } else { current.display_name.clone() },
                        path: if fields.path { patch.path.clone() } else { current.path.clone() },
                        service_url: if fields.service_url {
                            patch.service_url.clone()
                        } else {
                            current.service_url.clone()
                        },
                        binding,
                        tls: next,
                    }
                },
                &options,
            )
            .await?;
        tracing::info!(id = ?api.id, revision = api.revision, "API updated");
        Ok(Response::new(api_view(&self.store.state(), &api)))
    }

    async fn delete_api_inner(
        &self,
        request: Request<pb::DeleteApiRequest>,
    ) -> Result<Response<pb::DeleteApiResponse>, Status> {
        let request = request.into_inner();
        let id = request.id;
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_api(&id, &options).await?;
        tracing::info!(%id, revision, "API deleted");
        Ok(Response::new(pb::DeleteApiResponse { revision }))
    }

    async fn set_api_credentials_inner(
        &self,
        request: Request<pb::SetApiCredentialsRequest>,
    ) -> Result<Response<pb::Api>, Status> {
        use pb::set_api_credentials_request::Credential;
        let request = request.into_inner();
        let binding = match request.credential {
            Some(Credential::CertificateId(id)) => Binding::CertificateId(id),
            Some(Credential::Thumbprint(t)) => Binding::Thumbprint(parse_thumbprint(&t)?),
            Some(Credential::None(_)) => Binding::None,
            None => {
                return Err(Status::invalid_argument("say which credential: certificate_id, thumbprint, or none"));
            }
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = self.store.set_api_binding(&request.api_id, binding, &options).await?;
        tracing::info!(id = %api.id, binding = ?api.policy.certificate, revision = api.revision, "API credentials set");
        Ok(Response::new(api_view(&self.store.state(), &api)))
    }

    async fn set_api_policy_inner(
        &self,
        request: Request<pb::SetApiPolicyRequest>,
    ) -> Result<Response<pb::ApiPolicy>, Status> {
        let request = request.into_inner();
        let policy = gatehouse_shared::policy::parse_limited(&request.xml, self.limits.max_policy_bytes)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = self.store.set_api_policy(&request.api_id, policy, &options).await.map_err(|error| match error {
            // A certificate named in the policy that does not exist is an error in the document.
            StoreError::NotFound { kind: ResourceKind::Certificate, .. } | StoreError::ThumbprintNotFound(_) => {
                let element = policy::InboundElement::AuthenticationCertificate;
                Status::invalid_argument(policy::refusal_at(&request.xml, element, error.to_string()).to_string())
            }
            StoreError::Unmask(unmask) => Status::invalid_argument(
                policy::refusal_at(&request.xml, unmask.element(), unmask.to_string()).to_string(),
            ),
            other => other.into(),
        })?;
        tracing::info!(id = %api.id, revision = api.revision, "API policy set");
        Ok(Response::new(policy_view(&api)))
    }

    async fn upload_ca_certificate_inner(
        &self,
        request: Request<pb::UploadCaCertificateRequest>,
    ) -> Result<Response<pb::CaCertificate>, Status> {
        let request = request.into_inner();
        let (der, info) = gatehouse_shared::certificate::parse_ca_certificate(&request.certificate)
            .map_err(|e| Status::invalid_argument(format!("CA certificate refused: {e}")))?;
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let stored = self.store.upload_ca_certificate(&request.id, der, info, &options).await?;
        tracing::info!(id = %stored.id, thumbprint = %stored.info.thumbprint, revision = stored.revision, "CA certificate uploaded");
        Ok(Response::new(ca_view(&self.store.state(), &stored)))
    }

    async fn delete_ca_certificate_inner(
        &self,
        request: Request<pb::DeleteCaCertificateRequest>,
    ) -> Result<Response<pb::DeleteCaCertificateResponse>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_ca_certificate(&request.id, &options).await?;
        tracing::info!(id = %request.id, revision, "CA certificate deleted");
        Ok(Response::new(pb::DeleteCaCertificateResponse { revision }))
    }
}

#[tonic::async_trait]
impl Management for ManagementService {
    async fn upload_certificate(
        &self,
        request: Request<pb::UploadCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        audited(request, "UploadCertificate", |r| r.id.clone(), |r| self.upload_certificate_inner(r), |r| r.revision).await
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
        audited(request, "DeleteCertificate", |r| r.id.clone(), |r| self.delete_certificate_inner(r), |r| r.revision).await
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
        audited(request, "SetApiCredentials", |r| r.api_id.clone(), |r| self.set_api_credentials_inner(r), |r| r.revision).await
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
        audited(request, "UploadCaCertificate", |r| r.id.clone(), |r| self.upload_ca_certificate_inner(r), |r| r.revision).await
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
        audited(request, "DeleteCaCertificate", |r| r.id.clone(), |r| self.delete_ca_certificate_inner(r), |r| r.revision).await
    }

    async fn list_gateways(
        &self,
        request: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        use base64::Engine as _;
        const DEFAULT_PAGE: usize = 500;
        const MAX_PAGE: usize = 1000;
        let request = request.into_inner();
        let size = match request.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(Status::invalid_argument("page_size may not be negative")),
            n => (n as usize).min(MAX_PAGE),
        };
        let after = match request.page_token.as_str() {
            "" => String::new(),
            token => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Status::invalid_argument("page_token is not one this server gave"))?,
        };
        let latest = self.store.state().revision;
        let (page, more) = self.gateways.page(&after, size);
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&last.name),
            _ => String::new(),
        };
        let gateways = page
            .into_iter()
            .map(|g| {
                let state = match self.gateway_state(&g, latest) {
                    GatewayState::Synced => pb::GatewayState::Synced,
                    GatewayState::Syncing => pb::GatewayState::Syncing,
                    GatewayState::Stale => pb::GatewayState::Stale,
                    GatewayState::Nacked => pb::GatewayState::Nacked,
                    GatewayState::Disconnected => pb::GatewayState::Disconnected,
                };
                pb::Gateway {
                    name: g.name,
                    address: g.address,
                    version: g.reported.version,
                    connected_since: Some(system_timestamp(g.connected_since)),
                    last_seen: Some(system_timestamp(g.last_seen)),
                    applied_revision: g.applied_revision,
                    connected: g.connected,
                    last_error: g.last_error,
                    state: state as i32,
                    rejected_revision: g.rejected_revision,
                    instance_id: g.reported.instance_id,
                    listen_addresses: g.reported.listen_addresses,
                    backend_ca_fingerprint: g.reported.backend_ca_fingerprint,
                    token: g.token,
                }
            })
            .collect();
        Ok(Response::new(pb::ListGatewaysResponse { gateways, revision: latest, next_page_token }))
    }

    async fn wait_for_rollout(
        &self,
        request: Request<pb::WaitForRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        use pb::gateway_rollout::Result as Outcome;
        let request = request.into_inner();
        let revision = request.revision;
        if revision > self.store.state().revision {
            return Err(Status::invalid_argument(format!("revision {revision} does not exist yet")));
        }
        let timeout = match request.timeout_ms {
            0 => DEFAULT_ROLLOUT_TIMEOUT,
            ms => Duration::from_millis(ms as u64).min(MAX_ROLLOUT_TIMEOUT),
        };
        let committed = self.store.committed_at(revision);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.gateways.subscribe();
        loop {
            changes.borrow_and_update();
            let mut complete = true;
            let gateways = self
                .gateways
                .list()
                .into_iter()
                .filter(|g| g.connected)
                .map(|g| {
                    let (result, reason, at) = if g.applied_revision >= revision {
                        (Outcome::Applied, String::new(), Some(g.applied_at))
                    } else if g.rejected_revision >= revision {
                        (Outcome::Rejected, g.last_error.clone(), Some(g.rejected_at))
                    } else {
                        complete = false;
                        (Outcome::Pending, String::new(), None)
                    };
                    let elapsed_ms = match (committed, at) {
                        (Some(c), Some(at)) => millis_between(c, at),
                        _ => 0,
                    };
                    pb::GatewayRollout { name: g.name, result: result as i32, reason, elapsed_ms }
                })
                .collect::<Vec<_>>();
            let all_applied = complete && gateways.iter().all(|g| g.result == Outcome::Applied as i32);
            if complete || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(pb::Rollout { revision, complete: all_applied, gateways }));
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
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

fn token_view(record: &crate::tokens::TokenRecord) -> pb::Token {
    pb::Token {
        name: record.name.clone(),
        role: match record.role {
            Role::Operator => pb::Role::Operator,
            Role::Gateway => pb::Role::Gateway,
        } as i32,
        created: Some(timestamp(record.created)),
        data_plane_names: match record.role {
            Role::Gateway => record.data_plane_names.as_str().to_string(),
            Role::Operator => String::new(),
        },
    }
}
