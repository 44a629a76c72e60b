//! Writes of subscriptions: create (with two new keys), suspend and resume, regenerate one key,
//! delete; and the rule an API's subscription key header keeps. Keys are made here, returned
//! once to the caller, and only their SHA-256 hashes are committed.

use gatehouse_shared::api::quote;

use super::rules::{existing, validate_id};
use super::{Change, Plan, ResourceKind, Store, StoreError, WriteOptions};
use crate::model::{KeySlot, NewKey, Revision, Scope, State, Subscription, SubscriptionSettings, SubscriptionState};

/// A subscription as the operator defines it with CreateSubscription.
#[derive(Clone, Debug)]
pub struct SubscriptionDefinition {
    /// A plain id, unique among subscriptions.
    pub name: String,
    /// The name shown to operators.
    pub display_name: String,
    /// Which APIs its keys open; a single API must exist.
    pub scope: Scope,
}

/// A subscription just made, with its two keys: the only time they exist outside the client.
pub struct CreatedSubscription {
    /// As committed.
    pub subscription: Subscription,
    /// The primary key.
    pub primary_key: String,
    /// The secondary key.
    pub secondary_key: String,
}

impl std::fmt::Debug for CreatedSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSubscription").field("subscription", &self.subscription).finish_non_exhaustive()
    }
}

impl Store {
    /// Creates a subscription with two new random keys. The name must be a plain id not taken
    /// by another subscription; a scope of one API needs that API to exist.
    pub async fn create_subscription(
        &self,
        definition: SubscriptionDefinition,
    ) -> Result<CreatedSubscription, StoreError> {
        validate_id(ResourceKind::Subscription, &definition.name)?;
        self.write(|state| {
            if state.subscriptions.contains_key(&definition.name) {
                return Err(StoreError::Exists { kind: ResourceKind::Subscription, id: definition.name.clone() });
            }
            check_scope(state, &definition.scope)?;
            let (primary, secondary) = (NewKey::generate(), NewKey::generate());
            let subscription = Subscription {
                name: definition.name.clone(),
                display_name: definition.display_name.clone(),
                scope: definition.scope.clone(),
                state: SubscriptionState::Active,
                created: gatehouse_shared::unix_now(),
                primary_key_sha256: primary.sha256,
                secondary_key_sha256: secondary.sha256,
                revision: state.revision + 1,
            };
            let change = Change { put_subscriptions: vec![subscription.clone()], ..Change::default() };
            let created = CreatedSubscription { subscription, primary_key: primary.key, secondary_key: secondary.key };
            Ok(Plan::Commit(change, created))
        })
        .await
    }

    /// Suspends or resumes a subscription. One already in that state is returned as it is,
    /// and no revision is made.
    pub async fn set_subscription_state(
        &self,
        name: &str,
        wanted: SubscriptionState,
        options: &WriteOptions,
    ) -> Result<Subscription, StoreError> {
        self.write(|state| {
            let current =
                existing(ResourceKind::Subscription, name, &state.subscriptions, |s| s.revision, &options.if_match)?;
            if current.state == wanted {
                return Ok(Plan::Done(current.clone()));
            }
            let subscription = Subscription { state: wanted, revision: state.revision + 1, ..current.clone() };
            Ok(Plan::Commit(
                Change { put_subscriptions: vec![subscription.clone()], ..Change::default() },
                subscription,
            ))
        })
        .await
    }

    /// Replaces one of a subscription's keys with a new random one, returned with it: the old
    /// key stops working once data planes have the revision, the other key keeps working.
    pub async fn regenerate_subscription_key(
        &self,
        name: &str,
        slot: KeySlot,
        options: &WriteOptions,
    ) -> Result<(Subscription, String), StoreError> {
        self.write(|state| {
            let current =
                existing(ResourceKind::Subscription, name, &state.subscriptions, |s| s.revision, &options.if_match)?;
            let key = NewKey::generate();
            let mut subscription = Subscription { revision: state.revision + 1, ..current.clone() };
            match slot {
                KeySlot::Primary => subscription.primary_key_sha256 = key.sha256,
                KeySlot::Secondary => subscription.secondary_key_sha256 = key.sha256,
            }
            let change = Change { put_subscriptions: vec![subscription.clone()], ..Change::default() };
            Ok(Plan::Commit(change, (subscription, key.key)))
        })
        .await
    }

    /// Deletes a subscription; its keys stop working. Returns the new revision.
    pub async fn delete_subscription(&self, name: &str, options: &WriteOptions) -> Result<Revision, StoreError> {
        self.write(|state| {
            existing(ResourceKind::Subscription, name, &state.subscriptions, |s| s.revision, &options.if_match)?;
            let change = Change { remove_subscriptions: vec![name.to_string()], ..Change::default() };
            Ok(Plan::Commit(change, state.revision + 1))
        })
        .await
    }
}

