//! `--wait`: after a write, wait until every connected data plane has applied its revision.

use std::time::Duration;

use anyhow::bail;
use gatehouse_proto::v1 as pb;

use crate::args::Format;
use crate::connection::{Server, connect, status};
use crate::output;

/// Waits until every connected data plane applied `revision`; fails if one rejected it or the
/// timeout passed. The report is printed either way (see `output::print_rollout`).
pub async fn wait_for_rollout(server: &Server, format: Format, revision: u64, timeout: Duration) -> anyhow::Result<()> {
    use pb::gateway_rollout::Result as Outcome;
    let rollout = connect(server)
        .await?
        .wait_for_rollout(pb::WaitForRolloutRequest {
            revision,
            timeout_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
        })
        .await
        .map_err(status)?
        .into_inner();
    output::print_rollout(format, revision, &rollout);
    let with = |outcome: Outcome| -> Vec<&str> {
        rollout.gateways.iter().filter(|g| g.result == outcome as i32).map(|g| g.name.as_str()).collect()
    };
    let (rejected, pending) = (with(Outcome::Rejected), with(Outcome::Pending));
    if !rejected.is_empty() {
        bail!(
            "revision {revision} was rejected by {}; they keep serving their last good configuration",
            rejected.join(", ")
        );
    }
    if !pending.is_empty() {
        bail!("revision {revision} was not applied within {timeout:?} by {}", pending.join(", "));
    }
    Ok(())
}
