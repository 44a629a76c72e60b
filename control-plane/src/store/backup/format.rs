//! The backup file: `GATEHOUSE-BACKUP`, the format version, a small header (configuration id,
//! revision, when it was made, a key check sealed under the master key), the entries (every
//! record as the store keeps it, and the tokens), and a SHA-256 of everything before it, so a
//! truncated or damaged file is refused before anything is restored from it.
//!
//! ```text
//! "GATEHOUSE-BACKUP" | version (u32, big-endian) | header length (u32) | header (protobuf)
//!                    | entries (protobuf) | SHA-256 of all the above (32 bytes)
//! ```
//!
//! Private keys and secrets stay sealed as the store keeps them: the file opens nothing
//! without the master key.

use gatehouse_shared::sealed::SealingKey;

use super::super::records;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 16] = b"GATEHOUSE-BACKUP";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const CHECKSUM_LEN: usize = 32;

/// What a backup file holds before its entries.
#[derive(Clone, PartialEq, prost::Message)]
struct HeaderRecord {
    #[prost(string, tag = "1")]
    config_id: String,
    #[prost(uint64, tag = "2")]
    revision: u64,
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    created: i64,
    /// Sealed under the master key of the store it was taken from.
    #[prost(bytes = "vec", tag = "4")]
    key_check: Vec<u8>,
    /// The gatehouse-cp version that made it.
    #[prost(string, tag = "5")]
    made_by: String,
}

/// One stored key and its value, as the store keeps them.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryRecord {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntriesRecord {
    /// The configuration records (sled's default tree): `cert/`, `api/`, ..., `meta/`.
    #[prost(message, repeated, tag = "1")]
    records: Vec<EntryRecord>,
    /// The tokens (sled's `tokens` tree): names and SHA-256 hashes, never a secret.
    #[prost(message, repeated, tag = "2")]
    tokens: Vec<EntryRecord>,
}

/// A stored key and its value.
pub(in crate::store) type Entry = (Vec<u8>, Vec<u8>);

/// A backup of one store at one revision: its records and tokens as stored, private keys and
/// secrets sealed under the store's master key.
#[derive(Clone)]
pub struct Backup {
    /// The configuration id of the store it was taken from (data planes compare revisions only
    /// within one).
    pub config_id: String,
    /// The revision it holds.
    pub revision: u64,
    /// When it was made, in seconds since the Unix epoch.
    pub created: i64,
    /// The gatehouse-cp version that made it.
    pub made_by: String,
    key_check: Vec<u8>,
    records: Vec<Entry>,
    tokens: Vec<Entry>,
}

/// Entries are sealed, yet never printed: a Debug line shows what, not the bytes.
impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("config_id", &self.config_id)
            .field("revision", &self.revision)
            .field("created", &self.created)
            .field("records", &self.records.len())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a backup this build can restore.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// It does not start with `GATEHOUSE-BACKUP`.
    #[error("this is not a Gatehouse backup (it does not start with GATEHOUSE-BACKUP)")]
    NotABackup,
    /// A format this build does not read.
    #[error(
        "backup format version {0} is not one this gatehouse-cp reads (version {FORMAT_VERSION}): use the gatehouse-cp that made it, or a newer one"
    )]
    Version(u32),
    /// Shorter than its parts, or its checksum does not match: cut off or damaged.
    #[error("the backup is truncated or damaged (its SHA-256 does not match)")]
    Damaged,
    /// The checksum matches, yet a part does not decode.
    #[error("the backup does not decode")]
    Decode(#[source] prost::DecodeError),
    /// It holds no configuration id.
    #[error("the backup holds no configuration id")]
    NoConfigId,
}

// === impl Backup ===

