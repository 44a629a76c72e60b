//! Keeps the routing table current: one long-lived `ConfigSync.Sync` stream to one of the
//! control planes it knows. When a stream breaks or cannot be opened, the next control plane in
//! the list is tried at once; only when a whole round of the list has failed does it wait,
//! with capped exponential backoff and jitter. The control planes share one store, so the
//! revision held is good with any of them. Each revision is applied off
//! the request path (built on tokio's blocking pool, never on the proxy's workers), swapped in,
//! then ACKed (or NACKed with the reason, keeping the last good table); one revision is in
//! flight at a time. While the control plane is away, the last applied table keeps serving;
//! each applied configuration also goes to the last-known-good cache.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatehouse_proto::v1::{self as pb, config_sync_client::ConfigSyncClient, sync_request::Message};
use gatehouse_shared::client;
use gatehouse_shared::error_chain;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::cache::{CacheError, ConfigCache};
use crate::configuration::{Configuration, UpdateError};
use crate::routes::{Routing, RoutingTable};
use crate::upstream::TrustAnchors;

/// How a [`ConfigClient`] reaches the control plane and what it accepts from it.
#[derive(Clone)]
pub struct ConfigClientSettings {
    /// The control planes' URLs, e.g. https://127.0.0.1:7400, tried in this order (round
    /// robin) and at least one. They must share one store: a revision means the same
    /// configuration on each.
    pub control_planes: Vec<String>,
    /// The CA every control plane's certificate is checked against (default: system roots).
    pub control_plane_ca: Option<std::path::PathBuf>,
    /// Bearer token with the gateway role.
    pub token: Option<String>,
    /// How this data plane is listed by `gateway list`.
    pub name: String,
    /// First wait before a reconnect, once every control plane has failed; doubled on each
    /// such round.
    pub initial_backoff: Duration,
    /// Longest wait before a reconnect; a stream that stayed up this long counts as working.
    pub max_backoff: Duration,
    /// HTTP/2 keepalive on the stream: a frozen or cut-off control plane is noticed within
    /// two periods.
    pub keepalive: Duration,
    /// What backends' certificates are checked against.
    pub trust: TrustAnchors,
    /// Configurations with more APIs than this are refused (NACK).
    pub max_routes: usize,
    /// Random per process: the control plane tells a reconnect from a second process.
    pub instance_id: String,
    /// Where API clients reach this data plane, for `gateway list`.
    pub listen_addresses: Vec<String>,
    /// Time to get a sync stream going (TCP, TLS and HTTP/2 handshakes, and the control plane's
    /// answer to the hello): a peer that accepts and then says nothing does not hang us.
    pub connect_timeout: Duration,
}

// === impl ConfigClientSettings ===

impl ConfigClientSettings {
    /// Checks what cannot get better by retrying (each URL, the CA file, the token's format),
    /// so a misconfigured data plane stops at start with one clear line naming the culprit.
    /// An empty list is the caller's to refuse (see `DataPlane::bind`).
    pub fn check(&self) -> Result<(), client::ClientError> {
        for url in &self.control_planes {
            client::endpoint(url, self.control_plane_ca.as_deref())?;
        }
        client::BearerToken::new(self.token.as_deref())?;
        Ok(())
    }

