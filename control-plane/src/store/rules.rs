//! The rules a write must pass before it is committed: ids, etags, expiry, bindings, backend
//! trust and the scheme a certificate needs. Each takes the state it checks against, so the
//! store's writes and these rules' tests see the same thing.

use gatehouse_shared::CertificateInfo;

use super::{ResourceKind, StoreError};
use crate::model::{BackendTls, Binding, Revision, State, etag};

/// The resource under `id`, if it exists and `if_match` allows the write.
pub(super) fn existing<'a, T>(
    kind: ResourceKind,
    id: &str,
    resources: &'a std::collections::BTreeMap<String, T>,
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
    gatehouse_shared::api::check_certificate_reachable(service_url, *binding != Binding::None).map_err(StoreError::from)
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
