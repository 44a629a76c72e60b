//! `gateway`: the data planes connected to the control plane and what each has applied.

use gatehouse_proto::v1 as pb;

use crate::args::{Format, GatewayCommand};
use crate::connection::{Server, connect, status};
use crate::output;

/// Runs a `gateway` verb; none writes, so there is never a revision.
pub async fn run(server: &Server, format: Format, command: GatewayCommand) -> anyhow::Result<Option<u64>> {
    match command {
        GatewayCommand::List => output::print_gateways(format, &list_all(server).await?),
    }
    Ok(None)
}

/// Every page of `ListGateways`.
pub async fn list_all(server: &Server) -> anyhow::Result<pb::ListGatewaysResponse> {
    let mut client = connect(server).await?;
    let mut all = pb::ListGatewaysResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_gateways(pb::ListGatewaysRequest { page_size: 250, page_token })
            .await
            .map_err(status)?
            .into_inner();
        all.gateways.extend(page.gateways);
        all.revision = page.revision;
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}
