//! `export`: the whole configuration as one declaration, read at one revision.

use anyhow::bail;
use gatehouse_proto::v1 as pb;

use crate::args::DocumentFormat;
use crate::connection::{Client, Server, connect, status};
use crate::declaration::{Declaration, Resources};
use crate::output;

/// How many times the reads start over when a write lands between them.
const ATTEMPTS: usize = 5;

/// Writes the configuration to stdout.
pub async fn run(server: &Server, format: DocumentFormat) -> anyhow::Result<()> {
    let mut client = connect(server).await?;
    for _ in 0..ATTEMPTS {
        if let Some(resources) = read_at_one_revision(&mut client).await? {
            return output::print_declaration(format, &Declaration::from(resources));
        }
    }
    bail!("the configuration changed during each of {ATTEMPTS} attempts to export it: try again when writes pause")
}

/// Every resource, or `None` when the lists answered at different revisions (a write landed
/// between the reads), so that an export never mixes two configurations.
async fn read_at_one_revision(client: &mut Client) -> anyhow::Result<Option<Resources>> {
    let cas = client.list_ca_certificates(pb::ListCaCertificatesRequest {}).await.map_err(status)?.into_inner();
    let certificates = client.list_certificates(pb::ListCertificatesRequest {}).await.map_err(status)?.into_inner();
    let hostnames = client.list_hostnames(pb::ListHostnamesRequest {}).await.map_err(status)?.into_inner();
    let named_values = client.list_named_values(pb::ListNamedValuesRequest {}).await.map_err(status)?.into_inner();
    let apis = client.list_apis(pb::ListApisRequest {}).await.map_err(status)?.into_inner();
    let mut with_policies = Vec::with_capacity(apis.apis.len());
    for api in apis.apis {
        let policy = client.get_api_policy(pb::GetApiPolicyRequest { api_id: api.id.clone() }).await.map_err(status)?;
        with_policies.push((api, policy.into_inner().xml));
    }
    // Read last, so that its revision also covers the policies read before it.
    let subscriptions = client.list_subscriptions(pb::ListSubscriptionsRequest {}).await.map_err(status)?.into_inner();
    let revisions = [cas.revision, certificates.revision, hostnames.revision, named_values.revision, apis.revision];
    if revisions.iter().any(|revision| *revision != subscriptions.revision) {
        return Ok(None);
    }
    Ok(Some(Resources {
        ca_certificates: cas.ca_certificates,
        certificates: certificates.certificates,
        hostnames: hostnames.hostnames,
        named_values: named_values.named_values,
        apis: with_policies,
        subscriptions: subscriptions.subscriptions,
    }))
}
