//! Which data planes are connected and what each has applied: the answer to "did my change
//! reach the fleet?".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::model::Revision;

/// Disconnected gateways are listed for this long, then forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug)]
pub struct Gateway {
    pub name: String,
    pub address: String,
    pub version: String,
    pub connected_since: SystemTime,
    pub last_seen: SystemTime,
    pub applied_revision: Revision,
    pub connected: bool,
    pub last_error: String,
    /// Distinguishes a reconnect under the same name from the stream it replaced.
    session: u64,
}

#[derive(Default)]
pub struct Gateways {
    by_name: Mutex<HashMap<String, Gateway>>,
    next_session: std::sync::atomic::AtomicU64,
}

impl Gateways {
    /// Records a new stream; returns its session number.
    pub fn connected(&self, name: &str, address: &str, version: &str, revision: Revision) -> u64 {
        let session = self.next_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
                connected: true,
                last_error: String::new(),
                session,
            },
        );
        session
    }

    pub fn acked(&self, name: &str, session: u64, revision: Revision) {
        self.update(name, session, |g| {
            g.applied_revision = revision;
            g.last_error.clear();
        });
    }

    pub fn nacked(&self, name: &str, session: u64, reason: &str) {
        self.update(name, session, |g| g.last_error = reason.to_string());
    }

    pub fn disconnected(&self, name: &str, session: u64) {
        self.update(name, session, |g| g.connected = false);
    }

    fn update(&self, name: &str, session: u64, f: impl FnOnce(&mut Gateway)) {
        let mut map = self.by_name.lock().expect("gateways lock");
        if let Some(g) = map.get_mut(name).filter(|g| g.session == session) {
            g.last_seen = SystemTime::now();
            f(g);
        }
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
