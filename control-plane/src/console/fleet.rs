//! The pages that show what is deployed and to whom: the data-plane fleet (refreshing by
//! itself), hostnames and subscriptions.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::management_server::Management as _;
use maud::html;

use super::layout::{expiry, page, refreshing_page, thumbprint, timestamp};
use super::{Console, Ctx, listed};

/// How often the gateways page reloads itself.
const GATEWAYS_REFRESH_SECS: u32 = 5;

/// GET /console/gateways
pub async fn gateways(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let (fleet, error) = match console.management.list_gateways(ctx.request(pb::ListGatewaysRequest::default())).await {
        Ok(list) => (list.into_inner(), None),
        Err(status) => (pb::ListGatewaysResponse::default(), Some(status.message().to_string())),
    };
    let body = html! {
        p.hint { "Every data plane that syncs with this control plane (or, on etcd, with any control plane of the store); latest revision " (fleet.revision) ". This page refreshes every " (GATEWAYS_REFRESH_SECS) " seconds." }
        div.table-wrap {
            table #gateways {
                thead { tr { th { "Name" } th { "State" } th { "Applied revision" } th { "Last seen" } th { "Address" } th { "Version" } th { "Last error" } } }
                tbody {
                    @for g in &fleet.gateways {
                        @let state = pb::GatewayState::try_from(g.state).unwrap_or(pb::GatewayState::Unspecified);
                        tr data-name=(g.name) {
                            td.name { (g.name) }
                            td class=(state_class(state)) { (state.as_str_name()) }
                            td.applied-revision { (g.applied_revision) }
                            td.last-seen { (timestamp(g.last_seen.as_ref())) }
                            td { (g.address) }
                            td { (g.version) }
                            td { (g.last_error) }
                        }
                    }
                    @if fleet.gateways.is_empty() { tr { td colspan="7" { "No data planes have connected." } } }
                }
            }
        }
    };
    refreshing_page(&ctx, "Gateways", error.as_deref(), body, "/console/gateways", GATEWAYS_REFRESH_SECS)
        .into_response()
}

fn state_class(state: pb::GatewayState) -> &'static str {
    match state {
        pb::GatewayState::Synced => "state state-ok",
        pb::GatewayState::Syncing => "state",
        pb::GatewayState::Stale | pb::GatewayState::Disconnected => "state state-warn",
        pb::GatewayState::Nacked | pb::GatewayState::Unspecified => "state state-bad",
    }
}

/// GET /console/hostnames
pub async fn hostnames(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let (hostnames, error) =
        listed(console.management.list_hostnames(ctx.request(pb::ListHostnamesRequest {})).await, |l| l.hostnames);
    let body = html! {
        p.hint { "Names API clients reach the data planes by over HTTPS, each with its server certificate (gatehousectl hostname put)." }
        div.table-wrap {
            table #hostnames {
                thead { tr { th { "Name" } th { "Certificate" } th { "Thumbprint" } th { "Expires" } th { "Client certificates" } th { "Used by" } } }
                tbody {
                    @for h in &hostnames {
                        tr data-name=(h.name) {
                            td { (h.name) @if h.default { " (default)" } }
                            td { (h.certificate_id) }
                            td { (thumbprint(&h.thumbprint)) }
                            td { (expiry(h.not_after.as_ref())) }
                            td { @if h.negotiate_client_certificate { "requested; CAs: " (h.client_ca_ids.join(", ")) } @else { "not requested" } }
                            td { (h.used_by.join(", ")) }
                        }
                    }
                    @if hostnames.is_empty() { tr { td colspan="6" { "No hostnames." } } }
                }
            }
        }
    };
    page(&ctx, "Hostnames", error.as_deref(), body).into_response()
}

/// GET /console/subscriptions
pub async fn subscriptions(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let listing = console.management.list_subscriptions(ctx.request(pb::ListSubscriptionsRequest {})).await;
    let (subscriptions, error) = listed(listing, |l| l.subscriptions);
    let body = html! {
        p.hint { "Subscription keys API clients send; keys are shown once, when made (gatehousectl subscription create), never here." }
        div.table-wrap {
            table #subscriptions {
                thead { tr { th { "Name" } th { "Display name" } th { "Scope" } th { "State" } th { "Created" } } }
                tbody {
                    @for s in &subscriptions {
                        @let state = pb::SubscriptionState::try_from(s.state).unwrap_or(pb::SubscriptionState::Unspecified);
                        tr data-name=(s.name) {
                            td { (s.name) }
                            td { (s.display_name) }
                            td { (s.scope) }
                            td { (state.as_str_name()) }
                            td { (timestamp(s.created.as_ref())) }
                        }
                    }
                    @if subscriptions.is_empty() { tr { td colspan="5" { "No subscriptions." } } }
                }
            }
        }
    };
    page(&ctx, "Subscriptions", error.as_deref(), body).into_response()
}
