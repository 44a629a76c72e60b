//! How every Gatehouse client reaches the control plane: TLS verified against the control
//! plane's CA (or the system roots), and a bearer token on every call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Why a client cannot be set up to reach the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not http(s)://HOST:PORT.
    #[error("'{0}' is not a valid control plane URL: give https://HOST:PORT (or http:// for a --plaintext one)")]
    Url(String),
    /// The CA file cannot be read.
    #[error("cannot read the CA file {path}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The token file cannot be read.
    #[error("cannot read the token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds only white space.
    #[error("the token file {0} is empty")]
    EmptyToken(PathBuf),
    /// The token is not a valid header value.
    #[error("the token has characters a header cannot carry")]
    TokenFormat,
    /// tonic rejected the TLS settings.
    #[error("TLS settings")]
    Tls(#[source] tonic::transport::Error),
}

/// Reads a token from a file (surrounding white space ignored).
pub fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::TokenFile { path: path.into(), source })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ClientError::EmptyToken(path.into()));
    }
    Ok(token)
}

/// Where a client's bearer token comes from, in one order for every binary: a token file named
/// by flag (or the binary's own `*_TOKEN_FILE` variable), then the token itself in the binary's
/// own `*_TOKEN` variable (`token_variable`), then a default file if it exists.
pub fn resolve_token(
    explicit_file: Option<&Path>,
    token_variable: &str,
    default_file: Option<&Path>,
) -> Result<Option<String>, ClientError> {
    if let Some(path) = explicit_file {
        return read_token_file(path).map(Some);
    }
    if let Ok(token) = std::env::var(token_variable)
        && !token.trim().is_empty()
    {
        return Ok(Some(token.trim().to_string()));
    }
    match default_file.filter(|path| path.is_file()) {
        Some(path) => read_token_file(path).map(Some),
        None => Ok(None),
    }
}

/// An endpoint for `url`: TLS for https (verified against `ca_file`, or the system roots),
/// plain HTTP/2 for http.
pub fn endpoint(url: &str, ca_file: Option<&Path>) -> Result<Endpoint, ClientError> {
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(ClientError::Url(crate::api::quote(url)));
    }
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| ClientError::Url(url.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let tls = match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| ClientError::CaFile { path: path.into(), source })?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(ClientError::Tls)?;
    }
    Ok(endpoint)
}

/// Adds `authorization: Bearer <token>` to every call. The value is marked sensitive, so it is
/// never indexed by HPACK nor printed by Debug.
#[derive(Clone)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl BearerToken {
    /// Adds `token` to every call; `None` adds nothing.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let value = match token {
            None => None,
            Some(token) => {
                let mut value: AsciiMetadataValue =
                    MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::TokenFormat)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self(value))
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}
