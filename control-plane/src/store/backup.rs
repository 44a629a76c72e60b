//! Backups of the sled store, restoring one into an empty data directory, and re-sealing the
//! store under a new master key (`gatehouse-cp backup`, `restore`, `rotate-master-key`).
//!
//! A backup is taken under the store's writer lock, so no commit lands while sled's trees are
//! read: it holds exactly one revision. sled lets one process open a database, so while a
//! control plane serves from the data directory the backup comes from it, over the
//! `CreateBackup` RPC ([`Remote`]); with none running, `gatehouse-cp` opens the database itself.
//! Either way the file carries the records as stored, sealed under the master key.

mod format;
mod online;
mod restore;
mod rotate;

use std::path::{Path, PathBuf};

use gatehouse_shared::sealed::{SealError, SealingKey};

pub use format::{Backup, FORMAT_VERSION, FormatError, MAGIC};
pub use online::Remote;
pub use restore::{Restored, restore};
pub use rotate::{Rotated, rotate_master_key};

use super::backend::Backend;
use super::{Store, StoreError, records};
use crate::watermark::Watermark;
use format::Entry;

/// sled's tree of tokens (see `tokens.rs`).
const TOKENS_TREE: &str = "tokens";

/// Why a backup, a restore or a master key rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store is in etcd: etcd's own snapshot is its backup.
    #[error(
        "this control plane keeps its configuration in etcd: back up etcd itself (etcdctl snapshot save) and keep the master key apart from it"
    )]
    Etcd,
    /// No database in the data directory.
    #[error("there is no database in {0} (no sled folder): is it the control plane's --data-dir?")]
    NoDatabase(PathBuf),
    /// A running control plane holds the database (sled lets one process open it).
    #[error(
        "the database in {0} is in use by a running control plane (sled allows one process at a time): stop it first"
    )]
    Locked(PathBuf),
    /// sled cannot open the database.
    #[error("cannot open the database in {dir}")]
    Database {
        /// The data directory.
        dir: PathBuf,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// sled failed while reading or writing.
    #[error("the database failed")]
    Storage(#[from] sled::Error),
    /// The store does not load (a damaged record, or a database behind its watermark).
    #[error("the store in {dir} does not load")]
    Load {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The revision watermark cannot be written.
    #[error("cannot record the restored revision")]
    Watermark(#[source] crate::watermark::WatermarkError),
    /// The master key file is not there.
    #[error("no master key at {0}: give the key the store was sealed with (--master-key-file)")]
    NoMasterKey(PathBuf),
    /// The master key file cannot be used.
    #[error("master key")]
    MasterKey(#[source] SealError),
    /// The master key does not open the store.
    #[error(
        "the master key {key_file} does not open the store in {dir}: it was sealed under another key; give that one (--master-key-file)"
    )]
    WrongMasterKey {
        /// The key file given.
        key_file: PathBuf,
        /// The data directory.
        dir: PathBuf,
    },
    /// The master key does not open the backup's key check.
    #[error(
        "the master key {key_file} does not open this backup: it was made under another master key; give that one (--master-key-file, or put it at DATA_DIR/master.key)"
    )]
    WrongBackupKey {
        /// The key file given.
        key_file: PathBuf,
    },
    /// A record of the backup does not open under its own key: the backup is damaged.
    #[error("the backup's records do not load under its master key")]
    BackupRecords(#[source] StoreError),
    /// A restore into a folder that holds something.
    #[error(
        "the data directory {dir} is not empty (it holds {}): restore only into an empty folder (the master key file may be there), so nothing mixes with the backup",
        found.join(", ")
    )]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
        /// What is in it.
        found: Vec<String>,
    },
    /// A rotation to the key the store has.
    #[error("{new_key_file} holds the same key as {key_file}: give a new key")]
    SameKey {
        /// The current key file.
        key_file: PathBuf,
        /// The new key file.
        new_key_file: PathBuf,
    },
    /// Re-sealing left a record that the new key does not open; nothing was written.
    #[error("re-sealing under the new key left a record it does not open; nothing was changed")]
    Reseal(#[source] StoreError),
    /// A file cannot be read or written.
    #[error("cannot {action} {path}")]
    File {
        /// "read", "write", ...
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The backup file is not one this build restores.
    #[error("{path} is not a usable backup")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: FormatError,
    },
    /// The control plane's answer is not a backup.
    #[error("the control plane at {url} sent something that is not a backup")]
    Received {
        /// The control plane.
        url: String,
        /// Why.
        #[source]
        source: FormatError,
    },
    /// The client cannot be set up (URL, CA file, token file).
    #[error(transparent)]
    Client(#[from] gatehouse_shared::client::ClientError),
    /// The control plane cannot be reached.
    #[error("cannot reach the control plane at {url} to take the backup from it (give its address with --server)")]
    Connect {
        /// The control plane.
        url: String,
        /// What tonic said.
        #[source]
        source: tonic::transport::Error,
    },
    /// The control plane refused or failed the backup.
    #[error("the control plane at {url} gave no backup: {code:?}: {message}")]
    Refused {
        /// The control plane.
        url: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
}

// === impl Store ===

impl Store {
    /// A backup of this store at its current revision: every record as stored (sealed) and
    /// the tokens. [`BackupError::Etcd`] for an etcd store.
    pub async fn backup(&self) -> Result<Backup, BackupError> {
        let db = match &self.backend {
            Backend::Sled { db, .. } => db,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => return Err(BackupError::Etcd),
        };
        let tokens = db.open_tree(TOKENS_TREE)?;
        let (records, tokens) = {
            // Every commit holds the writer lock, so the records read under it are one revision.
            let _writer = self.writer.lock().await;
            (entries(db)?, entries(&tokens)?)
        };
        Ok(Backup::of(&self.config_id, records, tokens, records::key_check(&self.key)))
    }
}

/// Every entry of `tree`, in key order.
fn entries(tree: &sled::Tree) -> Result<Vec<Entry>, sled::Error> {
    tree.iter().map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec()))).collect()
}

