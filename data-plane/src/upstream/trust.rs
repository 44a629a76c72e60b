//! What backends' certificates are checked against, for the whole process: the system roots
//! plus the operator's `--backend-ca-file` bundle, whose fingerprint goes to the control plane.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::RootCertStore;

/// Most connections a backend pool holds at once, unless `--max-backend-connections` says.
pub const DEFAULT_MAX_CONNECTIONS_PER_POOL: usize = 256;

/// The trust anchors backends' certificates are checked against: the system roots (which
/// honour SSL_CERT_FILE / SSL_CERT_DIR) plus any the operator adds with `--backend-ca-file`.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    /// SHA-256 (hex) of the --backend-ca-file certificates, reported to the control plane so
    /// operators see which data planes trust what.
    bundle_fingerprint: Option<String>,
    /// TCP connect timeout for backends.
    connect_timeout: Duration,
    /// Connections older than this take no new request (an identity rotated away, or a
    /// backend's changed trust, reaches even the busiest connection within this time).
    max_connection_age: Option<Duration>,
    /// Most connections one pool (one TLS identity) holds at once.
    max_connections_per_pool: usize,
    /// Offer HTTP/2 to backends (ALPN).
    backend_http2: bool,
}

/// Why a `--backend-ca-file` bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read, or is not PEM.
    #[error("cannot read CA file {path}")]
    Read {
        /// The bundle.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The file holds no certificate at all.
    #[error("CA file {path} holds no PEM certificate")]
    Empty {
        /// The bundle.
        path: PathBuf,
    },
    /// A certificate in the file cannot anchor a chain.
    #[error("CA file {path} holds a certificate that is not a valid trust anchor")]
    Invalid {
        /// The bundle.
        path: PathBuf,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
}

// === impl TrustAnchors ===

impl TrustAnchors {
    /// System roots, loaded once per process.
    pub fn system() -> Self {
        static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
        let roots = ROOTS
            .get_or_init(|| {
                let loaded = rustls_native_certs::load_native_certs();
                for error in &loaded.errors {
                    tracing::warn!(%error, "some system root certificates could not be loaded");
                }
                let mut roots = RootCertStore::empty();
                let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
                tracing::debug!(added, ignored, "system roots loaded");
                Arc::new(roots)
            })
            .clone();
        Self {
            roots,
            bundle_fingerprint: None,
            connect_timeout: Duration::from_secs(10),
            max_connection_age: None,
            max_connections_per_pool: DEFAULT_MAX_CONNECTIONS_PER_POOL,
            backend_http2: false,
        }
    }

    /// SHA-256 (hex) of the extra CA bundle, if one was added.
    pub fn bundle_fingerprint(&self) -> Option<&str> {
        self.bundle_fingerprint.as_deref()
    }

    /// The same anchors, with this TCP connect timeout for backends.
    pub fn with_connect_timeout(self, connect_timeout: Duration) -> Self {
        Self { connect_timeout, ..self }
    }

    /// The same anchors, with backend connections used for at most `age` (`None`: no limit).
    pub fn with_max_connection_age(self, age: Option<Duration>) -> Self {
        Self { max_connection_age: age, ..self }
    }

    /// The same anchors, with at most `connections` connections per backend pool.
    pub fn with_max_connections_per_pool(self, connections: usize) -> Self {
        Self { max_connections_per_pool: connections.max(1), ..self }
    }

    /// The same anchors, offering HTTP/2 to backends (ALPN) when `http2`.
    pub fn with_backend_http2(self, http2: bool) -> Self {
        Self { backend_http2: http2, ..self }
    }

    /// Adds every certificate of a PEM bundle as a trust anchor.
    pub fn with_pem_file(self, path: &Path) -> Result<Self, TrustError> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let mut roots = (*self.roots).clone();
        let mut count = 0;
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|source| TrustError::Read { path: path.into(), source })?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for cert in certs {
            let cert = cert.map_err(|source| TrustError::Read { path: path.into(), source })?;
            digest.update(cert.as_ref());
            roots.add(cert).map_err(|source| TrustError::Invalid { path: path.into(), source })?;
            count += 1;
        }
        let fingerprint = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if count == 0 {
            return Err(TrustError::Empty { path: path.into() });
        }
        Ok(Self { roots: Arc::new(roots), bundle_fingerprint: Some(fingerprint), ..self })
    }

    /// The roots a pool's verifier starts from, unless its API excludes them.
    pub(super) fn roots(&self) -> &RootCertStore {
        &self.roots
    }

    /// TCP connect timeout for backends.
    pub(super) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long a backend connection may be used for new requests.
    pub(super) fn max_connection_age(&self) -> Option<Duration> {
        self.max_connection_age
    }

    /// Most connections one backend pool holds at once.
    pub(super) fn max_connections_per_pool(&self) -> usize {
        self.max_connections_per_pool
    }

    /// Whether backends are offered HTTP/2.
    pub(super) fn backend_http2(&self) -> bool {
        self.backend_http2
    }
}
