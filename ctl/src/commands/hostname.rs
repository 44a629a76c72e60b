//! `hostname`: put (create or replace), list, show and delete the hostnames API clients reach
//! over HTTPS.

use gatehouse_proto::v1 as pb;

use crate::args::{Format, HostnameCommand};
use crate::connection::{Server, connect, status};
use crate::output;

/// Runs a `hostname` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: HostnameCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        HostnameCommand::Put {
            name,
            certificate_id,
            default,
            negotiate_client_certificate,
            client_ca_ids,
            write,
            allow_expired,
        } => {
            let hostname = connect(server)
                .await?
                .put_hostname(pb::PutHostnameRequest {
                    name,
                    certificate_id,
                    default,
                    negotiate_client_certificate,
                    client_ca_ids,
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            output::print_hostname(format, &hostname);
            revision = Some(hostname.revision);
        }
        HostnameCommand::List => {
            let list =
                connect(server).await?.list_hostnames(pb::ListHostnamesRequest {}).await.map_err(status)?.into_inner();
            output::print_hostnames(format, &list.hostnames);
        }
        HostnameCommand::Show { name } => {
            let hostname = connect(server)
                .await?
                .get_hostname(pb::GetHostnameRequest { name })
                .await
                .map_err(status)?
                .into_inner();
            output::print_hostname(format, &hostname);
        }
        HostnameCommand::Delete { name, write } => {
            let done = connect(server)
                .await?
                .delete_hostname(pb::DeleteHostnameRequest { name: name.clone(), if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            output::print_deleted(format, "hostname", &name, done.revision);
            revision = Some(done.revision);
        }
    }
    Ok(revision)
}
