//! The `--wait` report: what each data plane did with a revision.

use gatehouse_proto::v1 as pb;
use pb::gateway_rollout::Result as Outcome;
use serde_json::json;

use crate::args::Format;

/// One line per data plane on stdout; with -o json, one JSON document on stderr instead, so
/// stdout holds only the resource written.
pub fn print_rollout(format: Format, revision: u64, rollout: &pb::Rollout) {
    match format {
        Format::Json => eprintln!(
            "{}",
            json!({
                "revision": rollout.revision,
                "complete": rollout.complete,
                "gateways": rollout.gateways.iter().map(|g| json!({
                    "name": g.name, "result": outcome_text(g), "reason": g.reason, "elapsed_ms": g.elapsed_ms,
                })).collect::<Vec<_>>(),
            })
        ),
        Format::Table => {
            if rollout.gateways.is_empty() {
                println!("revision {revision}: no data planes connected");
            }
            for g in &rollout.gateways {
                let detail = match outcome(g) {
                    Outcome::Applied => format!("in {} ms", g.elapsed_ms),
                    Outcome::Rejected => g.reason.clone(),
                    Outcome::Pending => "no answer yet".to_string(),
                };
                println!("revision {revision}: {} {} {detail}", g.name, outcome_text(g));
            }
        }
    }
}

/// An unknown result reads as pending.
fn outcome(g: &pb::GatewayRollout) -> Outcome {
    Outcome::try_from(g.result).unwrap_or(Outcome::Pending)
}

fn outcome_text(g: &pb::GatewayRollout) -> &'static str {
    match outcome(g) {
        Outcome::Applied => "applied",
        Outcome::Rejected => "REJECTED",
        Outcome::Pending => "PENDING",
    }
}
