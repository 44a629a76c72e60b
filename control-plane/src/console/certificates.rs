//! The Certificates and CA certificates pages: lists with expiry, use and source, uploads whose
//! refusals show beside the file field, and deletion behind a confirmation that names the APIs
//! still using the certificate (the server refuses it while they do).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::management_server::Management as _;
use maud::{Markup, html};

use super::form::Write;
use super::layout::{self, csrf_field, expiry, page, thumbprint};
use super::{Console, Ctx, http_status, listed};

/// GET /console/certificates
pub async fn list(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    certificates_page(&console, &ctx, None, "").await.into_response()
}

/// POST /console/certificates: uploads (or rotates) a PFX.
pub async fn upload(State(console): State<Arc<Console>>, Write { ctx, fields }: Write) -> Response {
    let id = fields.get("id").trim().to_string();
    let request = pb::UploadCertificateRequest {
        id: id.clone(),
        pfx: fields.file("pfx"),
        password: fields.get("password").to_string(),
        ..Default::default()
    };
    match console.management.upload_certificate(ctx.request(request)).await {
        Ok(certificate) => {
            let certificate = certificate.into_inner();
            let what = format!("Certificate {} uploaded, thumbprint {}", certificate.id, certificate.thumbprint);
            console.done(&ctx, what, certificate.revision, "/console/certificates").await
        }
        Err(status) => {
            (http_status(&status), certificates_page(&console, &ctx, Some(status.message()), &id).await).into_response()
        }
    }
}

async fn certificates_page(console: &Console, ctx: &Ctx, upload_error: Option<&str>, id: &str) -> Html<String> {
    let listing = console.management.list_certificates(ctx.request(pb::ListCertificatesRequest {})).await;
    let (certificates, error) = listed(listing, |l| l.certificates);
    page(
        ctx,
        "Certificates",
        error.as_deref(),
        html! {
            p.hint { "Client certificates the gateway presents to backends. Bind one to an API in the API's Security section." }
            (table(Collection::Certificates, certificates.iter().map(Row::of_certificate).collect()))
            form #add-certificate.card method="post" action="/console/certificates" enctype="multipart/form-data" {
                h2 { "+ Add a certificate" }
                (csrf_field(ctx))
                label for="cert-id" { "Id" }
                input #cert-id type="text" name="id" value=(id) required pattern="[A-Za-z0-9._-]{1,64}";
                p.hint { "Uploading under an existing id rotates that certificate: APIs bound by id present the new one on their next request." }
                label for="cert-pfx" { "PFX file (.pfx, .p12)" }
                input #cert-pfx type="file" name="pfx" accept=".pfx,.p12,application/x-pkcs12" required
                    aria-describedby=[upload_error.map(|_| "cert-pfx-error")];
                @if let Some(error) = upload_error {
                    p #cert-pfx-error.field-error role="alert" { (error) }
                }
                label for="cert-password" { "Password" }
                input #cert-password type="password" name="password" autocomplete="off";
                button #cert-upload type="submit" { "Upload" }
            }
        },
    )
}

/// The two kinds of certificates the console lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Collection {
    Certificates,
    CaCertificates,
}

impl Collection {
    /// The path segment and table id ("certificates", "ca-certificates").
    fn name(self) -> &'static str {
        match self {
            Self::Certificates => "certificates",
            Self::CaCertificates => "ca-certificates",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Certificates => "Certificates",
            Self::CaCertificates => "CA certificates",
        }
    }
}

/// What a row of either list shows.
struct Row<'a> {
    id: &'a str,
    subject: &'a str,
    thumbprint: &'a str,
    not_after: Option<&'a prost_types::Timestamp>,
    used_by: &'a [String],
    source: Option<&'a pb::CertificateSource>,
    last_refresh: Option<&'a pb::LastRefresh>,
}

impl<'a> Row<'a> {
    fn of_certificate(c: &'a pb::Certificate) -> Self {
        Self {
            id: &c.id,
            subject: &c.subject,
            thumbprint: &c.thumbprint,
            not_after: c.not_after.as_ref(),
            used_by: &c.used_by,
            source: c.source.as_ref(),
            last_refresh: c.last_refresh.as_ref(),
        }
    }

    fn of_ca(c: &'a pb::CaCertificate) -> Self {
        Self {
            id: &c.id,
            subject: &c.subject,
            thumbprint: &c.thumbprint,
            not_after: c.not_after.as_ref(),
            used_by: &c.used_by,
            source: c.source.as_ref(),
            last_refresh: c.last_refresh.as_ref(),
        }
    }
}

