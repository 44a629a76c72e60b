//! The HTTPS handshake with an API client: read the ClientHello, pick the hostname of its SNI
//! from the current routing table ([`crate::hostnames`]), and finish the handshake with that
//! hostname's server configuration (`LazyConfigAcceptor`: the configuration, and with it
//! whether a client certificate is requested, depends on the ClientHello, and rustls never
//! renegotiates). A name no hostname serves, with no default hostname, ends the handshake
//! with the `unrecognized_name` alert (RFC 6066 §3). What the handshake settled (the SNI, the
//! hostname, the client's certificate chain) stays with the connection as a [`TlsSession`].

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::hostnames::{HostPattern, Hostnames, normalize_host};
use crate::metrics::HandshakeFailureLabels;
use crate::routes::Routing;

/// A fatal `unrecognized_name` alert, as a plaintext TLS record: content type alert (21),
/// legacy record version TLS 1.2, length 2, level fatal (2), description 112. rustls only
/// sends `access_denied` when its certificate resolver finds nothing, and offers no way to
/// send another alert before a connection exists; no key is agreed yet, so the record is
/// written as is.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// What the handshake with an API client settled, kept for each request on the connection.
#[derive(Clone, Debug)]
pub struct TlsSession {
    /// The name the client asked for (SNI), lowercase; None when it sent none.
    pub sni: Option<String>,
    /// The hostname whose certificate the client was shown.
    pub hostname: HostPattern,
    /// The certificate chain the client presented (leaf first), when its hostname asked for
    /// one and it sent one. Checked by API policies, not by the handshake.
    pub client_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Why a handshake with an API client failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// No complete ClientHello arrived: the client closed, stalled, or did not speak TLS (a
    /// TCP health check, a port scan, plaintext HTTP on the HTTPS port).
    #[error("no ClientHello")]
    NoClientHello(#[source] std::io::Error),
    /// No hostname serves the client's SNI and there is no default hostname (or no
    /// configuration yet): the client got `unrecognized_name`.
    #[error("no hostname for {}", .sni.as_deref().unwrap_or("a client without SNI"))]
    UnrecognizedName {
        /// The name the client asked for.
        sni: Option<String>,
    },
    /// The handshake itself failed (no common protocol version or cipher, a client
    /// certificate whose key did not sign, a broken connection).
    #[error("TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    /// The handshake did not complete in time.
    #[error("the TLS handshake did not complete within {0:?}")]
    Timeout(Duration),
}

impl HandshakeError {
    /// The metric's reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnrecognizedName { .. } => "unrecognized_name",
            Self::NoClientHello(_) => "no_client_hello",
            Self::Handshake(_) | Self::Timeout(_) => "other",
        }
    }
}

/// Completes the handshake on `io` within `timeout`, with the hostname the current routing
/// table serves for the client's SNI. Failures are counted in
/// `gatehouse_client_tls_handshake_failures_total`.
pub async fn accept<IO>(
    io: IO,
    routing: &Routing,
    timeout: Duration,
) -> Result<(TlsStream<IO>, TlsSession), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let accepted = handshake(io, routing, timeout).await;
    if let Err(error) = &accepted {
        crate::metrics::global()
            .client_tls_handshake_failures
            .get_or_create(&HandshakeFailureLabels { reason: error.reason().to_string() })
            .inc();
    }
    accepted
}

async fn handshake<IO>(
    io: IO,
    routing: &Routing,
    timeout: Duration,
) -> Result<(TlsStream<IO>, TlsSession), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // One budget for both halves of the handshake.
    let deadline = tokio::time::Instant::now() + timeout;
    let start = tokio::time::timeout_at(deadline, LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io))
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
        .map_err(HandshakeError::NoClientHello)?;
    let sni = start.client_hello().server_name().map(|name| normalize_host(name).into_owned());
    let selected = routing.load().and_then(|table| table.hostnames.resolve(sni.as_deref()));
    let Some(selected) = selected else {
        let mut io = start.io;
        let _ = tokio::time::timeout_at(deadline, async {
            io.write_all(&UNRECOGNIZED_NAME_ALERT).await?;
            io.shutdown().await
        })
        .await;
        return Err(HandshakeError::UnrecognizedName { sni });
    };
    let hostname = &selected.hostname;
    let stream = tokio::time::timeout_at(deadline, start.into_stream(hostname.server_config.clone()))
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
        .map_err(HandshakeError::Handshake)?;
    let client_certificates = stream
        .get_ref()
        .1
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect()));
    let session = TlsSession { sni, hostname: hostname.name.clone(), client_certificates };
    Ok((stream, session))
}

// === impl TlsSession ===