/// A subscription scoped to one API needs the API.
fn check_scope(state: &State, scope: &Scope) -> Result<(), StoreError> {
    match scope {
        Scope::Api(id) if !state.apis.contains_key(id) => {
            Err(StoreError::NotFound { kind: ResourceKind::Api, id: quote(id) })
        }
        _ => Ok(()),
    }
}

/// An API's subscription settings as stored: an empty header is the default one. The header
/// must be a valid name, and not one the data plane needs for the request itself (it removes
/// the key header before forwarding).
pub(super) fn subscription_settings(settings: SubscriptionSettings) -> Result<SubscriptionSettings, StoreError> {
    if settings.header.is_empty() {
        return Ok(SubscriptionSettings { required: settings.required, ..SubscriptionSettings::default() });
    }
    let invalid = |reason| StoreError::InvalidSubscriptionKeyHeader { name: quote(&settings.header), reason };
    if http::HeaderName::from_bytes(settings.header.as_bytes()).is_err() {
        return Err(invalid("it is not a valid HTTP header name"));
    }
    // Besides the connection's own headers, those the request itself needs.
    const NEEDED: [&str; 5] = ["content-type", "content-encoding", "host", "x-request-id", "forwarded"];
    let lowercase = settings.header.to_ascii_lowercase();
    if gatehouse_shared::headers::is_connection_header(&lowercase) || NEEDED.contains(&lowercase.as_str()) {
        return Err(invalid("the request needs this header itself; choose another, e.g. Ocp-Apim-Subscription-Key"));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use gatehouse_shared::sealed::SealingKey;
    use gatehouse_shared::subscription_key;

    use super::*;
    use crate::model::BackendTls;
    use crate::store::ApiDefinition;

    const ANY: WriteOptions = WriteOptions { if_match: String::new(), allow_expired: false };

    fn open(db: sled::Db) -> Store {
        Store::open(db, SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap()
    }

    fn temporary() -> Store {
        open(sled::Config::new().temporary(true).open().unwrap())
    }

    fn api(id: &str) -> ApiDefinition {
        ApiDefinition {
            id: id.into(),
            display_name: String::new(),
            path: format!("/{id}"),
            service_url: "https://backend.internal:8443".into(),
            binding: None,
            tls: BackendTls::default(),
            hostnames: Vec::new(),
            subscription: SubscriptionSettings { required: true, ..SubscriptionSettings::default() },
        }
    }

    fn subscription(name: &str, scope: Scope) -> SubscriptionDefinition {
        SubscriptionDefinition { name: name.into(), display_name: format!("{name}'s keys"), scope }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn a_subscription_gets_two_keys_stored_only_as_hashes_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(crate::store::tests::reopen(dir.path()));
        store.put_api(api("orders"), &ANY).await.unwrap();
        let created = store.create_subscription(subscription("partner", Scope::Api("orders".into()))).await.unwrap();
        let (primary, secondary) = (&created.primary_key, &created.secondary_key);
        assert!(primary.starts_with("ghsk_") && secondary.starts_with("ghsk_") && primary != secondary);
        let stored = &created.subscription;
        assert_eq!(stored.primary_key_sha256, subscription_key::hash(primary));
        assert_eq!(stored.secondary_key_sha256, subscription_key::hash(secondary));
        assert_eq!((stored.state, stored.revision), (SubscriptionState::Active, store.state().revision));
        assert!(!format!("{created:?}").contains(primary.as_str()), "Debug never shows a key");
        // Data planes get the hashes with the revision.
        let published = store.latest();
        let config = &published.subscriptions["partner"];
        assert_eq!(
            (config.scope.as_str(), config.primary_key_sha256.as_slice()),
            ("orders", &stored.primary_key_sha256[..])
        );
        let (primary, secondary) = (primary.clone(), secondary.clone());
        drop(store);

        // Neither key is anywhere on disk; the subscription is, as it was.
        for file in walk(dir.path()) {
            let bytes = std::fs::read(&file).unwrap();
            for key in [&primary, &secondary] {
                assert!(!contains(&bytes, key.as_bytes()), "a key is in {}", file.display());
            }
        }
        let state = open(crate::store::tests::reopen(dir.path())).state();
        assert_eq!(&state.subscriptions["partner"], &created.subscription);
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
        }
        files
    }

    #[tokio::test]
    async fn names_are_plain_and_unique_and_a_scope_needs_its_api() {
        let store = temporary();
        store.put_api(api("orders"), &ANY).await.unwrap();
        store.create_subscription(subscription("partner", Scope::AllApis)).await.unwrap();
        let revision = store.state().revision;

        let error = store.create_subscription(subscription("partner", Scope::AllApis)).await.unwrap_err();
        assert!(matches!(error, StoreError::Exists { kind: ResourceKind::Subscription, .. }), "{error:?}");
        assert_eq!(error.to_string(), "subscription 'partner' exists already");
        let error = store.create_subscription(subscription("a b", Scope::AllApis)).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidId { kind: ResourceKind::Subscription, .. }), "{error:?}");
        let error = store.create_subscription(subscription("other", Scope::Api("nope".into()))).await.unwrap_err();
        assert_eq!(error.to_string(), "API 'nope' not found");
        assert_eq!(store.state().revision, revision, "a refused write writes nothing");
        assert_eq!(store.state().subscriptions.len(), 1);
    }

    #[tokio::test]
    async fn an_api_with_subscriptions_scoped_to_it_is_not_deleted() {
        let store = temporary();
        store.put_api(api("orders"), &ANY).await.unwrap();
        for name in ["b-partner", "a-partner"] {
            store.create_subscription(subscription(name, Scope::Api("orders".into()))).await.unwrap();
        }
        store.create_subscription(subscription("everything", Scope::AllApis)).await.unwrap();

        let error = store.delete_api("orders", &ANY).await.unwrap_err();
        match &error {
            StoreError::ApiHasSubscriptions { id, subscriptions } => {
                assert_eq!(
                    (id.as_str(), subscriptions.as_slice()),
                    ("orders", &["a-partner".into(), "b-partner".into()][..])
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("scoped to it: a-partner, b-partner"), "{error}");
        assert!(store.state().apis.contains_key("orders"));

        // A subscription to all APIs does not hold an API; one to it does until it is deleted.
        for name in ["a-partner", "b-partner"] {
            store.delete_subscription(name, &ANY).await.unwrap();
        }
        store.delete_api("orders", &ANY).await.unwrap();
        assert_eq!(store.state().subscriptions.keys().collect::<Vec<_>>(), ["everything"]);
        let error = store.delete_subscription("a-partner", &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::NotFound { kind: ResourceKind::Subscription, .. }), "{error:?}");
    }

    #[tokio::test]
    async fn suspend_resume_and_regenerate_change_only_what_they_say() {
        let store = temporary();
        let created = store.create_subscription(subscription("partner", Scope::AllApis)).await.unwrap();
        let first = created.subscription;

        let suspended = store.set_subscription_state("partner", SubscriptionState::Suspended, &ANY).await.unwrap();
        assert_eq!(suspended.state, SubscriptionState::Suspended);
        assert_eq!(suspended.revision, first.revision + 1);
        let again = store.set_subscription_state("partner", SubscriptionState::Suspended, &ANY).await.unwrap();
        assert_eq!(again.revision, suspended.revision, "suspending a suspended subscription writes nothing");
        assert_eq!(store.state().revision, suspended.revision);
        assert_eq!(
            store.latest().subscriptions["partner"].state,
            gatehouse_proto::v1::subscription_config::State::Suspended as i32
        );

        // A stale etag is refused; the current one is taken.
        let stale = WriteOptions { if_match: crate::model::etag(first.revision), ..ANY };
        let error = store.set_subscription_state("partner", SubscriptionState::Active, &stale).await.unwrap_err();
        assert!(matches!(error, StoreError::EtagMismatch { .. }), "{error:?}");
        let current = WriteOptions { if_match: crate::model::etag(suspended.revision), ..ANY };
        let resumed = store.set_subscription_state("partner", SubscriptionState::Active, &current).await.unwrap();
        assert_eq!(resumed.state, SubscriptionState::Active);

        let (regenerated, key) = store.regenerate_subscription_key("partner", KeySlot::Primary, &ANY).await.unwrap();
        assert!(key.starts_with("ghsk_") && key != created.primary_key);
        assert_eq!(regenerated.primary_key_sha256, subscription_key::hash(&key));
        assert_eq!(regenerated.secondary_key_sha256, first.secondary_key_sha256, "the other key keeps working");
        let (regenerated, key) = store.regenerate_subscription_key("partner", KeySlot::Secondary, &ANY).await.unwrap();
        assert_eq!(regenerated.secondary_key_sha256, subscription_key::hash(&key));
        assert_eq!((regenerated.created, regenerated.scope), (first.created, Scope::AllApis));
    }

    #[test]
    fn the_key_header_defaults_and_must_be_one_the_request_can_spare() {
        let settings = |header: &str| SubscriptionSettings { required: true, header: header.into() };
        assert_eq!(subscription_settings(settings("")).unwrap().header, "Ocp-Apim-Subscription-Key");
        assert_eq!(subscription_settings(settings("X-Api-Key")).unwrap().header, "X-Api-Key");
        for (header, says) in [
            ("bad name", "not a valid HTTP header name"),
            ("x-key\n", "not a valid HTTP header name"),
            ("Content-Length", "needs this header itself"),
            ("Host", "needs this header itself"),
            ("connection", "needs this header itself"),
        ] {
            let error = subscription_settings(settings(header)).unwrap_err();
            assert!(error.to_string().contains(says), "{header:?}: {error}");
        }
    }
}
