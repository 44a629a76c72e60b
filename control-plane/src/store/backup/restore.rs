//! A backup restored into an empty data directory: checked first (its key check and every
//! record under the master key), then written in one sled transaction (records and tokens),
//! flushed, and the revision watermark set at the backup's revision, so a control plane started
//! there serves exactly the backup and refuses to start should the database later lose writes.
//!
//! The restored store gets a configuration id of its own: its revisions after the backup's are
//! not the ones the old store made after it (those are lost, or live on elsewhere), so a data
//! plane that holds one of those gets a full snapshot, never a delta from a revision it does not
//! have.

use std::path::{Path, PathBuf};

use sled::Transactional;

use super::super::{StoreError, records};
use super::{Backup, BackupError, TOKENS_TREE, database_dir, load_key, watermark};
use crate::model::State;

/// What a restore wrote.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The restored store's own configuration id.
    pub config_id: String,
    /// The configuration id of the store the backup was taken from.
    pub backup_config_id: String,
    /// The revision, as in the backup.
    pub revision: u64,
    /// Configuration records written.
    pub records: usize,
    /// Tokens written.
    pub tokens: usize,
}

/// Restores `backup` into `data_dir`, which must be empty or missing (or hold only the master
/// key file, `key_file`). Nothing is written unless `key_file` opens the backup.
pub fn restore(data_dir: &Path, backup: &Backup, key_file: &Path) -> Result<Restored, BackupError> {
    let found = contents(data_dir, key_file)?;
    if !found.is_empty() {
        return Err(BackupError::NotEmpty { dir: data_dir.to_path_buf(), found });
    }
    let key = load_key(key_file)?;
    if !backup.opens_with(&key) {
        return Err(BackupError::WrongBackupKey { key_file: key_file.to_path_buf() });
    }
    // Every record must load under the key, and agree with the header, before anything is written.
    let mut state = State::default();
    for (name, value) in backup.records() {
        records::apply(&mut state, name, Some(value), &key).map_err(BackupError::BackupRecords)?;
    }
    let stored_id = backup.records().iter().find(|(name, _)| name == records::CONFIG_ID_KEY.as_bytes());
    if stored_id.is_none_or(|(_, id)| id != backup.config_id.as_bytes()) || state.revision != backup.revision {
        return Err(BackupError::BackupRecords(StoreError::Corrupt {
            key: records::CONFIG_ID_KEY.into(),
            source: "the records' configuration id or revision is not the header's".into(),
        }));
    }
    gatehouse_shared::sealed::create_private_dir(data_dir).map_err(|source| BackupError::File {
        action: "create",
        path: data_dir.to_path_buf(),
        source,
    })?;
    let db = sled::Config::new()
        .path(database_dir(data_dir))
        .open()
        .map_err(|source| BackupError::Database { dir: data_dir.to_path_buf(), source })?;
    let tokens = db.open_tree(TOKENS_TREE)?;
    let batch = |entries: &[(Vec<u8>, Vec<u8>)]| {
        let mut batch = sled::Batch::default();
        for (name, value) in entries {
            batch.insert(name.as_slice(), value.as_slice());
        }
        batch
    };
    let config_id = records::random_id();
    let mut record_batch = batch(backup.records());
    record_batch.insert(records::CONFIG_ID_KEY, config_id.as_bytes());
    let token_batch = batch(backup.tokens());
    // One transaction over both trees: a restore cut short leaves no configuration without its
    // tokens, nor tokens without a configuration.
    (&*db, &tokens)
        .transaction(|(records, tokens)| {
            records.apply_batch(&record_batch)?;
            tokens.apply_batch(&token_batch)?;
            Ok::<_, sled::transaction::ConflictableTransactionError<sled::Error>>(())
        })
        .map_err(|error| match error {
            sled::transaction::TransactionError::Abort(error) | sled::transaction::TransactionError::Storage(error) => {
                BackupError::Storage(error)
            }
        })?;
    db.flush()?;
    drop(db);
    watermark(data_dir).record(&config_id, backup.revision).map_err(BackupError::Watermark)?;
    Ok(Restored {
        config_id,
        backup_config_id: backup.config_id.clone(),
        revision: state.revision,
        records: backup.record_count(),
        tokens: backup.token_count(),
    })
}

/// The names in `dir` other than the master key file (none when `dir` does not exist).
fn contents(dir: &Path, key_file: &Path) -> Result<Vec<String>, BackupError> {
    let unreadable = |source| BackupError::File { action: "read", path: dir.to_path_buf(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(unreadable(error)),
    };
    let key_file = absolute(key_file);
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        if absolute(&entry.path()) != key_file {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// `path` made absolute, to compare two spellings of one file.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