    /// Settings with the defaults of `gatehouse-dp`'s flags.
    pub fn new(control_planes: Vec<String>, name: String, trust: TrustAnchors) -> Self {
        Self {
            control_planes,
            control_plane_ca: None,
            token: None,
            name,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            keepalive: Duration::from_secs(10),
            trust,
            max_routes: 100_000,
            instance_id: new_instance_id(),
            listen_addresses: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

fn new_instance_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The data plane's side of `ConfigSync.Sync`: feeds [`Routing`] from the control plane.
pub struct ConfigClient {
    settings: ConfigClientSettings,
    routing: Arc<Routing>,
    /// What the current table was built from: the base for the next delta.
    current: Arc<Configuration>,
    /// Latest configuration to write to the cache (written off the sync path).
    cache_writes: Option<watch::Sender<Option<Arc<Configuration>>>>,
    /// When the current session's control plane answered the hello.
    connected_at: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("control plane settings")]
    Endpoint(#[source] gatehouse_shared::client::ClientError),
    #[error("cannot connect to the control plane")]
    Connect(#[source] tonic::transport::Error),
    #[error(
        "the control plane did not complete the connection within {0:?} (TCP, TLS and HTTP/2 handshakes and the sync answer)"
    )]
    ConnectTimeout(Duration),
    #[error("the control plane refused the stream: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the sync stream broke: {}", .0.message())]
    Broken(tonic::Status),
    #[error("the control plane closed the stream")]
    Closed,
    #[error("out of step with the control plane; resynchronizing")]
    OutOfStep(#[source] UpdateError),
}

// === impl ConfigClient ===

impl ConfigClient {
    /// A client that will keep `routing` current once [`run`](Self::run).
    pub fn new(settings: ConfigClientSettings, routing: Arc<Routing>) -> Self {
        Self { settings, routing, current: Arc::default(), cache_writes: None, connected_at: None }
    }

    /// Serves from the last-known-good cache (if it holds a usable configuration) and keeps
    /// writing every applied configuration to it. Reading the cache and building its table
    /// happen on the blocking pool.
    pub async fn with_cache(mut self, cache: ConfigCache) -> Self {
        let cache = Arc::new(cache);
        let loaded = {
            let (cache, trust, max_routes) = (cache.clone(), self.settings.trust.clone(), self.settings.max_routes);
            off_the_workers(move || {
                let config = cache.load()?;
                Ok::<_, CacheError>(config.map(|config| {
                    let table = RoutingTable::build(&config, None, &trust, max_routes);
                    (config, table)
                }))
            })
            .await
        };
        match loaded {
            Ok(Some((config, Ok(table)))) => {
                tracing::info!(
                    revision = config.revision,
                    routes = table.len(),
                    "serving the cached configuration until the control plane answers"
                );
                self.routing.status.from_cache.store(true, Ordering::Relaxed);
                self.routing.swap(table);
                self.current = Arc::new(config);
            }
            Ok(Some((_, Err(error)))) => {
                tracing::warn!(error = %error_chain(&error), "the cached configuration cannot be used")
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(error = %error_chain(&error), "the configuration cache cannot be read"),
        }
        let (tx, mut rx) = watch::channel::<Option<Arc<Configuration>>>(None);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(config) = rx.borrow_and_update().clone() else { continue };
                let cache = cache.clone();
                let written = tokio::task::spawn_blocking(move || cache.store(&config)).await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(error = %error_chain(&error), "cannot write the configuration cache");
                }
            }
        });
        self.cache_writes = Some(tx);
        self
    }

