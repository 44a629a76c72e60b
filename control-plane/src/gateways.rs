//! Which data planes are connected and what each has applied: the answer to "did my change
//! reach the fleet?".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::model::Revision;

/// The most gateways remembered: past it the disconnected ones seen longest ago are forgotten,
/// so no token (a `*` or prefix one can use any number of names) can grow the list without
/// bound. Connected ones are always kept.
const MAX_REMEMBERED: usize = 10_000;

/// Disconnected gateways are listed for this long, then forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Where a data plane stands against the latest revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayState {
    /// Has applied the latest revision.
    Synced,
    /// Behind, but for less than the stale threshold.
    Syncing,
    /// Behind for longer than the stale threshold.
    Stale,
    /// Refused a revision newer than the one it applied.
    Nacked,
    /// No stream open.
    Disconnected,
}

/// A data plane as the control plane last saw it.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// The name it gave in its hello, unique among connected ones.
    pub name: String,
    /// The peer address of its stream.
    pub address: String,
    /// When its stream opened.
    pub connected_since: SystemTime,
    /// Its last message.
    pub last_seen: SystemTime,
    /// The latest revision it acknowledged.
    pub applied_revision: Revision,
    /// When the last ACK arrived.
    pub applied_at: SystemTime,
    /// Whether its stream is open.
    pub connected: bool,
    /// The reason of its last NACK.
    pub last_error: String,
    /// The revision of its last NACK.
    pub rejected_revision: Revision,
    /// When its last NACK arrived.
    pub rejected_at: SystemTime,
    /// What the data plane says of itself in its hello.
    pub reported: Reported,
    /// The name of the token its stream was opened with.
    pub token: String,
    /// Distinguishes a reconnect under the same name from the stream it replaced (0 for
    /// one connected to another control plane).
    pub(crate) session: u64,
}

/// What a data plane reports of itself when it connects (bounded by the sync service).
#[derive(Clone, Debug, Default)]
pub struct Reported {
    /// Its build version.
    pub version: String,
    /// Random per data-plane process.
    pub instance_id: String,
    /// The addresses it proxies on.
    pub listen_addresses: Vec<String>,
    /// SHA-256 (hex) of its --backend-ca-file bundle, empty without one.
    pub backend_ca_fingerprint: String,
}

/// A second data plane under a name that a connected one holds.
#[derive(Debug, thiserror::Error)]
#[error(
    "data plane name '{name}' is in use by another instance ({instance}) connected from {address}: give each data plane its own --name"
)]
pub struct NameInUse {
    /// The name asked for.
    pub name: String,
    /// The instance id of the connected one.
    pub instance: String,
    /// Where the connected one connects from.
    pub address: String,
}

/// Forgets the disconnected gateways seen longest ago until at most `limit` remain (or only
/// connected ones do).
fn forget_beyond(map: &mut HashMap<String, Gateway>, limit: usize) {
    if map.len() <= limit {
        return;
    }
    let mut gone: Vec<(SystemTime, String)> =
        map.values().filter(|g| !g.connected).map(|g| (g.last_seen, g.name.clone())).collect();
    gone.sort();
    for (_, name) in gone.into_iter().take(map.len() - limit) {
        map.remove(&name);
    }
}

/// Whether `a` describes a data plane better than `b` (two records of one name).
fn preferred(a: &Gateway, b: &Gateway) -> bool {
    (a.connected, a.last_seen) >= (b.connected, b.last_seen)
}

impl GatewayState {
    /// The state's name in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Syncing => "syncing",
            Self::Stale => "stale",
            Self::Nacked => "nacked",
            Self::Disconnected => "disconnected",
        }
    }
}

impl Gateway {
    /// Its state now: the one place that looks up how long it has been behind.
    pub fn current_state(&self, store: &crate::store::Store, stale_after: Duration) -> GatewayState {
        let behind_since = store.committed_at(self.applied_revision + 1);
        self.state(store.state().revision, behind_since, stale_after)
    }

    /// `behind_since`: when the oldest revision it has not applied was committed, if any.
    pub fn state(&self, latest: Revision, behind_since: Option<SystemTime>, stale_after: Duration) -> GatewayState {
        if !self.connected {
            GatewayState::Disconnected
        } else if self.rejected_revision > self.applied_revision {
            GatewayState::Nacked
        } else if self.applied_revision >= latest {
            GatewayState::Synced
        } else if behind_since.is_some_and(|t| t.elapsed().unwrap_or_default() < stale_after) {
            GatewayState::Syncing
        } else {
            GatewayState::Stale
        }
    }
}

#[cfg(feature = "etcd")]
pub mod etcd;

/// The connected data planes, by name, and those recently gone.
#[derive(Default)]
pub struct Gateways {
    by_name: Mutex<HashMap<String, Gateway>>,
    /// Data planes of the other control planes on a shared store (etcd), as they recorded
    /// them there.
    remote: Mutex<Vec<Gateway>>,
    next_session: AtomicU64,
    /// Bumped on every change, for whoever waits on a rollout.
    changes: watch::Sender<u64>,
    /// Set when the control plane shuts down: every sync stream ends.
    closing: watch::Sender<bool>,
}