// === taking a backup ===

/// Where a backup came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Read from the database directly: no control plane was running on it.
    Database,
    /// Made by the control plane serving the data directory, at this URL.
    ControlPlane(String),
}

/// Takes a backup of the store in `data_dir`: from its database when no control plane holds
/// it (`key_file` makes the key check, and every record must open under it), otherwise from
/// the control plane serving it, reached by `running`. With `always_remote`, from `running`
/// without trying the database.
pub async fn take(
    data_dir: &Path,
    key_file: &Path,
    running: &Remote,
    always_remote: bool,
) -> Result<(Backup, Origin), BackupError> {
    if !always_remote {
        match open_store(data_dir, key_file) {
            Ok((_, store)) => return Ok((store.backup().await?, Origin::Database)),
            Err(BackupError::Locked(_)) => {
                tracing::info!(dir = %data_dir.display(), url = %running.url, "the database is in use: asking the control plane for the backup");
            }
            Err(error) => return Err(error),
        }
    }
    Ok((running.fetch().await?, Origin::ControlPlane(running.url.clone())))
}

/// Writes `backup` to `path` atomically (a temporary file beside it, then a rename), mode 0600.
pub fn write(backup: &Backup, path: &Path) -> Result<(), BackupError> {
    gatehouse_shared::sealed::write_private_file(path, &backup.encode()).map_err(|source| BackupError::File {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a backup file.
pub fn read(path: &Path) -> Result<Backup, BackupError> {
    let bytes =
        std::fs::read(path).map_err(|source| BackupError::File { action: "read", path: path.to_path_buf(), source })?;
    Backup::decode(&bytes).map_err(|source| BackupError::Format { path: path.to_path_buf(), source })
}

// === the data directory, offline ===

/// The sled database of a data directory (as the control plane opens it).
fn database_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sled")
}

/// The revision watermark of a data directory (as the control plane keeps it).
fn watermark(data_dir: &Path) -> Watermark {
    Watermark::new(data_dir.join("committed-revision"))
}

/// Opens the existing database of `data_dir`; [`BackupError::Locked`] while a control plane
/// holds it.
fn open_database(data_dir: &Path) -> Result<sled::Db, BackupError> {
    let path = database_dir(data_dir);
    if !path.is_dir() {
        return Err(BackupError::NoDatabase(data_dir.to_path_buf()));
    }
    sled::Config::new().path(path).open().map_err(|source| match is_locked(&source) {
        true => BackupError::Locked(data_dir.to_path_buf()),
        false => BackupError::Database { dir: data_dir.to_path_buf(), source },
    })
}

/// Whether sled refused to open a database because another process holds its lock. sled says
/// so only in words (an `io::ErrorKind::Other` "could not acquire lock on ...").
fn is_locked(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Loads an existing master key; never makes one (a new key would open nothing).
fn load_key(key_file: &Path) -> Result<SealingKey, BackupError> {
    if !key_file.is_file() {
        return Err(BackupError::NoMasterKey(key_file.to_path_buf()));
    }
    SealingKey::load_or_create(key_file).map_err(BackupError::MasterKey)
}

/// Opens the store of `data_dir` as a control plane would (key check, every record, watermark),
/// with no control plane running on it.
fn open_store(data_dir: &Path, key_file: &Path) -> Result<(sled::Db, Store), BackupError> {
    let db = open_database(data_dir)?;
    let key = load_key(key_file)?;
    let store = Store::open(db.clone(), key, Some(watermark(data_dir))).map_err(|source| match source {
        StoreError::WrongMasterKey => {
            BackupError::WrongMasterKey { key_file: key_file.to_path_buf(), dir: data_dir.to_path_buf() }
        }
        source => BackupError::Load { dir: data_dir.to_path_buf(), source },
    })?;
    Ok((db, store))
}

#[cfg(test)]
mod tests;
