//! `ApplyConfiguration`: a declaration read off the wire (PFX files decrypted, CA certificates
//! and CRLs parsed, policies parsed), then applied by the store in one revision. A resource
//! that cannot even be read is refused like one that breaks a rule: all are listed together.

use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::subscriptions::subscription_view;
use super::views::{binding_from, parse_thumbprint, tls_from};
use crate::certificate::ClientCertificate;
use crate::model::{Scope, SubscriptionSettings, SubscriptionState};
use crate::store::apply::{
    CaToStore, Declaration, DeclaredApi, DeclaredCa, DeclaredCertificate, DeclaredNamedValue, DeclaredSubscription,
};
use crate::store::{ApiDefinition, HostnameDefinition, ResourceKind, StoreError};

/// Why one declared resource could not be read, as the store reports rule breaks.
fn unreadable(kind: ResourceKind, id: &str, reason: String) -> (ResourceKind, String, StoreError) {
    let error = StoreError::Unreadable { reason };
    (kind, id.to_string(), error)
}

impl ManagementService {
    pub(super) async fn apply_configuration_inner(
        &self,
        request: Request<pb::ApplyConfigurationRequest>,
    ) -> Result<Response<pb::ApplyConfigurationResponse>, Status> {
        let request = request.into_inner();
        let mut errors = Vec::new();
        let mut declaration = Declaration { prune: request.prune, ..Declaration::default() };

        for ca in request.ca_certificates {
            if ca.certificate.is_empty() {
                // A reference to the stored CA; a CRL given is checked against it by the store.
                let crl_der = (!ca.crl.is_empty()).then_some(ca.crl);
                declaration.ca_certificates.push(DeclaredCa { id: ca.id, certificate: None, crl_der });
                continue;
            }
            let parsed = crate::certificate::parse_ca_certificate(&ca.certificate)
                .map_err(|e| format!("CA certificate refused: {e}"))
                .and_then(|(der, info)| match ca.crl.is_empty() {
                    true => Ok((der, info, None)),
                    false => crate::certificate::parse_crl(&ca.crl, &der)
                        .map(|crl| (der, info, Some(crl)))
                        .map_err(|e| format!("CRL refused: {e}")),
                });
            match parsed {
                Ok((der, info, crl)) => {
                    let certificate = Some(CaToStore { id: ca.id.clone(), der, info, crl });
                    declaration.ca_certificates.push(DeclaredCa { id: ca.id, certificate, crl_der: None });
                }
                Err(reason) => errors.push(unreadable(ResourceKind::CaCertificate, &ca.id, reason)),
            }
        }
        for declared in request.certificates {
            let thumbprint = match declared.thumbprint.is_empty() {
                true => None,
                false => match parse_thumbprint(&declared.thumbprint) {
                    Ok(t) => Some(t),
                    Err(status) => {
                        errors.push(unreadable(ResourceKind::Certificate, &declared.id, status.message().to_string()));
                        continue;
                    }
                },
            };
            let certificate = match declared.pfx.is_empty() {
                true => None,
                false => {
                    let (pfx, password) = (declared.pfx, declared.password);
                    let (max_bytes, max_chain) = (self.limits.max_pfx_bytes, self.limits.max_chain_length);
                    // Decrypting a PFX is CPU work (PBKDF2): off the async workers.
                    let parsed = tokio::task::spawn_blocking(move || {
                        ClientCertificate::from_pkcs12_limited(&pfx, &password, max_bytes, max_chain)
                    })
                    .await
                    .map_err(|_| Status::internal("certificate parsing task failed"))?;
                    match parsed {
                        Ok(certificate) => Some(certificate),
                        Err(error) => {
                            let reason = format!("certificate refused: {error}");
                            errors.push(unreadable(ResourceKind::Certificate, &declared.id, reason));
                            continue;
                        }
                    }
                }
            };
            declaration.certificates.push(DeclaredCertificate { id: declared.id, certificate, thumbprint });
        }
        for hostname in request.hostnames {
            declaration.hostnames.push(HostnameDefinition {
                name: hostname.name,
                certificate_id: hostname.certificate_id,
                default: hostname.default,
                negotiate_client_certificate: hostname.negotiate_client_certificate,
                client_ca_ids: hostname.client_ca_ids,
            });
        }
        for named in request.named_values {
            declaration.named_values.push(DeclaredNamedValue {
                name: named.name,
                value: named.value,
                secret: named.secret,
            });
        }
        for declared in request.apis {
            let Some(api) = declared.api else {
                errors.push(unreadable(ResourceKind::Api, "", "a declared API needs its definition".into()));
                continue;
            };
            let binding = match api.credentials.map(binding_from).transpose() {
                Ok(binding) => binding,
                Err(status) => {
                    errors.push(unreadable(ResourceKind::Api, &api.id, status.message().to_string()));
                    continue;
                }
            };
            let policy = match declared.policy_xml.is_empty() {
                true => None,
                false => match crate::policy::parse_limited(&declared.policy_xml, self.limits.max_policy_bytes) {
                    Ok(policy) => Some(policy),
                    Err(error) => {
                        errors.push(unreadable(ResourceKind::Api, &api.id, error.to_string()));
                        continue;
                    }
                },
            };
            let definition = ApiDefinition {
                id: api.id,
                display_name: api.display_name,
                path: api.path,
                service_url: api.service_url,
                binding: Some(binding.unwrap_or_default()),
                tls: tls_from(api.backend_tls),
                hostnames: api.hostnames,
                subscription: SubscriptionSettings {
                    required: api.subscription_required,
                    header: api.subscription_key_header,
                },
            };
            declaration.apis.push(DeclaredApi { definition, policy });
        }
        for subscription in request.subscriptions {
            let state = match pb::SubscriptionState::try_from(subscription.state) {
                Ok(pb::SubscriptionState::Suspended) => SubscriptionState::Suspended,
                _ => SubscriptionState::Active,
            };
            declaration.subscriptions.push(DeclaredSubscription {
                name: subscription.name,
                display_name: subscription.display_name,
                scope: Scope::from_api_id(&subscription.scope),
                state,
            });
        }

        let applied = match self.store.apply_declaration(&declaration, request.dry_run).await {
            // What could not be read is listed with what breaks a rule.
            Err(StoreError::Declaration(refused)) => {
                errors.extend(refused);
                return Err(StoreError::Declaration(errors).into());
            }
            _ if !errors.is_empty() => return Err(StoreError::Declaration(errors).into()),
            result => result?,
        };
        tracing::info!(
            revision = applied.revision,
            changes = applied.changes.len(),
            dry_run = request.dry_run,
            prune = request.prune,
            "configuration applied"
        );
        let changes = applied
            .changes
            .iter()
            .map(|(kind, id, action)| pb::ConfigurationChange {
                kind: kind.as_str().replace(' ', "-").to_ascii_lowercase(),
                id: id.clone(),
                action: action.as_str().into(),
            })
            .collect();
        let created_subscriptions = applied
            .created_subscriptions
            .iter()
            .map(|c| pb::CreatedSubscription {
                subscription: Some(subscription_view(&c.subscription)),
                primary_key: c.primary_key.clone(),
                secondary_key: c.secondary_key.clone(),
            })
            .collect();
        Ok(Response::new(pb::ApplyConfigurationResponse {
            revision: applied.revision,
            changes,
            created_subscriptions,
            dry_run: request.dry_run,
        }))
    }
}
