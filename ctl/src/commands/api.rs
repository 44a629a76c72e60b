//! `api`: create or replace, update, list, show and delete APIs; their policy and client
//! certificate.

use anyhow::bail;
use gatehouse_proto::v1 as pb;
use pb::credential_binding::Kind;

use crate::args::{ApiCommand, Format, OptionalCredential};
use crate::connection::{Server, connect, status};
use crate::input::read_policy;
use crate::output;

/// Runs an `api` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: ApiCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        ApiCommand::Put {
            id,
            path,
            service_url,
            display_name,
            credentials,
            ca_ids,
            hostnames,
            no_system_roots,
            no_verify_chain,
            no_verify_name,
            subscription_required,
            subscription_key_header,
            write,
            allow_expired,
        } => {
            let credentials = binding(credentials);
            let mut client = connect(server).await?;
            let before = match client.get_api(pb::GetApiRequest { id: id.clone() }).await {
                Ok(api) => Some(api.into_inner()),
                Err(error) if error.code() == tonic::Code::NotFound => None,
                Err(error) => return Err(status(error)),
            };
            let api = client
                .put_api(pb::PutApiRequest {
                    id,
                    display_name,
                    path,
                    service_url,
                    credentials,
                    backend_tls: Some(pb::BackendTls {
                        validate_certificate_chain: Some(!no_verify_chain),
                        validate_certificate_name: Some(!no_verify_name),
                        ca_certificate_ids: ca_ids,
                        trust_system_roots: Some(!no_system_roots),
                    }),
                    if_match: write.if_match,
                    allow_expired,
                    hostnames,
                    subscription_required,
                    subscription_key_header,
                    // `api put` creates or replaces, as its name says.
                    create_only: false,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            output::print_api(format, &api);
            if let Some(before) = &before {
                output::print_replaced(before, &api);
            }
        }
        ApiCommand::Update {
            id,
            display_name,
            path,
            service_url,
            credentials,
            no_client_cert,
            ca_ids,
            no_ca,
            hostnames,
            no_host,
            system_roots,
            verify_chain,
            verify_name,
            subscription_required,
            subscription_key_header,
            write,
            allow_expired,
        } => {
            let mut mask = Vec::new();
            let mut patch = pb::Api { id, ..Default::default() };
            let mut tls = pb::BackendTls::default();
            let mut set = |field: &str| mask.push(field.to_string());
            if let Some(value) = display_name {
                patch.display_name = value;
                set("display_name");
            }
            if let Some(value) = path {
                patch.path = value;
                set("path");
            }
            if let Some(value) = service_url {
                patch.service_url = value;
                set("service_url");
            }
            // With --no-client-cert the mask names credentials and the patch has none.
            patch.credentials = binding(credentials);
            if patch.credentials.is_some() || no_client_cert {
                set("credentials");
            }
            if !ca_ids.is_empty() || no_ca {
                tls.ca_certificate_ids = ca_ids;
                set("backend_tls.ca_certificate_ids");
            }
            // With --no-host the mask names hostnames and the patch has none: any host.
            if !hostnames.is_empty() || no_host {
                patch.hostnames = hostnames;
                set("hostnames");
            }
            if let Some(value) = system_roots {
                tls.trust_system_roots = Some(value);
                set("backend_tls.trust_system_roots");
            }
            if let Some(value) = verify_chain {
                tls.validate_certificate_chain = Some(value);
                set("backend_tls.validate_certificate_chain");
            }
            if let Some(value) = verify_name {
                tls.validate_certificate_name = Some(value);
                set("backend_tls.validate_certificate_name");
            }
            if let Some(value) = subscription_required {
                patch.subscription_required = value;
                set("subscription_required");
            }
            if let Some(value) = subscription_key_header {
                patch.subscription_key_header = value;
                set("subscription_key_header");
            }
            if mask.is_empty() {
                bail!("nothing to update: give at least one field, e.g. --display-name (see --help)");
            }
            patch.backend_tls = Some(tls);
            let api = connect(server)
                .await?
                .update_api(pb::UpdateApiRequest {
                    api: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths: mask }),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            output::print_api(format, &api);
        }
        ApiCommand::List => {
            let list = connect(server).await?.list_apis(pb::ListApisRequest {}).await.map_err(status)?.into_inner();
            output::print_apis(format, &list.apis);
        }
        ApiCommand::Show { id } => {
            let api = connect(server).await?.get_api(pb::GetApiRequest { id }).await.map_err(status)?.into_inner();
            output::print_api(format, &api);
            // The trust that applies also depends on each data plane's own --backend-ca-file.
            let gateways = super::gateway::list_all(server).await?;
            output::print_trust_bundle_warning(&gateways.gateways);
        }
        ApiCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_api(pb::DeleteApiRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            output::print_deleted(format, "API", &id, done.revision);
            revision = Some(done.revision);
        }
        ApiCommand::Policy { id, set, write, allow_expired } => {
            let mut client = connect(server).await?;
            let policy = match set {
                None => {
                    client.get_api_policy(pb::GetApiPolicyRequest { api_id: id }).await.map_err(status)?.into_inner()
                }
                Some(path) => {
                    let xml = read_policy(&path)?;
                    let written = client
                        .set_api_policy(pb::SetApiPolicyRequest {
                            api_id: id,
                            xml,
                            if_match: write.if_match,
                            allow_expired,
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    revision = Some(written.revision);
                    written
                }
            };
            output::print_policy(format, &policy);
        }
        ApiCommand::Credentials { id, credential, write, allow_expired } => {
            use pb::set_api_credentials_request::Credential as C;
            let credential = match (credential.client_cert, credential.thumbprint, credential.none) {
                (Some(cert), _, _) => C::CertificateId(cert),
                (_, Some(t), _) => C::Thumbprint(t),
                (_, _, true) => C::None(()),
                _ => bail!("say which credential: --client-cert ID, --thumbprint T or --none"),
            };
            let api = connect(server)
                .await?
                .set_api_credentials(pb::SetApiCredentialsRequest {
                    api_id: id,
                    credential: Some(credential),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            output::print_api(format, &api);
        }
    }
    Ok(revision)
}

/// The binding `--client-cert` or `--thumbprint` asks for, if either was given.
fn binding(credential: OptionalCredential) -> Option<pb::CredentialBinding> {
    let kind = match (credential.client_cert, credential.thumbprint) {
        (Some(id), _) => Kind::CertificateId(id),
        (_, Some(t)) => Kind::Thumbprint(t),
        _ => return None,
    };
    Some(pb::CredentialBinding { kind: Some(kind) })
}
