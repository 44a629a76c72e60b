//! The APIs pages: the list, a form to create one, and an API's page: its settings, its
//! Security section (gateway credentials and backend trust) and its policy XML, whose refusals
//! name the line and column.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::management_server::Management as _;
use maud::{Markup, html};

use super::form::Write;
use super::layout::{csrf_field, page};
use super::{Console, Ctx, http_status, listed};

/// GET /console/apis
pub async fn list(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let (apis, error) = listed(console.management.list_apis(ctx.request(pb::ListApisRequest {})).await, |l| l.apis);
    page(
        &ctx,
        "APIs",
        error.as_deref(),
        html! {
            p { a #new-api href="/console/apis/new" { "+ New API" } }
            div.table-wrap {
                table #apis {
                    thead { tr { th { "Id" } th { "Name" } th { "Path" } th { "Service URL" } th { "Client certificate" } th { "Hostnames" } } }
                    tbody {
                        @for api in &apis {
                            tr data-id=(api.id) {
                                td.id { a href=(format!("/console/apis/{}", api.id)) { (api.id) } }
                                td { (api.display_name) }
                                td.path { code { (api.path) } }
                                td { (api.service_url) }
                                td.credentials { (credentials_text(api)) }
                                td { (api.hostnames.join(", ")) }
                            }
                        }
                        @if apis.is_empty() { tr { td colspan="6" { "No APIs yet." } } }
                    }
                }
            }
        },
    )
    .into_response()
}

fn credentials_text(api: &pb::Api) -> String {
    use pb::credential_binding::Kind;
    match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        None => "none".into(),
        Some(Kind::CertificateId(id)) => format!("{id} ({})", api.client_certificate_thumbprint),
        Some(Kind::Thumbprint(thumbprint)) => format!("pinned {thumbprint}"),
    }
}

/// GET /console/apis/new
pub async fn new_form(ctx: Ctx) -> Response {
    page(&ctx, "New API", None, settings_form(&ctx, None, &pb::Api::default())).into_response()
}

/// POST /console/apis: creates an API (PutApi, refused if the id is taken).
pub async fn create(State(console): State<Arc<Console>>, Write { ctx, fields }: Write) -> Response {
    let request = pb::PutApiRequest {
        id: fields.get("id").trim().to_string(),
        display_name: fields.get("display_name").trim().to_string(),
        path: fields.get("path").trim().to_string(),
        service_url: fields.get("service_url").trim().to_string(),
        // "New API" never replaces one: an API that exists is edited on its own page.
        create_only: true,
        ..Default::default()
    };
    // What the form shows again if the write is refused.
    let typed = pb::Api {
        id: request.id.clone(),
        display_name: request.display_name.clone(),
        path: request.path.clone(),
        service_url: request.service_url.clone(),
        ..Default::default()
    };
    match console.management.put_api(ctx.request(request)).await {
        Ok(api) => {
            let api = api.into_inner();
            console
                .done(&ctx, format!("API {} created", api.id), api.revision, &format!("/console/apis/{}", api.id))
                .await
        }
        Err(status) => {
            (http_status(&status), page(&ctx, "New API", Some(status.message()), settings_form(&ctx, None, &typed)))
                .into_response()
        }
    }
}

/// GET /console/apis/{id}
pub async fn edit(State(console): State<Arc<Console>>, ctx: Ctx, Path(id): Path<String>) -> Response {
    api_page(&console, &ctx, &id, None).await
}

/// POST /console/apis/{id}: changes the name, path and service URL (UpdateApi with those
/// fields in the mask; credentials and trust stay as they are).
pub async fn save(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Write { ctx, fields }: Write,
) -> Response {
    let api = pb::Api {
        id: id.clone(),
        display_name: fields.get("display_name").trim().to_string(),
        path: fields.get("path").trim().to_string(),
        service_url: fields.get("service_url").trim().to_string(),
        ..Default::default()
    };
    let request = pb::UpdateApiRequest {
        api: Some(api),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into(), "path".into(), "service_url".into()],
        }),
        if_match: fields.get("etag").to_string(),
        ..Default::default()
    };
    let result = console.management.update_api(ctx.request(request)).await.map(|a| a.into_inner().revision);
    written(&console, &ctx, &id, result, format!("API {id} saved")).await
}

/// POST /console/apis/{id}/credentials: the client certificate presented to the backend.
pub async fn credentials(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Write { ctx, fields }: Write,
) -> Response {
    use pb::set_api_credentials_request::Credential;
    let certificate = fields.get("certificate_id").to_string();
    let (credential, what) = if certificate.is_empty() {
        (Credential::None(()), format!("API {id} presents no client certificate"))
    } else {
        (Credential::CertificateId(certificate.clone()), format!("API {id} presents certificate {certificate}"))
    };
    let request = pb::SetApiCredentialsRequest {
        api_id: id.clone(),
        credential: Some(credential),
        if_match: fields.get("etag").to_string(),
        ..Default::default()
    };
    let result = console.management.set_api_credentials(ctx.request(request)).await.map(|a| a.into_inner().revision);
    written(&console, &ctx, &id, result, what).await
}

