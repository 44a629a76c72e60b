//! `WaitForRollout`: until every connected data plane applied a revision (or rejected it, or
//! the time ran out), and how each one did.

use std::time::{Duration, SystemTime};

use gatehouse_proto::v1 as pb;
use tonic::Status;

use super::ManagementService;

const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

fn millis_between(from: SystemTime, to: SystemTime) -> u32 {
    to.duration_since(from).unwrap_or_default().as_millis().min(u32::MAX as u128) as u32
}

impl ManagementService {
    /// Waits until every connected data plane applied `request.revision` (or rejected it, or
    /// the timeout passed), and says how each one did.
    pub(super) async fn wait_for(&self, request: pb::WaitForRolloutRequest) -> Result<pb::Rollout, Status> {
        use pb::gateway_rollout::Result as Outcome;
        let revision = request.revision;
        if !self.store.has_revision(revision).await? {
            return Err(Status::invalid_argument(format!("revision {revision} does not exist yet")));
        }
        let timeout = match request.timeout_ms {
            0 => DEFAULT_ROLLOUT_TIMEOUT,
            ms => Duration::from_millis(ms as u64).min(MAX_ROLLOUT_TIMEOUT),
        };
        let committed = self.store.committed_at(revision);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.gateways.subscribe();
        loop {
            changes.borrow_and_update();
            let mut complete = true;
            let gateways = self
                .gateways
                .list()
                .into_iter()
                .filter(|g| g.connected)
                .map(|g| {
                    let (result, reason, at) = if g.applied_revision >= revision {
                        (Outcome::Applied, String::new(), Some(g.applied_at))
                    } else if g.rejected_revision >= revision {
                        (Outcome::Rejected, g.last_error.clone(), Some(g.rejected_at))
                    } else {
                        complete = false;
                        (Outcome::Pending, String::new(), None)
                    };
                    let elapsed_ms = match (committed, at) {
                        (Some(c), Some(at)) => millis_between(c, at),
                        _ => 0,
                    };
                    pb::GatewayRollout { name: g.name, result: result as i32, reason, elapsed_ms }
                })
                .collect::<Vec<_>>();
            let all_applied = complete && gateways.iter().all(|g| g.result == Outcome::Applied as i32);
            if complete || tokio::time::Instant::now() >= deadline {
                return Ok(pb::Rollout { revision, complete: all_applied, gateways });
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}
