//! The configuration a data plane holds: what the control plane sent, keyed so that a delta
//! applies in place, and what the last-known-good cache stores. Its maps are persistent: the
//! next revision shares all but what its delta changed, and two revisions compare in what they
//! do not share.

use std::sync::Arc;

use gatehouse_proto::v1 as pb;

/// Entries by key (API id, thumbprint, name), persistent.
pub type Entries<T> = imbl::OrdMap<String, Arc<T>>;

/// Everything a data plane was sent, as of one revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Configuration {
    /// The control plane's configuration store these revisions belong to.
    pub config_id: String,
    /// The revision this is.
    pub revision: u64,
    /// By API id.
    pub routes: Entries<pb::RouteConfig>,
    /// By thumbprint.
    pub identities: Entries<pb::ClientIdentity>,
    /// By thumbprint.
    pub cas: Entries<pb::TrustedCa>,
    /// The hostnames served over HTTPS, by name.
    pub hostnames: Entries<pb::HostnameConfig>,
    /// Subscriptions (their keys' hashes), by name.
    pub subscriptions: Entries<pb::SubscriptionConfig>,
}

/// Why an update does not apply to the configuration held.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A delta on another revision (or another store's) than the one held.
    #[error(
        "delta for revision {revision} is based on revision {base} of {config_id}, but this data plane holds revision {held} of {held_id}"
    )]
    BaseMismatch {
        /// The delta's revision.
        revision: u64,
        /// The revision it applies to.
        base: u64,
        /// The store it comes from.
        config_id: String,
        /// The revision held.
        held: u64,
        /// The store the held revision comes from.
        held_id: String,
    },
}

impl Configuration {
    /// The configuration after `update`: a full one replaces everything, a delta applies on top.
    pub fn apply(&self, update: &pb::SyncResponse) -> Result<Self, UpdateError> {
        let mut next = if update.full {
            Self { config_id: update.config_id.clone(), ..Self::default() }
        } else {
            if update.base_revision != self.revision || update.config_id != self.config_id {
                return Err(UpdateError::BaseMismatch {
                    revision: update.revision,
                    base: update.base_revision,
                    config_id: update.config_id.clone(),
                    held: self.revision,
                    held_id: self.config_id.clone(),
                });
            }
            self.clone()
        };
        next.revision = update.revision;
        if let Some(removed) = &update.removed {
            for id in &removed.api_ids {
                next.routes.remove(id);
            }
            for t in &removed.identity_thumbprints {
                next.identities.remove(t);
            }
            for t in &removed.ca_thumbprints {
                next.cas.remove(t);
            }
            for name in &removed.hostnames {
                next.hostnames.remove(name);
            }
            for name in &removed.subscriptions {
                next.subscriptions.remove(name);
            }
        }
        if let Some(changed) = &update.changed {
            for route in &changed.routes {
                next.routes.insert(route.api_id.clone(), Arc::new(route.clone()));
            }
            for identity in &changed.identities {
                next.identities.insert(identity.thumbprint.clone(), Arc::new(identity.clone()));
            }
            for ca in &changed.trusted_cas {
                next.cas.insert(ca.thumbprint.clone(), Arc::new(ca.clone()));
            }
            for hostname in &changed.hostnames {
                next.hostnames.insert(hostname.name.clone(), Arc::new(hostname.clone()));
            }
            for subscription in &changed.subscriptions {
                next.subscriptions.insert(subscription.name.clone(), Arc::new(subscription.clone()));
            }
        }
        Ok(next)
    }

