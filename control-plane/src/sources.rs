//! Watching the files linked certificates and named values come from: every poll, each source's
//! files are read (following symlinks anew, so in-place writes, rename-over and Kubernetes
//! symlink swaps are all seen); when what they hold changed, the store applies it or keeps the
//! last good certificate (or value). Named values' files are read in `named_values.rs`.

use std::sync::Arc;
use std::time::Duration;

mod named_values;

pub use named_values::{ValueFile, ValueFileError, refresh_named_value};

use crate::certificate::{ClientCertificate, SourceContents, error_hash};
use crate::management::Limits;
use crate::model::SourceFiles;
use crate::store::{RefreshOutcome, Store, StoreError};

/// Default time between two reads of every source.
pub const DEFAULT_POLL: Duration = Duration::from_secs(10);

/// Reads `id`'s source and applies it. Without `force`, files that hold what they held at the
/// last read are left alone (neither parsed nor recorded again). Refusals are counted in
/// `gatehouse_cp_certificate_refresh_failures_total`.
pub async fn refresh(store: &Store, id: &str, limits: &Limits, force: bool) -> Result<RefreshOutcome, StoreError> {
    let state = store.state();
    if !state.certificates.contains_key(id) {
        return Err(StoreError::NotFound { kind: crate::store::ResourceKind::Certificate, id: id.to_string() });
    }
    let Some(source) = state.certificate_sources.get(id) else {
        return Err(StoreError::NotLinked { kind: crate::store::ResourceKind::Certificate, id: id.to_string() });
    };
    let files = source.files.clone();
    let read_files = files.clone();
    let previous = source.content_hash.clone();
    let (max_bytes, max_chain) = (limits.max_pfx_bytes, limits.max_chain_length);
    // Reading and decrypting (PBKDF2) is blocking, CPU-bound work.
    let read =
        tokio::task::spawn_blocking(move || read(&read_files, max_bytes, max_chain, (!force).then_some(previous)))
            .await
            .expect("reading a certificate source does not panic");
    let Some((hash, read)) = read else {
        return Ok(RefreshOutcome::Unchanged);
    };
    let outcome = store.refresh_certificate(id, &files, hash, read).await?;
    match &outcome {
        RefreshOutcome::Rotated(revision) => {
            tracing::info!(%id, revision, "certificate refreshed from its source");
        }
        RefreshOutcome::Unchanged => {}
        RefreshOutcome::Refused(message) => {
            crate::metrics::global().certificate_refresh_failed(id);
            tracing::warn!(%id, error = %message, "certificate source refused; keeping the last good certificate");
        }
    }
    Ok(outcome)
}

/// As [`refresh`], for a linked CA certificate; refusals are counted in
/// `gatehouse_cp_ca_certificate_refresh_failures_total`.
pub async fn refresh_ca(store: &Store, id: &str, limits: &Limits, force: bool) -> Result<RefreshOutcome, StoreError> {
    let state = store.state();
    if !state.ca_certificates.contains_key(id) {
        return Err(StoreError::NotFound { kind: crate::store::ResourceKind::CaCertificate, id: id.to_string() });
    }
    let Some(source) = state.ca_sources.get(id) else {
        return Err(StoreError::NotLinked { kind: crate::store::ResourceKind::CaCertificate, id: id.to_string() });
    };
    let files = source.files.clone();
    let (read_files, previous, max_bytes) = (files.clone(), source.content_hash.clone(), limits.max_pfx_bytes);
    let read = tokio::task::spawn_blocking(move || {
        let (hash, read) = match SourceContents::read(&read_files, max_bytes) {
            Ok(contents) => (contents.hash(), contents.parse_ca().map_err(|e| format!("CA certificate refused: {e}"))),
            Err(error) => (error_hash(&error), Err(gatehouse_shared::error_chain(&error))),
        };
        (force || hash != previous).then_some((hash, read))
    })
    .await
    .expect("reading a CA certificate source does not panic");
    let Some((hash, read)) = read else {
        return Ok(RefreshOutcome::Unchanged);
    };
    let outcome = store.refresh_ca_certificate(id, &files, hash, read).await?;
    match &outcome {
        RefreshOutcome::Rotated(revision) => tracing::info!(%id, revision, "CA certificate refreshed from its file"),
        RefreshOutcome::Unchanged => {}
        RefreshOutcome::Refused(message) => {
            crate::metrics::global().ca_certificate_refresh_failed(id);
            tracing::warn!(%id, error = %message, "CA certificate file refused; keeping the last good certificate");
        }
    }
    Ok(outcome)
}

/// Reads the files; `None` when they hash to `unless` (nothing changed).
fn read(
    files: &SourceFiles,
    max_bytes: usize,
    max_chain: usize,
    unless: Option<Vec<u8>>,
) -> Option<(Vec<u8>, Result<ClientCertificate, String>)> {
    let (hash, read) = match SourceContents::read(files, max_bytes) {
        Ok(contents) => {
            let hash = contents.hash();
            if unless.as_ref() == Some(&hash) {
                return None;
            }
            let parsed = contents
                .parse(files, max_chain)
                // Worded exactly as an upload's refusal.
                .map_err(|e| format!("certificate refused: {e}"));
            (hash, parsed)
        }
        Err(error) => (error_hash(&error), Err(gatehouse_shared::error_chain(&error))),
    };
    match unless.as_ref() == Some(&hash) {
        true => None,
        false => Some((hash, read)),
    }
}

/// Reads every linked source each `poll`, for as long as the control plane runs.
pub async fn watch(store: Arc<Store>, limits: Limits, poll: Duration) {
    let mut ticks = tokio::time::interval(poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let ids: Vec<String> = store.state().certificate_sources.keys().cloned().collect();
        for id in ids {
            let result = refresh(&store, &id, &limits, false).await;
            log_failure(&id, result);
        }
        let ca_ids: Vec<String> = store.state().ca_sources.keys().cloned().collect();
        for id in ca_ids {
            let result = refresh_ca(&store, &id, &limits, false).await;
            log_failure(&id, result);
        }
        let names: Vec<String> = store.state().named_value_sources.keys().cloned().collect();
        for name in names {
            let result = refresh_named_value(&store, &name, false).await;
            log_failure(&name, result);
        }
    }
}

/// Logs a refresh the store could not record (a refusal is recorded, not an error; a source
/// unlinked meanwhile is nothing to report).
fn log_failure(id: &str, result: Result<RefreshOutcome, StoreError>) {
    match result {
        Ok(_) | Err(StoreError::NotFound { .. } | StoreError::NotLinked { .. }) => {}
        Err(error) => tracing::error!(%id, error = %gatehouse_shared::error_chain(&error), "cannot refresh"),
    }
}
