//! The rules for an API's path prefix and service URL, checked by the control plane on
//! write and relied on by the data plane when it routes.

use http::Uri;

#[derive(Debug, thiserror::Error)]
pub enum ApiDefinitionError {
    #[error("API path '{0}' must start with '/', e.g. /orders")]
    PathNotAbsolute(String),
    #[error("API path '{0}' may not contain '?', '#', '//', '.' or '..' segments, or spaces")]
    PathInvalid(String),
    #[error("service URL '{url}' is not valid: {reason}")]
    ServiceUrl { url: String, reason: &'static str },
}

/// Normalizes a path prefix: `/orders/` and `/orders` are the same API path.
pub fn normalize_path(path: &str) -> Result<String, ApiDefinitionError> {
    if !path.starts_with('/') {
        return Err(ApiDefinitionError::PathNotAbsolute(path.to_string()));
    }
    let trimmed = path.trim_end_matches('/');
    let invalid = trimmed.contains(['?', '#', ' '])
        || trimmed.contains("//")
        || trimmed.split('/').any(|s| s == "." || s == "..");
    if invalid {
        return Err(ApiDefinitionError::PathInvalid(path.to_string()));
    }
    Ok(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
}

/// Parses a backend URL: `https://host[:port][/base]` or `http://...`, no query or fragment.
pub fn parse_service_url(url: &str) -> Result<Uri, ApiDefinitionError> {
    let bad = |reason| ApiDefinitionError::ServiceUrl { url: url.to_string(), reason };
    let uri: Uri = url.parse().map_err(|_| bad("it does not parse as a URL"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(bad("the scheme must be https or http")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(bad("it has no host")),
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("it may not have a query or fragment"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_and_reject_traversal() {
        assert_eq!(normalize_path("/orders/").unwrap(), "/orders");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert!(normalize_path("orders").is_err());
        assert!(normalize_path("/a/../b").is_err());
        assert!(normalize_path("/a?b").is_err());
    }

    #[test]
    fn service_urls_need_scheme_and_host() {
        assert!(parse_service_url("https://backend.internal:8443/api").is_ok());
        assert!(parse_service_url("ftp://x").is_err());
        assert!(parse_service_url("/relative").is_err());
        assert!(parse_service_url("https://x/?q=1").is_err());
    }
}
