//! Client and CA certificates: JSON, tables and details.

use gatehouse_proto::v1 as pb;
use serde_json::{Value, json};

use super::print_json;
use super::text::{details, expiry, rfc3339, table};
use crate::args::Format;

/// A client certificate, as `cert upload` and `cert show` print it.
pub fn print_certificate(format: Format, cert: &pb::Certificate) {
    match format {
        Format::Json => print_json(&certificate_json(cert)),
        Format::Table => print!("{}", certificate_details(cert)),
    }
}

/// Client certificates, as `cert list` prints them.
pub fn print_certificates(format: Format, certs: &[pb::Certificate]) {
    match format {
        Format::Json => print_json(&Value::Array(certs.iter().map(certificate_json).collect())),
        Format::Table => print!("{}", certificates_table(certs)),
    }
}

/// A CA certificate, as `ca upload` prints it.
pub fn print_ca(format: Format, ca: &pb::CaCertificate) {
    match format {
        Format::Json => print_json(&ca_json(ca)),
        Format::Table => print!("{}", ca_details(ca)),
    }
}

/// CA certificates, as `ca list` prints them.
pub fn print_cas(format: Format, cas: &[pb::CaCertificate]) {
    match format {
        Format::Json => print_json(&Value::Array(cas.iter().map(ca_json).collect())),
        Format::Table => print!("{}", cas_table(cas)),
    }
}

/// A client certificate for `-o json`.
fn certificate_json(c: &pb::Certificate) -> Value {
    json!({
        "id": c.id,
        "subject": c.subject,
        "issuer": c.issuer,
        "thumbprint": c.thumbprint,
        "not_before": rfc3339(c.not_before.as_ref()),
        "not_after": rfc3339(c.not_after.as_ref()),
        "key_algorithm": c.key_algorithm,
        "chain_length": c.chain_length,
        "used_by": c.used_by,
        "revision": c.revision,
        "etag": c.etag,
        "expired": c.expired,
        "source": c.source.as_ref().map(source_json),
        "last_refresh": c.last_refresh.as_ref().map(last_refresh_json),
    })
}

/// The last read of a source (a certificate's or a named value's) for `-o json`.
pub(super) fn last_refresh_json(r: &pb::LastRefresh) -> Value {
    json!({ "at": rfc3339(r.at.as_ref()), "ok": r.ok, "message": r.message })
}

/// A certificate's files for `-o json` (never a password).
fn source_json(source: &pb::CertificateSource) -> Value {
    match &source.kind {
        Some(pb::certificate_source::Kind::Pfx(pfx)) => json!({ "pfx": pfx.path }),
        Some(pb::certificate_source::Kind::Pem(pem)) => {
            json!({ "cert_pem": pem.certificate_path, "key_pem": pem.key_path })
        }
        Some(pb::certificate_source::Kind::CaFile(path)) => json!({ "file": path }),
        None => Value::Null,
    }
}

/// "pfx /path" or "pem /cert /key", or "upload".
fn source_text(source: Option<&pb::CertificateSource>) -> String {
    match source.and_then(|s| s.kind.as_ref()) {
        Some(pb::certificate_source::Kind::Pfx(pfx)) => format!("pfx {}", pfx.path),
        Some(pb::certificate_source::Kind::Pem(pem)) => format!("pem {} {}", pem.certificate_path, pem.key_path),
        Some(pb::certificate_source::Kind::CaFile(path)) => format!("file {path}"),
        None => "upload".into(),
    }
}

/// "ok at 2026-11-29T06:00:00Z" or "FAILED at …: why", or "-" (certificates and named values).
pub(super) fn last_refresh_text(last: Option<&pb::LastRefresh>) -> String {
    match last {
        None => "-".into(),
        Some(r) if r.ok => format!("ok at {}", rfc3339(r.at.as_ref())),
        Some(r) => format!("FAILED at {}: {}", rfc3339(r.at.as_ref()), r.message),
    }
}

