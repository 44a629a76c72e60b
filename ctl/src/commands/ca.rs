//! `ca`: upload, list and delete the CA certificates APIs may trust for their backends.

use gatehouse_proto::v1 as pb;

use crate::args::{CaCommand, Format};
use crate::connection::{Server, connect, status};
use crate::input::read_input;
use crate::output;

/// Runs a `ca` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: CaCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        CaCommand::Upload { id, file, crl, write } => {
            let certificate = file.as_deref().map(read_input).transpose()?.unwrap_or_default();
            let crl = crl.as_deref().map(read_input).transpose()?.unwrap_or_default();
            let request = pb::UploadCaCertificateRequest { id, certificate, if_match: write.if_match, crl };
            let ca = connect(server).await?.upload_ca_certificate(request).await.map_err(status)?.into_inner();
            output::print_ca(format, &ca);
            revision = Some(ca.revision);
        }
        CaCommand::Link { id, file, write } => {
            let request = pb::LinkCaCertificateRequest { id, path: file, if_match: write.if_match };
            let ca = connect(server).await?.link_ca_certificate(request).await.map_err(status)?.into_inner();
            output::print_ca(format, &ca);
            revision = Some(ca.revision);
        }
        CaCommand::Refresh { id } => {
            let request = pb::RefreshCaCertificateRequest { id };
            let ca = connect(server).await?.refresh_ca_certificate(request).await.map_err(status)?.into_inner();
            output::print_ca(format, &ca);
            revision = Some(ca.revision);
        }
        CaCommand::List { refresh_failed } => {
            let mut list = connect(server)
                .await?
                .list_ca_certificates(pb::ListCaCertificatesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if refresh_failed {
                list.ca_certificates.retain(|c| c.last_refresh.as_ref().is_some_and(|r| !r.ok));
            }
            output::print_cas(format, &list.ca_certificates);
        }
        CaCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_ca_certificate(pb::DeleteCaCertificateRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            output::print_deleted(format, "CA certificate", &id, done.revision);
            revision = Some(done.revision);
        }
    }
    Ok(revision)
}
