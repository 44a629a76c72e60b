//! What a console form posts: the one extractor every write takes. It opens the session, reads
//! the fields (URL-encoded, or multipart with files) and refuses the write unless the session's
//! CSRF token is the first `csrf` field, so no handler can forget the check.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::response::{IntoResponse, Response};

use super::session::csrf_matches;
use super::{Console, Ctx};

/// A signed-in write whose CSRF token matched.
pub struct Write {
    /// The session it came from.
    pub ctx: Ctx,
    /// The posted fields.
    pub fields: Fields,
}

/// Posted fields, in order; a field may come more than once (checkboxes).
#[derive(Default)]
pub struct Fields {
    text: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
}

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.text.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.text.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    /// Whether a checkbox named `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.text.iter().any(|(n, _)| n == name)
    }

    /// The bytes of the file posted as `name` (empty if none was chosen).
    pub fn file(&self, name: &str) -> Vec<u8> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

impl FromRequest<Arc<Console>> for Write {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Arc<Console>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, console).await?;
        let request = Request::from_parts(parts, body);
        let multipart = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let fields =
            if multipart { read_multipart(request, console).await? } else { read_urlencoded(request, console).await? };
        let posted = fields.text.iter().find(|(n, _)| n == "csrf").map(|(_, v)| v.as_str());
        if !csrf_matches(&ctx.session, posted) {
            tracing::warn!(target: "gatehouse::audit", who = %ctx.session.caller.token.escape_debug(), "console write refused: missing or invalid CSRF token");
            return Err((http::StatusCode::FORBIDDEN, "missing or invalid CSRF token: reload the page and try again")
                .into_response());
        }
        Ok(Write { ctx, fields })
    }
}

async fn read_urlencoded(request: Request, console: &Arc<Console>) -> Result<Fields, Response> {
    let axum::Form(text) = axum::Form::<Vec<(String, String)>>::from_request(request, console)
        .await
        .map_err(|rejection| refused(rejection.into_response(), console))?;
    Ok(Fields { text, files: Vec::new() })
}

async fn read_multipart(request: Request, console: &Arc<Console>) -> Result<Fields, Response> {
    let unreadable = |rejection: axum::extract::multipart::MultipartError| refused(rejection.into_response(), console);
    let mut multipart =
        Multipart::from_request(request, console).await.map_err(|r| refused(r.into_response(), console))?;
    let mut fields = Fields::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let bytes = field.bytes().await.map_err(unreadable)?;
        if is_file {
            fields.files.push((name, bytes.to_vec()));
        } else {
            fields.text.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(fields)
}

/// A body that cannot be read: a too large one says how large a form may be.
fn refused(response: Response, console: &Console) -> Response {
    if response.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        let message = format!("the upload is larger than the console accepts ({} bytes)", console.max_upload);
        return (http::StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    response
}