/// POST /console/apis/{id}/trust: how the backend's server certificate is checked.
pub async fn trust(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Write { ctx, fields }: Write,
) -> Response {
    let backend_tls = pb::BackendTls {
        validate_certificate_chain: Some(fields.checked("validate_chain")),
        validate_certificate_name: Some(fields.checked("validate_name")),
        ca_certificate_ids: fields.all("ca"),
        trust_system_roots: Some(fields.checked("trust_system_roots")),
    };
    let request = pb::UpdateApiRequest {
        api: Some(pb::Api { id: id.clone(), backend_tls: Some(backend_tls), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["backend_tls".into()] }),
        if_match: fields.get("etag").to_string(),
        ..Default::default()
    };
    let result = console.management.update_api(ctx.request(request)).await.map(|a| a.into_inner().revision);
    written(&console, &ctx, &id, result, format!("Backend trust of API {id} saved")).await
}

/// After a write to API `id`: its page with the rollout, or with the refusal.
async fn written(console: &Console, ctx: &Ctx, id: &str, result: Result<u64, tonic::Status>, what: String) -> Response {
    match result {
        Ok(revision) => console.done(ctx, what, revision, &format!("/console/apis/{id}")).await,
        Err(status) => {
            let mut response = api_page(console, ctx, id, Some(status.message())).await;
            *response.status_mut() = http_status(&status);
            response
        }
    }
}

async fn api_page(console: &Console, ctx: &Ctx, id: &str, error: Option<&str>) -> Response {
    let api = match console.management.get_api(ctx.request(pb::GetApiRequest { id: id.to_string() })).await {
        Ok(api) => api.into_inner(),
        Err(status) => {
            return (http_status(&status), page(ctx, "APIs", Some(status.message()), html! {})).into_response();
        }
    };
    let certificates = console
        .management
        .list_certificates(ctx.request(pb::ListCertificatesRequest {}))
        .await
        .map(|l| l.into_inner().certificates)
        .unwrap_or_default();
    let cas = console
        .management
        .list_ca_certificates(ctx.request(pb::ListCaCertificatesRequest {}))
        .await
        .map(|l| l.into_inner().ca_certificates)
        .unwrap_or_default();
    let title = format!("API {}", api.id);
    page(
        ctx,
        &title,
        error,
        html! {
            (settings_form(ctx, Some(&api.id), &api))
            (security(ctx, &api, &certificates, &cas))
            section.card {
                h2 { "Policy" }
                p { "The API's policy XML, in APIM's dialect: the credential binding above appears there as "
                    code { "<authentication-certificate>" } "." }
                a #edit-policy href=(format!("/console/apis/{}/policy", api.id)) { "Edit the policy XML" }
            }
        },
    )
    .into_response()
}

/// The name, path and service URL: a new API's form when `id` is None.
fn settings_form(ctx: &Ctx, id: Option<&str>, api: &pb::Api) -> Markup {
    let action = match id {
        Some(id) => format!("/console/apis/{id}"),
        None => "/console/apis".to_string(),
    };
    html! {
        form #api-form.card method="post" action=(action) {
            h2 { "Settings" }
            (csrf_field(ctx))
            (etag_field(api))
            label for="api-id" { "Id" }
            input #api-id type="text" name="id" value=(api.id) required readonly[id.is_some()] pattern="[A-Za-z0-9._-]{1,64}";
            label for="api-display-name" { "Display name" }
            input #api-display-name type="text" name="display_name" value=(api.display_name);
            label for="api-path" { "Path" }
            input #api-path type="text" name="path" value=(api.path) required placeholder="/orders";
            p.hint { "Requests whose path starts with this prefix go to this API; the rest of the path is appended to the service URL." }
            label for="api-service-url" { "Service URL" }
            input #api-service-url type="url" name="service_url" value=(api.service_url) required placeholder="https://backend.internal:8443/v1";
            button #api-save type="submit" { @if id.is_some() { "Save" } @else { "Create" } }
        }
    }
}

/// The API's etag as the form saw it: a save over someone else's change is refused
/// (FAILED_PRECONDITION) instead of undoing it. Empty on a new API's form.
fn etag_field(api: &pb::Api) -> Markup {
    html! { input type="hidden" name="etag" value=(api.etag); }
}

