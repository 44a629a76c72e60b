//! The web console at `/console/`, served on the management listener beside the gRPC services.
//!
//! It is one more client of the management API: every page and every write calls the same
//! [`ManagementService`] methods a gRPC client reaches, with the signed-in operator as the
//! caller, so validation, authorization and the audit log are the API's own. What lives here is
//! only the web part: sessions (an operator token exchanged for an `HttpOnly`, `Secure`,
//! `SameSite=Strict` cookie; a CSRF token on every write; an idle expiry), forms, and pages
//! rendered on the server. No JavaScript is needed, nothing is fetched from elsewhere, and the
//! one stylesheet is in the binary.

mod apis;
mod certificates;
mod fleet;
mod form;
mod layout;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::management_server::Management as _;
use http::request::Parts;
use tonic::Status;

use crate::management::ManagementService;
use crate::tokens::{Role, Tokens};
use session::{Notice, Session, Sessions};

/// How long a write waits for the fleet before its page says what it has heard so far.
const ROLLOUT_WAIT: Duration = Duration::from_secs(3);

/// What every console handler shares.
pub struct Console {
    management: ManagementService,
    tokens: Arc<Tokens>,
    sessions: Sessions,
    /// Largest body a form may post.
    max_upload: usize,
}

/// The console's routes, to merge with the gRPC services. Sessions end after `idle` without a
/// request; uploads are limited to `max_upload` bytes.
pub fn router(management: ManagementService, tokens: Arc<Tokens>, idle: Duration, max_upload: usize) -> Router {
    let console = Arc::new(Console { management, tokens, sessions: Sessions::new(idle), max_upload });
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/assets/console.css", get(layout::stylesheet))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/certificates", get(certificates::list).post(certificates::upload))
        .route("/console/certificates/{id}/delete", get(certificates::confirm_delete).post(certificates::delete))
        .route("/console/ca-certificates", get(certificates::list_ca).post(certificates::upload_ca))
        .route(
            "/console/ca-certificates/{id}/delete",
            get(certificates::confirm_delete_ca).post(certificates::delete_ca),
        )
        .route("/console/apis", get(apis::list).post(apis::create))
        .route("/console/apis/new", get(apis::new_form))
        .route("/console/apis/{id}", get(apis::edit).post(apis::save))
        .route("/console/apis/{id}/credentials", post(apis::credentials))
        .route("/console/apis/{id}/trust", post(apis::trust))
        .route("/console/apis/{id}/policy", get(apis::policy).post(apis::save_policy))
        .route("/console/hostnames", get(fleet::hostnames))
        .route("/console/subscriptions", get(fleet::subscriptions))
        .route("/console/gateways", get(fleet::gateways))
        .route("/console/{*rest}", get(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(max_upload))
        .layer(axum::middleware::map_response(layout::secure_headers))
        .with_state(console)
}

/// A signed-in request: its session, the notice left for it, and the connection's details
/// (the peer address the audit log names).
pub struct Ctx {
    session: Session,
    notice: Option<Notice>,
    extensions: http::Extensions,
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Response> {
        let used = parts.uri.query() != Some(layout::AUTO_REFRESH);
        let touched =
            session::id_from_cookies(&parts.headers).and_then(|id| console.sessions.touch(&id, &console.tokens, used));
        match touched {
            Some((session, notice)) => Ok(Ctx { session, notice, extensions: parts.extensions.clone() }),
            None => Err(Redirect::to("/console/sign-in").into_response()),
        }
    }
}

impl Ctx {
    /// `message` as a gRPC request from this operator.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request =
            tonic::Request::from_parts(tonic::metadata::MetadataMap::new(), self.extensions.clone(), message);
        request.extensions_mut().insert(self.session.caller.clone());
        request
    }

    /// The CSRF token every form of this session carries.
    fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

impl Console {
    /// After a write that made `revision`: leaves "`what` (revision N): applied by …" for the
    /// next page and redirects there.
    async fn done(&self, ctx: &Ctx, what: String, revision: u64, to: &str) -> Response {
        let rollout = self.rollout(ctx, revision).await;
        self.sessions.set_notice(&ctx.session.id, Notice(format!("{what} (revision {revision}): {rollout}")));
        Redirect::to(to).into_response()
    }

    /// How the fleet took `revision`, waiting up to [`ROLLOUT_WAIT`] for every data plane.
    async fn rollout(&self, ctx: &Ctx, revision: u64) -> String {
        let request = pb::WaitForRolloutRequest { revision, timeout_ms: ROLLOUT_WAIT.as_millis() as u32 };
        match self.management.wait_for_rollout(ctx.request(request)).await {
            Ok(rollout) => describe_rollout(&rollout.into_inner()),
            Err(status) => format!("the rollout could not be read: {}", status.message()),
        }
    }
}

