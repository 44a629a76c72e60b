//! The fleet as operators see it: `ListGateways`, a page at a time.

use gatehouse_proto::v1 as pb;
use tonic::Status;

use super::ManagementService;
use super::views::{gateway_state_view, system_timestamp};

impl ManagementService {
    /// One page of `ListGateways` (AIP-158), in name order.
    pub(super) fn list_gateways_page(
        &self,
        request: pb::ListGatewaysRequest,
    ) -> Result<pb::ListGatewaysResponse, Status> {
        use base64::Engine as _;
        // A gateway entry is at most ~8 KB (every reported field at its bound, in 4-byte UTF-8),
        // so a full page stays under 2 MiB, far from a client's 4 MiB message limit.
        const DEFAULT_PAGE: usize = 200;
        const MAX_PAGE: usize = 250;
        let size = match request.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(Status::invalid_argument("page_size may not be negative")),
            n => (n as usize).min(MAX_PAGE),
        };
        let after = match request.page_token.as_str() {
            "" => String::new(),
            token => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Status::invalid_argument("page_token is not one this server gave"))?,
        };
        let latest = self.store.state().revision;
        let (page, more) = self.gateways.page(&after, size);
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&last.name),
            _ => String::new(),
        };
        let gateways = page
            .into_iter()
            .map(|g| {
                let state = gateway_state_view(g.current_state(&self.store, self.stale_after));
                pb::Gateway {
                    name: g.name,
                    address: g.address,
                    version: g.reported.version,
                    connected_since: Some(system_timestamp(g.connected_since)),
                    last_seen: Some(system_timestamp(g.last_seen)),
                    applied_revision: g.applied_revision,
                    connected: g.connected,
                    last_error: g.last_error,
                    state: state as i32,
                    rejected_revision: g.rejected_revision,
                    instance_id: g.reported.instance_id,
                    listen_addresses: g.reported.listen_addresses,
                    backend_ca_fingerprint: g.reported.backend_ca_fingerprint,
                    token: g.token,
                }
            })
            .collect();
        Ok(pb::ListGatewaysResponse { gateways, revision: latest, next_page_token })
    }
}