impl TlsSession {
    /// Whether a request for `host` (normalized; None when the request names none) belongs on
    /// this connection: the SNI rule, applied to the host, picks the hostname the handshake
    /// picked. So a connection made for an exact name serves that name; one made for a
    /// wildcard serves the names it covers (that no exact hostname claims); one that got the
    /// default certificate (no SNI, or an unknown one) serves any host no other hostname
    /// claims. Anything else is misdirected (421): the client must open a connection for that
    /// host, whose certificate (and client certificate request) may differ.
    pub fn serves_host(&self, hostnames: &Hostnames, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        hostnames.resolve(Some(host)).is_some_and(|selected| selected.hostname.name == self.hostname)
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_proto::v1 as pb;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    use super::*;
    use crate::configuration::Configuration;
    use crate::routes::RoutingTable;
    use crate::upstream::TrustAnchors;

    struct Site {
        name: &'static str,
        identity: pb::ClientIdentity,
        default: bool,
        negotiate: bool,
    }

    fn site(name: &'static str, default: bool, negotiate: bool) -> Site {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let der = certified.cert.der().to_vec();
        let identity = pb::ClientIdentity {
            thumbprint: gatehouse_shared::Thumbprint::of_der(&der).to_string(),
            certificate_chain: vec![der],
            private_key: certified.signing_key.serialize_der(),
            certificate_id: name.into(),
        };
        Site { name, identity, default, negotiate }
    }

    fn routing(sites: &[&Site]) -> Routing {
        let config = Configuration {
            revision: 1,
            identities: sites.iter().map(|s| (s.identity.thumbprint.clone(), s.identity.clone())).collect(),
            hostnames: sites
                .iter()
                .map(|s| {
                    let hostname = pb::HostnameConfig {
                        name: s.name.into(),
                        certificate_thumbprint: s.identity.thumbprint.clone(),
                        default: s.default,
                        negotiate_client_certificate: s.negotiate,
                        client_ca_thumbprints: vec![],
                    };
                    (s.name.to_string(), hostname)
                })
                .collect(),
            ..Default::default()
        };
        let routing = Routing::default();
        routing.swap(RoutingTable::build(&config, None, &TrustAnchors::system(), usize::MAX).unwrap());
        routing
    }

    /// What the client saw of a handshake.
    struct Seen {
        server_certificate: Vec<u8>,
        alpn: Option<Vec<u8>>,
    }

    /// Handshakes over an in-memory pipe: a rustls client trusting anything (it reports which
    /// certificate it got), with `sni`, offering `client_certificate`.
    async fn handshake(
        routing: &Routing,
        sni: Option<&str>,
        client_certificate: Option<&pb::ClientIdentity>,
        alpn: &[&[u8]],
    ) -> (Result<Seen, std::io::Error>, Result<TlsSession, HandshakeError>) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let builder = rustls::ClientConfig::builder_with_provider(gatehouse_shared::crypto::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer));
        let mut config = match client_certificate {
            Some(identity) => {
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.private_key.clone()));
                let key = gatehouse_shared::crypto::provider().key_provider.load_private_key(key).unwrap();
                let chain = identity.certificate_chain.iter().map(|c| c.clone().into()).collect();
                // CertifiedKey::new does not check that the key is the certificate's: an
                // impostor can be made.
                let certified = rustls::sign::CertifiedKey::new(chain, key);
                builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.enable_sni = sni.is_some();
        // With SNI off, rustls still needs a name to check (our verifier ignores it).
        let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let client = async move {
            let mut stream = connector.connect(name, client_io).await?;
            let (_, connection) = stream.get_ref();
            let seen = Seen {
                server_certificate: connection.peer_certificates().unwrap()[0].to_vec(),
                alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
            };
            stream.write_all(b"x").await?;
            // Kept open until the server is done too (it may still write session tickets).
            Ok((seen, stream))
        };
        let server = async {
            let (mut stream, session) = accept(server_io, routing, Duration::from_secs(5)).await?;
            let _ = tokio::io::AsyncReadExt::read_exact(&mut stream, &mut [0u8; 1]).await;
            Ok(session)
        };
        let (client, server) = tokio::join!(client, server);
        (client.map(|(seen, _)| seen), server)
    }

    #[tokio::test]
    async fn the_client_gets_the_certificate_of_its_sni_and_h2_when_it_offers_it() {
        let (api, wild, default) =
            (site("api.example.com", false, false), site("*.example.com", false, false), site("www.test", true, false));
        let routing = routing(&[&api, &wild, &default]);
        let cert = |s: &Site| s.identity.certificate_chain[0].clone();
        for (sni, expected, hostname) in [
            (Some("api.example.com"), &api, "api.example.com"),
            (Some("shop.example.com"), &wild, "*.example.com"),
            (Some("a.b.example.com"), &default, "www.test"),
            (Some("unknown.test"), &default, "www.test"),
            (None, &default, "www.test"),
        ] {
            let (seen, session) = handshake(&routing, sni, None, &[b"h2", b"http/1.1"]).await;
            let (seen, session) = (seen.unwrap(), session.unwrap());
            assert_eq!(seen.server_certificate, cert(expected), "{sni:?}");
            assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
            assert_eq!(session.hostname.to_string(), hostname);
            assert_eq!(session.sni.as_deref(), sni);
            assert!(session.client_certificates.is_none());
        }
        let (seen, _) = handshake(&routing, Some("api.example.com"), None, &[b"http/1.1"]).await;
        assert_eq!(seen.unwrap().alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[tokio::test]
    async fn an_unknown_name_without_a_default_gets_unrecognized_name() {
        let api = site("api.example.com", false, false);
        let routing = routing(&[&api]);
        for sni in [Some("other.example.com"), None] {
            let (seen, session) = handshake(&routing, sni, None, &[]).await;
            let error = seen.err().unwrap();
            let alert = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
            assert!(
                matches!(alert, Some(rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName))),
                "{sni:?}: {error:?}"
            );
            assert!(matches!(session, Err(HandshakeError::UnrecognizedName { .. })));
        }
        // Before the first configuration there is no hostname at all.
        let (seen, _) = handshake(&Routing::default(), Some("api.example.com"), None, &[]).await;
        assert!(seen.is_err());
    }

    #[tokio::test]
    async fn the_client_certificate_chain_is_kept_where_the_hostname_asks_for_one() {
        let (mtls, open) = (site("mtls.test", false, true), site("open.test", false, false));
        let routing = routing(&[&mtls, &open]);
        let client = site("client", false, false).identity;

        let (seen, session) = handshake(&routing, Some("mtls.test"), Some(&client), &[]).await;
        seen.unwrap();
        let chain = session.unwrap().client_certificates.expect("the client's chain");
        assert_eq!(chain[0].as_ref(), client.certificate_chain[0].as_slice());

        // Requested, not required: a client without one gets through, with nothing kept.
        let (seen, session) = handshake(&routing, Some("mtls.test"), None, &[]).await;
        seen.unwrap();
        assert!(session.unwrap().client_certificates.is_none());

        // A hostname that does not ask never gets one.
        let (seen, session) = handshake(&routing, Some("open.test"), Some(&client), &[]).await;
        seen.unwrap();
        assert!(session.unwrap().client_certificates.is_none());
    }

    #[tokio::test]
    async fn a_client_certificate_whose_key_does_not_sign_fails_the_handshake() {
        let mtls = site("mtls.test", false, true);
        let routing = routing(&[&mtls]);
        let mut impostor = site("client", false, false).identity;
        // Someone else's certificate, with the impostor's own key.
        impostor.certificate_chain = site("victim", false, false).identity.certificate_chain;
        let (_, session) = handshake(&routing, Some("mtls.test"), Some(&impostor), &[]).await;
        let error = session.expect_err("the handshake must fail");
        assert_eq!(error.reason(), "other", "{error:?}");
    }

    #[test]
    fn a_request_belongs_on_the_connection_when_its_host_picks_the_same_hostname() {
        let (api, wild, default, other) = (
            site("api.example.com", false, false),
            site("*.example.com", false, false),
            site("www.test", true, false),
            site("secure.test", false, true),
        );
        let routing = routing(&[&api, &wild, &default, &other]);
        let table = routing.load().unwrap();
        let session = |sni: Option<&str>, hostname: &str| TlsSession {
            sni: sni.map(str::to_string),
            hostname: HostPattern::parse(hostname).unwrap(),
            client_certificates: None,
        };
        let serves = |s: &TlsSession, host: &str| s.serves_host(&table.hostnames, Some(host));

        let exact = session(Some("api.example.com"), "api.example.com");
        assert!(serves(&exact, "api.example.com"));
        assert!(!serves(&exact, "shop.example.com"), "another name under the same certificate's wildcard");
        assert!(!serves(&exact, "127.0.0.1"));
        assert!(exact.serves_host(&table.hostnames, None), "a request without a host misdirects nothing");

        let wildcard = session(Some("a.example.com"), "*.example.com");
        assert!(serves(&wildcard, "a.example.com") && serves(&wildcard, "b.example.com"));
        assert!(!serves(&wildcard, "api.example.com"), "an exact hostname has its own connections");
        assert!(!serves(&wildcard, "x.y.example.com"));

        for sni in [None, Some("unknown.test")] {
            let by_default = session(sni, "www.test");
            assert!(serves(&by_default, "www.test") && serves(&by_default, "unknown.test"));
            assert!(serves(&by_default, "10.0.0.5"), "an address or unknown name reaches APIs on any host");
            assert!(!serves(&by_default, "secure.test"), "a hostname that asks for certificates is not reached around");
            assert!(!serves(&by_default, "api.example.com"));
        }
    }

    #[derive(Debug)]
    struct AnyServer;

    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        gatehouse_shared::delegate_signature_checks!();
    }
}
