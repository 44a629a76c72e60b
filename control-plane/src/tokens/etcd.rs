//! Tokens in etcd, under `PREFIX/tokens/NAME`, so a token made on one control plane works on
//! every one. Each control plane watches the prefix: a token revoked anywhere is dropped here
//! too, and the streams it opened here end.

use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp, WatchOptions};

use super::{Storage, TokenError, Tokens};
use crate::store::etcd::{Etcd, unavailable};

fn key(etcd: &Etcd, name: &str) -> Vec<u8> {
    etcd.key(&format!("tokens/{name}"))
}

/// Stores the token record `value` under `name` unless a token has that name; false if one has.
pub(super) async fn insert_new(etcd: &Etcd, name: &str, value: Vec<u8>) -> Result<bool, TokenError> {
    let txn = Txn::new().when([Compare::version(key(etcd, name), CompareOp::Equal, 0)]).and_then([TxnOp::put(
        key(etcd, name),
        value,
        None,
    )]);
    let response = etcd.client().txn(txn).await.map_err(|e| TokenError::Unavailable(unavailable(e)))?;
    Ok(response.succeeded())
}

/// Removes the token named `name`; false if there was none.
pub(super) async fn remove(etcd: &Etcd, name: &str) -> Result<bool, TokenError> {
    let response =
        etcd.client().delete(key(etcd, name), None).await.map_err(|e| TokenError::Unavailable(unavailable(e)))?;
    Ok(response.deleted() > 0)
}

impl Tokens {
    /// Loads the tokens kept in etcd and follows what other control planes change.
    pub async fn open_etcd(etcd: Etcd) -> Result<Arc<Self>, TokenError> {
        let tokens = Arc::new(Self::with_storage(Storage::Etcd(Box::new(etcd.clone()))));
        tokens.reload_etcd(&etcd).await?;
        tokio::spawn(follow(Arc::downgrade(&tokens), etcd));
        Ok(tokens)
    }

    /// Reads the tokens again; a read older than the one in use is dropped.
    pub(super) async fn reload_etcd(&self, etcd: &Etcd) -> Result<(), TokenError> {
        let (position, entries) = etcd.get_all("tokens/").await.map_err(TokenError::Unavailable)?;
        let mut loaded_at = self.loaded_at.lock().expect("tokens lock");
        if position >= *loaded_at {
            self.load(entries.iter().map(|(_, value)| value.as_slice()));
            *loaded_at = position;
        }
        Ok(())
    }
}

/// Reloads the tokens on every change under `PREFIX/tokens/` until they are dropped; a
/// change that removed a token ends the streams it opened here.
async fn follow(tokens: Weak<Tokens>, etcd: Etcd) {
    loop {
        let watch = etcd.client().watch(etcd.key("tokens/"), Some(WatchOptions::new().with_prefix())).await;
        match watch {
            Ok(mut stream) => {
                // Whatever changed while no watch was open.
                if let Some(tokens) = tokens.upgrade() {
                    let _ = tokens.reload_etcd(&etcd).await;
                    tokens.revoked();
                }
                while let Ok(Some(response)) = stream.message().await {
                    let Some(tokens) = tokens.upgrade() else { return };
                    // A revocation must take here too: read until the read works.
                    while let Err(error) = tokens.reload_etcd(&etcd).await {
                        tracing::warn!(error = %gatehouse_shared::error_chain(&error), "cannot reload the tokens from etcd; trying again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    if response.events().iter().any(|e| e.event_type() == etcd_client::EventType::Delete) {
                        tokens.revoked();
                    }
                }
            }
            Err(error) => tracing::warn!(
                error = crate::store::etcd::describe(&error),
                "cannot watch the tokens in etcd; trying again"
            ),
        }
        if tokens.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