/// "applied by 3 of 3 data planes in 4 ms", then who rejected it and why, and who has not
/// answered yet.
pub fn describe_rollout(rollout: &pb::Rollout) -> String {
    use pb::gateway_rollout::Result as Outcome;
    let total = rollout.gateways.len();
    if total == 0 {
        return "no data planes connected".into();
    }
    let with = |outcome: Outcome| rollout.gateways.iter().filter(move |g| g.result == outcome as i32);
    let applied = with(Outcome::Applied).count();
    let slowest = with(Outcome::Applied).map(|g| g.elapsed_ms).max().unwrap_or(0);
    let mut parts = vec![if applied == 0 {
        format!("applied by 0 of {total} data planes")
    } else {
        format!("applied by {applied} of {total} data planes in {slowest} ms")
    }];
    parts.extend(with(Outcome::Rejected).map(|g| format!("rejected by {}: {}", g.name, g.reason)));
    let pending: Vec<&str> = with(Outcome::Pending).map(|g| g.name.as_str()).collect();
    if !pending.is_empty() {
        parts.push(format!("no answer yet from {}", pending.join(", ")));
    }
    parts.join("; ")
}

/// The items a list call returned, or none and the server's reason to show in their place.
fn listed<R, T>(
    result: Result<tonic::Response<R>, Status>,
    items: impl FnOnce(R) -> Vec<T>,
) -> (Vec<T>, Option<String>) {
    match result {
        Ok(list) => (items(list.into_inner()), None),
        Err(status) => (Vec::new(), Some(status.message().to_string())),
    }
}

/// The HTTP status that says what a gRPC refusal says.
fn http_status(status: &Status) -> http::StatusCode {
    use http::StatusCode as H;
    use tonic::Code as G;
    match status.code() {
        G::InvalidArgument | G::OutOfRange => H::BAD_REQUEST,
        G::NotFound => H::NOT_FOUND,
        G::AlreadyExists | G::FailedPrecondition | G::Aborted => H::CONFLICT,
        G::PermissionDenied => H::FORBIDDEN,
        G::Unauthenticated => H::UNAUTHORIZED,
        G::Unavailable => H::SERVICE_UNAVAILABLE,
        G::DeadlineExceeded => H::GATEWAY_TIMEOUT,
        _ => H::INTERNAL_SERVER_ERROR,
    }
}

async fn home(ctx: Result<Ctx, Response>) -> Response {
    match ctx {
        Ok(_) => Redirect::to("/console/certificates").into_response(),
        Err(to_sign_in) => to_sign_in,
    }
}

async fn sign_in_page() -> Response {
    layout::sign_in(None).into_response()
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

/// Exchanges an operator token for a session: the same check as every management call. Both
/// outcomes go to the audit log with the browser's address.
async fn sign_in(
    State(console): State<Arc<Console>>,
    extensions: http::Extensions,
    axum::Form(form): axum::Form<SignIn>,
) -> Response {
    let peer = tonic::Request::from_parts(tonic::metadata::MetadataMap::new(), extensions, ())
        .remote_addr()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    match console.tokens.caller(&form.token, Role::Operator) {
        Ok(caller) => {
            tracing::info!(target: "gatehouse::audit", who = %caller.token.escape_debug(), %peer, result = "ok", "console sign-in");
            let session = console.sessions.open(caller);
            ([(http::header::SET_COOKIE, session::cookie(&session))], Redirect::to("/console/certificates"))
                .into_response()
        }
        Err(status) => {
            tracing::info!(target: "gatehouse::audit", %peer, result = ?status.code(), reason = %status.message(), "console sign-in refused");
            (http_status(&status), layout::sign_in(Some(status.message()))).into_response()
        }
    }
}

/// Any other address under /console/: a page saying so, not the gRPC fallback.
async fn not_found(ctx: Result<Ctx, Response>) -> Response {
    match ctx {
        Ok(ctx) => (
            http::StatusCode::NOT_FOUND,
            layout::page(&ctx, "Not found", Some("There is no such page in the console."), maud::html! {}),
        )
            .into_response(),
        Err(to_sign_in) => to_sign_in,
    }
}

async fn sign_out(State(console): State<Arc<Console>>, write: form::Write) -> Response {
    console.sessions.close(&write.ctx.session.id);
    ([(http::header::SET_COOKIE, session::cleared_cookie())], Redirect::to("/console/sign-in")).into_response()
}
