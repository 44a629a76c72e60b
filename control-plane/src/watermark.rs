//! The highest revision the store has acknowledged, kept in a small file beside the database.
//! sled recovers a damaged log by dropping what follows the damage, which would bring a control
//! plane up with fewer (or no) resources and make every data plane apply that; the watermark
//! turns that silent loss into a refusal to start that says how to recover.

use std::path::{Path, PathBuf};

/// The file and what it last recorded.
pub struct Watermark {
    path: PathBuf,
}

/// The store holds less than it acknowledged.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database holds revision {found} of configuration {found_config}, but revision {expected} of configuration {expected_config} was acknowledged ({path}): the database lost writes (it is damaged, truncated or was replaced). Stop the control plane and restore DATA_DIR/sled from a backup of the data directory (with the same master key); data planes keep serving their last configuration meanwhile. To accept the loss and start from what is there, delete {path}"
)]
pub struct LostWrites {
    /// The watermark file.
    pub path: PathBuf,
    /// The revision the database holds.
    pub found: u64,
    /// The config id the database holds ("(none)" without one).
    pub found_config: String,
    /// The revision acknowledged.
    pub expected: u64,
    /// The config id acknowledged.
    pub expected_config: String,
}

impl Watermark {
    /// The watermark at `path`; nothing is read or written yet.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Checks the store's (config id, revision) against the file, if there is one (a store
    /// without a config id is new, or has lost everything).
    pub fn check(&self, config_id: Option<&str>, revision: u64) -> Result<(), WatermarkError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(WatermarkError::Io { path: self.path.clone(), source }),
        };
        let mut words = text.split_whitespace();
        let (Some(expected_config), Some(Ok(expected))) = (words.next(), words.next().map(str::parse::<u64>)) else {
            return Err(WatermarkError::Unreadable(self.path.clone()));
        };
        if config_id != Some(expected_config) || revision < expected {
            return Err(WatermarkError::LostWrites(LostWrites {
                path: self.path.clone(),
                found: revision,
                found_config: config_id.unwrap_or("(none)").to_string(),
                expected,
                expected_config: expected_config.to_string(),
            }));
        }
        Ok(())
    }

    /// Records an acknowledged revision (after the store flushed it).
    pub fn record(&self, config_id: &str, revision: u64) -> Result<(), WatermarkError> {
        write(&self.path, format!("{config_id} {revision}\n").as_bytes())
            .map_err(|source| WatermarkError::Io { path: self.path.clone(), source })
    }
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    gatehouse_shared::sealed::write_private_file(path, bytes)
}

/// Why the watermark refuses the store, or cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// The database is behind the watermark.
    #[error(transparent)]
    LostWrites(LostWrites),
    /// The file cannot be read or written.
    #[error("cannot read or write {path}")]
    Io {
        /// The watermark file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not `<config id> <revision>`.
    #[error("{0} is not '<config id> <revision>': delete it to start from what the database holds")]
    Unreadable(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_revisions_than_acknowledged_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let watermark = Watermark::new(dir.path().join("committed-revision"));
        watermark.check(None, 0).unwrap();
        watermark.record("c1", 7).unwrap();
        watermark.check(Some("c1"), 7).unwrap();
        watermark.check(Some("c1"), 9).unwrap();
        let error = watermark.check(Some("c1"), 3).unwrap_err();
        assert!(matches!(error, WatermarkError::LostWrites(LostWrites { found: 3, expected: 7, .. })), "{error}");
        assert!(error.to_string().contains("restore DATA_DIR/sled from a backup"), "{error}");
        assert!(matches!(watermark.check(Some("c2"), 7).unwrap_err(), WatermarkError::LostWrites(_)));
        assert!(matches!(watermark.check(None, 0).unwrap_err(), WatermarkError::LostWrites(_)));
    }
}
