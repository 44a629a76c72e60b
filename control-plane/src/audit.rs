//! One audit line per management write, on target `gatehouse::audit`: who (token name), from
//! where (peer address), which RPC, which resource, and how it ended. Caller-supplied values are
//! escaped (`str::escape_debug`: newlines, escape sequences and other control characters
//! written as `\n`, `\u{1b}`), so no value can forge or hide a log line.

use std::future::Future;

use tonic::{Request, Response, Status};

use crate::tokens::Caller;

/// Runs a management write and writes its audit line. `resource` names what it writes;
/// `revision` reads the revision from the answer.
pub async fn audited<T, R, Fut>(
    request: Request<T>,
    rpc: &'static str,
    resource: impl FnOnce(&T) -> String,
    write: impl FnOnce(Request<T>) -> Fut,
    revision: impl FnOnce(&R) -> u64,
) -> Result<Response<R>, Status>
where
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let who = request.extensions().get::<Caller>().map(|c| c.token.clone()).unwrap_or_else(|| "-".into());
    let peer = request.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let resource = resource(request.get_ref());
    let result = write(request).await;
    match &result {
        Ok(response) => tracing::info!(
            target: "gatehouse::audit",
            who = %who.escape_debug(),
            peer = %peer,
            rpc,
            resource = %resource.escape_debug(),
            result = "ok",
            revision = revision(response.get_ref()),
            "management write"
        ),
        Err(status) => tracing::info!(
            target: "gatehouse::audit",
            who = %who.escape_debug(),
            peer = %peer,
            rpc,
            resource = %resource.escape_debug(),
            result = ?status.code(),
            reason = %status.message().escape_debug(),
            "management write refused"
        ),
    }
    result
}
