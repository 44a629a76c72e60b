//! The rules a write must pass before it is committed: ids, etags, expiry, bindings, backend
//! trust, the scheme a certificate needs, hostnames and their server certificates. Each takes
//! the state it checks against, so the store's writes and these rules' tests see the same thing.

use std::collections::BTreeSet;

use gatehouse_shared::CertificateInfo;
use gatehouse_shared::api::quote;

use super::{ResourceKind, StoreError};
use crate::certificate::{ClientCertificate, ServerCertificateError, check_server_use};
use crate::model::{BackendTls, Binding, Hostname, Policy, Revision, State, etag};

/// The resource under `id`, if it exists and `if_match` allows the write.
pub(super) fn existing<'a, T>(
    kind: ResourceKind,
    id: &str,
    resources: &'a crate::model::Map<T>,
    revision: impl Fn(&T) -> Revision,
    if_match: &str,
) -> Result<&'a T, StoreError> {
    let found = resources.get(id).ok_or_else(|| StoreError::NotFound { kind, id: id.to_string() })?;
    check_etag(kind, id, Some(revision(found)), if_match)?;
    Ok(found)
}

pub(super) fn check_etag(
    kind: ResourceKind,
    id: &str,
    current: Option<Revision>,
    if_match: &str,
) -> Result<(), StoreError> {
    if if_match.is_empty() || if_match == "*" {
        return Ok(());
    }
    match current {
        None => Err(StoreError::EtagOnMissing { kind, id: id.to_string(), given: if_match.to_string() }),
        Some(revision) if etag(revision) == if_match => Ok(()),
        Some(revision) => Err(StoreError::EtagMismatch {
            kind,
            id: id.to_string(),
            current: etag(revision),
            given: if_match.to_string(),
        }),
    }
}

pub(super) fn check_not_expired(id: &str, info: &CertificateInfo) -> Result<(), StoreError> {
    if info.is_expired() {
        return Err(StoreError::Expired { id: id.to_string(), not_after: format_date(info.not_after) });
    }
    Ok(())
}

/// YYYY-MM-DD (UTC), for messages.
pub(super) fn format_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_else(|_| unix.to_string())
}

pub(super) fn check_scheme(service_url: &str, binding: &Binding) -> Result<(), StoreError> {
    // A client certificate needs TLS to the backend.
    if *binding != Binding::None && service_url.starts_with("http://") {
        return Err(StoreError::CertificateOverPlainHttp(quote(service_url)));
    }
    Ok(())
}

pub(super) fn check_binding(state: &State, binding: &Binding, allow_expired: bool) -> Result<(), StoreError> {
    let stored = match binding {
        Binding::None => return Ok(()),
        Binding::CertificateId(id) => state
            .certificates
            .get(id)
            .ok_or_else(|| StoreError::NotFound { kind: ResourceKind::Certificate, id: id.clone() })?,
        Binding::Thumbprint(t) => {
            state.certificate_by_thumbprint(t).ok_or_else(|| StoreError::ThumbprintNotFound(t.clone()))?
        }
    };
    if !allow_expired {
        check_not_expired(&stored.id, &stored.certificate.info)?;
    }
    Ok(())
}

/// Every CA certificate a policy's `issuer-certificate-id` names exists.
pub(super) fn check_issuer_cas(state: &State, policy: &Policy) -> Result<(), StoreError> {
    let identities = policy.client_certificate.iter().flat_map(|v| &v.identities);
    for id in identities.filter_map(|i| i.issuer_certificate_id.as_ref()) {
        if !state.ca_certificates.contains_key(id) {
            return Err(StoreError::NotFound { kind: ResourceKind::CaCertificate, id: id.clone() });
        }
    }
    Ok(())
}

pub(super) fn check_tls(state: &State, tls: &BackendTls) -> Result<(), StoreError> {
    for id in &tls.ca_ids {
        if !state.ca_certificates.contains_key(id) {
            return Err(StoreError::NotFound { kind: ResourceKind::CaCertificate, id: id.clone() });
        }
    }
    if tls.validate_chain && !tls.system_roots && tls.ca_ids.is_empty() {
        return Err(StoreError::NoTrustedRoots);
    }
    Ok(())
}

