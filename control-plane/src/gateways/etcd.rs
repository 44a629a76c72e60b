//! One fleet view from every control plane on etcd: each records its own data planes under
//! `PREFIX/fleet/NAME/CONTROL_PLANE` with a lease of its own (so they vanish within the lease's
//! time when it dies), and watches the others' records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{EventType, PutOptions, Txn, TxnOp, WatchOptions};

use super::{Gateway, Gateways, Reported};
use crate::store::etcd::Etcd;

/// A control plane's records outlive it by at most this long.
const LEASE_TTL_SECONDS: i64 = 6;

/// A data plane as a control plane records it in etcd.
#[derive(Clone, PartialEq, prost::Message)]
struct GatewayRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    address: String,
    #[prost(int64, tag = "3")]
    connected_since_ms: i64,
    #[prost(int64, tag = "4")]
    last_seen_ms: i64,
    #[prost(uint64, tag = "5")]
    applied_revision: u64,
    #[prost(int64, tag = "6")]
    applied_at_ms: i64,
    #[prost(bool, tag = "7")]
    connected: bool,
    #[prost(string, tag = "8")]
    last_error: String,
    #[prost(uint64, tag = "9")]
    rejected_revision: u64,
    #[prost(int64, tag = "10")]
    rejected_at_ms: i64,
    #[prost(string, tag = "11")]
    version: String,
    #[prost(string, tag = "12")]
    instance_id: String,
    #[prost(string, repeated, tag = "13")]
    listen_addresses: Vec<String>,
    #[prost(string, tag = "14")]
    backend_ca_fingerprint: String,
    #[prost(string, tag = "15")]
    token: String,
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl From<&Gateway> for GatewayRecord {
    fn from(g: &Gateway) -> Self {
        Self {
            name: g.name.clone(),
            address: g.address.clone(),
            connected_since_ms: millis(g.connected_since),
            last_seen_ms: millis(g.last_seen),
            applied_revision: g.applied_revision,
            applied_at_ms: millis(g.applied_at),
            connected: g.connected,
            last_error: g.last_error.clone(),
            rejected_revision: g.rejected_revision,
            rejected_at_ms: millis(g.rejected_at),
            version: g.reported.version.clone(),
            instance_id: g.reported.instance_id.clone(),
            listen_addresses: g.reported.listen_addresses.clone(),
            backend_ca_fingerprint: g.reported.backend_ca_fingerprint.clone(),
            token: g.token.clone(),
        }
    }
}

impl From<GatewayRecord> for Gateway {
    fn from(r: GatewayRecord) -> Self {
        Self {
            name: r.name,
            address: r.address,
            connected_since: time(r.connected_since_ms),
            last_seen: time(r.last_seen_ms),
            applied_revision: r.applied_revision,
            applied_at: time(r.applied_at_ms),
            connected: r.connected,
            last_error: r.last_error,
            rejected_revision: r.rejected_revision,
            rejected_at: time(r.rejected_at_ms),
            reported: Reported {
                version: r.version,
                instance_id: r.instance_id,
                listen_addresses: r.listen_addresses,
                backend_ca_fingerprint: r.backend_ca_fingerprint,
            },
            token: r.token,
            session: 0,
        }
    }
}

/// Starts recording `gateways` in etcd as control plane `id` and following the other control
/// planes' records. Runs until the process ends; etcd being away only delays it.
pub fn share(gateways: Arc<Gateways>, etcd: Etcd, id: String) {
    tokio::spawn(record(gateways.clone(), etcd.clone(), id.clone()));
    tokio::spawn(follow(gateways, etcd, id));
}

