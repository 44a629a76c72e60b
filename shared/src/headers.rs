//! Headers that describe one connection rather than the message (RFC 9110 §7.6.1, plus the
//! de-facto `keep-alive` and `proxy-connection`), and `Content-Length`, which the proxy
//! recomputes: a proxy drops them on the way through, so no policy may set them and no key may
//! travel in them.

/// Hop-by-hop header names, lowercase.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (any case) is hop-by-hop or `Content-Length`: a header only the connection
/// may carry.
pub fn is_connection_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "content-length" || HOP_BY_HOP.contains(&name.as_str())
}

/// The control plane's web console keeps its session in this cookie. Browsers do not keep
/// cookies apart by port, so a data plane on the console's host name would receive it; data
/// planes never pass it on to a backend.
pub const CONSOLE_SESSION_COOKIE: &str = "gatehouse_console";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_in_any_case() {
        assert!(is_connection_header("Transfer-Encoding"));
        assert!(is_connection_header("content-length"));
        assert!(!is_connection_header("x-api-key"));
    }
}
