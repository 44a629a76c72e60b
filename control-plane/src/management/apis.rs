//! Writes of APIs: put, update (with its mask), delete, credentials and policy XML.

use crate::policy;
use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::update_mask::ApiFields;
use super::views::{api_view, binding_from, parse_thumbprint, policy_view, tls_from};
use crate::model::{Binding, SubscriptionSettings};
use crate::store::{ApiDefinition, ResourceKind, StoreError, WriteOptions};

impl ManagementService {
    pub(super) async fn put_api_inner(&self, request: Request<pb::PutApiRequest>) -> Result<Response<pb::Api>, Status> {
        let request = request.into_inner();
        let binding = request.credentials.map(binding_from).transpose()?;
        let definition = ApiDefinition {
            id: request.id,
            display_name: request.display_name,
            path: request.path,
            service_url: request.service_url,
            binding,
            tls: tls_from(request.backend_tls),
            hostnames: request.hostnames,
            // An empty header is the default one.
            subscription: SubscriptionSettings {
                required: request.subscription_required,
                header: request.subscription_key_header,
            },
        };
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = match request.create_only {
            true => self.store.create_api(definition, &options).await?,
            false => self.store.put_api(definition, &options).await?,
        };
        tracing::info!(id = %api.id, path = %api.path, revision = api.revision, "API saved");
        Ok(Response::new(api_view(&self.store.state(), &api)))
    }

    pub(super) async fn update_api_inner(
        &self,
        request: Request<pb::UpdateApiRequest>,
    ) -> Result<Response<pb::Api>, Status> {
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
                        display_name: if fields.display_name {
                            patch.display_name.clone()
                        } else {
                            current.display_name.clone()
                        },
                        path: if fields.path { patch.path.clone() } else { current.path.clone() },
                        service_url: if fields.service_url {
                            patch.service_url.clone()
                        } else {
                            current.service_url.clone()
                        },
                        binding: binding.clone(),
                        tls: next,
                        hostnames: if fields.hostnames { patch.hostnames.clone() } else { current.hostnames.clone() },
                        subscription: SubscriptionSettings {
                            required: if fields.subscription_required {
                                patch.subscription_required
                            } else {
                                current.subscription.required
                            },
                            header: if fields.subscription_key_header {
                                patch.subscription_key_header.clone()
                            } else {
                                current.subscription.header.clone()
                            },
                        },
                    }
                },
                &options,
            )
            .await?;
        tracing::info!(id = ?api.id, revision = api.revision, "API updated");
        Ok(Response::new(api_view(&self.store.state(), &api)))
    }

    pub(super) async fn delete_api_inner(
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

    pub(super) async fn set_api_credentials_inner(
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

    pub(super) async fn set_api_policy_inner(
        &self,
        request: Request<pb::SetApiPolicyRequest>,
    ) -> Result<Response<pb::ApiPolicy>, Status> {
        let request = request.into_inner();
        let policy = crate::policy::parse_limited(&request.xml, self.limits.max_policy_bytes)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let options = WriteOptions { if_match: request.if_match, allow_expired: request.allow_expired };
        let api = self.store.set_api_policy(&request.api_id, policy, &options).await.map_err(|error| match error {
            // What is wrong with the policy's certificate is an error in the document, at the
            // element: not found, expired, or one that plain http:// could never present.
            StoreError::NotFound { kind: ResourceKind::Certificate, .. }
            | StoreError::ThumbprintNotFound(_)
            | StoreError::CertificateOverPlainHttp(_) => {
                let element = policy::InboundElement::AuthenticationCertificate;
                Status::invalid_argument(policy::refusal_at(&request.xml, element, error.to_string()).to_string())
            }
            // Still a precondition (allow_expired overrides it), but said at the element.
            StoreError::Expired { .. } => {
                let element = policy::InboundElement::AuthenticationCertificate;
                Status::failed_precondition(policy::refusal_at(&request.xml, element, error.to_string()).to_string())
            }
            // An issuer-certificate-id naming no CA certificate: said at its <identity>.
            StoreError::NotFound { kind: ResourceKind::CaCertificate, ref id } => {
                let identities = policy_identities(&request.xml);
                let index = identities.iter().position(|i| i.issuer_certificate_id.as_ref() == Some(id)).unwrap_or(0);
                let element = policy::InboundElement::Identity(index);
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
}

/// The `<identity>` elements of a document that parsed.
fn policy_identities(xml: &str) -> Vec<policy::CertificateIdentity> {
    let parsed = policy::parse_limited(xml, usize::MAX).ok();
    parsed.and_then(|p| p.client_certificate).map(|v| v.identities).unwrap_or_default()
}
