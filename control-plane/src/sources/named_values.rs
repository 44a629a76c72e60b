//! Named values read from files on the control plane's host (Vault Agent templates, Kubernetes
//! Secret volumes): one file holds one value, with one trailing newline that is not part of it
//! (as `gatehousectl nv put --value-file` reads it), checked with the rules of a put.

use std::io::Read;

use crate::store::{MAX_VALUE_BYTES, RefreshOutcome, ResourceKind, Store, StoreError, check_named_value};

/// What a named value's file held at one read.
pub struct ValueFile {
    /// SHA-256 of the bytes read, or of the read error: what changes when the file does.
    pub content_hash: Vec<u8>,
    /// The value, or why there is none.
    pub value: Result<String, ValueFileError>,
}

/// Why a named value's file gave no value.
#[derive(Debug, thiserror::Error)]
pub enum ValueFileError {
    /// The file cannot be read (missing, unreadable, a dangling symlink, a directory).
    #[error("cannot read {path}")]
    Read {
        /// The path, as linked.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// What it holds breaks the rules of a put (the refusal names the rule, never the value).
    #[error(transparent)]
    Refused(StoreError),
}

impl ValueFile {
    /// Reads `path` now (following symlinks at each read) for the named value `name`. At most a
    /// few bytes more than a value may hold are read: a larger file is refused as too long
    /// without being read whole.
    pub fn read(name: &str, path: &str) -> Self {
        // The longest value, its newline (CRLF), and one byte more to tell it is longer.
        let limit = MAX_VALUE_BYTES as u64 + 3;
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path).and_then(|file| file.take(limit).read_to_end(&mut bytes));
        if let Err(source) = read {
            let error = ValueFileError::Read { path: path.to_string(), source };
            let message = format!("unreadable: {}", gatehouse_shared::error_chain(&error));
            return Self { content_hash: sha256(message.as_bytes()), value: Err(error) };
        }
        let value =
            check_named_value(name, without_one_newline(&bytes)).map(str::to_string).map_err(ValueFileError::Refused);
        Self { content_hash: sha256(&bytes), value }
    }
}

/// The bytes without one trailing LF or CRLF (a second one stays, and is refused).
fn without_one_newline(bytes: &[u8]) -> &[u8] {
    match bytes.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => bytes,
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

/// Reads `name`'s file and applies it. Without `force`, a file that holds what it held at the
/// last read is left alone (neither checked nor recorded again). Refusals are counted in
/// `gatehouse_cp_named_value_refresh_failures_total`.
pub async fn refresh_named_value(store: &Store, name: &str, force: bool) -> Result<RefreshOutcome, StoreError> {
    let state = store.state();
    if !state.named_values.contains_key(name) {
        return Err(StoreError::NotFound { kind: ResourceKind::NamedValue, id: name.to_string() });
    }
    let Some(source) = state.named_value_sources.get(name) else {
        return Err(StoreError::NotLinked { kind: ResourceKind::NamedValue, id: name.to_string() });
    };
    let (path, previous) = (source.path.clone(), source.content_hash.clone());
    let (read_name, read_path) = (name.to_string(), path.clone());
    let read = tokio::task::spawn_blocking(move || ValueFile::read(&read_name, &read_path))
        .await
        .expect("reading a named value's file does not panic");
    if !force && read.content_hash == previous {
        return Ok(RefreshOutcome::Unchanged);
    }
    let value = read.value.map_err(|error| gatehouse_shared::error_chain(&error));
    let outcome = store.refresh_named_value(name, &path, read.content_hash, value).await?;
    match &outcome {
        RefreshOutcome::Rotated(revision) => tracing::info!(%name, revision, "named value refreshed from its file"),
        RefreshOutcome::Unchanged => {}
        RefreshOutcome::Refused(message) => {
            crate::metrics::global().named_value_refresh_failed(name);
            tracing::warn!(%name, error = %message, "named value file refused; keeping the last good value");
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> ValueFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, bytes).unwrap();
        ValueFile::read("pw", path.to_str().unwrap())
    }

    #[test]
    fn one_trailing_newline_is_dropped_and_the_rules_of_a_put_apply() {
        assert_eq!(read(b"s3cret\n").value.unwrap(), "s3cret");
        assert_eq!(read(b"s3cret\r\n").value.unwrap(), "s3cret");
        assert_eq!(read(b"s3cret").value.unwrap(), "s3cret");
        assert_eq!(read(&[b'x'; MAX_VALUE_BYTES]).value.unwrap().len(), MAX_VALUE_BYTES);
        let with_newline = [&[b'x'; MAX_VALUE_BYTES][..], b"\r\n"].concat();
        assert_eq!(read(&with_newline).value.unwrap().len(), MAX_VALUE_BYTES);

        let refused = |bytes: &[u8]| gatehouse_shared::error_chain(&read(bytes).value.unwrap_err());
        let two = refused(b"HIDDEN\n\n");
        assert!(two.contains("control character") && !two.contains("HIDDEN"), "{two}");
        assert!(refused(&[b'x'; MAX_VALUE_BYTES + 1]).contains("longer than 4096 bytes"));
        assert!(refused(&vec![b'x'; 1 << 20]).contains("longer than 4096 bytes"));
        assert!(refused(b"\xff\xfe").contains("not UTF-8"));
        assert_ne!(read(b"a\n").content_hash, read(b"a").content_hash, "the hash is of the bytes read");
    }

    #[test]
    fn a_missing_file_says_which_and_hashes_the_same_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let (first, second) =
            (ValueFile::read("pw", path.to_str().unwrap()), ValueFile::read("pw", path.to_str().unwrap()));
        let message = gatehouse_shared::error_chain(&first.value.unwrap_err());
        assert!(message.starts_with(&format!("cannot read {}: ", path.display())), "{message}");
        assert_eq!(first.content_hash, second.content_hash);
    }
}
