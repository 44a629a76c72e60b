//! Connections to backends. One pool per TLS identity: (scheme, authority, client certificate
//! thumbprint). A connection opened with certificate A is never reused for a request that must
//! present B, and TLS sessions are never resumed across identities, because each pool has its
//! own rustls configuration (and session cache).

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gatehouse_proto::v1 as pb;
use http::Uri;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Identifies a pool: requests may share connections only when all of this is equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    pub scheme: String,
    pub authority: String,
    /// Uppercase SHA-1 of the client certificate presented; empty for none.
    pub client_thumbprint: String,
    pub tls: TlsPolicy,
}

/// How a pool checks its backend's server certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsPolicy {
    pub skip_chain_validation: bool,
    pub skip_name_validation: bool,
    /// Thumbprints of the API's own CA certificates, sorted.
    pub ca_thumbprints: Vec<String>,
    /// Trust only `ca_thumbprints`, not the system roots (nor --backend-ca-file).
    pub exclude_system_roots: bool,
}

impl TlsPolicy {
    pub fn from_route(tls: Option<&pb::RouteTls>) -> Self {
        let Some(tls) = tls else { return Self::default() };
        let mut ca_thumbprints = tls.ca_thumbprints.clone();
        ca_thumbprints.sort();
        Self {
            skip_chain_validation: tls.skip_chain_validation,
            skip_name_validation: tls.skip_name_validation,
            ca_thumbprints,
            exclude_system_roots: tls.exclude_system_roots,
        }
    }
}

pub struct Upstream {
    pub key: UpstreamKey,
    client: Client<Counting<HttpsConnector<HttpConnector>>, Incoming>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("client certificate {thumbprint} is not in the snapshot")]
    MissingIdentity { thumbprint: String },
    #[error("client certificate {thumbprint} cannot be used")]
    BadIdentity {
        thumbprint: String,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    #[error("CA certificate {thumbprint} is not in the snapshot")]
    MissingCa { thumbprint: String },
    #[error("CA certificate {thumbprint} cannot be used as a trust anchor")]
    BadCa {
        thumbprint: String,
        #[source]
        source: rustls::Error,
    },
    #[error("the backend's certificate cannot be verified")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// The trust anchors backends' certificates are checked against: the system roots (which
/// honour SSL_CERT_FILE / SSL_CERT_DIR) plus any the operator adds with `--backend-ca-file`.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    /// SHA-256 (hex) of the --backend-ca-file certificates, reported to the control plane so
    /// operators see which data planes trust what.
    bundle_fingerprint: Option<String>,
    /// TCP connect timeout for backends.
    connect_timeout: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA file {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA file {path} holds no PEM certificate")]
    Empty { path: std::path::PathBuf },
    #[error("CA file {path} holds a certificate that is not a valid trust anchor")]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
}

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
        Self { roots, bundle_fingerprint: None, connect_timeout: std::time::Duration::from_secs(10) }
    }

    /// SHA-256 (hex) of the extra CA bundle, if one was added.
    pub fn bundle_fingerprint(&self) -> Option<&str> {
        self.bundle_fingerprint.as_deref()
    }

    pub fn with_connect_timeout(self, connect_timeout: std::time::Duration) -> Self {
        Self { connect_timeout, ..self }
    }

    /// Adds every certificate of a PEM bundle as a trust anchor.
    pub fn with_pem_file(self, path: &std::path::Path) -> Result<Self, TrustError> {
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
}

impl Upstream {
    /// A pool for `key`; `verifier` checks the backend (shared by every pool with the same
    /// trust settings, so a thousand identities do not mean a thousand root stores).
    pub fn new(
        key: UpstreamKey,
        identity: Option<&pb::ClientIdentity>,
        verifier: Arc<dyn ServerCertVerifier>,
        trust: &TrustAnchors,
    ) -> Result<Self, UpstreamError> {
        let provider = gatehouse_shared::crypto::provider();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(UpstreamError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let tls = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = identity.certificate_chain.iter().map(|der| der.clone().into()).collect();
                let key = rustls_pki_types::PrivateKeyDer::Pkcs8(identity.private_key.clone().into());
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| UpstreamError::BadIdentity { thumbprint: identity.thumbprint.clone(), source })?
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(trust.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let connector = Counting(connector);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        Ok(Self { key, client })
    }

    pub async fn send(
        &self,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}

/// The verifier for one set of trust settings: roots (system and --backend-ca-file unless
/// excluded, plus the API's CA certificates) and the chain/name toggles.
pub fn backend_verifier(
    tls: &TlsPolicy,
    cas: &HashMap<&str, &pb::TrustedCa>,
    trust: &TrustAnchors,
) -> Result<Arc<dyn ServerCertVerifier>, UpstreamError> {
    let mut roots = if tls.exclude_system_roots { RootCertStore::empty() } else { (*trust.roots).clone() };
    for thumbprint in &tls.ca_thumbprints {
        let ca =
            cas.get(thumbprint.as_str()).ok_or_else(|| UpstreamError::MissingCa { thumbprint: thumbprint.clone() })?;
        roots
            .add(ca.certificate.clone().into())
            .map_err(|source| UpstreamError::BadCa { thumbprint: thumbprint.clone(), source })?;
    }
    Ok(Arc::new(BackendVerifier::new(roots, tls, gatehouse_shared::crypto::provider())?))
}

/// Checks a backend's certificate the way its API asks: by default the chain (against the
/// pool's roots) and the name; with chain validation off, any chain, and with name validation
/// off, any name. Handshake signatures are always verified, so the backend must hold the key
/// of the certificate it shows.
#[derive(Debug)]
struct BackendVerifier {
    /// None when chain validation is off.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    validate_name: bool,
}

impl BackendVerifier {
    fn new(
        roots: RootCertStore,
        tls: &TlsPolicy,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        let webpki = if tls.skip_chain_validation {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(UpstreamError::Verifier)?,
            )
        };
        Ok(Self { webpki, validate_name: !tls.skip_name_validation })
    }
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match &self.webpki {
            Some(webpki) => match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            {
                Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. }))
                    if !self.validate_name =>
                {
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            },
            None => {
                if self.validate_name {
                    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                    rustls::client::verify_server_name(&parsed, server_name)?;
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        gatehouse_shared::crypto::signatures::verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        gatehouse_shared::crypto::signatures::verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        gatehouse_shared::crypto::signatures::schemes()
    }
}

/// Why a backend call failed, in the words an API client's operator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendFailure {
    CertificateNotTrusted,
    NameMismatch,
    ClientCertificateRejected,
    TlsHandshake,
    Connect,
    Protocol,
    /// The client's request body broke (malformed chunking, the client went away mid-body):
    /// the client's fault, not the backend's.
    ClientBody,
}

