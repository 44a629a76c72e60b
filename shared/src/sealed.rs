//! Authenticated encryption for secrets at rest (ChaCha20-Poly1305 from ring), under a 256-bit
//! key kept in its own 0600 file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = aead::NONCE_LEN;
/// Sealed data starts with this, so a file of another kind is recognised, not mis-decrypted.
const MAGIC: &[u8; 4] = b"GHS1";

/// Why a key cannot be loaded or data cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read.
    #[error("cannot read key file {path}")]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The key file cannot be created.
    #[error("cannot create key file {path}")]
    CreateKey {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not 32 bytes long.
    #[error("key file {path} must hold exactly {KEY_LEN} bytes")]
    KeyLength {
        /// The key file.
        path: PathBuf,
    },
    /// The key file is open to group or others.
    #[error("key file {path} is readable by others (mode {mode:o}); make it 0600")]
    KeyMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The data lacks the magic prefix or is too short.
    #[error("the data is not sealed data, or is truncated")]
    Format,
    /// Wrong key or context, or the data was altered.
    #[error("the data cannot be opened with this key (wrong key, or the data was altered)")]
    Open,
}

/// A key that seals and opens data. Its bytes never leave this type.
pub struct SealingKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// Loads the key at `path`, creating it (0600, random) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)
                    .map_err(|source| SealError::ReadKey { path: path.into(), source })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SealError::KeyMode { path: path.into(), mode: mode & 0o777 });
                }
                Self::from_bytes(&bytes).ok_or_else(|| SealError::KeyLength { path: path.into() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                SystemRandom::new().fill(&mut bytes).expect("the system random generator works");
                let create = |bytes: &[u8]| -> std::io::Result<()> {
                    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
                    file.write_all(bytes)?;
                    file.sync_all()
                };
                create(&bytes).map_err(|source| SealError::CreateKey { path: path.into(), source })?;
                Ok(Self::from_bytes(&bytes).expect("right length"))
            }
            Err(source) => Err(SealError::ReadKey { path: path.into(), source }),
        }
    }

    /// A key from its 32 raw bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&aead::CHACHA20_POLY1305, bytes).ok()?;
        Some(Self { key: LessSafeKey::new(key) })
    }

    /// MAGIC, a random nonce, then the ciphertext and tag. `context` is authenticated too:
    /// data sealed for one purpose does not open for another.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system random generator works");
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut data)
            .expect("sealing cannot fail for in-memory data");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out
    }

    /// Opens what [`seal`](Self::seal) made with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or(SealError::Format)?;
        if rest.len() < NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return Err(SealError::Format);
        }
        let (nonce, data) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Format)?;
        let mut data = data.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context), &mut data).map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

/// Creates `dir` (and its parents) readable by its owner only (0700); an existing folder is
/// left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the folder), mode 0600.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A bare file name's parent is "", which cannot be opened to sync: it is ".".
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let key = SealingKey::from_bytes(&[7u8; 32]).unwrap();
        let other = SealingKey::from_bytes(&[8u8; 32]).unwrap();
        let sealed = key.seal(b"cache", b"private key bytes");
        assert!(!sealed.windows(17).any(|w| w == b"private key bytes"));
        assert_eq!(key.open(b"cache", &sealed).unwrap(), b"private key bytes");
        assert!(matches!(other.open(b"cache", &sealed), Err(SealError::Open)));
        assert!(matches!(key.open(b"store", &sealed), Err(SealError::Open)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(key.open(b"cache", &tampered), Err(SealError::Open)));
        assert!(matches!(key.open(b"cache", b"plain"), Err(SealError::Format)));
    }

    #[test]
    fn key_files_are_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gatehouse-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let _ = std::fs::remove_file(&path);
        let first = SealingKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = SealingKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(b"x", &first.seal(b"x", b"hello")).unwrap(), b"hello");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SealingKey::load_or_create(&path), Err(SealError::KeyMode { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
