//! Waiting for the fleet: a revision counts as live on a data plane once it has ACKed it.

use std::time::{Duration, Instant};

use anyhow::bail;
use gatehouse_proto::v1 as pb;

use crate::process::Management;

/// Polls `ListGateways` until every named data plane has acknowledged `revision`.
pub async fn wait_acked(
    management: &mut Management,
    names: &[&str],
    revision: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let list = management.list_gateways(pb::ListGatewaysRequest::default()).await?.into_inner();
        let done = names
            .iter()
            .all(|name| list.gateways.iter().any(|g| g.name == *name && g.connected && g.applied_revision >= revision));
        if done {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("data planes {names:?} did not ACK revision {revision} within {timeout:?}: {:?}", list.gateways);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
