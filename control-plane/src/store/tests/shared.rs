//! Two stores on one etcd prefix, as two control planes: every acknowledged write lands once,
//! etags hold across them, each sees what the other commits, and a different master key is
//! refused.

use std::collections::HashSet;
use std::time::Duration;

use gatehouse_shared::sealed::SealingKey;

use super::etcd_fixture::{connect, open, prefix};
use super::{api, current_definition};
use crate::store::{Store, StoreError, WriteOptions};

const ANY: WriteOptions = WriteOptions { if_match: String::new(), allow_expired: false };

/// Waits until `store` has installed `revision`.
async fn reaches(store: &Store, revision: u64) {
    let mut published = store.subscribe();
    tokio::time::timeout(Duration::from_secs(5), published.wait_for(|p| p.revision >= revision))
        .await
        .unwrap_or_else(|_| panic!("{} never reached revision {revision}", store.kind()))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_writing_at_once_lose_no_acknowledged_write() {
    let prefix = prefix();
    let (a, b) = (open(&prefix).await, open(&prefix).await);
    let writes = |store: std::sync::Arc<Store>, side: &'static str| async move {
        let mut revisions = Vec::new();
        for n in 0..30 {
            let api = store.put_api(api(&format!("{side}{n}"), &format!("/{side}{n}"), None), &ANY).await.unwrap();
            revisions.push(api.revision);
        }
        revisions
    };
    let (from_a, from_b) = tokio::join!(writes(a.clone(), "a"), writes(b.clone(), "b"));
    let all: HashSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all.len(), 60, "two writes were acknowledged with one revision: {from_a:?} {from_b:?}");
    for store in [&a, &b] {
        reaches(store, 60).await;
        let state = store.state();
        assert_eq!(state.apis.len(), 60);
        for api in state.apis.values() {
            let acknowledged = if api.id.starts_with('a') { &from_a } else { &from_b };
            let n: usize = api.id[1..].parse().unwrap();
            assert_eq!(
                api.revision, acknowledged[n],
                "{} is not at the revision its write was acknowledged with",
                api.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etag_holds_across_control_planes() {
    let prefix = prefix();
    let (a, b) = (open(&prefix).await, open(&prefix).await);
    let first = a.put_api(api("orders", "/orders", None), &ANY).await.unwrap();
    reaches(&b, first.revision).await;
    let if_match = WriteOptions { if_match: crate::model::etag(first.revision), allow_expired: false };
    let rename = |name: &'static str| {
        move |current: &crate::model::Api| crate::store::ApiDefinition {
            display_name: name.into(),
            ..current_definition(current)
        }
    };
    let on_b = b.update_api("orders", rename("from b"), &if_match).await.unwrap();
    // a may not have seen b's write yet: its commit loses the race, plans again, and then
    // the etag no longer matches.
    let on_a = a.update_api("orders", rename("from a"), &if_match).await;
    assert!(matches!(on_a, Err(StoreError::EtagMismatch { .. })), "{on_a:?}");
    reaches(&a, on_b.revision).await;
    assert_eq!(a.state().apis["orders"].display_name, "from b");
}

#[tokio::test]
async fn a_control_plane_with_another_master_key_is_refused() {
    let prefix = prefix();
    let _first = open(&prefix).await;
    let other = Store::open_etcd(connect(&prefix).await, SealingKey::from_bytes(&[8u8; 32]).unwrap()).await;
    assert!(matches!(other, Err(StoreError::WrongMasterKey)), "{:?}", other.err());
}
