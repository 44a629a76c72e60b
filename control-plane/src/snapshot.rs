//! What data planes receive: a committed revision as routes, client identities (with their
//! private keys) and CA certificates, keyed for diffing, with entries shared between revisions
//! when they are unchanged. Built from the domain model (`model.rs`) after every commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use gatehouse_proto::v1 as pb;

use crate::model::{ExistsAction, Policy, Revision, State};

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
}

/// A published revision, shared between the store's history and the sync streams.
pub type PublishedRef = Arc<Published>;

impl Published {
    /// What data planes receive: every route, and the identities (with private keys) and CA
    /// certificates that routes use, and nothing else. Entries equal to `previous`'s are shared
    /// with it, so a revision costs memory only for what changed.
    pub fn of(state: &State, previous: Option<&Published>) -> Self {
        let mut identities: BTreeMap<String, Arc<pb::ClientIdentity>> = BTreeMap::new();
        let mut cas: BTreeMap<String, Arc<pb::TrustedCa>> = BTreeMap::new();
        let mut routes: BTreeMap<String, Arc<pb::RouteConfig>> = BTreeMap::new();
        for api in state.apis.values() {
            let thumbprint = match state.resolve(&api.policy.certificate) {
                Some(stored) => {
                    let t = stored.certificate.info.thumbprint.to_string();
                    if !identities.contains_key(&t) {
                        let identity = pb::ClientIdentity {
                            thumbprint: t.clone(),
                            certificate_chain: stored.certificate.chain.clone(),
                            private_key: stored.certificate.private_key.clone(),
                            certificate_id: stored.id.clone(),
                        };
                        identities.insert(t.clone(), reuse(previous.and_then(|p| p.identities.get(&t)), identity));
                    }
                    t
                }
                None => String::new(),
            };
            let mut ca_thumbprints = BTreeSet::new();
            for ca in api.tls.ca_ids.iter().filter_map(|id| state.ca_certificates.get(id)) {
                let t = ca.info.thumbprint.to_string();
                if !cas.contains_key(&t) {
                    let trusted = pb::TrustedCa { thumbprint: t.clone(), certificate: ca.der.clone() };
                    cas.insert(t.clone(), reuse(previous.and_then(|p| p.cas.get(&t)), trusted));
                }
                ca_thumbprints.insert(t);
            }
            let route = pb::RouteConfig {
                api_id: api.id.clone(),
                path: api.path.clone(),
                service_url: api.service_url.clone(),
                client_certificate_thumbprint: thumbprint,
                tls: Some(pb::RouteTls {
                    skip_chain_validation: !api.tls.validate_chain,
                    skip_name_validation: !api.tls.validate_name,
                    ca_thumbprints: ca_thumbprints.into_iter().collect(),
                    exclude_system_roots: !api.tls.system_roots,
                }),
                headers: header_actions(&api.policy),
                backend_timeout_seconds: api.policy.backend_timeout.unwrap_or(0),
            };
            routes.insert(api.id.clone(), reuse(previous.and_then(|p| p.routes.get(&api.id)), route));
        }
        Published { revision: state.revision, committed_at: std::time::SystemTime::now(), routes, identities, cas }
    }

    /// The whole configuration.
    pub fn full(&self) -> pb::Snapshot {
        pb::Snapshot {
            routes: self.routes.values().map(|r| (**r).clone()).collect(),
            identities: self.identities.values().map(|i| (**i).clone()).collect(),
            trusted_cas: self.cas.values().map(|c| (**c).clone()).collect(),
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
        };
        let gone = pb::Removed {
            api_ids: removed(&self.routes, &base.routes),
            identity_thumbprints: removed(&self.identities, &base.identities),
            ca_thumbprints: removed(&self.cas, &base.cas),
        };
        (snapshot, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Api, BackendTls, Binding};

    fn api(id: &str, path: &str) -> Api {
        Api {
            id: id.into(),
            display_name: String::new(),
            path: path.into(),
            service_url: "https://b".into(),
            policy: Policy { certificate: Binding::None, ..Policy::default() },
            tls: BackendTls::default(),
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
