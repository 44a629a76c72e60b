//! What data planes receive: a committed revision as routes, hostnames, identities (client and
//! server certificates with their private keys), CA certificates and subscriptions (their keys'
//! hashes), keyed for diffing, with entries shared between revisions
//! when they are unchanged. Built from the domain model (`model.rs`) after every commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use gatehouse_proto::v1 as pb;

use crate::model::{
    ClientCertificateValidation, ExistsAction, Policy, Revision, State, StoredCaCertificate, StoredCertificate,
    Subscription, SubscriptionState,
};

/// The previous entry when it is equal, so unchanged entries are shared between revisions.
fn reuse<T: PartialEq>(previous: Option<&Arc<T>>, current: T) -> Arc<T> {
    match previous {
        Some(p) if **p == current => p.clone(),
        _ => Arc::new(current),
    }
}

/// The policy's header work, compiled for data planes: Basic credentials first, then each
/// set-header in order.
fn header_actions(policy: &Policy) -> Vec<pb::HeaderAction> {
    use pb::header_action::Action;
    let mut actions = Vec::new();
    if let Some(basic) = &policy.basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", basic.username, basic.password));
        actions.push(pb::HeaderAction {
            name: "authorization".into(),
            action: Action::Override as i32,
            values: vec![format!("Basic {token}")],
        });
    }
    for header in &policy.headers {
        let action = match header.action {
            ExistsAction::Override => Action::Override,
            ExistsAction::Skip => Action::Skip,
            ExistsAction::Append => Action::Append,
            ExistsAction::Delete => Action::Delete,
        };
        actions.push(pb::HeaderAction {
            name: header.name.clone(),
            action: action as i32,
            values: header.values.clone(),
        });
    }
    actions
}

/// A subscription as data planes check keys against it: its keys' hashes, never the keys.
fn subscription_config(subscription: &Subscription) -> pb::SubscriptionConfig {
    use pb::subscription_config::State;
    pb::SubscriptionConfig {
        name: subscription.name.clone(),
        scope: subscription.scope.api_id().to_string(),
        state: match subscription.state {
            SubscriptionState::Active => State::Active,
            SubscriptionState::Suspended => State::Suspended,
        } as i32,
        primary_key_sha256: subscription.primary_key_sha256.to_vec(),
        secondary_key_sha256: subscription.secondary_key_sha256.to_vec(),
    }
}

/// A committed revision as data planes receive it, keyed for diffing.
#[derive(Debug)]
pub struct Published {
    /// The revision it is.
    pub revision: Revision,
    /// When it was committed.
    pub committed_at: std::time::SystemTime,
    /// By API id.
    pub routes: BTreeMap<String, Arc<pb::RouteConfig>>,
    /// By thumbprint.
    pub identities: BTreeMap<String, Arc<pb::ClientIdentity>>,
    /// By thumbprint.
    pub cas: BTreeMap<String, Arc<pb::TrustedCa>>,
    /// By name.
    pub hostnames: BTreeMap<String, Arc<pb::HostnameConfig>>,
    /// By name: the hashes of their keys, never the keys.
    pub subscriptions: BTreeMap<String, Arc<pb::SubscriptionConfig>>,
}

/// A published revision, shared between the store's history and the sync streams.
pub type PublishedRef = Arc<Published>;

/// The identities and CA certificates one revision publishes, each once by thumbprint (an
/// identity serves as client and server certificate alike), and shared with the previous
/// revision's where equal.
struct Credentials<'a> {
    previous: Option<&'a Published>,
    identities: BTreeMap<String, Arc<pb::ClientIdentity>>,
    cas: BTreeMap<String, Arc<pb::TrustedCa>>,
}

