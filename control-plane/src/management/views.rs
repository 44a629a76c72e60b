//! Conversions between the domain model and the wire: what operators are shown (views) and
//! what their requests mean (bindings, trust settings, thumbprints).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_proto::v1 as pb;
use gatehouse_shared::Thumbprint;
use tonic::Status;

use crate::gateways::GatewayState;
use crate::model::{
    Api, BackendTls, Binding, Hostname, LastRefresh, SourceFiles, State, StoredCaCertificate, StoredCertificate, etag,
};
use crate::tokens::Role;

pub(super) fn timestamp(unix_seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix_seconds, nanos: 0 }
}

pub(super) fn system_timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

pub(super) fn certificate_view(state: &State, stored: &StoredCertificate) -> pb::Certificate {
    let info = &stored.certificate.info;
    pb::Certificate {
        id: stored.id.clone(),
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        thumbprint: info.thumbprint.to_string(),
        not_before: Some(timestamp(info.not_before)),
        not_after: Some(timestamp(info.not_after)),
        used_by: state.used_by(&stored.id),
        key_algorithm: info.key_algorithm.clone(),
        chain_length: stored.certificate.chain.len() as u32,
        revision: stored.revision,
        etag: etag(stored.revision),
        expired: info.is_expired(),
        source: state.certificate_sources.get(&stored.id).map(|s| source_view(&s.files)),
        last_refresh: last_refresh_view(
            state.certificate_sources.get(&stored.id).and_then(|s| s.last_refresh.as_ref()),
        ),
    }
}

/// How the last read of a source (a certificate's or a named value's) went.
pub(super) fn last_refresh_view(last: Option<&LastRefresh>) -> Option<pb::LastRefresh> {
    last.map(|last| pb::LastRefresh { at: Some(timestamp(last.at)), ok: last.ok, message: last.message.clone() })
}

/// A source as operators see it: paths, never the password.
fn source_view(files: &SourceFiles) -> pb::CertificateSource {
    let kind = match files {
        SourceFiles::Pfx { path, .. } => {
            pb::certificate_source::Kind::Pfx(pb::PfxFileSource { path: path.clone(), password: String::new() })
        }
        SourceFiles::Ca { path } => pb::certificate_source::Kind::CaFile(path.clone()),
        SourceFiles::Pem { certificate_path, key_path } => pb::certificate_source::Kind::Pem(pb::PemFileSource {
            certificate_path: certificate_path.clone(),
            key_path: key_path.clone(),
        }),
    };
    pb::CertificateSource { kind: Some(kind) }
}

pub(super) fn ca_view(state: &State, stored: &StoredCaCertificate) -> pb::CaCertificate {
    let info = &stored.info;
    pb::CaCertificate {
        id: stored.id.clone(),
        subject: info.subject.clone(),
        thumbprint: info.thumbprint.to_string(),
        not_before: Some(timestamp(info.not_before)),
        not_after: Some(timestamp(info.not_after)),
        used_by: state.ca_used_by(&stored.id),
        revision: stored.revision,
        etag: etag(stored.revision),
        expired: info.is_expired(),
        crl_next_update: stored.crl.as_ref().map(|crl| timestamp(crl.next_update)),
        crl_this_update: stored.crl.as_ref().map(|crl| timestamp(crl.this_update)),
        crl_entries: stored.crl.as_ref().map_or(0, |crl| crl.entries.min(u32::MAX as usize) as u32),
        source: state.ca_sources.get(&stored.id).map(|s| source_view(&s.files)),
        last_refresh: last_refresh_view(state.ca_sources.get(&stored.id).and_then(|s| s.last_refresh.as_ref())),
    }
}

pub(super) fn binding_view(binding: &Binding) -> Option<pb::CredentialBinding> {
    use pb::credential_binding::Kind;
    let kind = match binding {
        Binding::None => return None,
        Binding::CertificateId(id) => Kind::CertificateId(id.clone()),
        Binding::Thumbprint(t) => Kind::Thumbprint(t.to_string()),
    };
    Some(pb::CredentialBinding { kind: Some(kind) })
}

