//! From the control plane's resources, as the Management API lists them, to a declaration:
//! sorted by id, defaults left out, and nothing secret (the API never returns private keys,
//! passwords or keys, and secret values come masked: they are dropped or kept masked here).

use gatehouse_proto::v1 as pb;
use pb::certificate_source::Kind as SourceKind;
use pb::credential_binding::Kind as BindingKind;

use super::{
    Api, BackendTls, CaCertificate, Certificate, CertificateSource, Credentials, Declaration, FileSource, Hostname,
    NamedValue, Subscription, SubscriptionState,
};

/// What the control plane holds, as the Management API lists it.
#[derive(Debug, Default)]
pub struct Resources {
    /// `ListCaCertificates`.
    pub ca_certificates: Vec<pb::CaCertificate>,
    /// `ListCertificates`.
    pub certificates: Vec<pb::Certificate>,
    /// `ListHostnames`.
    pub hostnames: Vec<pb::Hostname>,
    /// `ListNamedValues` (secret values masked).
    pub named_values: Vec<pb::NamedValue>,
    /// `ListApis`, each with its policy XML as `GetApiPolicy` returns it (secrets masked).
    pub apis: Vec<(pb::Api, String)>,
    /// `ListSubscriptions`.
    pub subscriptions: Vec<pb::Subscription>,
}

impl From<Resources> for Declaration {
    fn from(mut resources: Resources) -> Self {
        resources.ca_certificates.sort_by(|a, b| a.id.cmp(&b.id));
        resources.certificates.sort_by(|a, b| a.id.cmp(&b.id));
        resources.hostnames.sort_by(|a, b| a.name.cmp(&b.name));
        resources.named_values.sort_by(|a, b| a.name.cmp(&b.name));
        resources.apis.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        resources.subscriptions.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            ca_certificates: resources.ca_certificates.into_iter().map(ca_certificate).collect(),
            certificates: resources.certificates.into_iter().map(certificate).collect(),
            hostnames: resources.hostnames.into_iter().map(hostname).collect(),
            named_values: resources.named_values.into_iter().map(named_value).collect(),
            apis: resources.apis.into_iter().map(|(api, policy)| self::api(api, policy)).collect(),
            subscriptions: resources.subscriptions.into_iter().map(subscription).collect(),
            ..Self::new()
        }
    }
}

/// Id and thumbprint only: no Management call returns a CA certificate's bytes or its CRL.
fn ca_certificate(ca: pb::CaCertificate) -> CaCertificate {
    let source = match ca.source.and_then(|s| s.kind) {
        Some(SourceKind::CaFile(file)) => Some(FileSource { file }),
        _ => None,
    };
    CaCertificate { id: ca.id, thumbprint: Some(ca.thumbprint), source, ..CaCertificate::default() }
}

/// A reference: id, thumbprint and, for a linked one, its files' paths (never its password).
fn certificate(certificate: pb::Certificate) -> Certificate {
    let source = match certificate.source.and_then(|s| s.kind) {
        Some(SourceKind::Pfx(pfx)) => Some(CertificateSource { pfx: Some(pfx.path), ..CertificateSource::default() }),
        Some(SourceKind::Pem(pem)) => Some(CertificateSource {
            certificate_pem: Some(pem.certificate_path),
            key_pem: Some(pem.key_path),
            ..CertificateSource::default()
        }),
        _ => None,
    };
    Certificate { id: certificate.id, thumbprint: Some(certificate.thumbprint), source, ..Certificate::default() }
}

fn hostname(hostname: pb::Hostname) -> Hostname {
    Hostname {
        name: hostname.name,
        certificate_id: hostname.certificate_id,
        default: hostname.default,
        negotiate_client_certificate: hostname.negotiate_client_certificate,
        client_ca_ids: hostname.client_ca_ids,
    }
}

/// A secret value is never exported (the API returns only its mask): `secret: true` alone,
/// which `apply` reads as "keep the stored value". A linked one's file decides its value, which
/// an export would only pin to what the file held then.
fn named_value(named: pb::NamedValue) -> NamedValue {
    let source = Some(named.source_path).filter(|path| !path.is_empty()).map(|file| FileSource { file });
    let value = (!named.secret && source.is_none()).then_some(named.value);
    NamedValue { name: named.name, value, secret: named.secret, source, ..NamedValue::default() }
}

