//! What data planes receive: a committed revision as routes, hostnames, identities (client and
//! server certificates with their private keys), CA certificates and subscriptions (their keys'
//! hashes), keyed for diffing, with entries shared between revisions
//! when they are unchanged. Built from the domain model (`model.rs`) after every commit: a
//! commit that changed only APIs rebuilds only their routes, so a change costs what it changes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use gatehouse_proto::v1 as pb;

use crate::model::{
    ClientCertificateValidation, ExistsAction, Policy, Revision, State, StoredCaCertificate, StoredCertificate,
    Subscription, SubscriptionState,
};

/// Entries by key, persistent (see [`crate::model::Map`]).
pub type Entries<T> = imbl::OrdMap<String, Arc<T>>;

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
    pub routes: Entries<pb::RouteConfig>,
    /// By thumbprint.
    pub identities: Entries<pb::ClientIdentity>,
    /// By thumbprint.
    pub cas: Entries<pb::TrustedCa>,
    /// By name.
    pub hostnames: Entries<pb::HostnameConfig>,
    /// By name: the hashes of their keys, never the keys.
    pub subscriptions: Entries<pb::SubscriptionConfig>,
    /// The state it was made from: the next revision compares its state with this one to
    /// rebuild only what changed. (Maps share their structure, so this costs little.)
    source: State,
}

/// A published revision, shared between the store's history and the sync streams.
pub type PublishedRef = Arc<Published>;

/// The identities and CA certificates one revision publishes, each once by thumbprint (an
/// identity serves as client and server certificate alike), and shared with the previous
/// revision's where equal.
struct Credentials<'a> {
    state: &'a State,
    previous: Option<&'a Published>,
    identities: Entries<pb::ClientIdentity>,
    cas: Entries<pb::TrustedCa>,
    /// Made when first needed: see [`Canonical`].
    canonical: Option<Canonical<'a>>,
}

/// Which of the certificates sharing a thumbprint is published under it (two ids may hold the
/// same certificate): the lowest id, and for CA certificates the lowest id among those with a
/// CRL if any has one. So what a revision publishes depends on its state only, never on the
/// order of the edits that led to it (a revision built whole, or on the previous one, or by
/// another control plane, is the same).
struct Canonical<'a> {
    certificates: std::collections::HashMap<String, &'a StoredCertificate>,
    cas: std::collections::HashMap<String, &'a StoredCaCertificate>,
}

impl<'a> Canonical<'a> {
    fn of(state: &'a State) -> Self {
        let mut certificates = std::collections::HashMap::new();
        // Ids in order: the first one seen for a thumbprint is the lowest.
        for stored in state.certificates.values() {
            certificates.entry(stored.certificate.info.thumbprint.to_string()).or_insert(stored);
        }
        let mut cas: std::collections::HashMap<String, &StoredCaCertificate> = std::collections::HashMap::new();
        for ca in state.ca_certificates.values() {
            let chosen = cas.entry(ca.info.thumbprint.to_string()).or_insert(ca);
            if chosen.crl.is_none() && ca.crl.is_some() {
                *chosen = ca;
            }
        }
        Self { certificates, cas }
    }
}

impl<'a> Credentials<'a> {
    fn new(state: &'a State, previous: Option<&'a Published>, start: Option<&Published>) -> Self {
        Self {
            state,
            previous,
            identities: start.map(|p| p.identities.clone()).unwrap_or_default(),
            cas: start.map(|p| p.cas.clone()).unwrap_or_default(),
            canonical: None,
        }
    }

