//! What the proxy does to headers on their way through: removes hop-by-hop headers (both
//! ways), removes identity headers a client may not assert and sets the ones the gateway
//! vouches for, and keeps or makes the request id.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request id header: kept from the client when sane, else made; sent to the backend and
/// returned to the client.
pub(super) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's x-request-id when it is sane (printable, at most 128 bytes), else a new one.
pub(super) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&REQUEST_ID) {
        let bytes = id.as_bytes();
        if !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic()) {
            return id.clone();
        }
    }
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}{n:08x}")).expect("hex is a valid header value")
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in gatehouse_shared::headers::HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes the control plane console's session cookie from the request, keeping every other
/// cookie: a backend must never see an operator's session (see
/// [`gatehouse_shared::headers::CONSOLE_SESSION_COOKIE`]).
pub(super) fn strip_console_session(headers: &mut HeaderMap) {
    let name = gatehouse_shared::headers::CONSOLE_SESSION_COOKIE;
    // A value that is not text cannot be checked, so it is not passed on either.
    let carries = |value: &HeaderValue| match value.to_str() {
        Ok(v) => v.split(';').any(|pair| pair.trim().split('=').next() == Some(name)),
        Err(_) => true,
    };
    if !headers.get_all(header::COOKIE).iter().any(carries) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Headers a backend may read as identity asserted by the gateway (the client's address, its
/// TLS client certificate): a client never gets to send them. The README lists them.
const IDENTITY_HEADERS: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "x-arr-clientcert",
    "ssl-client-cert",
    "client-cert",
    "client-cert-chain",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-envoy-external-address",
    "x-client-thumbprint",
    // Path overrides some backends (IIS, Symfony) honour: never a client's to set.
    "x-original-url",
    "x-rewrite-url",
];
const IDENTITY_HEADER_PREFIXES: &[&str] = &[
    "x-forwarded-",
    "x-ssl-",
    "ssl-client-",
    "x-client-cert",
    "x-client-verify",
    "x-client-dn",
    "x-client-subject",
    "x-client-issuer",
    "x-tls-client-",
    "x-amzn-mtls-",
];

fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    IDENTITY_HEADERS.contains(&name) || IDENTITY_HEADER_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Removes every identity header the client sent, then sets the ones the gateway vouches for:
/// `X-Forwarded-For` (the client's address, replacing any chain the client claimed),
/// `X-Forwarded-Proto` (`scheme`: `http` or `https`, how the client reached the gateway) and
/// `X-Forwarded-Host`.
pub(super) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    scheme: &'static str,
    client_host: Option<HeaderValue>,
) {
    let claimed: Vec<HeaderName> = headers.keys().filter(|name| is_identity_header(name)).cloned().collect();
    for name in claimed {
        headers.remove(name);
    }
    if let Ok(address) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), address);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(scheme));
    if let Some(host) = client_host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_session_cookie_never_reaches_a_backend_and_other_cookies_do() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; gatehouse_console=cs_secret; b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("gatehouse_console=cs_other"));
        strip_console_session(&mut headers);
        let cookies: Vec<_> = headers.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, ["a=1; b=2"]);
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("gatehouse_console=cs_secret"));
        strip_console_session(&mut only);
        assert!(only.get(header::COOKIE).is_none());
        let mut untouched = HeaderMap::new();
        untouched.insert(header::COOKIE, HeaderValue::from_static("gatehouse_consoles=x; z=9"));
        strip_console_session(&mut untouched);
        assert_eq!(untouched.get(header::COOKIE).unwrap(), "gatehouse_consoles=x; z=9");
    }
}
