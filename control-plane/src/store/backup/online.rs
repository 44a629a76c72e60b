//! A backup from a running control plane: sled lets one process open the database, so while a
//! control plane serves, the backup comes from it, over `Management.CreateBackup` with an
//! operator token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use gatehouse_proto::v1 as pb;
use gatehouse_proto::v1::management_client::ManagementClient;
use gatehouse_shared::client::{BearerToken, endpoint, read_token_file};

use super::{Backup, BackupError};

/// How to reach a running control plane for its backup.
#[derive(Clone, Debug)]
pub struct Remote {
    /// Its gRPC URL.
    pub url: String,
    /// The CA its TLS certificate chains to (`None`: the system roots).
    pub ca_file: Option<PathBuf>,
    /// A file holding an operator token.
    pub token_file: PathBuf,
}

impl Remote {
    /// The control plane serving `data_dir` on `listen`, as seen from its own host: its
    /// loopback address when it listens on every address, https unless `plaintext`, its own CA
    /// (`data_dir/tls/ca.pem`, when there) and the initial operator token
    /// (`data_dir/operator.token`).
    pub fn local(data_dir: &Path, listen: SocketAddr, plaintext: bool) -> Self {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let scheme = if plaintext { "http" } else { "https" };
        Self {
            url: format!("{scheme}://{}", SocketAddr::new(ip, listen.port())),
            ca_file: Some(data_dir.join("tls/ca.pem")).filter(|path| path.is_file()),
            token_file: data_dir.join("operator.token"),
        }
    }

    /// Asks the control plane for a backup and checks that what arrived is a whole one.
    pub async fn fetch(&self) -> Result<Backup, BackupError> {
        let url = &self.url;
        let channel = endpoint(url, self.ca_file.as_deref())?
            .connect()
            .await
            .map_err(|source| BackupError::Connect { url: url.clone(), source })?;
        let token = read_token_file(&self.token_file)?;
        let mut client = ManagementClient::with_interceptor(channel, BearerToken::new(Some(&token))?);
        let refused = |status: tonic::Status| BackupError::Refused {
            url: url.clone(),
            code: status.code(),
            message: status.message().into(),
        };
        let mut chunks = client.create_backup(pb::CreateBackupRequest {}).await.map_err(refused)?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.message().await.map_err(refused)? {
            bytes.extend_from_slice(&chunk.data);
        }
        Backup::decode(&bytes).map_err(|source| BackupError::Received { url: url.clone(), source })
    }
}