    /// The whole configuration as one full update: the cache's format.
    pub fn to_update(&self) -> pb::SyncResponse {
        pb::SyncResponse {
            revision: self.revision,
            full: true,
            changed: Some(pb::Snapshot {
                routes: self.routes.values().map(|r| (**r).clone()).collect(),
                identities: self.identities.values().map(|i| (**i).clone()).collect(),
                trusted_cas: self.cas.values().map(|c| (**c).clone()).collect(),
                hostnames: self.hostnames.values().map(|h| (**h).clone()).collect(),
                subscriptions: self.subscriptions.values().map(|s| (**s).clone()).collect(),
            }),
            config_id: self.config_id.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str) -> pb::RouteConfig {
        pb::RouteConfig {
            api_id: id.into(),
            path: format!("/{id}"),
            service_url: "http://x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn deltas_apply_on_their_base_only() {
        let full = pb::SyncResponse {
            revision: 3,
            full: true,
            config_id: "c".into(),
            changed: Some(pb::Snapshot { routes: vec![route("a"), route("b")], ..Default::default() }),
            ..Default::default()
        };
        let first = Configuration::default().apply(&full).unwrap();
        let delta = pb::SyncResponse {
            revision: 5,
            base_revision: 3,
            config_id: "c".into(),
            changed: Some(pb::Snapshot { routes: vec![route("c")], ..Default::default() }),
            removed: Some(pb::Removed { api_ids: vec!["a".into()], ..Default::default() }),
            ..Default::default()
        };
        let second = first.apply(&delta).unwrap();
        assert_eq!(second.routes.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(second.revision, 5);
        assert!(second.apply(&delta).is_err(), "a delta on another base must not apply");
        assert_eq!(Configuration::default().apply(&second.to_update()).unwrap(), second);
    }

    fn hostname(name: &str, thumbprint: &str) -> pb::HostnameConfig {
        pb::HostnameConfig { name: name.into(), certificate_thumbprint: thumbprint.into(), ..Default::default() }
    }

    #[test]
    fn hostnames_are_replaced_changed_and_removed() {
        let full = pb::SyncResponse {
            revision: 1,
            full: true,
            config_id: "c".into(),
            changed: Some(pb::Snapshot {
                hostnames: vec![hostname("api.example.com", "A"), hostname("*.example.com", "B")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = Configuration::default().apply(&full).unwrap();
        assert_eq!(first.hostnames.keys().collect::<Vec<_>>(), ["*.example.com", "api.example.com"]);

        // A rotated certificate arrives as a changed hostname; a deleted one as a removed name.
        let delta = pb::SyncResponse {
            revision: 2,
            base_revision: 1,
            config_id: "c".into(),
            changed: Some(pb::Snapshot { hostnames: vec![hostname("api.example.com", "C")], ..Default::default() }),
            removed: Some(pb::Removed { hostnames: vec!["*.example.com".into()], ..Default::default() }),
            ..Default::default()
        };
        let second = first.apply(&delta).unwrap();
        assert_eq!(second.hostnames.keys().collect::<Vec<_>>(), ["api.example.com"]);
        assert_eq!(second.hostnames["api.example.com"].certificate_thumbprint, "C");

        // A full update forgets hostnames it does not carry; the cache's format keeps them.
        assert_eq!(Configuration::default().apply(&second.to_update()).unwrap(), second);
        let empty = pb::SyncResponse { revision: 3, full: true, config_id: "c".into(), ..Default::default() };
        assert!(second.apply(&empty).unwrap().hostnames.is_empty());
    }

    #[test]
    fn subscriptions_are_replaced_changed_and_removed() {
        let subscription = |name: &str, state: i32| pb::SubscriptionConfig {
            name: name.into(),
            state,
            primary_key_sha256: vec![1; 32],
            secondary_key_sha256: vec![2; 32],
            ..Default::default()
        };
        let full = pb::SyncResponse {
            revision: 1,
            full: true,
            config_id: "c".into(),
            changed: Some(pb::Snapshot {
                subscriptions: vec![subscription("a", 1), subscription("b", 1)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = Configuration::default().apply(&full).unwrap();
        let delta = pb::SyncResponse {
            revision: 2,
            base_revision: 1,
            config_id: "c".into(),
            changed: Some(pb::Snapshot { subscriptions: vec![subscription("a", 2)], ..Default::default() }),
            removed: Some(pb::Removed { subscriptions: vec!["b".into()], ..Default::default() }),
            ..Default::default()
        };
        let second = first.apply(&delta).unwrap();
        assert_eq!(second.subscriptions.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(second.subscriptions["a"].state, 2);
        assert_eq!(Configuration::default().apply(&second.to_update()).unwrap(), second, "the cache keeps them");
    }
}