impl Credentials<'_> {
    /// Publishes `stored` (chain and private key); returns its thumbprint.
    fn identity(&mut self, stored: &StoredCertificate) -> String {
        let t = stored.certificate.info.thumbprint.to_string();
        if !self.identities.contains_key(&t) {
            let identity = pb::ClientIdentity {
                thumbprint: t.clone(),
                certificate_chain: stored.certificate.chain.clone(),
                private_key: stored.certificate.private_key.clone(),
                certificate_id: stored.id.clone(),
            };
            let previous = self.previous.and_then(|p| p.identities.get(&t));
            self.identities.insert(t.clone(), reuse(previous, identity));
        }
        t
    }

    /// Publishes the CA certificate; returns its thumbprint.
    fn ca(&mut self, ca: &StoredCaCertificate) -> String {
        let t = ca.info.thumbprint.to_string();
        if !self.cas.contains_key(&t) {
            let crl = ca.crl.as_ref().map(|crl| crl.der.clone()).unwrap_or_default();
            let trusted = pb::TrustedCa { thumbprint: t.clone(), certificate: ca.der.clone(), crl };
            self.cas.insert(t.clone(), reuse(self.previous.and_then(|p| p.cas.get(&t)), trusted));
        }
        t
    }

    /// The policy's `<validate-client-certificate>` for data planes; the CA certificates its
    /// `issuer-certificate-id`s name are published, and named by thumbprint.
    fn client_certificate_validation(
        &mut self,
        state: &State,
        validation: &ClientCertificateValidation,
    ) -> pb::ClientCertificateValidation {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let identities = validation.identities.iter().map(|i| {
            let issuer_thumbprint = match (&i.issuer_certificate_id, &i.issuer_thumbprint) {
                // The store keeps a CA named here from being deleted; were it gone anyway, no
                // certificate has the all-zero thumbprint, so the identity would match none.
                (Some(id), _) => state.ca_certificates.get(id).map(|ca| self.ca(ca)).unwrap_or_else(|| "0".repeat(40)),
                (None, thumbprint) => thumbprint.as_ref().map(ToString::to_string).unwrap_or_default(),
            };
            pb::CertificateIdentity {
                thumbprint: i.thumbprint.as_ref().map(ToString::to_string).unwrap_or_default(),
                serial_number: text(&i.serial_number),
                common_name: text(&i.common_name),
                subject: text(&i.subject),
                dns_name: text(&i.dns_name),
                issuer_subject: text(&i.issuer_subject),
                issuer_thumbprint,
            }
        });
        pb::ClientCertificateValidation {
            identities: identities.collect(),
            skip_revocation: !validation.validate_revocation,
            skip_trust: !validation.validate_trust,
            skip_not_before: !validation.validate_not_before,
            skip_not_after: !validation.validate_not_after,
            ignore_error: validation.ignore_error,
        }
    }

    /// Publishes the CA certificates with these ids; returns their thumbprints, sorted.
    fn cas(&mut self, state: &State, ids: &[String]) -> Vec<String> {
        let thumbprints: BTreeSet<String> =
            ids.iter().filter_map(|id| state.ca_certificates.get(id)).map(|ca| self.ca(ca)).collect();
        thumbprints.into_iter().collect()
    }
}

impl Published {
    /// What data planes receive: every route and hostname, and the identities (with private
    /// keys) and CA certificates that they use, and nothing else. Entries equal to `previous`'s
    /// are shared with it, so a revision costs memory only for what changed.
    pub fn of(state: &State, previous: Option<&Published>) -> Self {
        let mut credentials = Credentials { previous, identities: BTreeMap::new(), cas: BTreeMap::new() };
        let mut routes: BTreeMap<String, Arc<pb::RouteConfig>> = BTreeMap::new();
        for api in state.apis.values() {
            let thumbprint =
                state.resolve(&api.policy.certificate).map(|stored| credentials.identity(stored)).unwrap_or_default();
            let route = pb::RouteConfig {
                api_id: api.id.clone(),
                path: api.path.clone(),
                service_url: api.service_url.clone(),
                client_certificate_thumbprint: thumbprint,
                tls: Some(pb::RouteTls {
                    skip_chain_validation: !api.tls.validate_chain,
                    skip_name_validation: !api.tls.validate_name,
                    ca_thumbprints: credentials.cas(state, &api.tls.ca_ids),
                    exclude_system_roots: !api.tls.system_roots,
                }),
                headers: header_actions(&state.resolved_policy(&api.policy).unwrap_or_else(|error| {
                    // The store checks every write that could cause this; never send a literal {{name}}.
                    tracing::error!(api = %api.id, %error, "policy named values do not resolve; no header actions sent");
                    crate::policy::Policy::default()
                })),
                backend_timeout_seconds: api.policy.backend_timeout.unwrap_or(0),
                hostnames: api.hostnames.clone(),
                subscription_required: api.subscription.required,
                subscription_key_header: api.subscription.header.clone(),
                client_certificate_validation: api
                    .policy
                    .client_certificate
                    .as_ref()
                    .map(|v| credentials.client_certificate_validation(state, v)),
                forward_client_certificate: api.policy.forward_client_certificate.as_ref().map(|f| {
                    pb::ForwardClientCertificate {
                        thumbprint_header: f.thumbprint_header.clone().unwrap_or_default(),
                        subject_header: f.subject_header.clone().unwrap_or_default(),
                    }
                }),
            };
            routes.insert(api.id.clone(), reuse(previous.and_then(|p| p.routes.get(&api.id)), route));
        }
        let mut hostnames: BTreeMap<String, Arc<pb::HostnameConfig>> = BTreeMap::new();
        for hostname in state.hostnames.values() {
            // The store keeps a hostname's certificate from being deleted.
            let Some(stored) = state.certificates.get(&hostname.certificate_id) else { continue };
            let config = pb::HostnameConfig {
                name: hostname.name.clone(),
                certificate_thumbprint: credentials.identity(stored),
                default: hostname.default,
                negotiate_client_certificate: hostname.negotiate_client_certificate,
                client_ca_thumbprints: credentials.cas(state, &hostname.client_ca_ids),
            };
            let shared = previous.and_then(|p| p.hostnames.get(&hostname.name));
            hostnames.insert(hostname.name.clone(), reuse(shared, config));
        }
        let subscriptions = state
            .subscriptions
            .values()
            .map(|s| {
                let shared = previous.and_then(|p| p.subscriptions.get(&s.name));
                (s.name.clone(), reuse(shared, subscription_config(s)))
            })
            .collect();
        Published {
            revision: state.revision,
            committed_at: std::time::SystemTime::now(),
            routes,
            identities: credentials.identities,
            cas: credentials.cas,
            hostnames,
            subscriptions,
        }
    }

