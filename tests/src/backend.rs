//! A backend on 127.0.0.1 that terminates TLS, requires a client certificate, and answers every
//! request with what it saw: the client certificate's thumbprint, the path, and the headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use gatehouse_shared::Thumbprint;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::DistinguishedName;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::Issued;

/// Response header carrying the thumbprint of the client certificate the backend was shown.
pub const THUMBPRINT_HEADER: &str = "x-client-thumbprint";

/// Which client certificates the backend accepts.
pub enum ClientAuth {
    /// Any certificate whose holder proves it has the key (the handshake signature is checked).
    AnyCertificate,
    /// Only certificates issued by this CA (DER).
    TrustedBy(Vec<u8>),
}

/// A running echo backend; stopped when dropped.
pub struct EchoBackend {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything about a backend but its certificate.
pub struct BackendOptions {
    /// Which client certificates it accepts.
    pub client_auth: ClientAuth,
    /// Answer 401 unless the request carries this header with this value.
    pub required_header: Option<(String, String)>,
    /// Sign handshakes with this PKCS#8 key instead of the certificate's own: an impostor
    /// that shows a certificate it does not hold the key of.
    pub signing_key: Option<Vec<u8>>,
    /// Offer HTTP/2 (ALPN h2, then http/1.1); otherwise the backend speaks HTTP/1.1 only.
    pub http2: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self { client_auth: ClientAuth::AnyCertificate, required_header: None, signing_key: None, http2: false }
    }
}

impl EchoBackend {
    /// Starts a TLS backend on 127.0.0.1:0 with `server` as its certificate.
    pub async fn start(server: &Issued, client_auth: ClientAuth) -> anyhow::Result<Self> {
        Self::start_with(server, BackendOptions { client_auth, ..BackendOptions::default() }).await
    }

    /// Starts a TLS backend on 127.0.0.1:0 with `server` as its certificate and `options` for the rest.
    pub async fn start_with(server: &Issued, options: BackendOptions) -> anyhow::Result<Self> {
        let provider = gatehouse_shared::crypto::provider();
        let verifier: Arc<dyn ClientCertVerifier> = match options.client_auth {
            ClientAuth::AnyCertificate => Arc::new(AnyClientCertificate),
            ClientAuth::TrustedBy(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from(ca))?;
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()?
            }
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier);
        let chain = vec![CertificateDer::from(server.der.clone())];
        let mut config = match options.signing_key {
            None => builder
                .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.clone())))?,
            Some(key) => {
                // CertifiedKey::new skips the key/certificate consistency check on purpose.
                let key =
                    provider.key_provider.load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))?;
                builder.with_cert_resolver(Arc::new(FixedCertificate(Arc::new(rustls::sign::CertifiedKey::new(
                    chain, key,
                )))))
            }
        };
        if options.http2 {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        let required = Arc::new(options.required_header);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                let required = required.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let thumbprint = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|c| Thumbprint::of_der(c).to_string())
                        .unwrap_or_default();
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let thumbprint = thumbprint.clone();
                        let required = required.clone();
                        async move { Ok::<_, hyper::Error>(echo(request, &thumbprint, required.as_ref().as_ref()).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, requests, task })
    }

    /// https://localhost:PORT: the name its certificate is usually issued for.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn echo(
    request: Request<hyper::body::Incoming>,
    thumbprint: &str,
    required: Option<&(String, String)>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if let Some((name, value)) = required
        && parts.headers.get(name.as_str()).and_then(|v| v.to_str().ok()) != Some(value.as_str())
    {
        return Response::builder()
            .status(401)
            .header(THUMBPRINT_HEADER, thumbprint)
            .body(Full::new(Bytes::from_static(b"missing or wrong credentials")))
            .expect("valid response");
    }
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.to_str().unwrap_or("<binary>"))))
        .collect();
    let reply = serde_json::json!({
        "client_thumbprint": thumbprint,
        "method": parts.method.as_str(),
        "version": format!("{:?}", parts.version),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
        "body_bytes": body.len(),
    });
    Response::builder()
        .header(THUMBPRINT_HEADER, thumbprint)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(reply.to_string())))
        .expect("valid response")
}

/// Requires a client certificate and proof of its key, but trusts any issuer: lets tests use
/// self-signed client certificates such as the openssl fixtures.
#[derive(Debug)]
struct AnyClientCertificate;

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    gatehouse_shared::delegate_signature_checks!();
}

#[derive(Debug)]
struct FixedCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCertificate {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A backend on 127.0.0.1 that accepts connections and never answers (for timeouts); it holds
/// what it accepted until dropped.
pub struct SilentBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentBackend {
    /// Starts it on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for SilentBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