/// The hostname as stored: lowercase. Refused unless it is a DNS name of at most 253
/// characters, exact (`api.example.com`) or wildcard (`*.example.com`: `*` as the whole
/// leftmost label, standing for exactly one label), and not an IP address.
pub(super) fn normalize_hostname(name: &str) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidHostname { name: quote(name), reason };
    const IP: &str = "an IP address is not a hostname (clients send no SNI for one)";
    let unbracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    if unbracketed.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid(IP));
    }
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() {
        return Err(invalid("it is empty"));
    }
    if lower.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    if lower.ends_with('.') {
        return Err(invalid("leave out the trailing dot"));
    }
    let exact = lower.strip_prefix("*.").unwrap_or(&lower);
    if exact.contains('*') {
        return Err(invalid("a wildcard is '*.' followed by a name: '*' is the whole leftmost label, once"));
    }
    for label in exact.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label ('..', or a leading dot)"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if !label.is_ascii() {
            return Err(invalid("use the ASCII form (xn--...) of an internationalized name"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("use only letters, digits, '-' and '.'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with '-'"));
        }
    }
    // "10.1" or "*.0.0.1": clients take an all-digit last label for (part of) an IPv4 address.
    if exact.rsplit('.').next().is_some_and(|last| last.chars().all(|c| c.is_ascii_digit())) {
        return Err(invalid(IP));
    }
    Ok(lower)
}

/// Checks a hostname (its name already normalized) against the state: its certificate exists,
/// its client CA certificates exist, it is not a second default, and its certificate can serve
/// the name and is unexpired (unless allowed; checked when the hostname gets a certificate, as
/// a binding is, so other fields of a hostname on an expired certificate can still change).
pub(super) fn check_hostname(state: &State, hostname: &Hostname, allow_expired: bool) -> Result<(), StoreError> {
    let stored = state
        .certificates
        .get(&hostname.certificate_id)
        .ok_or_else(|| StoreError::NotFound { kind: ResourceKind::Certificate, id: hostname.certificate_id.clone() })?;
    for id in &hostname.client_ca_ids {
        if !state.ca_certificates.contains_key(id) {
            return Err(StoreError::NotFound { kind: ResourceKind::CaCertificate, id: id.clone() });
        }
    }
    if hostname.default
        && let Some(other) = state.default_hostname(&hostname.name)
    {
        return Err(StoreError::DefaultHostnameTaken { name: hostname.name.clone(), default: other.name.clone() });
    }
    let new_certificate =
        state.hostnames.get(&hostname.name).is_none_or(|current| current.certificate_id != hostname.certificate_id);
    if new_certificate && !allow_expired {
        check_not_expired(&stored.id, &stored.certificate.info)?;
    }
    serves(&stored.certificate, &hostname.name).map_err(|reason| StoreError::NotServerCertificate {
        id: stored.id.clone(),
        hostname: hostname.name.clone(),
        reason,
    })
}

/// Whether `certificate` (its leaf) can serve TLS for `hostname`.
fn serves(certificate: &ClientCertificate, hostname: &str) -> Result<(), ServerCertificateError> {
    let leaf = certificate.chain.first().ok_or(ServerCertificateError::Malformed)?;
    check_server_use(leaf, hostname)
}

/// The hostnames served with certificate `id` that `replacement` could not serve, and why.
pub(super) fn hostnames_broken_by(
    state: &State,
    id: &str,
    replacement: &ClientCertificate,
) -> Vec<(String, ServerCertificateError)> {
    state
        .hostnames_using(id)
        .into_iter()
        .filter_map(|name| serves(replacement, &name).err().map(|reason| (name, reason)))
        .collect()
}

/// An API's hostnames as stored: lowercase, sorted, each once; every one must exist.
pub(super) fn api_hostnames(state: &State, names: &[String]) -> Result<Vec<String>, StoreError> {
    let names: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    if let Some(missing) = names.iter().find(|n| !state.hostnames.contains_key(*n)) {
        return Err(StoreError::NotFound { kind: ResourceKind::Hostname, id: quote(missing) });
    }
    Ok(names.into_iter().collect())
}

/// Ids (and token names) appear in URLs, logs and CLI tables: 1 to `max_len` letters, digits,
/// '-', '_' or '.', and not '.' or '..' alone.
pub fn is_plain_id(id: &str, max_len: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_len
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn validate_id(kind: ResourceKind, id: &str) -> Result<(), StoreError> {
    if is_plain_id(id, 128) {
        Ok(())
    } else {
        Err(StoreError::InvalidId { kind, id: gatehouse_shared::api::quote(id) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_utc_calendar_days() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(format_date(4_102_444_800), "2100-01-01");
    }
}