    /// The whole configuration.
    pub fn full(&self) -> pb::Snapshot {
        pb::Snapshot {
            routes: self.routes.values().map(|r| (**r).clone()).collect(),
            identities: self.identities.values().map(|i| (**i).clone()).collect(),
            trusted_cas: self.cas.values().map(|c| (**c).clone()).collect(),
            hostnames: self.hostnames.values().map(|h| (**h).clone()).collect(),
            subscriptions: self.subscriptions.values().map(|s| (**s).clone()).collect(),
        }
    }

    /// What changed since `base`: new or different entries, and removed keys.
    pub fn diff(&self, base: &Published) -> (pb::Snapshot, pb::Removed) {
        fn changed<T: PartialEq + Clone>(now: &BTreeMap<String, Arc<T>>, before: &BTreeMap<String, Arc<T>>) -> Vec<T> {
            now.iter()
                .filter(|(k, v)| before.get(*k).is_none_or(|b| !Arc::ptr_eq(b, v) && **b != ***v))
                .map(|(_, v)| (**v).clone())
                .collect()
        }
        fn removed<T>(now: &BTreeMap<String, Arc<T>>, before: &BTreeMap<String, Arc<T>>) -> Vec<String> {
            before.keys().filter(|k| !now.contains_key(*k)).cloned().collect()
        }
        let snapshot = pb::Snapshot {
            routes: changed(&self.routes, &base.routes),
            identities: changed(&self.identities, &base.identities),
            trusted_cas: changed(&self.cas, &base.cas),
            hostnames: changed(&self.hostnames, &base.hostnames),
            subscriptions: changed(&self.subscriptions, &base.subscriptions),
        };
        let gone = pb::Removed {
            api_ids: removed(&self.routes, &base.routes),
            identity_thumbprints: removed(&self.identities, &base.identities),
            ca_thumbprints: removed(&self.cas, &base.cas),
            hostnames: removed(&self.hostnames, &base.hostnames),
            subscriptions: removed(&self.subscriptions, &base.subscriptions),
        };
        (snapshot, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Api, BackendTls, Binding, Hostname};

    fn api(id: &str, path: &str) -> Api {
        Api {
            id: id.into(),
            display_name: String::new(),
            path: path.into(),
            service_url: "https://b".into(),
            policy: Policy { certificate: Binding::None, ..Policy::default() },
            tls: BackendTls::default(),
            hostnames: Vec::new(),
            subscription: Default::default(),
            revision: 1,
        }
    }

    fn state(revision: Revision, apis: &[Api]) -> State {
        State { revision, apis: apis.iter().map(|a| (a.id.clone(), a.clone())).collect(), ..State::default() }
    }

    #[test]
    fn a_delta_holds_what_changed_and_what_went_and_shares_the_rest() {
        let first = Published::of(&state(1, &[api("a", "/a"), api("b", "/b"), api("c", "/c")]), None);
        let second = Published::of(&state(2, &[api("a", "/a"), api("b", "/b2")]), Some(&first));
        assert!(Arc::ptr_eq(&first.routes["a"], &second.routes["a"]), "an unchanged route is shared");
        let (changed, removed) = second.diff(&first);
        assert_eq!(changed.routes.iter().map(|r| r.api_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(removed.api_ids, ["c"]);
        let (nothing, gone) = second.diff(&second);
        assert!(nothing.routes.is_empty() && gone.api_ids.is_empty());
        assert_eq!(second.full().routes.len(), 2);
    }

    /// A state with certificate `c` (self-signed for `*.example.com`), CA certificate `ca`, an
    /// API bound to `c` on `api.example.com`, and `hostnames` served with `c`.
    fn hostnames_state(revision: Revision, hostnames: &[Hostname]) -> State {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["*.example.com".to_string()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let certificate = crate::certificate::ClientCertificate::from_parts(vec![der], key.serialize_der()).unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_der = ca.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec();
        let (der, info) = crate::certificate::parse_ca_certificate(&ca_der).unwrap();
        let mut bound = api("a", "/a");
        bound.policy.certificate = Binding::CertificateId("c".into());
        bound.hostnames = vec!["api.example.com".into()];
        State {
            certificates: [("c".to_string(), StoredCertificate { id: "c".into(), certificate, revision: 1 })].into(),
            ca_certificates: [(
                "ca".to_string(),
                StoredCaCertificate { id: "ca".into(), der, info, crl: None, revision: 1 },
            )]
            .into(),
            hostnames: hostnames.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            ..state(revision, &[bound])
        }
    }

    fn hostname(name: &str) -> Hostname {
        Hostname {
            name: name.into(),
            certificate_id: "c".into(),
            default: false,
            negotiate_client_certificate: false,
            client_ca_ids: Vec::new(),
            revision: 1,
        }
    }

    #[test]
    fn hostnames_publish_their_certificate_and_client_cas_once_and_diff_like_routes() {
        let with_ca = Hostname {
            default: true,
            negotiate_client_certificate: true,
            client_ca_ids: vec!["ca".into()],
            ..hostname("api.example.com")
        };
        let state = hostnames_state(1, &[with_ca.clone(), hostname("*.example.com")]);
        let first = Published::of(&state, None);
        let thumbprint = state.certificates["c"].certificate.info.thumbprint.to_string();
        let full = first.full();
        // One identity: the API's client certificate and both hostnames' server certificate.
        assert_eq!(full.identities.len(), 1);
        assert_eq!(full.identities[0].thumbprint, thumbprint);
        assert_eq!(full.routes[0].hostnames, ["api.example.com"]);
        let names: Vec<&str> = full.hostnames.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["*.example.com", "api.example.com"]);
        let api_host = &full.hostnames[1];
        assert_eq!(api_host.certificate_thumbprint, thumbprint);
        assert!(api_host.default && api_host.negotiate_client_certificate);
        assert_eq!(api_host.client_ca_thumbprints, [state.ca_certificates["ca"].info.thumbprint.to_string()]);
        assert_eq!(full.trusted_cas.len(), 1, "a hostname's client CA is published");

        // The wildcard goes; the other stops asking for client certificates (and its CA goes).
        let plain = Hostname { negotiate_client_certificate: false, client_ca_ids: Vec::new(), ..with_ca };
        let next = State { revision: 2, hostnames: [(plain.name.clone(), plain)].into(), ..state.clone() };
        let second = Published::of(&next, Some(&first));
        assert!(Arc::ptr_eq(&first.identities[&thumbprint], &second.identities[&thumbprint]));
        let (changed, removed) = second.diff(&first);
        assert_eq!(changed.hostnames.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["api.example.com"]);
        assert!(changed.identities.is_empty() && changed.routes.is_empty());
        assert_eq!(removed.hostnames, ["*.example.com"]);
        assert_eq!(removed.ca_thumbprints.len(), 1);
        let (nothing, gone) = second.diff(&second);
        assert!(nothing.hostnames.is_empty() && gone.hostnames.is_empty());
    }

    #[test]
    fn basic_credentials_come_first_then_each_header_in_order() {
        let mut with_headers = api("a", "/a");
        with_headers.policy.basic = Some(crate::model::BasicAuth { username: "u".into(), password: "p".into() });
        with_headers.policy.headers = vec![crate::model::SetHeader {
            name: "x-key".into(),
            action: ExistsAction::Skip,
            values: vec!["k".into()],
            secret: true,
        }];
        let published = Published::of(&state(1, &[with_headers]), None);
        let headers = &published.routes["a"].headers;
        assert_eq!(headers[0].name, "authorization");
        assert_eq!(headers[0].values, ["Basic dTpw"]);
        assert_eq!((headers[1].name.as_str(), headers[1].action), ("x-key", pb::header_action::Action::Skip as i32));
    }
}