/// A CA certificate for `-o json`.
fn ca_json(c: &pb::CaCertificate) -> Value {
    json!({
        "id": c.id,
        "subject": c.subject,
        "thumbprint": c.thumbprint,
        "not_before": rfc3339(c.not_before.as_ref()),
        "not_after": rfc3339(c.not_after.as_ref()),
        "used_by": c.used_by,
        "revision": c.revision,
        "etag": c.etag,
        "expired": c.expired,
        "crl_this_update": c.crl_this_update.as_ref().map(|t| rfc3339(Some(t))),
        "crl_next_update": c.crl_next_update.as_ref().map(|t| rfc3339(Some(t))),
        "crl_entries": c.crl_next_update.as_ref().map(|_| c.crl_entries),
        "source": c.source.as_ref().map(source_json),
        "last_refresh": c.last_refresh.as_ref().map(last_refresh_json),
    })
}

/// CA certificates, one per row.
fn cas_table(cas: &[pb::CaCertificate]) -> String {
    certificate_rows(cas.iter().map(|c| (&c.id, &c.subject, &c.thumbprint, c.not_after.as_ref(), &c.used_by)))
}

/// Client certificates, one per row.
fn certificates_table(certs: &[pb::Certificate]) -> String {
    certificate_rows(certs.iter().map(|c| (&c.id, &c.subject, &c.thumbprint, c.not_after.as_ref(), &c.used_by)))
}

/// One table for client and CA certificates alike: id, subject, thumbprint, expiry, users.
fn certificate_rows<'a>(
    certs: impl Iterator<Item = (&'a String, &'a String, &'a String, Option<&'a prost_types::Timestamp>, &'a Vec<String>)>,
) -> String {
    let rows: Vec<Vec<String>> = certs
        .map(|(id, subject, thumbprint, not_after, used_by)| {
            vec![
                id.clone(),
                subject.clone(),
                thumbprint.clone(),
                expiry(not_after),
                if used_by.is_empty() { "-".into() } else { used_by.join(",") },
            ]
        })
        .collect();
    table(&["ID", "SUBJECT", "THUMBPRINT", "EXPIRES", "USED BY"], &rows)
}

/// One client certificate, a field per line.
fn certificate_details(c: &pb::Certificate) -> String {
    let rows = vec![
        vec!["id:".into(), c.id.clone()],
        vec!["subject:".into(), c.subject.clone()],
        vec!["issuer:".into(), c.issuer.clone()],
        vec!["thumbprint:".into(), c.thumbprint.clone()],
        vec!["key:".into(), c.key_algorithm.clone()],
        vec!["chain length:".into(), c.chain_length.to_string()],
        vec!["not before:".into(), rfc3339(c.not_before.as_ref())],
        vec!["not after:".into(), expiry(c.not_after.as_ref())],
        vec!["used by:".into(), if c.used_by.is_empty() { "-".into() } else { c.used_by.join(", ") }],
        vec!["revision:".into(), c.revision.to_string()],
        vec!["etag:".into(), c.etag.clone()],
        vec!["source:".into(), source_text(c.source.as_ref())],
        vec!["last refresh:".into(), last_refresh_text(c.last_refresh.as_ref())],
    ];
    details(&rows)
}

/// A CA certificate the way `certificate_details` shows a client certificate.
fn ca_details(c: &pb::CaCertificate) -> String {
    let rows = vec![
        vec!["id:".into(), c.id.clone()],
        vec!["subject:".into(), c.subject.clone()],
        vec!["thumbprint:".into(), c.thumbprint.clone()],
        vec!["not before:".into(), rfc3339(c.not_before.as_ref())],
        vec!["not after:".into(), expiry(c.not_after.as_ref())],
        vec!["used by:".into(), if c.used_by.is_empty() { "-".into() } else { c.used_by.join(", ") }],
        vec!["revision:".into(), c.revision.to_string()],
        vec!["crl:".into(), crl_summary(c)],
        vec!["etag:".into(), c.etag.clone()],
        vec!["source:".into(), source_text(c.source.as_ref())],
        vec!["last refresh:".into(), last_refresh_text(c.last_refresh.as_ref())],
    ];
    details(&rows)
}

/// "3 revoked, next update 2026-12-01 (in 6 days)", or "-" without a CRL.
fn crl_summary(c: &pb::CaCertificate) -> String {
    match &c.crl_next_update {
        None => "-".into(),
        Some(next) => format!("{} revoked, next update {}", c.crl_entries, expiry(Some(next))),
    }
}
