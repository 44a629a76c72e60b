//! Where committed batches go: sled on this host, or etcd shared by several control planes.
//! The store decides what to write; a backend only makes one batch durable, atomically, and
//! (etcd) only over the revision the batch was validated at.

use super::StoreError;
use super::records;
use crate::model::Revision;
use crate::watermark::Watermark;

/// One entry of a committed batch.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Store this record under this key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove the record under this key.
    Delete(Vec<u8>),
}

/// The store's durable home.
pub(super) enum Backend {
    /// sled in the data directory: one control plane, the writer lock is the only writer.
    Sled {
        /// The database.
        db: sled::Db,
        /// Records each acknowledged revision beside the database.
        watermark: Option<Watermark>,
    },
    /// etcd: every batch compares the revision it was validated at.
    #[cfg(feature = "etcd")]
    Etcd(Box<super::etcd::EtcdBackend>),
}

impl Backend {
    /// "sled" or "etcd".
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Sled { .. } => "sled",
            #[cfg(feature = "etcd")]
            Self::Etcd(_) => "etcd",
        }
    }

    /// Commits `ops` atomically if the stored revision is still `base`, and returns the
    /// batch's position in the backend's order (etcd's revision; `None` for sled, whose
    /// batches are all this process's). [`StoreError::Moved`] when another control plane
    /// committed first.
    pub(super) async fn commit(&self, config_id: &str, base: Revision, ops: &[Op]) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Sled { db, watermark } => {
                let mut batch = sled::Batch::default();
                let mut revision = None;
                for op in ops {
                    match op {
                        Op::Put(key, value) => {
                            if key == records::REVISION_KEY.as_bytes() {
                                revision = Some(base + 1);
                            }
                            batch.insert(key.as_slice(), value.as_slice());
                        }
                        Op::Delete(key) => batch.remove(key.as_slice()),
                    }
                }
                db.apply_batch(batch)?;
                db.flush_async().await?;
                // The write is durable now; a watermark that cannot be written only weakens the
                // check at the next start, so it is logged, not turned into a failed (yet
                // committed) write.
                if let (Some(watermark), Some(revision)) = (watermark, revision)
                    && let Err(error) = watermark.record(config_id, revision)
                {
                    tracing::error!(error = %gatehouse_shared::error_chain(&error), "cannot record the committed revision");
                }
                Ok(None)
            }
            #[cfg(feature = "etcd")]
            Self::Etcd(etcd) => etcd.commit(base, ops).await.map(Some),
        }
    }

    /// The store's revision if it is newer than `revision`: a linearizable read with etcd
    /// (another control plane may have committed); never with sled, whose writes are all this
    /// process's.
    pub(super) async fn newer_revision(&self, revision: Revision) -> Result<Option<Revision>, StoreError> {
        match self {
            Self::Sled { .. } => {
                let _ = revision;
                Ok(None)
            }
            #[cfg(feature = "etcd")]
            Self::Etcd(etcd) => Ok(Some(etcd.revision().await?).filter(|r| *r > revision)),
        }
    }

    /// Waits until everything committed is durable (etcd acknowledges only durable writes).
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Self::Sled { db, .. } => {
                db.flush_async().await?;
                Ok(())
            }
            #[cfg(feature = "etcd")]
            Self::Etcd(_) => Ok(()),
        }
    }
}