fn api(api: pb::Api, policy: String) -> Api {
    let credentials = api.credentials.and_then(|c| c.kind).map(|kind| match kind {
        BindingKind::CertificateId(id) => Credentials { certificate_id: Some(id), thumbprint: None },
        BindingKind::Thumbprint(thumbprint) => Credentials { certificate_id: None, thumbprint: Some(thumbprint) },
    });
    Api {
        id: api.id,
        display_name: api.display_name,
        path: api.path,
        service_url: api.service_url,
        hostnames: api.hostnames,
        backend_tls: api.backend_tls.and_then(backend_tls),
        subscription_required: api.subscription_required,
        // Left out when it is the default, as `api put` leaves it out.
        subscription_key_header: Some(api.subscription_key_header)
            .filter(|header| header != gatehouse_shared::subscription_key::DEFAULT_HEADER)
            .unwrap_or_default(),
        credentials,
        policy: Some(policy),
    }
}

/// Only what differs from the defaults (every check on, system roots trusted, no CA); `None`
/// when nothing does, so an API with default trust has no `backendTls` at all.
fn backend_tls(tls: pb::BackendTls) -> Option<BackendTls> {
    let unless_true = |value: Option<bool>| value.filter(|on| !on);
    let tls = BackendTls {
        validate_certificate_chain: unless_true(tls.validate_certificate_chain),
        validate_certificate_name: unless_true(tls.validate_certificate_name),
        ca_certificate_ids: tls.ca_certificate_ids,
        trust_system_roots: unless_true(tls.trust_system_roots),
    };
    (tls != BackendTls::default()).then_some(tls)
}

fn subscription(subscription: pb::Subscription) -> Subscription {
    let state = match pb::SubscriptionState::try_from(subscription.state) {
        Ok(pb::SubscriptionState::Suspended) => SubscriptionState::Suspended,
        _ => SubscriptionState::Active,
    };
    Subscription {
        name: subscription.name,
        display_name: subscription.display_name,
        scope: Some(subscription.scope).filter(|scope| !scope.is_empty()),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_sorted_and_holds_no_secret() {
        let named = |name: &str, value: &str, secret: bool| pb::NamedValue {
            name: name.into(),
            value: value.into(),
            secret,
            ..Default::default()
        };
        let mut resources = Resources {
            named_values: vec![named("token", "********", true), named("user", "svc", false)],
            certificates: vec![
                pb::Certificate { id: "b".into(), thumbprint: "BB".into(), ..Default::default() },
                pb::Certificate { id: "a".into(), thumbprint: "AA".into(), ..Default::default() },
            ],
            ..Resources::default()
        };
        resources.named_values.push(pb::NamedValue { source_path: "/vault/pw".into(), ..named("linked", "v", false) });
        let declaration = Declaration::from(resources);
        let linked = &declaration.named_values[0];
        assert_eq!((linked.value.as_ref(), linked.source.as_ref().map(|s| s.file.as_str())), (None, Some("/vault/pw")));
        let ids: Vec<&str> = declaration.certificates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            declaration.named_values[1],
            NamedValue { name: "token".into(), secret: true, ..Default::default() }
        );
        assert_eq!(declaration.named_values[2].value.as_deref(), Some("svc"));
        assert!(!declaration.to_yaml().contains("********"));
    }

    #[test]
    fn default_backend_trust_is_left_out() {
        let on = pb::BackendTls {
            validate_certificate_chain: Some(true),
            validate_certificate_name: Some(true),
            ca_certificate_ids: vec![],
            trust_system_roots: Some(true),
        };
        assert_eq!(backend_tls(on.clone()), None);
        let only_ours =
            pb::BackendTls { ca_certificate_ids: vec!["root".into()], trust_system_roots: Some(false), ..on };
        let tls = backend_tls(only_ours).unwrap();
        assert_eq!((tls.trust_system_roots, tls.validate_certificate_chain), (Some(false), None));
    }
}
