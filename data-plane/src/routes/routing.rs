//! The holder of the current routing table: swapped in whole by the config client, loaded once
//! per request by the proxy, with the applied revision to watch and the sync's status for
//! /ready.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::RoutingTable;

/// The data plane's current table, shared by the proxy (readers) and the config client (writer).
pub struct Routing {
    current: ArcSwapOption<RoutingTable>,
    applied: watch::Sender<u64>,
    /// How the sync that feeds the table is going.
    pub status: SyncStatus,
}

/// How this data plane's sync is going, for /ready.
#[derive(Default)]
pub struct SyncStatus {
    /// The sync stream is up.
    pub connected: std::sync::atomic::AtomicBool,
    /// Full configurations applied.
    pub full_updates: std::sync::atomic::AtomicU64,
    /// Deltas applied.
    pub delta_updates: std::sync::atomic::AtomicU64,
    /// Revisions refused (NACKed).
    pub rejected_updates: std::sync::atomic::AtomicU64,
    /// The table in use came from the last-known-good cache.
    pub from_cache: std::sync::atomic::AtomicBool,
}

impl Default for Routing {
    fn default() -> Self {
        Self { current: ArcSwapOption::empty(), applied: watch::Sender::new(0), status: SyncStatus::default() }
    }
}

// === impl Routing ===

impl Routing {
    /// The current table, once per request; None before the first configuration.
    pub fn load(&self) -> Option<Arc<RoutingTable>> {
        self.current.load_full()
    }

    /// Makes `table` current: the next request uses it.
    pub fn swap(&self, table: RoutingTable) {
        let revision = table.revision;
        self.current.store(Some(Arc::new(table)));
        self.applied.send_replace(revision);
    }

    /// The applied revision, 0 before the first snapshot.
    pub fn revision(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether a table is applied, so requests can be served.
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Changes with every applied revision.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}
