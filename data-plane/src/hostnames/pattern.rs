//! Host names as hostnames and APIs name them: exact (`api.example.com`) or a wildcard over one
//! label (`*.example.com`), compared without case and without a trailing dot.

use std::borrow::Cow;
use std::fmt;

/// An exact name or a one-label wildcard, lowercase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `api.example.com`.
    Exact(String),
    /// `*.example.com`, kept as the suffix after the `*`: `example.com`.
    Wildcard(String),
}

/// A name that is neither an exact DNS name nor `*.` followed by one.
#[derive(Debug, thiserror::Error)]
#[error("'{name}' is not a host name (exact, or '*.' and a name)")]
pub struct InvalidHostName {
    /// The name as sent.
    pub name: String,
}

// === impl HostPattern ===

impl HostPattern {
    /// Parses a hostname's or an API's name; case and a trailing dot are dropped.
    pub fn parse(name: &str) -> Result<Self, InvalidHostName> {
        let invalid = || InvalidHostName { name: name.to_string() };
        let normalized = normalize_host(name);
        let (wildcard, rest) = match normalized.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, normalized.as_ref()),
        };
        if !is_dns_name(rest) {
            return Err(invalid());
        }
        Ok(if wildcard { Self::Wildcard(rest.to_string()) } else { Self::Exact(rest.to_string()) })
    }

    /// Whether `host` (normalized: see [`normalize_host`]) is this name or, for a wildcard, one
    /// label under it.
    pub fn covers(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
        }
    }

    /// Whether this is a wildcard.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Self::Wildcard(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// What follows the first label of `host`: the suffix of the one wildcard that covers it
/// (`example.com` for `a.example.com`).
pub(super) fn wildcard_suffix(host: &str) -> Option<&str> {
    host.split_once('.').filter(|(label, rest)| !label.is_empty() && !rest.is_empty()).map(|(_, rest)| rest)
}

/// A host as names are compared: lowercase, without a trailing dot.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Letters, digits, `-` and `_` in non-empty labels of at most 63 bytes, at most 253 bytes in
/// all, no label starting or ending with `-`.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let wildcard = HostPattern::parse("*.Example.com").unwrap();
        assert_eq!(wildcard.to_string(), "*.example.com");
        assert!(wildcard.covers("a.example.com"));
        assert!(!wildcard.covers("a.b.example.com"));
        assert!(!wildcard.covers("example.com"));
        assert!(!wildcard.covers(".example.com"));
        assert!(!wildcard.covers("a.example.com.evil.test"));
        let exact = HostPattern::parse("api.example.com.").unwrap();
        assert_eq!(exact, HostPattern::Exact("api.example.com".into()));
        assert!(exact.covers("api.example.com") && !exact.covers("x.api.example.com"));
    }

    #[test]
    fn only_exact_names_and_leading_one_label_wildcards_parse() {
        for bad in ["", "*", "*.", "a.*.com", "*.*.com", "**.com", "a b.com", "a..com", "-a.com", "a.com:443", "[::1]"]
        {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} parsed");
        }
        for good in ["localhost", "a.com", "*.com", "xn--bcher-kva.example", "_svc.example.com", "127.0.0.1"] {
            assert!(HostPattern::parse(good).is_ok(), "{good:?} refused");
        }
    }
}
