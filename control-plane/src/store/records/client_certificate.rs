//! An API's `<validate-client-certificate>` and `<forward-client-certificate>` as sled stores
//! them, inside the API's record. As everywhere on disk, defaults (false, empty) are the safe
//! reading: a check is stored as skipped only when the policy turned it off.

use gatehouse_shared::Thumbprint;

use crate::policy::{CertificateIdentity, ClientCertificateValidation, ForwardClientCertificate};

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ValidationRecord {
    #[prost(bool, tag = "1")]
    skip_revocation: bool,
    #[prost(bool, tag = "2")]
    skip_trust: bool,
    #[prost(bool, tag = "3")]
    skip_not_before: bool,
    #[prost(bool, tag = "4")]
    skip_not_after: bool,
    #[prost(bool, tag = "5")]
    ignore_error: bool,
    #[prost(message, repeated, tag = "6")]
    identities: Vec<IdentityRecord>,
}

/// Each claim; empty: not claimed.
#[derive(Clone, PartialEq, prost::Message)]
struct IdentityRecord {
    #[prost(string, tag = "1")]
    thumbprint: String,
    #[prost(string, tag = "2")]
    serial_number: String,
    #[prost(string, tag = "3")]
    common_name: String,
    #[prost(string, tag = "4")]
    subject: String,
    #[prost(string, tag = "5")]
    dns_name: String,
    #[prost(string, tag = "6")]
    issuer_subject: String,
    #[prost(string, tag = "7")]
    issuer_thumbprint: String,
    #[prost(string, tag = "8")]
    issuer_certificate_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ForwardRecord {
    #[prost(string, tag = "1")]
    thumbprint_header: String,
    #[prost(string, tag = "2")]
    subject_header: String,
}

pub(super) fn validation_record(validation: &ClientCertificateValidation) -> ValidationRecord {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let thumbprint = |value: &Option<Thumbprint>| value.as_ref().map(ToString::to_string).unwrap_or_default();
    ValidationRecord {
        skip_revocation: !validation.validate_revocation,
        skip_trust: !validation.validate_trust,
        skip_not_before: !validation.validate_not_before,
        skip_not_after: !validation.validate_not_after,
        ignore_error: validation.ignore_error,
        identities: validation
            .identities
            .iter()
            .map(|i| IdentityRecord {
                thumbprint: thumbprint(&i.thumbprint),
                serial_number: text(&i.serial_number),
                common_name: text(&i.common_name),
                subject: text(&i.subject),
                dns_name: text(&i.dns_name),
                issuer_subject: text(&i.issuer_subject),
                issuer_thumbprint: thumbprint(&i.issuer_thumbprint),
                issuer_certificate_id: text(&i.issuer_certificate_id),
            })
            .collect(),
    }
}

pub(super) fn validation_from(record: ValidationRecord) -> Result<ClientCertificateValidation, String> {
    let text = |value: String| Some(value).filter(|v| !v.is_empty());
    let thumbprint = |value: String| text(value).map(|t| Thumbprint::parse(&t).map_err(|e| e.to_string())).transpose();
    let identities = record
        .identities
        .into_iter()
        .map(|i| {
            Ok(CertificateIdentity {
                thumbprint: thumbprint(i.thumbprint)?,
                serial_number: text(i.serial_number),
                common_name: text(i.common_name),
                subject: text(i.subject),
                dns_name: text(i.dns_name),
                issuer_subject: text(i.issuer_subject),
                issuer_thumbprint: thumbprint(i.issuer_thumbprint)?,
                issuer_certificate_id: text(i.issuer_certificate_id),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(ClientCertificateValidation {
        validate_revocation: !record.skip_revocation,
        validate_trust: !record.skip_trust,
        validate_not_before: !record.skip_not_before,
        validate_not_after: !record.skip_not_after,
        ignore_error: record.ignore_error,
        identities,
    })
}

pub(super) fn forward_record(forward: &ForwardClientCertificate) -> ForwardRecord {
    ForwardRecord {
        thumbprint_header: forward.thumbprint_header.clone().unwrap_or_default(),
        subject_header: forward.subject_header.clone().unwrap_or_default(),
    }
}

pub(super) fn forward_from(record: ForwardRecord) -> ForwardClientCertificate {
    ForwardClientCertificate {
        thumbprint_header: Some(record.thumbprint_header).filter(|h| !h.is_empty()),
        subject_header: Some(record.subject_header).filter(|h| !h.is_empty()),
    }
}