    /// Runs forever: sync, and on any failure move on to the next control plane (waiting
    /// first when the whole list has failed).
    pub async fn run(mut self) {
        let control_planes = self.settings.control_planes.clone();
        if control_planes.is_empty() {
            tracing::error!("no control plane to sync with");
            return;
        }
        let mut failover =
            Failover::new(control_planes.len(), self.settings.initial_backoff, self.settings.max_backoff);
        loop {
            let control_plane = &control_planes[failover.current()];
            let applied_before = self.routing.revision();
            let result = self.session(control_plane).await;
            self.routing.status.connected.store(false, Ordering::Relaxed);
            crate::metrics::global().connected_to(None);
            let ended = SessionEnd {
                applied: self.routing.revision() != applied_before,
                stayed_up: self.connected_at.take().is_some_and(|at| at.elapsed() >= self.settings.max_backoff),
            };
            let wait = failover.session_ended(ended).map(jittered);
            let next = &control_planes[failover.current()];
            match (result, wait) {
                (Err(error), None) => tracing::warn!(
                    control_plane = %control_plane,
                    error = %error_chain(&error),
                    next = %next,
                    "cannot sync with the control plane; trying the next one"
                ),
                (Err(error), Some(wait)) => tracing::warn!(
                    control_plane = %control_plane,
                    error = %error_chain(&error),
                    next = %next,
                    retry_in = ?wait,
                    "cannot sync with the control plane; retrying"
                ),
                (Ok(()), wait) => tracing::info!(next = %next, retry_in = ?wait, "reconnecting to the control plane"),
            }
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    }

    async fn session(&mut self, control_plane: &str) -> Result<(), SessionError> {
        let keepalive = self.settings.keepalive;
        let endpoint = client::endpoint(control_plane, self.settings.control_plane_ca.as_deref())
            .map_err(SessionError::Endpoint)?
            .http2_keep_alive_interval(keepalive)
            .keep_alive_timeout(keepalive)
            .keep_alive_while_idle(true);
        let token = client::BearerToken::new(self.settings.token.as_deref()).map_err(SessionError::Endpoint)?;
        let deadline = self.settings.connect_timeout;
        let channel = tokio::time::timeout(deadline, endpoint.connect())
            .await
            .map_err(|_| SessionError::ConnectTimeout(deadline))?
            .map_err(SessionError::Connect)?;
        let mut client =
            ConfigSyncClient::with_interceptor(channel, token).max_decoding_message_size(256 * 1024 * 1024);

        let (tx, rx) = mpsc::channel(16);
        let hello = pb::Hello {
            name: self.settings.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol_version: gatehouse_proto::PROTOCOL_VERSION,
            revision: self.current.revision,
            config_id: self.current.config_id.clone(),
            instance_id: self.settings.instance_id.clone(),
            listen_addresses: self.settings.listen_addresses.clone(),
            backend_ca_fingerprint: self.settings.trust.bundle_fingerprint().unwrap_or_default().to_string(),
        };
        let _ = tx.send(pb::SyncRequest { message: Some(Message::Hello(hello)) }).await;
        let mut inbound = tokio::time::timeout(deadline, client.sync(ReceiverStream::new(rx)))
            .await
            .map_err(|_| SessionError::ConnectTimeout(deadline))?
            .map_err(SessionError::Refused)?
            .into_inner();
        self.routing.status.connected.store(true, Ordering::Relaxed);
        self.connected_at = Some(Instant::now());
        // Connected and told nothing new means our configuration is current.
        crate::metrics::global().synced();
        crate::metrics::global().connected_to(Some(control_plane));
        tracing::info!(control_plane = %control_plane, held = self.current.revision, "config sync connected");

        let mut heartbeat = tokio::time::interval(keepalive);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                message = inbound.message() => message,
                _ = heartbeat.tick() => {
                    let beat = pb::SyncRequest { message: Some(Message::Heartbeat(pb::Heartbeat {})) };
                    if tx.send(beat).await.is_err() {
                        return Err(SessionError::Closed);
                    }
                    continue;
                }
            };
            let update = match message {
                Ok(Some(update)) => update,
                Ok(None) => return Err(SessionError::Closed),
                Err(status) => return Err(SessionError::Broken(status)),
            };
            let answer = self.apply(update).await?;
            if tx.send(pb::SyncRequest { message: Some(answer) }).await.is_err() {
                return Err(SessionError::Closed);
            }
        }
    }

    /// Builds the new table off the request path and swaps it in; on failure keeps the last
    /// good table and says why. The session waits for the answer: one revision in flight.
    async fn apply(&mut self, update: pb::SyncResponse) -> Result<Message, SessionError> {
        let (revision, full, nonce) = (update.revision, update.full, update.nonce.clone());
        let (current, previous) = (self.current.clone(), self.routing.load());
        let replaced = previous.clone();
        let (trust, max_routes) = (self.settings.trust.clone(), self.settings.max_routes);
        let (next, built) = off_the_workers(move || {
            let started = std::time::Instant::now();
            let next = current.apply(&update).map_err(SessionError::OutOfStep)?;
            let built = RoutingTable::build(&next, previous.as_deref(), &trust, max_routes);
            crate::metrics::global().config_apply_duration.observe(started.elapsed().as_secs_f64());
            Ok::<_, SessionError>((next, built))
        })
        .await?;
        let status = &self.routing.status;
        match built {
            Ok(table) => {
                // A delta's new identities get their first backend connection before the
                // table takes requests (a full update at start would mean a handshake storm).
                if !full {
                    table.warm_new_pools(replaced.as_deref(), WARM_AT_MOST, WARM_WITHIN).await;
                }
                let routes = table.len();
                self.routing.swap(table);
                if full { &status.full_updates } else { &status.delta_updates }.fetch_add(1, Ordering::Relaxed);
                status.from_cache.store(false, Ordering::Relaxed);
                tracing::info!(revision, full, routes, "configuration applied");
                self.current = Arc::new(next);
                if let Some(cache) = &self.cache_writes {
                    cache.send_replace(Some(self.current.clone()));
                }
                crate::metrics::global().synced();
                Ok(Message::Ack(pb::Ack { revision, nonce }))
            }
            Err(error) => {
                status.rejected_updates.fetch_add(1, Ordering::Relaxed);
                let reason = error_chain(&error);
                tracing::error!(revision, %reason, "configuration rejected; keeping the last good one");
                let resource_ids = error.resource_id().map(str::to_string).into_iter().collect();
                Ok(Message::Nack(pb::Nack { revision, nonce, reason, resource_ids }))
            }
        }
    }
}

