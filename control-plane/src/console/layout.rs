//! The console's page frame (navigation, notices, sign-out), the sign-in page, the security
//! headers of every response, and the small renderings pages share: thumbprints, expiry dates,
//! timestamps.

use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::Ctx;
use super::session::Notice;

const STYLESHEET: &str = include_str!("console.css");

/// Days before expiry from which a date is shown as close.
const EXPIRING_DAYS: i64 = 30;

/// The pages in the navigation: (path, id, label).
const NAV: [(&str, &str, &str); 6] = [
    ("/console/certificates", "nav-certificates", "Certificates"),
    ("/console/ca-certificates", "nav-ca-certificates", "CA certificates"),
    ("/console/apis", "nav-apis", "APIs"),
    ("/console/hostnames", "nav-hostnames", "Hostnames"),
    ("/console/subscriptions", "nav-subscriptions", "Subscriptions"),
    ("/console/gateways", "nav-gateways", "Gateways"),
];

/// A signed-in page: navigation, the notice left by the last write, `error` if a write was
/// refused, then `body`.
pub fn page(ctx: &Ctx, title: &str, error: Option<&str>, body: Markup) -> Html<String> {
    signed_in(ctx, title, error, body, None)
}

/// A signed-in page that reloads itself every `seconds` from `path` with `?auto=1`, which the
/// session's idle clock does not count as use.
pub fn refreshing_page(
    ctx: &Ctx,
    title: &str,
    error: Option<&str>,
    body: Markup,
    path: &str,
    seconds: u32,
) -> Html<String> {
    let refresh = html! { meta http-equiv="refresh" content=(format!("{seconds}; url={path}?{AUTO_REFRESH}")); };
    signed_in(ctx, title, error, body, Some(refresh))
}

fn signed_in(ctx: &Ctx, title: &str, error: Option<&str>, body: Markup, refresh: Option<Markup>) -> Html<String> {
    frame(
        title,
        refresh,
        html! {
            header {
                a.brand href="/console/" { "Gatehouse" }
                nav aria-label="Sections" {
                    @for (path, id, label) in NAV {
                        a id=(id) href=(path) aria-current=[(label == title).then_some("page")] { (label) }
                    }
                }
                form #sign-out method="post" action="/console/sign-out" {
                    (csrf_field(ctx))
                    span.who { "Signed in as " (ctx.session.caller.token) }
                    button #sign-out-submit type="submit" { "Sign out" }
                }
            }
            main {
                h1 { (title) }
                @if let Some(Notice(text)) = &ctx.notice {
                    div #notice role="status" { (text) }
                }
                @if let Some(error) = error {
                    div #error role="alert" { (error) }
                }
                (body)
            }
        },
    )
}

/// The query a self-reloading page asks with.
pub const AUTO_REFRESH: &str = "auto=1";

/// The sign-in page, with the reason the last attempt was refused.
pub fn sign_in(error: Option<&str>) -> Html<String> {
    frame(
        "Sign in",
        None,
        html! {
            main.narrow {
                h1 { "Gatehouse console" }
                form #sign-in method="post" action="/console/sign-in" {
                    label for="token" { "Operator token" }
                    input #token name="token" type="password" autocomplete="current-password" required autofocus
                        aria-describedby=[error.map(|_| "sign-in-error")];
                    @if let Some(error) = error {
                        p #sign-in-error.field-error role="alert" { (error) }
                    }
                    p.hint { "The token gatehousectl uses (the first one is in the control plane's data directory, operator.token). A gateway token cannot sign in." }
                    button #sign-in-submit type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The document: `head_extra` (a refresh) goes first in its head.
fn frame(title: &str, head_extra: Option<Markup>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    @if let Some(extra) = head_extra { (extra) }
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Gatehouse" }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// The hidden field that carries the session's CSRF token.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf()); }
}

/// A thumbprint with its last four characters emphasized, as people compare them.
pub fn thumbprint(thumbprint: &str) -> Markup {
    let split = thumbprint.len().saturating_sub(4);
    let (head, tail) = thumbprint.split_at(split);
    html! { span.thumbprint { (head) strong { (tail) } } }
}

/// An expiry date, marked `expired` when past and `expiring` within 30 days.
pub fn expiry(not_after: Option<&prost_types::Timestamp>) -> Markup {
    let Some(not_after) = not_after else { return html! { "—" } };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let class = if not_after.seconds <= now {
        "expired"
    } else if not_after.seconds - now < EXPIRING_DAYS * 86_400 {
        "expiring"
    } else {
        "valid"
    };
    let note = match class {
        "expired" => " (expired)",
        "expiring" => " (expires soon)",
        _ => "",
    };
    html! { time class=(class) datetime=(timestamp(Some(not_after))) { (date(not_after)) (note) } }
}

/// A timestamp as RFC 3339 (UTC), or "—".
pub fn timestamp(at: Option<&prost_types::Timestamp>) -> String {
    let format = time::format_description::well_known::Rfc3339;
    at.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "—".into())
}

fn date(at: &prost_types::Timestamp) -> String {
    timestamp(Some(at)).get(..10).unwrap_or("—").to_string()
}

/// Serves the stylesheet embedded in the binary.
pub async fn stylesheet() -> Response {
    ([(http::header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET).into_response()
}

/// Headers on every console response: nothing framed, cached, sniffed or loaded from elsewhere,
/// and no scripts at all.
pub async fn secure_headers(mut response: Response) -> Response {
    use http::HeaderValue;
    use http::header as h;
    let headers = response.headers_mut();
    headers.insert(
        h::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(h::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(h::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(h::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(h::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
