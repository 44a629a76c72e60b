//! The gateway's own error responses: RFC 9457 problem details, with client-supplied values
//! quoted and cut short.

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::ProxyBody;

/// A client-supplied value for an error body: at most 100 characters, marked when cut.
pub(super) fn quote(value: &str) -> String {
    const LIMIT: usize = 100;
    match value.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_string(),
    }
}

/// An error the gateway itself produced, as RFC 9457 problem details.
pub fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    api: Option<&str>,
    request_id: &str,
) -> Response<ProxyBody> {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "request_id": request_id,
    });
    if let Some(api) = api {
        body["api"] = serde_json::Value::from(api);
    }
    let bytes = Bytes::from(body.to_string());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Full::new(bytes).map_err(|never| match never {}).boxed())
        .expect("static response parts are valid")
}