impl Gateways {
    /// Records a new stream; returns its session number. A connected gateway of the same name
    /// is replaced only by the same instance reconnecting: another process under that name is
    /// refused, so `gateway list` and rollout waits never mix two data planes up.
    pub fn connected(
        &self,
        name: &str,
        address: &str,
        token: &str,
        reported: Reported,
        revision: Revision,
    ) -> Result<u64, NameInUse> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        {
            let mut map = self.by_name.lock().expect("gateways lock");
            if let Some(existing) = map.get(name)
                && existing.connected
                && existing.reported.instance_id != reported.instance_id
            {
                return Err(NameInUse {
                    name: name.to_string(),
                    instance: existing.reported.instance_id.clone(),
                    address: existing.address.clone(),
                });
            }
            map.insert(
                name.to_string(),
                Gateway {
                    name: name.to_string(),
                    address: address.to_string(),
                    connected_since: now,
                    last_seen: now,
                    applied_revision: revision,
                    applied_at: now,
                    connected: true,
                    last_error: String::new(),
                    rejected_revision: 0,
                    rejected_at: now,
                    reported,
                    token: token.to_string(),
                    session,
                },
            );
            forget_beyond(&mut map, MAX_REMEMBERED);
        }
        self.changed();
        Ok(session)
    }

    /// The data plane applied `revision` (an ACK on stream `session`).
    pub fn acked(&self, name: &str, session: u64, revision: Revision) {
        self.update(name, session, |g| {
            g.applied_revision = revision;
            g.applied_at = SystemTime::now();
        });
    }

    /// The data plane refused `revision` (a NACK on stream `session`).
    pub fn nacked(&self, name: &str, session: u64, revision: Revision, reason: &str) {
        self.update(name, session, |g| {
            g.last_error = reason.to_string();
            g.rejected_revision = revision;
            g.rejected_at = SystemTime::now();
        });
    }

    /// Stream `session` ended; a newer stream under the name is left alone.
    pub fn disconnected(&self, name: &str, session: u64) {
        self.update(name, session, |g| g.connected = false);
    }

    /// The stream is alive (any message counts).
    pub fn seen(&self, name: &str, session: u64) {
        let mut map = self.by_name.lock().expect("gateways lock");
        if let Some(g) = map.get_mut(name).filter(|g| g.session == session) {
            g.last_seen = SystemTime::now();
        }
    }

    fn update(&self, name: &str, session: u64, f: impl FnOnce(&mut Gateway)) {
        {
            let mut map = self.by_name.lock().expect("gateways lock");
            if let Some(g) = map.get_mut(name).filter(|g| g.session == session) {
                g.last_seen = SystemTime::now();
                f(g);
            }
        }
        self.changed();
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Changes whenever a gateway connects, acknowledges, refuses or leaves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Ends every sync stream (graceful shutdown: streams never end by themselves).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Turns true when [`close_all`](Self::close_all) is called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// One page of the list in name order: at most `size` gateways named after `after`.
    pub fn page(&self, after: &str, size: usize) -> (Vec<Gateway>, bool) {
        let list = self.list();
        let start = list.partition_point(|g| g.name.as_str() <= after);
        let more = list.len() > start + size;
        (list.into_iter().skip(start).take(size).collect(), more)
    }

    /// Every gateway in name order, this control plane's and the others' (etcd), after
    /// forgetting those gone for long enough. A name seen by several control planes is listed
    /// once: connected before disconnected, then the one seen last.
    pub fn list(&self) -> Vec<Gateway> {
        let mut merged = self.local();
        for gateway in self.remote.lock().expect("gateways lock").iter() {
            match merged.get(&gateway.name) {
                Some(known) if preferred(known, gateway) => {}
                _ => {
                    merged.insert(gateway.name.clone(), gateway.clone());
                }
            }
        }
        let mut list: Vec<Gateway> = merged.into_values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// This control plane's gateways by name, after forgetting those gone for long enough.
    pub fn local(&self) -> HashMap<String, Gateway> {
        let mut map = self.by_name.lock().expect("gateways lock");
        let now = SystemTime::now();
        map.retain(|_, g| g.connected || now.duration_since(g.last_seen).unwrap_or_default() < FORGET_AFTER);
        map.clone()
    }

    /// Replaces what the other control planes recorded (etcd).
    pub fn set_remote(&self, gateways: Vec<Gateway>) {
        *self.remote.lock().expect("gateways lock") = gateways;
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Reported {
        Reported { instance_id: id.into(), ..Reported::default() }
    }

    #[test]
    fn a_second_instance_under_a_connected_name_is_refused_and_a_reconnect_replaces() {
        let gateways = Gateways::default();
        let first = gateways.connected("edge-1", "127.0.0.1:1", "t", instance("A"), 0).unwrap();
        let error = gateways.connected("edge-1", "127.0.0.1:2", "t", instance("B"), 0).unwrap_err();
        assert_eq!(error.instance, "A");
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
        let again = gateways.connected("edge-1", "127.0.0.1:3", "t", instance("A"), 0).unwrap();
        assert_ne!(first, again);
        // The replaced stream's disconnect does not touch the new one.
        gateways.disconnected("edge-1", first);
        assert!(gateways.list()[0].connected);
        gateways.disconnected("edge-1", again);
        assert!(gateways.connected("edge-1", "127.0.0.1:4", "t", instance("B"), 0).is_ok());
    }

    #[test]
    fn past_the_limit_the_longest_gone_are_forgotten_first() {
        let gateways = Gateways::default();
        for name in ["old", "newer", "live"] {
            let session = gateways.connected(name, "", "t", instance(name), 0).unwrap();
            if name != "live" {
                gateways.disconnected(name, session);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        forget_beyond(&mut gateways.by_name.lock().unwrap(), 2);
        let names: Vec<String> = gateways.list().into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["live", "newer"]);
    }

    #[test]
    fn pages_follow_name_order() {
        let gateways = Gateways::default();
        for name in ["c", "a", "b", "d", "e"] {
            gateways.connected(name, "", "t", instance(name), 0).unwrap();
        }
        let (page, more) = gateways.page("", 2);
        assert_eq!(page.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(more);
        let (page, more) = gateways.page("d", 2);
        assert_eq!(page.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["e"]);
        assert!(!more);
    }
}