impl Backup {
    /// A backup of the store `config_id`'s entries, read at one revision, with `key_check` made
    /// by [`records::key_check`] under the store's key. The revision is read from the entries.
    pub(in crate::store) fn of(config_id: &str, records: Vec<Entry>, tokens: Vec<Entry>, key_check: Vec<u8>) -> Self {
        let revision = records
            .iter()
            .find(|(key, _)| key == records::REVISION_KEY.as_bytes())
            .and_then(|(_, value)| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        Self {
            config_id: config_id.to_string(),
            revision,
            created: gatehouse_shared::unix_now(),
            made_by: format!("gatehouse-cp {}", gatehouse_shared::VERSION),
            key_check,
            records,
            tokens,
        }
    }

    /// Whether `key` is the master key this backup was sealed under.
    pub fn opens_with(&self, key: &SealingKey) -> bool {
        records::opens_key_check(key, &self.key_check)
    }

    /// How many configuration records it holds (the `meta/` ones included).
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// How many tokens it holds.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The configuration records, as stored.
    pub(in crate::store) fn records(&self) -> &[Entry] {
        &self.records
    }

    /// The tokens, as stored.
    pub(in crate::store) fn tokens(&self) -> &[Entry] {
        &self.tokens
    }

    /// The backup file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let header = HeaderRecord {
            config_id: self.config_id.clone(),
            revision: self.revision,
            created: self.created,
            key_check: self.key_check.clone(),
            made_by: self.made_by.clone(),
        };
        let entry = |(key, value): &Entry| EntryRecord { key: key.clone(), value: value.clone() };
        let entries = EntriesRecord {
            records: self.records.iter().map(entry).collect(),
            tokens: self.tokens.iter().map(entry).collect(),
        };
        let header = prost::Message::encode_to_vec(&header);
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + prost::Message::encoded_len(&entries) + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&u32::try_from(header.len()).expect("a header is small").to_be_bytes());
        out.extend_from_slice(&header);
        prost::Message::encode(&entries, &mut out).expect("a Vec grows as needed");
        let checksum = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend_from_slice(checksum.as_ref());
        out
    }

    /// Reads a backup file's bytes, refusing anything cut off, damaged or of another format.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(FormatError::NotABackup)?;
        let (version, rest) = split_u32(rest)?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        let checked = bytes.len().checked_sub(CHECKSUM_LEN).ok_or(FormatError::Damaged)?;
        let (content, checksum) = bytes.split_at(checked);
        if ring::digest::digest(&ring::digest::SHA256, content).as_ref() != checksum {
            return Err(FormatError::Damaged);
        }
        let rest = &rest[..rest.len().checked_sub(CHECKSUM_LEN).ok_or(FormatError::Damaged)?];
        let (header_len, rest) = split_u32(rest)?;
        let header_len = usize::try_from(header_len).map_err(|_| FormatError::Damaged)?;
        if rest.len() < header_len {
            return Err(FormatError::Damaged);
        }
        let (header, entries) = rest.split_at(header_len);
        let header: HeaderRecord = prost::Message::decode(header).map_err(FormatError::Decode)?;
        let entries: EntriesRecord = prost::Message::decode(entries).map_err(FormatError::Decode)?;
        if header.config_id.is_empty() {
            return Err(FormatError::NoConfigId);
        }
        let pair = |e: EntryRecord| (e.key, e.value);
        Ok(Self {
            config_id: header.config_id,
            revision: header.revision,
            created: header.created,
            made_by: header.made_by,
            key_check: header.key_check,
            records: entries.records.into_iter().map(pair).collect(),
            tokens: entries.tokens.into_iter().map(pair).collect(),
        })
    }
}

/// A big-endian u32 and what follows it.
fn split_u32(bytes: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    let (head, rest) = bytes.split_first_chunk::<4>().ok_or(FormatError::Damaged)?;
    Ok((u32::from_be_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &SealingKey) -> Backup {
        let records = vec![
            (records::CONFIG_ID_KEY.as_bytes().to_vec(), b"c0ffee".to_vec()),
            (records::REVISION_KEY.as_bytes().to_vec(), 7u64.to_be_bytes().to_vec()),
            (b"cert/a".to_vec(), key.seal(b"ctx", b"private")),
        ];
        Backup::of("c0ffee", records, vec![(b"admin".to_vec(), b"hash".to_vec())], records::key_check(key))
    }

    #[test]
    fn a_backup_reads_back_as_written_and_knows_its_key() {
        let key = SealingKey::from_bytes(&[1u8; 32]).unwrap();
        let bytes = sample(&key).encode();
        assert!(bytes.starts_with(b"GATEHOUSE-BACKUP"));
        let read = Backup::decode(&bytes).unwrap();
        assert_eq!((read.config_id.as_str(), read.revision), ("c0ffee", 7));
        assert_eq!((read.record_count(), read.token_count()), (3, 1));
        assert_eq!(read.records()[2].0, b"cert/a");
        assert!(read.opens_with(&key));
        assert!(!read.opens_with(&SealingKey::from_bytes(&[2u8; 32]).unwrap()));
    }

    #[test]
    fn a_cut_off_altered_or_foreign_file_is_refused() {
        let bytes = sample(&SealingKey::from_bytes(&[1u8; 32]).unwrap()).encode();
        for cut in [0, 10, 20, 40, bytes.len() - 1] {
            assert!(Backup::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut altered = bytes.clone();
        altered[40] ^= 1;
        assert!(matches!(Backup::decode(&altered), Err(FormatError::Damaged)));
        assert!(matches!(Backup::decode(b"PK\x03\x04 a zip file"), Err(FormatError::NotABackup)));
        let mut newer = bytes;
        newer[16..20].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(Backup::decode(&newer), Err(FormatError::Version(2))));
    }
}
