//! `token`: create, list and revoke bearer tokens.

use gatehouse_proto::v1 as pb;

use crate::args::{Format, TokenCommand, TokenRole};
use crate::connection::{Server, connect, status};
use crate::output;

/// Runs a `token` verb; token writes make no revision, so --wait has nothing to wait for.
pub async fn run(server: &Server, format: Format, command: TokenCommand) -> anyhow::Result<Option<u64>> {
    match command {
        TokenCommand::Create { name, role, data_plane_names } => {
            let role = match role {
                TokenRole::Operator => pb::Role::Operator,
                TokenRole::Gateway => pb::Role::Gateway,
            };
            let created = connect(server)
                .await?
                .create_token(pb::CreateTokenRequest {
                    name,
                    role: role as i32,
                    data_plane_names: data_plane_names.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            output::print_token_created(format, &created, role);
        }
        TokenCommand::List => {
            let list = connect(server).await?.list_tokens(pb::ListTokensRequest {}).await.map_err(status)?.into_inner();
            output::print_tokens(format, &list.tokens);
        }
        TokenCommand::Revoke { name, force } => {
            connect(server)
                .await?
                .revoke_token(pb::RevokeTokenRequest { name: name.clone(), force })
                .await
                .map_err(status)?;
            output::print_token_revoked(format, &name);
        }
    }
    Ok(None)
}