/// Most new backend pools warmed before a delta's table is swapped in, and for how long.
const WARM_AT_MOST: usize = 16;
const WARM_WITHIN: Duration = Duration::from_millis(500);

/// Runs `work` on tokio's blocking pool: building a large table takes long enough to stall
/// requests if it ran on a worker (with `--worker-threads 1`, on the only one). A panic in
/// `work` goes on unwinding here, as it would have inline.
async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// How a sync session went, as far as choosing the next attempt goes.
#[derive(Clone, Copy, Debug, Default)]
struct SessionEnd {
    /// It applied at least one revision: the next wait starts from the initial backoff again.
    applied: bool,
    /// It stayed connected for at least the longest backoff: that control plane was working,
    /// so its failure starts a new round.
    stayed_up: bool,
}

/// Which control plane to try next, and how long to wait first. A failed one is followed at
/// once by the next in the list, so losing one control plane costs no backoff; a wait comes
/// only when a whole round of the list has failed, and doubles with each such round (up to the
/// cap). With one control plane a round is one attempt: every failure waits, as it always did.
#[derive(Debug)]
struct Failover {
    count: usize,
    current: usize,
    /// Sessions ended since the last wait or the last one that stayed up.
    failed_in_round: usize,
    backoff: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

// === impl Failover ===

impl Failover {
    fn new(count: usize, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self { count, current: 0, failed_in_round: 0, backoff: initial_backoff, initial_backoff, max_backoff }
    }

    /// The index of the control plane to try now.
    fn current(&self) -> usize {
        self.current
    }