/// The list of a collection: id, subject, thumbprint, expiry, use, source, and a delete link.
fn table(collection: Collection, rows: Vec<Row<'_>>) -> Markup {
    let name = collection.name();
    html! {
        div.table-wrap {
            table id=(name) {
                thead { tr { th { "Id" } th { "Subject" } th { "Thumbprint" } th { "Expires" } th { "Used by" } th { "Source" } th { "" } } }
                tbody {
                    @for row in &rows {
                        tr data-id=(row.id) {
                            td.id { (row.id) }
                            td.subject { (row.subject) }
                            td.thumbprint { (thumbprint(row.thumbprint)) }
                            td.expiry { (expiry(row.not_after)) }
                            td.used-by { (row.used_by.join(", ")) }
                            td.source { (source(row.source, row.last_refresh)) }
                            td.actions {
                                a.delete href=(format!("/console/{name}/{}/delete", row.id)) { "Delete" span.visually-hidden { " " (row.id) } }
                            }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="7" { "None yet." } } }
                }
            }
        }
    }
}

/// Where a certificate comes from, and how its last refresh went.
fn source(source: Option<&pb::CertificateSource>, refresh: Option<&pb::LastRefresh>) -> Markup {
    use pb::certificate_source::Kind;
    let text = match source.and_then(|s| s.kind.as_ref()) {
        None => "upload".to_string(),
        Some(Kind::Pfx(pfx)) => format!("file {}", pfx.path),
        Some(Kind::Pem(pem)) => format!("files {}, {}", pem.certificate_path, pem.key_path),
        Some(Kind::CaFile(path)) => format!("file {path}"),
    };
    html! {
        (text)
        @if let Some(refresh) = refresh {
            br;
            @if refresh.ok {
                span.state-ok { "refreshed " (layout::timestamp(refresh.at.as_ref())) }
            } @else {
                span.state-bad { "refresh failed " (layout::timestamp(refresh.at.as_ref())) ": " (refresh.message) }
            }
        }
    }
}

/// GET /console/certificates/{id}/delete: asks, naming the APIs that still use it.
pub async fn confirm_delete(State(console): State<Arc<Console>>, ctx: Ctx, Path(id): Path<String>) -> Response {
    confirm(&console, &ctx, Collection::Certificates, &id).await
}

/// POST /console/certificates/{id}/delete
pub async fn delete(State(console): State<Arc<Console>>, Path(id): Path<String>, write: Write) -> Response {
    let ctx = write.ctx;
    let request = pb::DeleteCertificateRequest { id: id.clone(), if_match: String::new() };
    match console.management.delete_certificate(ctx.request(request)).await {
        Ok(deleted) => {
            console
                .done(&ctx, format!("Certificate {id} deleted"), deleted.into_inner().revision, "/console/certificates")
                .await
        }
        Err(status) => refused(&console, &ctx, Collection::Certificates, &id, &status).await,
    }
}

/// GET /console/ca-certificates
pub async fn list_ca(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    ca_page(&console, &ctx, None, "").await.into_response()
}

/// POST /console/ca-certificates: uploads a CA certificate (PEM or DER).
pub async fn upload_ca(State(console): State<Arc<Console>>, Write { ctx, fields }: Write) -> Response {
    let id = fields.get("id").trim().to_string();
    let request = pb::UploadCaCertificateRequest {
        id: id.clone(),
        certificate: fields.file("certificate"),
        ..Default::default()
    };
    match console.management.upload_ca_certificate(ctx.request(request)).await {
        Ok(ca) => {
            let ca = ca.into_inner();
            let what = format!("CA certificate {} uploaded, thumbprint {}", ca.id, ca.thumbprint);
            console.done(&ctx, what, ca.revision, "/console/ca-certificates").await
        }
        Err(status) => {
            (http_status(&status), ca_page(&console, &ctx, Some(status.message()), &id).await).into_response()
        }
    }
}

async fn ca_page(console: &Console, ctx: &Ctx, upload_error: Option<&str>, id: &str) -> Html<String> {
    let listing = console.management.list_ca_certificates(ctx.request(pb::ListCaCertificatesRequest {})).await;
    let (cas, error) = listed(listing, |l| l.ca_certificates);
    page(
        ctx,
        "CA certificates",
        error.as_deref(),
        html! {
            p.hint { "Roots an API can trust for its backend's server certificate (the API's backend trust), and hostnames for API clients' certificates." }
            (table(Collection::CaCertificates, cas.iter().map(Row::of_ca).collect()))
            form #add-ca.card method="post" action="/console/ca-certificates" enctype="multipart/form-data" {
                h2 { "+ Add a CA certificate" }
                (csrf_field(ctx))
                label for="ca-id" { "Id" }
                input #ca-id type="text" name="id" value=(id) required pattern="[A-Za-z0-9._-]{1,64}";
                label for="ca-file" { "Certificate file (PEM or DER)" }
                input #ca-file type="file" name="certificate" accept=".pem,.crt,.cer,.der" required
                    aria-describedby=[upload_error.map(|_| "ca-file-error")];
                @if let Some(error) = upload_error {
                    p #ca-file-error.field-error role="alert" { (error) }
                }
                button #ca-upload type="submit" { "Upload" }
            }
        },
    )
}

