//! `gatehouse-cp migrate --to-etcd`: copies a sled store (records and tokens, as they are:
//! sealed under the same master key) into an empty etcd prefix. A marker goes first and the
//! store's id and revision last, in one transaction that removes the marker: a control plane
//! refuses to start while the marker is there, so it never serves a half copy.

use std::path::{Path, PathBuf};

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use gatehouse_shared::sealed::{SealError, SealingKey};

use super::etcd::{Etcd, EtcdOptions, MIGRATING_KEY, unavailable};
use super::records::{KEY_CHECK_KEY, key_check};
use super::{Store, StoreError, records};

/// Puts per etcd transaction (etcd allows 128 operations in one by default).
const CHUNK: usize = 100;

/// What was copied.
#[derive(Debug)]
pub struct Migrated {
    /// The revision the store was at.
    pub revision: u64,
    /// Configuration records copied.
    pub records: usize,
    /// Tokens copied.
    pub tokens: usize,
}

/// Why the copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No master key file: the records are sealed, and etcd gets them sealed under that key.
    #[error("no master key at {0}: give the key the sled store was sealed with (--master-key-file)")]
    NoMasterKey(PathBuf),
    /// The master key cannot be read.
    #[error("master key")]
    MasterKey(#[source] SealError),
    /// sled cannot open the database (is the control plane still running on it?).
    #[error("cannot open the database in {0} (stop the control plane that uses it first)")]
    Database(PathBuf, #[source] sled::Error),
    /// The sled store does not load.
    #[error("the sled store does not load")]
    Load(#[source] StoreError),
    /// etcd holds a configuration under the prefix already.
    #[error(
        "etcd already holds a Gatehouse configuration under {0}: migrate only into an empty prefix (or choose another --etcd-prefix)"
    )]
    NotEmpty(String),
    /// etcd failed.
    #[error(transparent)]
    Etcd(StoreError),
}

/// Copies the sled store in `data_dir` into etcd.
pub async fn sled_to_etcd(data_dir: &Path, key_file: &Path, options: &EtcdOptions) -> Result<Migrated, MigrateError> {
    if !key_file.exists() {
        return Err(MigrateError::NoMasterKey(key_file.to_path_buf()));
    }
    let key = SealingKey::load_or_create(key_file).map_err(MigrateError::MasterKey)?;
    let db = sled::Config::new()
        .path(data_dir.join("sled"))
        .open()
        .map_err(|e| MigrateError::Database(data_dir.to_path_buf(), e))?;
    // Everything must open under this key before anything is copied.
    let store = Store::open(db.clone(), key, None).map_err(MigrateError::Load)?;
    let revision = store.state().revision;
    let etcd = Etcd::connect(options).await.map_err(MigrateError::Etcd)?;
    let config_id_key = etcd.key(&format!("config/{}", records::CONFIG_ID_KEY));
    let existing =
        etcd.client().get(config_id_key.clone(), None).await.map_err(|e| MigrateError::Etcd(unavailable(e)))?;
    if !existing.kvs().is_empty() {
        return Err(MigrateError::NotEmpty(options.prefix.clone()));
    }
    let mut puts = Vec::new();
    let mut count = 0;
    for item in db.iter() {
        let (name, value) = item.map_err(|e| MigrateError::Load(e.into()))?;
        if name.as_ref() == records::CONFIG_ID_KEY.as_bytes() || name.as_ref() == records::REVISION_KEY.as_bytes() {
            continue;
        }
        let mut full = etcd.key("config/");
        full.extend_from_slice(&name);
        puts.push(TxnOp::put(full, value.to_vec(), None));
        count += 1;
    }
    let tokens = db.open_tree("tokens").map_err(|e| MigrateError::Load(e.into()))?;
    let mut token_count = 0;
    for item in tokens.iter() {
        let (name, value) = item.map_err(|e| MigrateError::Load(e.into()))?;
        let mut full = etcd.key("tokens/");
        full.extend_from_slice(&name);
        puts.push(TxnOp::put(full, value.to_vec(), None));
        token_count += 1;
    }
    let mut client = etcd.client();
    // First the marker that keeps control planes off the half copy (a copy that stopped
    // half-way is simply run again: the puts overwrite).
    let config = |rest: &str| etcd.key(&format!("config/{rest}"));
    let marker = Txn::new()
        .when([Compare::version(config_id_key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(config(MIGRATING_KEY), "1", None)]);
    if !client.txn(marker).await.map_err(|e| MigrateError::Etcd(unavailable(e)))?.succeeded() {
        return Err(MigrateError::NotEmpty(options.prefix.clone()));
    }
    for chunk in puts.chunks(CHUNK) {
        client.txn(Txn::new().and_then(chunk.to_vec())).await.map_err(|e| MigrateError::Etcd(unavailable(e)))?;
    }
    let config_id = store.config_id().to_string();
    let last = Txn::new().when([Compare::version(config_id_key, CompareOp::Equal, 0)]).and_then([
        TxnOp::put(config(records::REVISION_KEY), revision.to_be_bytes().to_vec(), None),
        TxnOp::put(config(KEY_CHECK_KEY), key_check(&store.key), None),
        TxnOp::put(config(records::CONFIG_ID_KEY), config_id, None),
        TxnOp::delete(config(MIGRATING_KEY), None),
    ]);
    let response = client.txn(last).await.map_err(|e| MigrateError::Etcd(unavailable(e)))?;
    if !response.succeeded() {
        return Err(MigrateError::NotEmpty(options.prefix.clone()));
    }
    Ok(Migrated { revision, records: count, tokens: token_count })
}
