//! `CreateBackup`: the store at one revision, as `gatehouse-cp backup` writes it, streamed in
//! chunks. Records stay sealed as stored, so the bytes open nothing without the master key.

use gatehouse_proto::v1 as pb;
use tonic::{Response, Status};

use super::ManagementService;
use crate::store::backup::BackupError;

/// Bytes per chunk: well under a client's default 4 MiB message limit.
const CHUNK: usize = 1024 * 1024;

/// The chunks of one backup file, in order.
pub type BackupChunks = tokio_stream::Iter<std::vec::IntoIter<Result<pb::BackupChunk, Status>>>;

impl ManagementService {
    pub(super) async fn create_backup_inner(&self) -> Result<Response<BackupChunks>, Status> {
        let backup = self.store.backup().await.map_err(backup_status)?;
        let bytes = backup.encode();
        tracing::info!(
            revision = backup.revision,
            records = backup.record_count(),
            tokens = backup.token_count(),
            bytes = bytes.len(),
            "backup taken"
        );
        let chunks: Vec<_> = bytes.chunks(CHUNK).map(|data| Ok(pb::BackupChunk { data: data.to_vec() })).collect();
        Ok(Response::new(tokio_stream::iter(chunks)))
    }
}

fn backup_status(error: BackupError) -> Status {
    match error {
        BackupError::Etcd => Status::failed_precondition(error.to_string()),
        error => {
            tracing::error!(error = %gatehouse_shared::error_chain(&error), "backup failed");
            Status::internal(error.to_string())
        }
    }
}
