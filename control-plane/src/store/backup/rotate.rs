//! A new master key for a sled store, offline: every sealed value (certificate private keys,
//! Basic passwords and secret headers of APIs, PFX passwords of linked certificates, secret
//! named values) and the key check are sealed again under the new key and written in one sled
//! batch, checked first by loading the whole store under the new key in memory. The key file is
//! replaced only after the batch is flushed, the old key kept beside it as `KEY.old` (0600).
//!
//! Stopped anywhere, nothing is half re-sealed: before the flush the store is as it was; after
//! it, the store opens under the new key only, and running the rotation again finds it so and
//! only swaps the key files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gatehouse_shared::sealed::{SealingKey, write_private_file};

use super::super::{Store, StoreError, records};
use super::format::Entry;
use super::{BackupError, load_key, open_database, watermark};
use crate::model::State;

/// What a rotation did.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// Records sealed again (0: an earlier run had re-sealed them and stopped before the key
    /// files were swapped).
    pub resealed: usize,
    /// The master key file, which now holds the new key.
    pub key_file: PathBuf,
    /// Where the old key is kept: delete it once the control plane serves under the new one.
    pub old_key_file: PathBuf,
    /// Whether the new key file did not exist and a random key was made there.
    pub made_new_key: bool,
}

/// Re-seals the store in `data_dir` (sealed under `key_file`) under the key in `new_key_file`
/// (made, random and 0600, if missing), then makes `key_file` hold the new key and
/// `key_file.old` the old one. Refused while a control plane holds the database.
pub fn rotate_master_key(data_dir: &Path, key_file: &Path, new_key_file: &Path) -> Result<Rotated, BackupError> {
    let old_key = load_key(key_file)?;
    let old_bytes = read(key_file)?;
    let db = open_database(data_dir)?;
    let made_new_key = !new_key_file.exists();
    let new_key = SealingKey::load_or_create(new_key_file).map_err(BackupError::MasterKey)?;
    let new_bytes = read(new_key_file)?;
    if old_bytes == new_bytes {
        return Err(BackupError::SameKey {
            key_file: key_file.to_path_buf(),
            new_key_file: new_key_file.to_path_buf(),
        });
    }
    let old_key_file = with_suffix(key_file, ".old");
    let check = db.get(records::KEY_CHECK_KEY)?;
    let resumed = check
        .as_ref()
        .is_some_and(|check| records::opens_key_check(&new_key, check) && !records::opens_key_check(&old_key, check));
    let entries = if resumed {
        // Re-sealed and flushed by an earlier run: it must load under the new key.
        open(&db, data_dir, new_key, new_key_file)?;
        None
    } else {
        let store = open(&db, data_dir, old_key, key_file)?;
        let entries = resealed(&store.state(), &new_key);
        check_loads(&db, &entries, &new_key)?;
        Some(entries)
    };
    // The old key is kept before the store stops opening with it.
    write_private_file(&old_key_file, &old_bytes).map_err(|source| file_error(&old_key_file, source))?;
    let resealed = match entries {
        None => 0,
        Some(entries) => {
            let mut batch = sled::Batch::default();
            for (name, value) in &entries {
                batch.insert(name.as_slice(), value.as_slice());
            }
            db.apply_batch(batch)?;
            db.flush()?;
            entries.len() - 1
        }
    };
    drop(db);
    write_private_file(key_file, &new_bytes).map_err(|source| file_error(key_file, source))?;
    Ok(Rotated { resealed, key_file: key_file.to_path_buf(), old_key_file, made_new_key })
}

/// The store in `db` opened under `key` (from `key_file`), as a control plane opens it.
fn open(db: &sled::Db, data_dir: &Path, key: SealingKey, key_file: &Path) -> Result<Store, BackupError> {
    Store::open(db.clone(), key, Some(watermark(data_dir))).map_err(|source| match source {
        StoreError::WrongMasterKey => {
            BackupError::WrongMasterKey { key_file: key_file.to_path_buf(), dir: data_dir.to_path_buf() }
        }
        source => BackupError::Load { dir: data_dir.to_path_buf(), source },
    })
}

/// The key check and every record that can hold a sealed value, sealed under `key`, each at
/// its own revision (the store's revision does not change: what data planes get is the same).
fn resealed(state: &State, key: &SealingKey) -> Vec<Entry> {
    let mut entries = vec![(records::KEY_CHECK_KEY.as_bytes().to_vec(), records::key_check(key))];
    entries.extend(state.certificates.values().map(|cert| records::certificate_entry(cert, cert.revision, key)));
    entries.extend(state.apis.values().map(|api| records::api_entry(api, key)));
    entries.extend(state.named_values.values().map(|named| records::named_value_entry(named, key)));
    entries.extend(state.certificate_sources.iter().map(|(id, source)| records::source_entry(id, source, key)));
    entries.extend(state.ca_sources.iter().map(|(id, source)| records::ca_source_entry(id, source, key)));
    entries
}

/// Loads the whole store, with `resealed` in place of what it replaces, under `key`, in memory:
/// a sealed value that was missed does not open, and then nothing is written.
fn check_loads(db: &sled::Db, resealed: &[Entry], key: &SealingKey) -> Result<(), BackupError> {
    let replaced: HashMap<&[u8], &[u8]> =
        resealed.iter().map(|(name, value)| (name.as_slice(), value.as_slice())).collect();
    let mut state = State::default();
    for item in db.iter() {
        let (name, value) = item?;
        let value = replaced.get(name.as_ref()).copied().unwrap_or(value.as_ref());
        if name.as_ref() == records::KEY_CHECK_KEY.as_bytes() && !records::opens_key_check(key, value) {
            return Err(BackupError::Reseal(StoreError::WrongMasterKey));
        }
        records::apply(&mut state, &name, Some(value), key).map_err(BackupError::Reseal)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, BackupError> {
    std::fs::read(path).map_err(|source| BackupError::File { action: "read", path: path.to_path_buf(), source })
}

fn file_error(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::File { action: "write", path: path.to_path_buf(), source }
}

/// `path` with `suffix` after its file name: `master.key` → `master.key.old`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}