    fn canonical(&mut self) -> &Canonical<'a> {
        let state = self.state;
        self.canonical.get_or_insert_with(|| Canonical::of(state))
    }

    /// Publishes the certificate under `stored`'s thumbprint (chain and private key); returns
    /// the thumbprint.
    fn identity(&mut self, stored: &StoredCertificate) -> String {
        let t = stored.certificate.info.thumbprint.to_string();
        if !self.identities.contains_key(&t) {
            let stored = self.canonical().certificates.get(&t).copied().unwrap_or(stored);
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

    /// Publishes the CA certificate under `ca`'s thumbprint; returns the thumbprint.
    fn ca(&mut self, ca: &StoredCaCertificate) -> String {
        let t = ca.info.thumbprint.to_string();
        if !self.cas.contains_key(&t) {
            let ca = self.canonical().cas.get(&t).copied().unwrap_or(ca);
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
    /// are shared with it, so a revision costs memory only for what changed; when only APIs,
    /// hostnames or subscriptions changed since `previous`, only they are built again.
    pub fn of(state: &State, previous: Option<&Published>) -> Self {
        match previous {
            Some(previous) if previous.credentials_unchanged(state) => Self::changed_since(state, previous),
            _ => Self::whole(state, previous),
        }
    }

    /// Whether everything routes take from outside their API (certificates, CA certificates,
    /// named values) is as it was in this revision's state.
    fn credentials_unchanged(&self, state: &State) -> bool {
        self.source.certificates.ptr_eq(&state.certificates)
            && self.source.ca_certificates.ptr_eq(&state.ca_certificates)
            && self.source.named_values.ptr_eq(&state.named_values)
    }

    /// Every entry built from `state`, shared with `previous` where equal.
    fn whole(state: &State, previous: Option<&Published>) -> Self {
        let mut credentials = Credentials::new(state, previous, None);
        let mut routes = Entries::new();
        for api in state.apis.values() {
            let route = route_config(state, api, &mut credentials);
            routes.insert(api.id.clone(), reuse(previous.and_then(|p| p.routes.get(&api.id)), route));
        }
        let hostnames = hostname_configs(state, previous, &mut credentials);
        Published {
            revision: state.revision,
            committed_at: std::time::SystemTime::now(),
            routes,
            identities: credentials.identities,
            cas: credentials.cas,
            hostnames,
            subscriptions: subscription_configs(state, previous),
            source: state.clone(),
        }
    }

    /// `previous` with the routes of the APIs that changed since it built again, and the
    /// hostnames and subscriptions if they changed; the credentials no longer used go.
    fn changed_since(state: &State, previous: &Published) -> Self {
        use imbl::ordmap::DiffItem;
        let mut credentials = Credentials::new(state, Some(previous), Some(previous));
        let mut routes = previous.routes.clone();
        // Routes replaced or removed: the credentials only they used must go too.
        let mut dropped = false;
        for item in previous.source.apis.diff(&state.apis) {
            let (id, api) = match item {
                DiffItem::Add(id, api) | DiffItem::Update { new: (id, api), .. } => (id, Some(api)),
                DiffItem::Remove(id, _) => (id, None),
            };
            let before = routes.remove(id);
            if let Some(api) = api {
                let route = reuse(before.as_ref(), route_config(state, api, &mut credentials));
                dropped |= before.is_some_and(|before| !Arc::ptr_eq(&before, &route));
                routes.insert(id.clone(), route);
            } else {
                dropped |= before.is_some();
            }
        }
        let hostnames = if previous.source.hostnames.ptr_eq(&state.hostnames) {
            previous.hostnames.clone()
        } else {
            dropped = true;
            hostname_configs(state, Some(previous), &mut credentials)
        };
        let subscriptions = if previous.source.subscriptions.ptr_eq(&state.subscriptions) {
            previous.subscriptions.clone()
        } else {
            subscription_configs(state, Some(previous))
        };
        let (mut identities, mut cas) = (credentials.identities, credentials.cas);
        if dropped {
            let (used_identities, used_cas) = credentials_used(&routes, &hostnames);
            keep_only(&mut identities, &used_identities);
            keep_only(&mut cas, &used_cas);
        }
        Published {
            revision: state.revision,
            committed_at: std::time::SystemTime::now(),
            routes,
            identities,
            cas,
            hostnames,
            subscriptions,
            source: state.clone(),
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

    /// What changed since `base`: new or different entries, and removed keys. Subtrees the two
    /// revisions share are skipped, so this costs what changed.
    pub fn diff(&self, base: &Published) -> (pb::Snapshot, pb::Removed) {
        use imbl::ordmap::DiffItem;
        /// New or different entries, and the keys of those gone, in one walk.
        fn compare<T: PartialEq + Clone>(now: &Entries<T>, before: &Entries<T>) -> (Vec<T>, Vec<String>) {
            let (mut changed, mut removed) = (Vec::new(), Vec::new());
            for item in before.diff(now) {
                match item {
                    DiffItem::Add(_, v) | DiffItem::Update { new: (_, v), .. } => changed.push((**v).clone()),
                    DiffItem::Remove(k, _) => removed.push(k.clone()),
                }
            }
            (changed, removed)
        }
        let (routes, api_ids) = compare(&self.routes, &base.routes);
        let (identities, identity_thumbprints) = compare(&self.identities, &base.identities);
        let (trusted_cas, ca_thumbprints) = compare(&self.cas, &base.cas);
        let (hostnames, gone_hostnames) = compare(&self.hostnames, &base.hostnames);
        let (subscriptions, gone_subscriptions) = compare(&self.subscriptions, &base.subscriptions);
        let snapshot = pb::Snapshot { routes, identities, trusted_cas, hostnames, subscriptions };
        let gone = pb::Removed {
            api_ids,
            identity_thumbprints,
            ca_thumbprints,
            hostnames: gone_hostnames,
            subscriptions: gone_subscriptions,
        };
        (snapshot, gone)
    }
}

/// An API's route: its settings, the identity it presents (published in `credentials`), its
/// backend trust, and its policy's header work with named values resolved.
fn route_config(state: &State, api: &crate::model::Api, credentials: &mut Credentials<'_>) -> pb::RouteConfig {
    let thumbprint =
        state.resolve(&api.policy.certificate).map(|stored| credentials.identity(stored)).unwrap_or_default();
    pb::RouteConfig {
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
    }
}

/// Every hostname with its certificate (published in `credentials`) and client CAs.
fn hostname_configs(
    state: &State,
    previous: Option<&Published>,
    credentials: &mut Credentials<'_>,
) -> Entries<pb::HostnameConfig> {
    let mut hostnames = Entries::new();
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
    hostnames
}

fn subscription_configs(state: &State, previous: Option<&Published>) -> Entries<pb::SubscriptionConfig> {
    state
        .subscriptions
        .values()
        .map(|s| {
            let shared = previous.and_then(|p| p.subscriptions.get(&s.name));
            (s.name.clone(), reuse(shared, subscription_config(s)))
        })
        .collect()
}

/// Removes the entries whose key is not in `used`.
fn keep_only<T>(entries: &mut Entries<T>, used: &HashSet<&str>) {
    let unused: Vec<String> = entries.keys().filter(|key| !used.contains(key.as_str())).cloned().collect();
    for key in unused {
        entries.remove(&key);
    }
}

/// The thumbprints of the identities and of the CA certificates that routes and hostnames use.
fn credentials_used<'a>(
    routes: &'a Entries<pb::RouteConfig>,
    hostnames: &'a Entries<pb::HostnameConfig>,
) -> (HashSet<&'a str>, HashSet<&'a str>) {
    let (mut identities, mut cas) = (HashSet::new(), HashSet::new());
    for route in routes.values() {
        identities.insert(route.client_certificate_thumbprint.as_str());
        cas.extend(route.tls.iter().flat_map(|tls| tls.ca_thumbprints.iter().map(String::as_str)));
        cas.extend(
            route
                .client_certificate_validation
                .iter()
                .flat_map(|v| v.identities.iter().map(|i| i.issuer_thumbprint.as_str())),
        );
    }
    for hostname in hostnames.values() {
        identities.insert(hostname.certificate_thumbprint.as_str());
        cas.extend(hostname.client_ca_thumbprints.iter().map(String::as_str));
    }
    (identities, cas)
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
            certificates: [("c".to_string(), StoredCertificate { id: "c".into(), certificate, revision: 1 })]
                .into_iter()
                .collect(),
            ca_certificates: [(
                "ca".to_string(),
                StoredCaCertificate { id: "ca".into(), der, info, crl: None, revision: 1 },
            )]
            .into_iter()
            .collect(),
            hostnames: hostnames.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            ..state(revision, &[bound])
        }
    }

    /// Two client certificates, "c1" and "c2", and a CA certificate "ca", in a state.
    fn credentials_state() -> State {
        let issue = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
            let der = params.self_signed(&key).unwrap().der().to_vec();
            crate::certificate::ClientCertificate::from_parts(vec![der], key.serialize_der()).unwrap()
        };
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_der = ca.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec();
        let (der, info) = crate::certificate::parse_ca_certificate(&ca_der).unwrap();
        let stored =
            |id: &str| (id.to_string(), StoredCertificate { id: id.into(), certificate: issue(id), revision: 1 });
        State {
            revision: 1,
            certificates: [stored("c1"), stored("c2")].into_iter().collect(),
            ca_certificates: [(
                "ca".to_string(),
                StoredCaCertificate { id: "ca".into(), der, info, crl: None, revision: 1 },
            )]
            .into_iter()
            .collect(),
            ..State::default()
        }
    }

    /// What data planes would be sent in full, to compare two ways of building a revision.
    fn sent(published: &Published) -> pb::Snapshot {
        published.full()
    }

    #[test]
    fn a_revision_built_on_the_previous_one_sends_what_one_built_whole_sends() {
        let bound = |id: &str, certificate: &str, cas: &[&str]| {
            let mut api = api(id, &format!("/{id}"));
            api.policy.certificate = Binding::CertificateId(certificate.into());
            api.tls.ca_ids = cas.iter().map(|c| c.to_string()).collect();
            api
        };
        let mut state = credentials_state();
        let mut published = Published::of(&state, None);
        // Each step changes only APIs or hostnames, so the next revision is built on the last.
        type Step<'a> = Box<dyn Fn(&mut State) + 'a>;
        let steps: Vec<Step<'_>> = vec![
            Box::new(|s| {
                s.apis.insert("a".into(), bound("a", "c1", &["ca"]));
            }),
            Box::new(|s| {
                s.apis.insert("b".into(), bound("b", "c1", &[]));
            }),
            // "a" moves to c2 and drops its CA: c1 stays (b uses it), the CA goes.
            Box::new(|s| {
                s.apis.insert("a".into(), bound("a", "c2", &[]));
            }),
            // "b" goes: nothing uses c1 any more.
            Box::new(|s| {
                s.apis.remove("b");
            }),
            // A hostname brings c1 back as a server certificate.
            Box::new(|s| {
                let mut h = hostname("api.example.com");
                h.certificate_id = "c1".into();
                s.hostnames.insert(h.name.clone(), h);
            }),
            Box::new(|s| {
                s.hostnames.remove("api.example.com");
                s.apis.remove("a");
            }),
        ];
        for (n, step) in steps.iter().enumerate() {
            let before = state.clone();
            step(&mut state);
            state.revision += 1;
            assert!(published.credentials_unchanged(&state), "step {n} changed only APIs or hostnames");
            let next = Published::of(&state, Some(&published));
            let whole = Published::of(&state, None);
            assert_eq!(sent(&next), sent(&whole), "step {n}: built on the previous revision, it sends something else");
            let (changed, removed) = next.diff(&published);
            let applied_whole = Published::of(&before, None);
            assert_eq!(
                (changed, removed),
                whole.diff(&applied_whole),
                "step {n}: the delta differs from the whole revisions' difference"
            );
            published = next;
        }
        assert!(
            published.identities.is_empty() && published.cas.is_empty(),
            "credentials no route uses stay published"
        );
    }

    #[test]
    fn a_certificate_under_two_ids_is_published_the_same_whatever_the_order_of_edits() {
        let mut state = credentials_state();
        let twin = StoredCertificate { id: "c0".into(), ..state.certificates["c2"].clone() };
        state.certificates.insert("c0".into(), twin);
        let bound = |id: &str, certificate: &str| {
            let mut api = api(id, &format!("/{id}"));
            api.policy.certificate = Binding::CertificateId(certificate.into());
            api
        };
        // "b" (bound to c2) first, then "a" (bound to c0, the same certificate).
        state.apis.insert("b".into(), bound("b", "c2"));
        let first = Published::of(&state, None);
        state.apis.insert("a".into(), bound("a", "c0"));
        state.revision += 1;
        let built_on = Published::of(&state, Some(&first));
        let whole = Published::of(&state, None);
        assert_eq!(sent(&built_on), sent(&whole));
        let ids: Vec<&str> = whole.identities.values().map(|i| i.certificate_id.as_str()).collect();
        assert_eq!(ids, ["c0"], "the lowest id holding the certificate names it");
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
        let next =
            State { revision: 2, hostnames: [(plain.name.clone(), plain)].into_iter().collect(), ..state.clone() };
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
