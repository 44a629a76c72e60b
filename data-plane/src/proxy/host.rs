//! The host a request is for: `:authority` (HTTP/2) or the absolute request URI, else `Host`
//! (RFC 9113 §8.3.1, RFC 9112 §3.2.2). Routing compares it lowercase, without port or trailing
//! dot; `X-Forwarded-Host` gets it as the client wrote it. A request whose `Host` and
//! authority name different hosts, with several `Host` lines, or with a `Host` that is not an
//! authority is refused (400): two hosts in one request are two answers to "which API".

use http::header::{self, HeaderValue};
use http::uri::Authority;

use crate::hostnames::normalize_host;

/// The host a request names.
#[derive(Debug)]
pub(super) struct RequestHost {
    /// As the client wrote it (host and port), for `X-Forwarded-Host`.
    pub authority: HeaderValue,
    /// Lowercase, without port or trailing dot: what routing compares.
    pub name: String,
}

/// Why a request's host cannot be told.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(super) enum HostError {
    #[error("the request has more than one Host header")]
    Several,
    #[error("the Host header is not a host name or address")]
    Invalid,
    #[error("the Host header and the request's authority name different hosts")]
    Disagree,
}

/// The request's host; None when it names none (HTTP/1.0 without `Host`, or an empty one).
pub(super) fn request_host(parts: &http::request::Parts) -> Result<Option<RequestHost>, HostError> {
    let mut lines = parts.headers.get_all(header::HOST).iter();
    let (first, second) = (lines.next(), lines.next());
    if second.is_some() {
        return Err(HostError::Several);
    }
    let from_header = match first {
        Some(value) if !value.is_empty() => {
            let authority = Authority::try_from(value.as_bytes()).map_err(|_| HostError::Invalid)?;
            Some(parse(&authority, value.clone()).ok_or(HostError::Invalid)?)
        }
        _ => None,
    };
    let from_uri = match parts.uri.authority() {
        Some(authority) => {
            let value = HeaderValue::from_str(authority.as_str()).map_err(|_| HostError::Invalid)?;
            Some(parse(authority, value).ok_or(HostError::Invalid)?)
        }
        None => None,
    };
    match (from_uri, from_header) {
        (Some(uri), Some(header)) if uri.name != header.name => Err(HostError::Disagree),
        (Some(uri), _) => Ok(Some(uri)),
        (None, header) => Ok(header),
    }
}

fn parse(authority: &Authority, value: HeaderValue) -> Option<RequestHost> {
    // Userinfo has no place in a request's host.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(RequestHost { authority: value, name: normalize_host(authority.host()).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(uri: &str, hosts: &[&str]) -> Result<Option<String>, HostError> {
        let mut request = http::Request::get(uri);
        for h in hosts {
            request = request.header(header::HOST, *h);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        request_host(&parts).map(|h| h.map(|h| h.name))
    }

    #[test]
    fn the_authority_wins_and_is_compared_lowercase_without_port() {
        assert_eq!(host("/x", &["API.Example.com:8443"]), Ok(Some("api.example.com".into())));
        assert_eq!(host("https://api.example.com/x", &[]), Ok(Some("api.example.com".into())));
        assert_eq!(host("https://api.example.com/x", &["api.example.com:443"]), Ok(Some("api.example.com".into())));
        assert_eq!(host("/x", &["api.example.com."]), Ok(Some("api.example.com".into())));
        assert_eq!(host("/x", &["[::1]:8080"]), Ok(Some("[::1]".into())));
        assert_eq!(host("/x", &[]), Ok(None));
        assert_eq!(host("/x", &[""]), Ok(None));
    }

    #[test]
    fn two_hosts_in_one_request_are_refused() {
        assert_eq!(host("https://a.example.com/x", &["b.example.com"]), Err(HostError::Disagree));
        assert_eq!(host("/x", &["a.example.com", "b.example.com"]), Err(HostError::Several));
        assert_eq!(host("/x", &["user@a.example.com"]), Err(HostError::Invalid));
        assert_eq!(host("/x", &["a b"]), Err(HostError::Invalid));
    }

    #[test]
    fn x_forwarded_host_keeps_what_the_client_wrote() {
        let (parts, ()) =
            http::Request::get("/x").header("host", "API.example.com:8443").body(()).unwrap().into_parts();
        assert_eq!(request_host(&parts).unwrap().unwrap().authority, "API.example.com:8443");
    }
}
