//! The last-known-good cache: each applied configuration, sealed under this data plane's own
//! key and written atomically, so a data plane can start serving while the control plane is
//! unreachable.

use std::path::{Path, PathBuf};

use gatehouse_shared::sealed::{SealError, SealingKey, write_private_file};
use prost::Message;

use crate::configuration::Configuration;

const CONTEXT: &[u8] = b"gatehouse-dp-cache-v1";
const FILE: &str = "last-known-good.bin";
const KEY_FILE: &str = "cache.key";

/// Why the cache cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The folder cannot be created.
    #[error("cannot use cache folder {path}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The sealing key cannot be read or created.
    #[error("cache key")]
    Key(#[source] SealError),
    /// The cache file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The cache file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The cache file was not sealed with this key, or was changed.
    #[error("cannot open {path}")]
    Open {
        /// The cache file.
        path: PathBuf,
        /// Why it cannot be unsealed.
        #[source]
        source: SealError,
    },
    /// The unsealed bytes are not a configuration.
    #[error("{path} is not a configuration")]
    Decode {
        /// The cache file.
        path: PathBuf,
        /// What prost said.
        #[source]
        source: prost::DecodeError,
    },
    /// The cache file cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The cache file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The last-known-good cache of one data plane: one sealed file in its folder.
pub struct ConfigCache {
    path: PathBuf,
    key: SealingKey,
}

impl ConfigCache {
    /// Uses `dir` (created 0700 if missing); the key is `key_file`, or `cache.key` in `dir`.
    pub fn open(dir: &Path, key_file: Option<&Path>) -> Result<Self, CacheError> {
        gatehouse_shared::sealed::create_private_dir(dir)
            .map_err(|source| CacheError::Folder { path: dir.into(), source })?;
        let key_path = key_file.map(Path::to_path_buf).unwrap_or_else(|| dir.join(KEY_FILE));
        let key = SealingKey::load_or_create(&key_path).map_err(CacheError::Key)?;
        Ok(Self { path: dir.join(FILE), key })
    }

    /// The cached configuration, if there is one.
    pub fn load(&self) -> Result<Option<Configuration>, CacheError> {
        let sealed = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Read { path: self.path.clone(), source }),
        };
        let plain =
            self.key.open(CONTEXT, &sealed).map_err(|source| CacheError::Open { path: self.path.clone(), source })?;
        let update = gatehouse_proto::v1::SyncResponse::decode(plain.as_slice())
            .map_err(|source| CacheError::Decode { path: self.path.clone(), source })?;
        let config = Configuration::default().apply(&update).expect("a full update always applies");
        Ok(Some(config))
    }

    /// Replaces the cached configuration (atomically, 0600).
    pub fn store(&self, config: &Configuration) -> Result<(), CacheError> {
        let sealed = self.key.seal(CONTEXT, &config.to_update().encode_to_vec());
        write_private_file(&self.path, &sealed).map_err(|source| CacheError::Write { path: self.path.clone(), source })
    }
}
