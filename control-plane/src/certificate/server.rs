//! Whether an uploaded certificate can be a hostname's TLS server certificate: an extended key
//! usage that allows serverAuth (when the certificate limits its usage at all), and a
//! subjectAltName DNS entry that covers the hostname (RFC 6125 §6.4: exact, or a `*.` wildcard
//! standing for exactly one leftmost label). The subject's CN is not read, as browsers and
//! rustls do not read it either.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate cannot serve TLS for a hostname. Messages complete "certificate 'ID'
/// cannot serve hostname 'NAME': ...".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerCertificateError {
    /// An extendedKeyUsage extension without serverAuth: TLS clients refuse the certificate.
    #[error(
        "its extendedKeyUsage does not include serverAuth (TLS Web Server Authentication), so TLS clients would refuse it; upload a server certificate"
    )]
    NoServerAuth,
    /// No subjectAltName DNS names: TLS clients match names against those only.
    #[error("it has no subjectAltName DNS names (TLS clients do not read the subject's CN)")]
    NoDnsNames,
    /// The DNS names do not cover the hostname.
    #[error("it is valid for {}, not for '{hostname}'{}", .names.join(", "), wildcard_hint(.hostname))]
    NotValidForName {
        /// The hostname asked for.
        hostname: String,
        /// The certificate's subjectAltName DNS names.
        names: Vec<String>,
    },
    /// The certificate or one of the extensions read here does not parse (or is repeated).
    #[error("its subjectAltName or extendedKeyUsage extension cannot be read")]
    Malformed,
}

fn wildcard_hint(hostname: &str) -> &'static str {
    if hostname.starts_with("*.") { " (a wildcard hostname needs that same wildcard name)" } else { "" }
}

/// Checks that the DER certificate `leaf` can serve TLS for `hostname` (lowercase, exact or
/// `*.` wildcard, already checked as a name).
pub fn check_server_use(leaf: &[u8], hostname: &str) -> Result<(), ServerCertificateError> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|_| ServerCertificateError::Malformed)?;
    if let Some(eku) = cert.extended_key_usage().map_err(|_| ServerCertificateError::Malformed)?
        && !eku.value.server_auth
    {
        // anyExtendedKeyUsage alone is not enough either: OpenSSL and webpki want serverAuth.
        return Err(ServerCertificateError::NoServerAuth);
    }
    let names: Vec<String> = cert
        .subject_alternative_name()
        .map_err(|_| ServerCertificateError::Malformed)?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(ServerCertificateError::NoDnsNames);
    }
    if names.iter().any(|name| covers(name, hostname)) {
        Ok(())
    } else {
        Err(ServerCertificateError::NotValidForName { hostname: hostname.to_string(), names })
    }
}

/// Whether the certificate name `dns_name` (lowercase) covers `hostname`: the same name, or for
/// an exact hostname a `*.` wildcard whose base is the hostname without its first label. A
/// wildcard hostname is covered only by the same wildcard: `*.example.com` by `*.example.com`.
pub fn covers(dns_name: &str, hostname: &str) -> bool {
    if dns_name == hostname {
        return true;
    }
    if hostname.starts_with("*.") {
        return false;
    }
    match (dns_name.strip_prefix("*."), hostname.split_once('.')) {
        (Some(base), Some((first, rest))) => !first.is_empty() && !base.is_empty() && base == rest,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_name_covers_one_leftmost_label_only() {
        assert!(covers("api.example.com", "api.example.com"));
        assert!(covers("*.example.com", "api.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "api.example.org"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("api.example.com", "*.example.com"), "a wildcard hostname needs the wildcard");
        assert!(!covers("*.com", "*.example.com"));
        assert!(!covers("a*.example.com", "ab.example.com"), "partial wildcards are not read");
    }
}