/// GET /console/ca-certificates/{id}/delete
pub async fn confirm_delete_ca(State(console): State<Arc<Console>>, ctx: Ctx, Path(id): Path<String>) -> Response {
    confirm(&console, &ctx, Collection::CaCertificates, &id).await
}

/// POST /console/ca-certificates/{id}/delete
pub async fn delete_ca(State(console): State<Arc<Console>>, Path(id): Path<String>, write: Write) -> Response {
    let ctx = write.ctx;
    let request = pb::DeleteCaCertificateRequest { id: id.clone(), if_match: String::new() };
    match console.management.delete_ca_certificate(ctx.request(request)).await {
        Ok(deleted) => {
            let revision = deleted.into_inner().revision;
            console.done(&ctx, format!("CA certificate {id} deleted"), revision, "/console/ca-certificates").await
        }
        Err(status) => refused(&console, &ctx, Collection::CaCertificates, &id, &status).await,
    }
}

/// What the delete confirmation shows of a certificate of either collection.
#[derive(Default)]
struct Described {
    subject: String,
    thumbprint: String,
    used_by: Vec<String>,
}

/// The certificate `id` of `collection`, as the delete confirmation shows it.
async fn describe(console: &Console, ctx: &Ctx, collection: Collection, id: &str) -> Result<Described, tonic::Status> {
    match collection {
        Collection::Certificates => {
            let c = console
                .management
                .get_certificate(ctx.request(pb::GetCertificateRequest { id: id.to_string() }))
                .await?;
            let c = c.into_inner();
            Ok(Described { subject: c.subject, thumbprint: c.thumbprint, used_by: c.used_by })
        }
        // No RPC gets one CA certificate: it is found in the list.
        Collection::CaCertificates => {
            let list = console.management.list_ca_certificates(ctx.request(pb::ListCaCertificatesRequest {})).await?;
            let c = list.into_inner().ca_certificates.into_iter().find(|c| c.id == id);
            let c = c.ok_or_else(|| tonic::Status::not_found(format!("no CA certificate with id '{id}'")))?;
            Ok(Described { subject: c.subject, thumbprint: c.thumbprint, used_by: c.used_by })
        }
    }
}

/// The delete confirmation of `id`, or the reason it cannot be shown.
async fn confirm(console: &Console, ctx: &Ctx, collection: Collection, id: &str) -> Response {
    match describe(console, ctx, collection, id).await {
        Ok(described) => delete_page(ctx, collection, id, &described, None).into_response(),
        Err(status) => {
            (http_status(&status), page(ctx, collection.title(), Some(status.message()), html! {})).into_response()
        }
    }
}

/// The delete confirmation again, with the server's reason for refusing the deletion.
async fn refused(console: &Console, ctx: &Ctx, collection: Collection, id: &str, status: &tonic::Status) -> Response {
    let described = describe(console, ctx, collection, id).await.unwrap_or_default();
    (http_status(status), delete_page(ctx, collection, id, &described, Some(status.message()))).into_response()
}

/// The confirmation before deleting from `collection`.
fn delete_page(
    ctx: &Ctx,
    collection: Collection,
    id: &str,
    described: &Described,
    error: Option<&str>,
) -> Html<String> {
    let Described { subject, thumbprint: thumb, used_by } = described;
    let (title, collection) = (collection.title(), collection.name());
    page(
        ctx,
        title,
        error,
        html! {
            section.card {
                p #delete-question { "Delete " strong { (id) } " (" (subject) ", " (thumbprint(thumb)) ")?" }
                @if !used_by.is_empty() {
                    p #in-use-warning.field-error { "These APIs use it; deleting is refused until they no longer do:" }
                    ul #used-by { @for api in used_by { li { a href=(format!("/console/apis/{api}")) { (api) } } } }
                }
                form #delete-form method="post" action=(format!("/console/{collection}/{id}/delete")) {
                    (csrf_field(ctx))
                    button #confirm-delete.danger type="submit" { "Delete " (id) }
                    " "
                    a href=(format!("/console/{collection}")) { "Cancel" }
                }
            }
        },
    )
}