impl BackendFailure {
    pub fn is_tls(self) -> bool {
        !matches!(self, Self::Connect | Self::Protocol | Self::ClientBody)
    }

    /// The status the API client gets: 400 for its own broken body, else 502.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::ClientBody => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The `reason` label of the TLS failure metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::CertificateNotTrusted => "certificate_not_trusted",
            Self::NameMismatch => "name_mismatch",
            Self::ClientCertificateRejected => "client_certificate_rejected",
            Self::TlsHandshake => "handshake",
            Self::Connect => "connect",
            Self::Protocol => "protocol",
            Self::ClientBody => "client_body",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::CertificateNotTrusted => "the backend's TLS certificate is not trusted",
            Self::NameMismatch => "the backend's TLS certificate does not match its host name",
            Self::ClientCertificateRejected => "the backend rejected the gateway's client certificate",
            Self::TlsHandshake => "the TLS handshake with the backend failed",
            Self::Connect => "could not connect to the backend",
            Self::Protocol => "the backend connection failed",
            Self::ClientBody => "the request body was malformed or ended before it was complete",
        }
    }

    /// Walks the error's causes for the rustls error underneath.
    pub fn classify(error: &hyper_util::client::legacy::Error) -> Self {
        if is_client_body_error(error) {
            return Self::ClientBody;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
        while let Some(e) = cause {
            if let Some(tls) = find_tls(e) {
                return Self::from_tls(tls);
            }
            cause = e.source();
        }
        if error.is_connect() { Self::Connect } else { Self::Protocol }
    }

    fn from_tls(error: &rustls::Error) -> Self {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
        match error {
            Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
                Self::NameMismatch
            }
            Error::InvalidCertificate(_) => Self::CertificateNotTrusted,
            Error::AlertReceived(
                Alert::BadCertificate
                | Alert::CertificateRequired
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::AccessDenied
                | Alert::DecryptError,
            ) => Self::ClientCertificateRejected,
            _ => Self::TlsHandshake,
        }
    }
}

/// hyper reports a request body that failed while being sent as a user error whose cause is
/// the body's own error: here, the server side's error reading the client's body.
fn is_client_body_error(error: &hyper_util::client::legacy::Error) -> bool {
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_user()
            && hyper.source().is_some_and(|inner| inner.is::<hyper::Error>())
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The rustls error inside `error`, looking through io::Error wrappers (hyper-rustls wraps
/// tokio-rustls's io::Error in another one, and io::Error's `source()` skips the inner error).
fn find_tls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_tls(inner)
}

// === impl Counting ===

/// A connector that counts the connections it opens and those still open.
#[derive(Clone)]
pub struct Counting<C>(C);

impl<C> tower::Service<Uri> for Counting<C>
where
    C: tower::Service<Uri> + Clone + Send + 'static,
    C::Response: Send + 'static,
    C::Future: Send + 'static,
{
    type Response = CountedConnection<C::Response>;
    type Error = C::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let connection = connecting.await?;
            let metrics = crate::metrics::global();
            metrics.upstream_connections_opened.inc();
            metrics.upstream_connections_open.inc();
            Ok(CountedConnection(connection))
        })
    }
}

/// A backend connection, counted as open until dropped.
pub struct CountedConnection<T>(T);

impl<T> Drop for CountedConnection<T> {
    fn drop(&mut self) {
        crate::metrics::global().upstream_connections_open.dec();
    }
}

impl<T: hyper_util::client::legacy::connect::Connection> hyper_util::client::legacy::connect::Connection
    for CountedConnection<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.0.connected()
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for CountedConnection<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for CountedConnection<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
