//! `nv`: put (create or replace), link to a file, refresh, list, show and delete named values.
//! A put's value is read here from a file or stdin; a linked file is read by the control plane.
//! The rules (names, lengths, the policies naming it) are the control plane's.

use gatehouse_proto::v1 as pb;

use crate::args::{Format, NamedValueCommand};
use crate::connection::{Server, connect, status};
use crate::input::read_named_value;
use crate::output;

/// Runs an `nv` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: NamedValueCommand) -> anyhow::Result<Option<u64>> {
    let revision = match command {
        NamedValueCommand::Put { name, value_file, secret, write } => {
            // Read before connecting: a missing file is the operator's to fix, not the server's.
            let value = read_named_value(&value_file)?;
            let request = pb::PutNamedValueRequest { name, value, secret, if_match: write.if_match };
            let named = connect(server).await?.put_named_value(request).await.map_err(status)?.into_inner();
            output::print_named_value(format, &named);
            Some(named.revision)
        }
        NamedValueCommand::Link { name, file, secret, write } => {
            let request = pb::LinkNamedValueRequest { name, path: file, secret, if_match: write.if_match };
            let named = connect(server).await?.link_named_value(request).await.map_err(status)?.into_inner();
            output::print_named_value(format, &named);
            Some(named.revision)
        }
        NamedValueCommand::Refresh { name } => {
            let request = pb::RefreshNamedValueRequest { name };
            let named = connect(server).await?.refresh_named_value(request).await.map_err(status)?.into_inner();
            output::print_named_value(format, &named);
            Some(named.revision)
        }
        NamedValueCommand::List => {
            let request = pb::ListNamedValuesRequest {};
            let list = connect(server).await?.list_named_values(request).await.map_err(status)?.into_inner();
            output::print_named_values(format, &list.named_values);
            None
        }
        NamedValueCommand::Show { name } => {
            let request = pb::GetNamedValueRequest { name };
            let named = connect(server).await?.get_named_value(request).await.map_err(status)?.into_inner();
            output::print_named_value(format, &named);
            None
        }
        NamedValueCommand::Delete { name, write } => {
            let request = pb::DeleteNamedValueRequest { name: name.clone(), if_match: write.if_match };
            let done = connect(server).await?.delete_named_value(request).await.map_err(status)?.into_inner();
            output::print_deleted(format, "named value", &name, done.revision);
            Some(done.revision)
        }
    };
    Ok(revision)
}
