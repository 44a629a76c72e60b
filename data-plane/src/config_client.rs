//! Keeps the routing table current: one long-lived `ConfigSync.Sync` stream to the control
//! plane, reconnected with capped exponential backoff and jitter. Each revision is applied off
//! the request path (built on tokio's blocking pool, never on the proxy's workers), swapped in,
//! then ACKed (or NACKed with the reason, keeping the last good table); one revision is in
//! flight at a time. While the control plane is away, the last applied table keeps serving;
//! each applied configuration also goes to the last-known-good cache.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    /// e.g. https://127.0.0.1:7400
    pub control_plane: String,
    /// The CA the control plane's certificate is checked against (default: system roots).
    pub control_plane_ca: Option<std::path::PathBuf>,
    /// Bearer token with the gateway role.
    pub token: Option<String>,
    /// How this data plane is listed by `gateway list`.
    pub name: String,
    /// First wait before a reconnect; doubled on each failure.
    pub initial_backoff: Duration,
    /// Longest wait before a reconnect.
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
    /// Checks what cannot get better by retrying (the URL, the CA file, the token's format),
    /// so a misconfigured data plane stops at start with one clear line.
    pub fn check(&self) -> Result<(), client::ClientError> {
        client::endpoint(&self.control_plane, self.control_plane_ca.as_deref())?;
        client::BearerToken::new(self.token.as_deref())?;
        Ok(())
    }

    /// Settings with the defaults of `gatehouse-dp`'s flags.
    pub fn new(control_plane: String, name: String, trust: TrustAnchors) -> Self {
        Self {
            control_plane,
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
        Self { settings, routing, current: Arc::default(), cache_writes: None }
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

    /// Runs forever: sync, and on any failure wait and reconnect.
    pub async fn run(mut self) {
        let mut backoff = self.settings.initial_backoff;
        loop {
            let applied_before = self.routing.revision();
            let result = self.session().await;
            self.routing.status.connected.store(false, Ordering::Relaxed);
            if self.routing.revision() != applied_before {
                // The session made progress: the next reconnect starts fast again.
                backoff = self.settings.initial_backoff;
            }
            let wait = jittered(backoff);
            match result {
                Err(error) => tracing::warn!(
                    control_plane = %self.settings.control_plane,
                    error = %error_chain(&error),
                    retry_in = ?wait,
                    "cannot sync with the control plane; retrying"
                ),
                Ok(()) => tracing::info!(retry_in = ?wait, "reconnecting to the control plane"),
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    async fn session(&mut self) -> Result<(), SessionError> {
        let keepalive = self.settings.keepalive;
        let endpoint = client::endpoint(&self.settings.control_plane, self.settings.control_plane_ca.as_deref())
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
        // Connected and told nothing new means our configuration is current.
        crate::metrics::global().synced();
        tracing::info!(control_plane = %self.settings.control_plane, held = self.current.revision, "config sync connected");

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
        let (trust, max_routes) = (self.settings.trust.clone(), self.settings.max_routes);
        let (next, built) = off_the_workers(move || {
            let next = current.apply(&update).map_err(SessionError::OutOfStep)?;
            let built = RoutingTable::build(&next, previous.as_deref(), &trust, max_routes);
            Ok::<_, SessionError>((next, built))
        })
        .await?;
        let status = &self.routing.status;
        match built {
            Ok(table) => {
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

/// Runs `work` on tokio's blocking pool: building a large table takes long enough to stall
/// requests if it ran on a worker (with `--worker-threads 1`, on the only one). A panic in
/// `work` goes on unwinding here, as it would have inline.
async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
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
        let settings = ConfigClientSettings::new("http://127.0.0.1:1".into(), "test".into(), TrustAnchors::system());
        ConfigClient::new(settings, Arc::new(Routing::default()))
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