/// Gateway credentials and backend trust, each choice explained in one sentence.
fn security(ctx: &Ctx, api: &pb::Api, certificates: &[pb::Certificate], cas: &[pb::CaCertificate]) -> Markup {
    use pb::credential_binding::Kind;
    let bound = match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(Kind::CertificateId(id)) => Some(id.as_str()),
        _ => None,
    };
    let pinned = match api.credentials.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(Kind::Thumbprint(thumbprint)) => Some(thumbprint.as_str()),
        _ => None,
    };
    let tls = api.backend_tls.clone().unwrap_or_default();
    html! {
        section.card {
            h2 { "Security" }
            form #credentials method="post" action=(format!("/console/apis/{}/credentials", api.id)) {
                (csrf_field(ctx))
                (etag_field(api))
                label for="client-cert" { "Gateway credentials: client certificate" }
                select #client-cert name="certificate_id" aria-describedby="client-cert-hint" {
                    option value="" selected[bound.is_none()] { "None" }
                    @for c in certificates {
                        option value=(c.id) selected[bound == Some(c.id.as_str())] { (c.subject) " — " (c.thumbprint) " (" (c.id) ")" }
                    }
                }
                p #client-cert-hint.hint {
                    "The certificate the gateway presents when the backend asks for one (mutual TLS); bound by id, so rotating the certificate needs no change here."
                    @if let Some(pinned) = pinned { " Now pinned to thumbprint " (pinned) "; saving replaces the pin." }
                }
                button #credentials-save type="submit" { "Save credentials" }
            }
            form #trust method="post" action=(format!("/console/apis/{}/trust", api.id)) {
                (csrf_field(ctx))
                (etag_field(api))
                h2 { "Backend trust" }
                label.check for="validate-chain" {
                    input #validate-chain type="checkbox" name="validate_chain" checked[tls.validate_certificate_chain.unwrap_or(true)];
                    span { "Validate the certificate chain: the backend's certificate must lead to a trusted root (turn off only for a self-signed backend)." }
                }
                label.check for="validate-name" {
                    input #validate-name type="checkbox" name="validate_name" checked[tls.validate_certificate_name.unwrap_or(true)];
                    span { "Validate the name: the backend's certificate must name the service URL's host." }
                }
                label.check for="trust-system-roots" {
                    input #trust-system-roots type="checkbox" name="trust_system_roots" checked[tls.trust_system_roots.unwrap_or(true)];
                    span { "Trust the system's root certificates as well as the CA certificates below." }
                }
                fieldset {
                    legend { "CA certificates trusted as roots for this backend" }
                    @for ca in cas {
                        label.check {
                            input.ca type="checkbox" name="ca" value=(ca.id) checked[tls.ca_certificate_ids.contains(&ca.id)];
                            span { (ca.id) " — " (ca.subject) }
                        }
                    }
                    @if cas.is_empty() { p.hint { "No CA certificates uploaded." } }
                }
                button #trust-save type="submit" { "Save backend trust" }
            }
        }
    }
}

/// GET /console/apis/{id}/policy
pub async fn policy(State(console): State<Arc<Console>>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match console.management.get_api_policy(ctx.request(pb::GetApiPolicyRequest { api_id: id.clone() })).await {
        Ok(policy) => policy_page(&ctx, &id, &policy.into_inner().xml, None).into_response(),
        Err(status) => (http_status(&status), page(&ctx, "APIs", Some(status.message()), html! {})).into_response(),
    }
}

/// POST /console/apis/{id}/policy
pub async fn save_policy(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Write { ctx, fields }: Write,
) -> Response {
    let xml = fields.get("xml").to_string();
    let request = pb::SetApiPolicyRequest { api_id: id.clone(), xml: xml.clone(), ..Default::default() };
    match console.management.set_api_policy(ctx.request(request)).await {
        Ok(policy) => {
            let revision = policy.into_inner().revision;
            console
                .done(&ctx, format!("Policy of API {id} saved"), revision, &format!("/console/apis/{id}/policy"))
                .await
        }
        Err(status) => (http_status(&status), policy_page(&ctx, &id, &xml, Some(status.message()))).into_response(),
    }
}

fn policy_page(ctx: &Ctx, id: &str, xml: &str, error: Option<&str>) -> Html<String> {
    page(
        ctx,
        &format!("Policy of API {id}"),
        None,
        html! {
            p { a href=(format!("/console/apis/{id}")) { "← API " (id) } }
            form #policy-form.card method="post" action=(format!("/console/apis/{id}/policy")) {
                (csrf_field(ctx))
                label for="policy-xml" { "Policy XML" }
                @if let Some(error) = error {
                    p #policy-error.field-error role="alert" { (error) }
                }
                textarea #policy-xml name="xml" spellcheck="false" aria-describedby=[error.map(|_| "policy-error")] { (xml) }
                p.hint { "<authentication-certificate certificate-id=\"…\"/> or thumbprint=\"…\", <authentication-basic>, <set-header>; {{name}} reads a named value." }
                button #policy-save type="submit" { "Save policy" }
            }
        },
    )
}