/// Writes this control plane's data planes whenever they change, under a lease kept alive by
/// a task of its own (so a burst of writes never delays it); a lost lease (etcd away for longer
/// than its time) is replaced and everything written again.
async fn record(gateways: Arc<Gateways>, etcd: Etcd, id: String) {
    let mut changes = gateways.subscribe();
    let mut client = etcd.client();
    loop {
        let lease = match client.lease_grant(LEASE_TTL_SECONDS, None).await {
            Ok(lease) => lease.id(),
            Err(error) => {
                tracing::warn!(
                    error = crate::store::etcd::describe(&error),
                    "cannot take a lease in etcd for the fleet view; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (lost_tx, mut lost) = tokio::sync::oneshot::channel();
        let keeper = tokio::spawn(keep_alive(etcd.clone(), lease, lost_tx));
        let mut written: HashMap<String, GatewayRecord> = HashMap::new();
        'lease: loop {
            changes.borrow_and_update();
            let current: HashMap<String, GatewayRecord> =
                gateways.local().iter().map(|(name, g)| (name.clone(), GatewayRecord::from(g))).collect();
            let mut operations = Vec::new();
            for (name, record) in &current {
                // last_seen alone moves on every message: not worth a write.
                let same = written
                    .get(name)
                    .is_some_and(|w| GatewayRecord { last_seen_ms: w.last_seen_ms, ..record.clone() } == *w);
                if !same {
                    let key = etcd.key(&format!("fleet/{name}/{id}"));
                    let value = prost::Message::encode_to_vec(record);
                    operations.push(TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease))));
                }
            }
            for name in written.keys().filter(|name| !current.contains_key(*name)) {
                operations.push(TxnOp::delete(etcd.key(&format!("fleet/{name}/{id}")), None));
            }
            // Many changes become few transactions (etcd takes up to 128 operations in one).
            for chunk in operations.chunks(100) {
                if let Err(error) = client.txn(Txn::new().and_then(chunk.to_vec())).await {
                    tracing::warn!(error = crate::store::etcd::describe(&error), "cannot record the fleet in etcd");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    // Written again in full under a new lease.
                    break 'lease;
                }
            }
            written = current;
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { keeper.abort(); return },
                _ = &mut lost => {
                    tracing::warn!("the fleet lease in etcd expired; taking a new one");
                    break 'lease;
                }
            }
        }
        keeper.abort();
    }
}

/// Keeps `lease` alive every third of its time; says so on `lost` when it cannot.
async fn keep_alive(etcd: Etcd, lease: i64, lost: tokio::sync::oneshot::Sender<()>) {
    let mut client = etcd.client();
    if let Ok((mut keeper, mut answers)) = client.lease_keep_alive(lease).await {
        let mut tick = tokio::time::interval(Duration::from_secs((LEASE_TTL_SECONDS / 3) as u64));
        loop {
            tick.tick().await;
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match answers.message().await {
                Ok(Some(answer)) if answer.ttl() > 0 => {}
                _ => break,
            }
        }
    }
    let _ = lost.send(());
}

/// Keeps `gateways`' view of the other control planes' data planes current.
async fn follow(gateways: Arc<Gateways>, etcd: Etcd, id: String) {
    let suffix = format!("/{id}");
    loop {
        // Read everything, then watch from just after that read.
        let read = etcd.get_all("fleet/").await;
        let (at, entries) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(error = %gatehouse_shared::error_chain(&error), "cannot read the fleet from etcd; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let decode = |key: &[u8], value: &[u8]| -> Option<(Vec<u8>, Gateway)> {
            if String::from_utf8_lossy(key).ends_with(&suffix) {
                return None;
            }
            let record: GatewayRecord = prost::Message::decode(value).ok()?;
            Some((key.to_vec(), Gateway::from(record)))
        };
        let mut others: HashMap<Vec<u8>, Gateway> =
            entries.iter().filter_map(|(key, value)| decode(key, value)).collect();
        gateways.set_remote(others.values().cloned().collect());
        let prefix = etcd.key("fleet/");
        let options = WatchOptions::new().with_prefix().with_start_revision(at + 1);
        let mut stream = match etcd.client().watch(prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(
                    error = crate::store::etcd::describe(&error),
                    "cannot watch the fleet in etcd; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Ok(Some(response)) = stream.message().await {
            if response.canceled() || response.compact_revision() > 0 {
                break;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let key = kv.key().get(prefix.len()..).unwrap_or_default();
                match event.event_type() {
                    EventType::Put => {
                        if let Some((key, gateway)) = decode(key, kv.value()) {
                            others.insert(key, gateway);
                        }
                    }
                    EventType::Delete => {
                        others.remove(key);
                    }
                }
            }
            gateways.set_remote(others.values().cloned().collect());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
