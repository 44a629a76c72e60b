//! `__complete KIND`: the ids the completion scripts offer, one a line, from the control plane
//! the command line (or the context) names. A shell is waiting with the operator's cursor, so
//! any failure prints nothing, and it gives up after two seconds.

use std::io::Write;
use std::time::Duration;

use gatehouse_proto::v1 as pb;

use crate::args::Cli;
use crate::completion::IdKind;
use crate::connection::{Server, connect};
use crate::contexts::ContextFile;

/// How long a completion may keep the shell waiting.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Prints the ids of `kind`; nothing on any error.
pub async fn run(cli: &Cli, kind: IdKind) {
    let Ok(Ok(ids)) = tokio::time::timeout(TIMEOUT, ids(cli, kind)).await else { return };
    let mut stdout = std::io::stdout().lock();
    // The shell reads each line as a word: an id with white space or control characters
    // (which the server should never hold) could only garble the command line.
    for id in ids.iter().filter(|id| !id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control())) {
        if writeln!(stdout, "{id}").is_err() {
            return;
        }
    }
}

async fn ids(cli: &Cli, kind: IdKind) -> anyhow::Result<Vec<String>> {
    if kind == IdKind::Context {
        return Ok(ContextFile::load_default()?.contexts.contexts.into_keys().collect());
    }
    let mut client = connect(&Server::from_cli(cli)?).await?;
    Ok(match kind {
        IdKind::Cert => client
            .list_certificates(pb::ListCertificatesRequest {})
            .await?
            .into_inner()
            .certificates
            .into_iter()
            .map(|c| c.id)
            .collect(),
        IdKind::Ca => client
            .list_ca_certificates(pb::ListCaCertificatesRequest {})
            .await?
            .into_inner()
            .ca_certificates
            .into_iter()
            .map(|c| c.id)
            .collect(),
        IdKind::Api => {
            client.list_apis(pb::ListApisRequest {}).await?.into_inner().apis.into_iter().map(|a| a.id).collect()
        }
        IdKind::Hostname => client
            .list_hostnames(pb::ListHostnamesRequest {})
            .await?
            .into_inner()
            .hostnames
            .into_iter()
            .map(|h| h.name)
            .collect(),
        IdKind::Subscription => client
            .list_subscriptions(pb::ListSubscriptionsRequest {})
            .await?
            .into_inner()
            .subscriptions
            .into_iter()
            .map(|s| s.name)
            .collect(),
        IdKind::Nv => client
            .list_named_values(pb::ListNamedValuesRequest {})
            .await?
            .into_inner()
            .named_values
            .into_iter()
            .map(|n| n.name)
            .collect(),
        IdKind::Context => unreachable!("read from the config file above"),
    })
}
