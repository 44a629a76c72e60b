//! Which data planes are connected and what each has applied: the answer to "did my change
//! reach the fleet?".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::model::Revision;

/// Disconnected gateways are listed for this long, then forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayState {
    Synced,
    /// Behind, but for less than the stale threshold.
    Syncing,
    Stale,
    Nacked,
    Disconnected,
}

#[derive(Clone, Debug)]
pub struct Gateway {
    pub name: String,
    pub address: String,
    pub version: String,
    pub connected_since: SystemTime,
    pub last_seen: SystemTime,
    pub applied_revision: Revision,
    /// When the last ACK arrived.
    pub applied_at: SystemTime,
    pub connected: bool,
    pub last_error: String,
    pub rejected_revision: Revision,
    pub rejected_at: SystemTime,
    /// Distinguishes a reconnect under the same name from the stream it replaced.
    session: u64,
}

impl Gateway {
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

#[derive(Default)]
pub struct Gateways {
    by_name: Mutex<HashMap<String, Gateway>>,
    next_session: AtomicU64,
    /// Bumped on every change, for whoever waits on a rollout.
    changes: watch::Sender<u64>,
    /// Set when the control plane shuts down: every sync stream ends.
    closing: watch::Sender<bool>,
}

impl Gateways {
    /// Records a new stream; returns its session number.
    pub fn connected(&self, name: &str, address: &str, version: &str, revision: Revision) -> u64 {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        self.by_name.lock().expect("gateways lock").insert(
            name.to_string(),
            Gateway {
                name: name.to_string(),
                address: address.to_string(),
                version: version.to_string(),
                connected_since: now,
                last_seen: now,
                applied_revision: revision,
                applied_at: now,
                connected: true,
                last_error: String::new(),
                rejected_revision: 0,
                rejected_at: now,
                session,
            },
        );
        self.changed();
        session
    }

    pub fn acked(&self, name: &str, session: u64, revision: Revision) {
        self.update(name, session, |g| {
            g.applied_revision = revision;
            g.applied_at = SystemTime::now();
        });
    }

    pub fn nacked(&self, name: &str, session: u64, revision: Revision, reason: &str) {
        self.update(name, session, |g| {
            g.last_error = reason.to_string();
            g.rejected_revision = revision;
            g.rejected_at = SystemTime::now();
        });
    }

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

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Ends every sync stream (graceful shutdown: streams never end by themselves).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn list(&self) -> Vec<Gateway> {
        let mut map = self.by_name.lock().expect("gateways lock");
        let now = SystemTime::now();
        map.retain(|_, g| g.connected || now.duration_since(g.last_seen).unwrap_or_default() < FORGET_AFTER);
        let mut list: Vec<Gateway> = map.values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}