    /// Moves on to the next control plane; returns the wait (before jitter) when this ended a
    /// round in which none stayed up.
    fn session_ended(&mut self, ended: SessionEnd) -> Option<Duration> {
        if ended.applied {
            self.backoff = self.initial_backoff;
        }
        if ended.stayed_up {
            self.failed_in_round = 0;
        }
        // Short sessions count even when they applied something: control planes that answer
        // and then drop every stream must not make the data plane spin through the list.
        self.failed_in_round += 1;
        self.current = (self.current + 1) % self.count;
        if self.failed_in_round < self.count {
            return None;
        }
        self.failed_in_round = 0;
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        Some(wait)
    }
}

/// Full jitter in [d/2, d]: a fleet that lost its control plane does not reconnect in lockstep.
fn jittered(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let half = d / 2;
    half + Duration::from_nanos(random % (half.as_nanos().max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_update(revision: u64, routes: impl IntoIterator<Item = pb::RouteConfig>) -> pb::SyncResponse {
        pb::SyncResponse {
            revision,
            full: true,
            config_id: "test".into(),
            nonce: format!("n{revision}"),
            changed: Some(pb::Snapshot { routes: routes.into_iter().collect(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn route(i: usize) -> pb::RouteConfig {
        pb::RouteConfig {
            api_id: format!("api-{i}"),
            path: format!("/r{i}"),
            service_url: "http://127.0.0.1:1".into(),
            ..Default::default()
        }
    }

    fn client() -> ConfigClient {
        let settings =
            ConfigClientSettings::new(vec!["http://127.0.0.1:1".into()], "test".into(), TrustAnchors::system());
        ConfigClient::new(settings, Arc::new(Routing::default()))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_control_plane_waits_after_every_failure_and_backs_off_as_before() {
        let mut failover = Failover::new(1, 100 * MS, 400 * MS);
        let failed = SessionEnd::default();
        let waits: Vec<_> = (0..4).map(|_| failover.session_ended(failed)).collect();
        assert_eq!(waits, [Some(100 * MS), Some(200 * MS), Some(400 * MS), Some(400 * MS)]);
        assert_eq!(failover.current(), 0);
        let applied = SessionEnd { applied: true, stayed_up: false };
        assert_eq!(failover.session_ended(applied), Some(100 * MS), "progress starts the backoff over");
    }

    #[test]
    fn a_failed_control_plane_is_followed_at_once_by_the_next_and_a_failed_round_waits() {
        let mut failover = Failover::new(3, 100 * MS, 400 * MS);
        let failed = SessionEnd::default();
        assert_eq!((failover.session_ended(failed), failover.current()), (None, 1));
        assert_eq!((failover.session_ended(failed), failover.current()), (None, 2));
        assert_eq!((failover.session_ended(failed), failover.current()), (Some(100 * MS), 0), "round over");
        assert_eq!(failover.session_ended(failed), None);
        assert_eq!(failover.session_ended(failed), None);
        assert_eq!(failover.session_ended(failed), Some(200 * MS));

        // Control plane 0 served for a while, then went away: 1 and 2 are tried without a wait.
        let served = SessionEnd { applied: true, stayed_up: true };
        assert_eq!((failover.session_ended(served), failover.current()), (None, 1));
        assert_eq!(failover.session_ended(failed), None);
        assert_eq!(failover.session_ended(failed), Some(100 * MS), "the backoff started over");
    }

    #[test]
    fn control_planes_that_drop_every_stream_at_once_still_get_a_wait_per_round() {
        let mut failover = Failover::new(2, 100 * MS, 400 * MS);
        let brief = SessionEnd { applied: true, stayed_up: false };
        assert_eq!(failover.session_ended(brief), None);
        assert_eq!(failover.session_ended(brief), Some(100 * MS));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_configuration_is_built_while_the_only_worker_stays_free() {
        let mut client = client();
        let routing = client.routing.clone();
        let apply = client.apply(full_update(7, (0..2000).map(route)));
        tokio::pin!(apply);
        let mut other_work = 0;
        let answer = loop {
            tokio::select! {
                // The build first: had it run on this thread, it would finish on the first poll.
                biased;
                answer = &mut apply => break answer,
                _ = tokio::task::yield_now() => other_work += 1,
            }
        };
        assert!(matches!(answer, Ok(Message::Ack(pb::Ack { revision: 7, .. }))));
        assert!(other_work > 0, "the worker ran nothing else while the table was built");
        assert_eq!(routing.revision(), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_rejected_revision_is_nacked_with_the_api_and_the_last_good_table_stays() {
        let mut client = client();
        assert!(matches!(client.apply(full_update(1, [route(1)])).await, Ok(Message::Ack(_))));
        let mut bad = route(2);
        bad.client_certificate_thumbprint = "AB".repeat(20);
        let Ok(Message::Nack(nack)) = client.apply(full_update(2, [route(1), bad])).await else {
            panic!("the update was not NACKed")
        };
        assert_eq!((nack.revision, nack.nonce.as_str(), nack.resource_ids), (2, "n2", vec!["api-2".to_string()]));
        assert!(nack.reason.starts_with("API 'api-2': client certificate "), "{}", nack.reason);
        assert_eq!(client.routing.revision(), 1);
        assert_eq!(client.current.revision, 1, "the next delta applies to the last good revision");
    }
}
