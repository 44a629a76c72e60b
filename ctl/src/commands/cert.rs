//! `cert`: upload (and rotate), list, show and delete client certificates.

use anyhow::{anyhow, bail};
use gatehouse_proto::v1 as pb;

use crate::args::{CertCommand, Format, PasswordSource};
use crate::connection::{Server, connect, status};
use crate::input::{read_input, read_password};
use crate::output;

/// Runs a `cert` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: CertCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        CertCommand::Upload { id, pfx, password, write, allow_expired } => {
            let bytes = read_input(&pfx)?;
            let password = read_password(password)?;
            let mut client = connect(server).await?;
            let cert = client
                .upload_certificate(pb::UploadCertificateRequest {
                    id,
                    pfx: bytes,
                    password,
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(cert.revision);
            output::print_certificate(format, &cert);
        }
        CertCommand::Link { id, pfx, cert_pem, key_pem, password_file, empty_password, write, allow_expired } => {
            let kind = match (pfx, cert_pem, key_pem) {
                (Some(path), _, _) => {
                    let password = match (password_file, empty_password) {
                        (Some(file), _) => read_password(PasswordSource {
                            password_file: Some(file),
                            password_stdin: false,
                            empty_password: false,
                        })?,
                        (None, true) => String::new(),
                        (None, false) => bail!("give --password-file F (or --empty-password) with --pfx"),
                    };
                    pb::certificate_source::Kind::Pfx(pb::PfxFileSource { path, password })
                }
                (None, Some(certificate_path), Some(key_path)) => {
                    pb::certificate_source::Kind::Pem(pb::PemFileSource { certificate_path, key_path })
                }
                _ => bail!("give --pfx PATH --password-file F, or --cert-pem PATH --key-pem PATH"),
            };
            let cert = connect(server)
                .await?
                .link_certificate(pb::LinkCertificateRequest {
                    id,
                    source: Some(pb::CertificateSource { kind: Some(kind) }),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(cert.revision);
            output::print_certificate(format, &cert);
        }
        CertCommand::Refresh { id } => {
            let cert = connect(server)
                .await?
                .refresh_certificate(pb::RefreshCertificateRequest { id })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(cert.revision);
            output::print_certificate(format, &cert);
        }
        CertCommand::List { expiring_within, fail, refresh_failed } => {
            let mut list = connect(server)
                .await?
                .list_certificates(pb::ListCertificatesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if refresh_failed {
                list.certificates.retain(|c| c.last_refresh.as_ref().is_some_and(|r| !r.ok));
            }
            if let Some(within) = expiring_within {
                let limit = gatehouse_shared::unix_now().saturating_add(within.as_secs() as i64);
                list.certificates.retain(|c| c.not_after.as_ref().is_some_and(|t| t.seconds <= limit));
            }
            output::print_certificates(format, &list.certificates);
            if fail && !list.certificates.is_empty() {
                bail!("{} certificate(s) expire within the given time or have expired", list.certificates.len());
            }
        }
        CertCommand::Show { id } => {
            let cert = connect(server)
                .await?
                .get_certificate(pb::GetCertificateRequest { id })
                .await
                .map_err(status)?
                .into_inner();
            output::print_certificate(format, &cert);
        }
        CertCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_certificate(pb::DeleteCertificateRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(with_hint)?
                .into_inner();
            output::print_deleted(format, "certificate", &id, done.revision);
            revision = Some(done.revision);
        }
    }
    Ok(revision)
}

/// Says how to fix the most common refusal: the APIs and hostnames that still use the
/// certificate come as structured details (`google.rpc.PreconditionFailure`, subjects `apis/ID`
/// and `hostnames/NAME`), not as English.
fn with_hint(refusal: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let subjects: Vec<String> = refusal
        .get_details_precondition_failure()
        .map(|failure| failure.violations.into_iter().map(|v| v.subject).collect())
        .unwrap_or_default();
    let first_api = subjects.iter().find_map(|s| s.strip_prefix("apis/"));
    let first_hostname = subjects.iter().find_map(|s| s.strip_prefix("hostnames/"));
    let error = status(refusal);
    match (first_api, first_hostname) {
        (Some(api), _) => anyhow!("{error} (e.g. gatehousectl api credentials {api} --none)"),
        (None, Some(name)) => {
            anyhow!("{error} (e.g. gatehousectl hostname put '{name}' --cert OTHER-ID, or hostname delete '{name}')")
        }
        (None, None) => error,
    }
}