pub(super) fn api_view(state: &State, api: &Api) -> pb::Api {
    pb::Api {
        id: api.id.clone(),
        display_name: api.display_name.clone(),
        path: api.path.clone(),
        service_url: api.service_url.clone(),
        credentials: binding_view(&api.policy.certificate),
        client_certificate_thumbprint: state
            .resolve(&api.policy.certificate)
            .map(|c| c.certificate.info.thumbprint.to_string())
            .unwrap_or_default(),
        revision: api.revision,
        // Effective values, every field explicit.
        backend_tls: Some(pb::BackendTls {
            validate_certificate_chain: Some(api.tls.validate_chain),
            validate_certificate_name: Some(api.tls.validate_name),
            ca_certificate_ids: api.tls.ca_ids.clone(),
            trust_system_roots: Some(api.tls.system_roots),
        }),
        etag: etag(api.revision),
        hostnames: api.hostnames.clone(),
        subscription_required: api.subscription.required,
        subscription_key_header: api.subscription.header.clone(),
    }
}

pub(super) fn hostname_view(state: &State, hostname: &Hostname) -> pb::Hostname {
    let certificate = state.certificates.get(&hostname.certificate_id).map(|c| &c.certificate.info);
    pb::Hostname {
        name: hostname.name.clone(),
        certificate_id: hostname.certificate_id.clone(),
        default: hostname.default,
        negotiate_client_certificate: hostname.negotiate_client_certificate,
        client_ca_ids: hostname.client_ca_ids.clone(),
        thumbprint: certificate.map(|info| info.thumbprint.to_string()).unwrap_or_default(),
        not_after: certificate.map(|info| timestamp(info.not_after)),
        used_by: state.apis_on_hostname(&hostname.name),
        revision: hostname.revision,
        etag: etag(hostname.revision),
    }
}

pub(super) fn tls_from(tls: Option<pb::BackendTls>) -> BackendTls {
    let Some(tls) = tls else { return BackendTls::default() };
    BackendTls {
        validate_chain: tls.validate_certificate_chain.unwrap_or(true),
        validate_name: tls.validate_certificate_name.unwrap_or(true),
        ca_ids: tls.ca_certificate_ids,
        system_roots: tls.trust_system_roots.unwrap_or(true),
    }
}

pub(super) fn policy_view(api: &Api) -> pb::ApiPolicy {
    pb::ApiPolicy {
        api_id: api.id.clone(),
        xml: crate::policy::render(&api.policy, true),
        etag: etag(api.revision),
        revision: api.revision,
    }
}

pub(super) fn parse_thumbprint(text: &str) -> Result<Thumbprint, Status> {
    Thumbprint::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub(super) fn binding_from(binding: pb::CredentialBinding) -> Result<Binding, Status> {
    use pb::credential_binding::Kind;
    match binding.kind {
        None => Ok(Binding::None),
        Some(Kind::CertificateId(id)) => Ok(Binding::CertificateId(id)),
        Some(Kind::Thumbprint(t)) => Ok(Binding::Thumbprint(parse_thumbprint(&t)?)),
    }
}

// The write handlers; the trait methods wrap each in an audit record.

pub(super) fn token_view(record: &crate::tokens::TokenRecord) -> pb::Token {
    pb::Token {
        name: record.name.clone(),
        role: match record.role {
            Role::Operator => pb::Role::Operator,
            Role::Gateway => pb::Role::Gateway,
        } as i32,
        created: Some(timestamp(record.created)),
        data_plane_names: match record.role {
            Role::Gateway => record.data_plane_names.as_str().to_string(),
            Role::Operator => String::new(),
        },
    }
}

/// A gateway's state as the wire names it.
pub(super) fn gateway_state_view(state: GatewayState) -> pb::GatewayState {
    match state {
        GatewayState::Synced => pb::GatewayState::Synced,
        GatewayState::Syncing => pb::GatewayState::Syncing,
        GatewayState::Stale => pb::GatewayState::Stale,
        GatewayState::Nacked => pb::GatewayState::Nacked,
        GatewayState::Disconnected => pb::GatewayState::Disconnected,
    }
}
