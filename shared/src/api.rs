//! The rules for an API's path prefix and service URL, checked by the control plane on
//! write and relied on by the data plane when it routes.

use http::Uri;

/// Why an API's path prefix or service URL is rejected.
#[derive(Debug, thiserror::Error)]
pub enum ApiDefinitionError {
    /// The path does not start with `/`.
    #[error("API path '{0}' must start with '/', e.g. /orders")]
    PathNotAbsolute(String),
    /// The path is not in the normal form requests are routed by.
    #[error("API path '{path}' is not valid: {reason}")]
    PathInvalid {
        /// The path, quoted.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The service URL is unusable.
    #[error("service URL '{url}' is not valid: {reason}")]
    ServiceUrl {
        /// The URL, quoted, credentials masked.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// At most ~100 characters of a caller's value, for error messages.
pub fn quote(value: &str) -> String {
    const LIMIT: usize = 100;
    match value.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_string(),
    }
}

/// Normalizes a path prefix: `/orders/` and `/orders` are the same API path. The rest must
/// already be in the normal form the data plane routes requests by (RFC 3986 §6), so the API a
/// request reaches is never a matter of spelling.
pub fn normalize_path(path: &str) -> Result<String, ApiDefinitionError> {
    let invalid = |reason| ApiDefinitionError::PathInvalid { path: quote(path), reason };
    if !path.starts_with('/') {
        return Err(ApiDefinitionError::PathNotAbsolute(quote(path)));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("it may not contain '?' or '#'"));
    }
    let normal = crate::request_path::normalize(path).map_err(|e| match e {
        crate::request_path::PathError::ControlCharacter => invalid("it may not contain spaces or control characters"),
        crate::request_path::PathError::EncodedSeparator => invalid("it may not contain an encoded '/' or '\\'"),
        _ => invalid("it may not contain '..' or malformed escapes"),
    })?;
    let trimmed = path.trim_end_matches('/');
    if normal.as_str().trim_end_matches('/') != trimmed {
        return Err(invalid(
            "it must be in normal form: no '//', no '.' or '..' segments, no escaped letters, digits or '-._~'",
        ));
    }
    if trimmed.split('/').any(|segment| matches!(segment.split(';').next(), Some("." | ".."))) {
        return Err(invalid("it may not contain '.' or '..' segments"));
    }
    Ok(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
}

/// Parses a backend URL: `https://host[:port][/base]` or `http://...`, no credentials, query
/// or fragment.
pub fn parse_service_url(url: &str) -> Result<Uri, ApiDefinitionError> {
    let shown = quote(&redact_userinfo(url));
    let bad = |reason| ApiDefinitionError::ServiceUrl { url: shown.clone(), reason };
    let uri: Uri = url.parse().map_err(|_| bad("it does not parse as a URL"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(bad("the scheme must be https or http")),
    }
    let authority = uri.authority().ok_or(bad("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "it may not carry credentials (user:password@): give them in the API's policy as <authentication-basic>",
        ));
    }
    match uri.host() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(bad("it has no host")),
    }
    // After the host (and the brackets of an IPv6 literal), ':' starts the port.
    let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        }
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("it may not have a query or fragment"));
    }
    let base = uri.path();
    if base != "/" && !base.is_empty() {
        normalize_path(base).map_err(|_| bad("its path must be in normal form (no '..', '//' or encoded '/')"))?;
    }
    Ok(uri)
}

/// `https://***@host/...` for `https://user:password@host/...`: messages never echo credentials.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[authority_end..]),
        None => url.to_string(),
    }
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
        assert!(normalize_path("/a//b").is_err());
        assert!(normalize_path("/a/%2e%2e/b").is_err());
        assert!(normalize_path("/a%2Fb").is_err());
        assert!(normalize_path("/a%00").is_err());
        assert!(normalize_path("/a b").is_err());
        assert!(normalize_path("/%61").is_err(), "an escaped letter is not normal form");
        assert!(normalize_path("/a/..;/b").is_err());
        assert_eq!(normalize_path("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn messages_quote_at_most_a_hundred_characters() {
        let long = format!("/{}?", "a".repeat(5000));
        let message = normalize_path(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn service_urls_need_scheme_and_host() {
        assert!(parse_service_url("https://backend.internal:8443/api").is_ok());
        assert!(parse_service_url("ftp://x").is_err());
        assert!(parse_service_url("/relative").is_err());
        assert!(parse_service_url("https://x/?q=1").is_err());
        let userinfo = parse_service_url("https://user:pw@x/").unwrap_err().to_string();
        assert!(userinfo.contains("authentication-basic"), "{userinfo}");
        assert!(!userinfo.contains("pw@"), "the password is not echoed: {userinfo}");
        assert!(parse_service_url("https://x:0/").is_err());
        assert!(parse_service_url("https://x:65536/").is_err());
        assert!(parse_service_url("https://x:65535/").is_ok());
        assert!(parse_service_url("https://[::1]:8443/").is_ok());
        assert!(parse_service_url("https://x/a/../b").is_err());
    }
}
