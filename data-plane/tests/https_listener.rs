//! The HTTPS listener as an API client meets it: a real TLS client (tokio-rustls, with SNI, ALPN
//! h2 and http/1.1, trusting only the test CA, so the certificate it accepts is checked for the
//! name) against a data plane on 127.0.0.1 serving a hand-made configuration (hostnames,
//! their certificates, APIs on hosts) and a plaintext echo backend. The data plane runs in
//! this process, so a test can swap in the next configuration as the config client would; the
//! last test runs the real `gatehouse-dp`, serving its last-known-good cache.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_data_plane::cache::ConfigCache;
use gatehouse_data_plane::configuration::Configuration;
use gatehouse_data_plane::routes::RoutingTable;
use gatehouse_data_plane::upstream::TrustAnchors;
use gatehouse_data_plane::{DataPlane, DataPlaneConfig, Routing};
use gatehouse_proto::v1 as pb;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

// === the test PKI ===

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "HTTPS Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self { ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// A server certificate for `names`, as the control plane sends it: an identity.
    fn identity(&self, names: &[&str]) -> pb::ClientIdentity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let der = cert.der().to_vec();
        pb::ClientIdentity {
            thumbprint: gatehouse_shared::Thumbprint::of_der(&der).to_string(),
            certificate_chain: vec![der],
            private_key: key.serialize_der(),
            certificate_id: names[0].into(),
        }
    }

    fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(self.ca.der().to_vec())).unwrap();
        Arc::new(roots)
    }
}

// === a plaintext backend that echoes what it got ===

/// Answers every request with JSON: the path and the headers it received.
async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                    let headers: serde_json::Map<String, serde_json::Value> = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
                        .collect();
                    let body = serde_json::json!({ "path": request.uri().path(), "headers": headers });
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(
                        body.to_string(),
                    ))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

// === configurations ===

struct Sites {
    api: pb::ClientIdentity,
    wildcard: pb::ClientIdentity,
    default: pb::ClientIdentity,
}

impl Sites {
    fn new(pki: &Pki) -> Self {
        Self {
            api: pki.identity(&["api.example.test"]),
            wildcard: pki.identity(&["*.example.test"]),
            default: pki.identity(&["default.test"]),
        }
    }
}

fn hostname(name: &str, identity: &pb::ClientIdentity, default: bool) -> pb::HostnameConfig {
    pb::HostnameConfig {
        name: name.into(),
        certificate_thumbprint: identity.thumbprint.clone(),
        default,
        ..Default::default()
    }
}

fn api(id: &str, path: &str, backend: SocketAddr, hosts: &[&str]) -> pb::RouteConfig {
    pb::RouteConfig {
        api_id: id.into(),
        path: path.into(),
        service_url: format!("http://{backend}/{id}"),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        ..Default::default()
    }
}

/// Three hostnames (exact, wildcard, and a default, unless `with_default` is false) and two
/// APIs on /orders: one on api.example.test, one on any host.
fn configuration(revision: u64, sites: &Sites, backend: SocketAddr, with_default: bool) -> Configuration {
    let mut hostnames =
        vec![hostname("api.example.test", &sites.api, false), hostname("*.example.test", &sites.wildcard, false)];
    if with_default {
        hostnames.push(hostname("default.test", &sites.default, true));
    }
    let identities = [&sites.api, &sites.wildcard, &sites.default];
    Configuration {
        revision,
        config_id: "test".into(),
        routes: [
            api("orders-api", "/orders", backend, &["api.example.test"]),
            api("orders-any", "/orders", backend, &[]),
        ]
        .into_iter()
        .map(|r| (r.api_id.clone(), r))
        .collect(),
        identities: identities.iter().map(|i| (i.thumbprint.clone(), (*i).clone())).collect(),
        hostnames: hostnames.into_iter().map(|h| (h.name.clone(), h)).collect(),
        ..Default::default()
    }
}

fn apply(routing: &Routing, config: &Configuration) {
    let previous = routing.load();
    routing.swap(RoutingTable::build(config, previous.as_deref(), &TrustAnchors::system(), usize::MAX).unwrap());
}

/// A data plane in this process, HTTPS only, with no control plane (nothing will replace what
/// the test applies). Returns the HTTPS and admin addresses and its routing.
async fn data_plane() -> (SocketAddr, SocketAddr, Arc<Routing>) {
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = DataPlaneConfig::with_listeners(format!("https://{nowhere}"), None, Some(any), any);
    let data_plane = DataPlane::bind(config).await.unwrap();
    assert_eq!(data_plane.plaintext_addr(), None);
    let (https, admin, routing) =
        (data_plane.https_addr().unwrap(), data_plane.admin_addr(), data_plane.routing().clone());
    tokio::spawn(data_plane.serve(std::future::pending()));
    (https, admin, routing)
}

// === the client ===

struct Client<'a> {
    roots: Arc<rustls::RootCertStore>,
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    alpn: &'a [&'a [u8]],
}

impl Client<'_> {
    fn new(pki: &Pki) -> Self {
        Self { roots: pki.roots(), versions: rustls::DEFAULT_VERSIONS, alpn: &[b"h2", b"http/1.1"] }
    }

    /// Connects with `sni` (None: no SNI), checking the server's certificate against the test
    /// CA and for `expect_name` (not necessarily the SNI: an unknown name gets the default's).
    async fn connect(
        &self,
        addr: SocketAddr,
        sni: Option<&str>,
        expect_name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let mut config = rustls::ClientConfig::builder_with_provider(gatehouse_shared::crypto::provider())
            .with_protocol_versions(self.versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ValidFor {
                name: ServerName::try_from(expect_name.to_string()).unwrap(),
                webpki: rustls::client::WebPkiServerVerifier::builder_with_provider(
                    self.roots.clone(),
                    gatehouse_shared::crypto::provider(),
                )
                .build()
                .unwrap(),
            }))
            .with_no_client_auth();
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        config.enable_sni = sni.is_some();
        let name = ServerName::try_from(sni.unwrap_or(expect_name).to_string()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        connector.connect(name, TcpStream::connect(addr).await?).await
    }
}

/// The standard check of chain and name, for a name chosen by the test rather than the SNI.
#[derive(Debug)]
struct ValidFor {
    name: ServerName<'static>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for ValidFor {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.webpki.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    gatehouse_shared::delegate_signature_checks!();
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends GET `path` for `host` on the connection, over the protocol ALPN chose; returns the
/// status and the body as JSON.
async fn get(stream: TlsStream<TcpStream>, host: &str, path: &str) -> (u16, serde_json::Value) {
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        let mut h2 = H2::open(stream).await;
        return h2.get(host, path).await;
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path).header("host", host).body(Empty::<Bytes>::new()).unwrap();
    read(sender.send_request(request).await.unwrap()).await
}

/// An h2 connection to send several requests on.
struct H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>);

impl H2 {
    async fn open(stream: TlsStream<TcpStream>) -> Self {
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Self(sender)
    }

    async fn get(&mut self, host: &str, path: &str) -> (u16, serde_json::Value) {
        let request = hyper::Request::get(format!("https://{host}{path}")).body(Empty::<Bytes>::new()).unwrap();
        read(self.0.send_request(request).await.unwrap()).await
    }
}

async fn read(response: hyper::Response<hyper::body::Incoming>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// The admin listener's /metrics.
async fn metrics(admin: SocketAddr) -> String {
    let stream = TcpStream::connect(admin).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics").header("host", "admin").body(Empty::<Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

// === the tests ===

#[tokio::test(flavor = "multi_thread")]
async fn each_name_gets_its_hostnames_certificate_and_its_hosts_api() {
    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let (https, _, routing) = data_plane().await;
    apply(&routing, &configuration(1, &sites, backend, true));
    let cert = |identity: &pb::ClientIdentity| identity.certificate_chain[0].clone();

    // SNI, the certificate expected, the name it is valid for, the Host sent, the API reached.
    let cases = [
        (Some("api.example.test"), cert(&sites.api), "api.example.test", "api.example.test", "orders-api"),
        (Some("shop.example.test"), cert(&sites.wildcard), "shop.example.test", "shop.example.test", "orders-any"),
        (Some("unknown.test"), cert(&sites.default), "default.test", "unknown.test", "orders-any"),
        (None, cert(&sites.default), "default.test", "default.test", "orders-any"),
    ];
    for (sni, expected, valid_for, host, api) in cases {
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let client = Client { alpn: &[alpn], ..Client::new(&pki) };
            let stream = client.connect(https, sni, valid_for).await.unwrap_or_else(|e| panic!("{sni:?}: {e}"));
            assert_eq!(served_certificate(&stream), expected, "{sni:?}");
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
            let (status, seen) = get(stream, host, "/orders/1").await;
            assert_eq!(status, 200, "{sni:?} {host}: {seen}");
            assert_eq!(seen["path"], format!("/{api}/1"), "{sni:?} {host}");
            assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
            assert_eq!(seen["headers"]["x-forwarded-host"], host);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_2_and_1_3_are_both_served() {
    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let (https, _, routing) = data_plane().await;
    apply(&routing, &configuration(1, &sites, backend, true));
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let client = Client { versions: &[version], ..Client::new(&pki) };
        let stream = client.connect(https, Some("api.example.test"), "api.example.test").await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        let (status, _) = get(stream, "api.example.test", "/orders/1").await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_name_without_a_default_gets_unrecognized_name_and_is_counted() {
    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let (https, admin, routing) = data_plane().await;
    apply(&routing, &configuration(1, &sites, backend, false));
    let series = r#"gatehouse_client_tls_handshake_failures_total{reason="unrecognized_name"}"#;
    let before = sample(&metrics(admin).await, series);
    for sni in [Some("unknown.test"), Some("a.b.example.test"), None] {
        let error = Client::new(&pki).connect(https, sni, "unknown.test").await.expect_err("the handshake fails");
        let alert = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(alert, Some(rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName))),
            "{sni:?}: {error:?}"
        );
    }
    // The counter is the process's, shared with the other tests here: at least ours.
    assert!(sample(&metrics(admin).await, series) >= before + 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_the_connection_was_not_made_for_gets_421() {
    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let (https, _, routing) = data_plane().await;
    apply(&routing, &configuration(1, &sites, backend, true));
    let client = Client::new(&pki);
    for (sni, valid_for, host) in [
        (Some("api.example.test"), "api.example.test", "shop.example.test"),
        (Some("shop.example.test"), "shop.example.test", "api.example.test"),
        (None, "default.test", "api.example.test"),
    ] {
        let stream = client.connect(https, sni, valid_for).await.unwrap();
        let (status, problem) = get(stream, host, "/orders/1").await;
        assert_eq!(status, 421, "{sni:?} {host}: {problem}");
        assert_eq!(problem["status"], 421);
        assert!(problem["detail"].as_str().unwrap().contains(host), "{problem}");
    }
    // The wildcard's connection serves the other names it covers (HTTP/2 connection reuse).
    let mut h2 = H2::open(client.connect(https, Some("a.example.test"), "a.example.test").await.unwrap()).await;
    assert_eq!(h2.get("b.example.test", "/orders/1").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_certificate_applies_to_the_next_handshake_and_open_connections_keep_going() {
    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let (https, _, routing) = data_plane().await;
    apply(&routing, &configuration(1, &sites, backend, true));
    let client = Client::new(&pki);
    let stream = client.connect(https, Some("api.example.test"), "api.example.test").await.unwrap();
    assert_eq!(served_certificate(&stream), sites.api.certificate_chain[0]);
    let mut open = H2::open(stream).await;
    assert_eq!(open.get("api.example.test", "/orders/1").await.0, 200);

    let rotated = Sites { api: pki.identity(&["api.example.test"]), ..Sites::new(&pki) };
    apply(&routing, &configuration(2, &rotated, backend, true));
    let stream = client.connect(https, Some("api.example.test"), "api.example.test").await.unwrap();
    assert_eq!(served_certificate(&stream), rotated.api.certificate_chain[0], "the next handshake");
    let (status, seen) = open.get("api.example.test", "/orders/2").await;
    assert_eq!((status, seen["path"].as_str()), (200, Some("/orders-api/2")), "the open connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn gatehouse_dp_serves_https_from_its_cache_and_says_where() {
    use tokio::io::AsyncBufReadExt;

    let (pki, backend) = (Pki::new(), echo_backend().await);
    let sites = Sites::new(&pki);
    let dir = std::env::temp_dir().join(format!("gatehouse-dp-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ConfigCache::open(&dir, None).unwrap().store(&configuration(4, &sites, backend, true)).unwrap();
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let start = |listen: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
            .args(["--listen", listen, "--listen-https", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--control-plane", &format!("https://{nowhere}"), "--cache-dir", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let lines = |child: &mut tokio::process::Child, n: usize| {
        let mut reader = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        async move {
            let mut lines = Vec::new();
            while lines.len() < n {
                lines.push(reader.next_line().await.unwrap().expect("gatehouse-dp exited"));
            }
            lines
        }
    };
    let addr = |line: &str| line.rsplit(' ').next().unwrap().parse::<SocketAddr>().unwrap();

    let mut child = start("127.0.0.1:0");
    let printed = tokio::time::timeout(Duration::from_secs(30), lines(&mut child, 3)).await.unwrap();
    assert!(printed[0].starts_with("gatehouse-dp listening on "), "{printed:?}");
    assert!(printed[1].starts_with("gatehouse-dp admin on "), "{printed:?}");
    assert!(printed[2].starts_with("gatehouse-dp https on "), "{printed:?}");
    let stream =
        Client::new(&pki).connect(addr(&printed[2]), Some("api.example.test"), "api.example.test").await.unwrap();
    let (status, seen) = get(stream, "api.example.test", "/orders/7").await;
    assert_eq!((status, seen["path"].as_str()), (200, Some("/orders-api/7")), "{seen}");
    drop(child);

    // Plaintext off: no listening line, and HTTPS still served.
    let mut child = start("none");
    let printed = tokio::time::timeout(Duration::from_secs(30), lines(&mut child, 2)).await.unwrap();
    assert!(printed[0].starts_with("gatehouse-dp admin on "), "{printed:?}");
    assert!(printed[1].starts_with("gatehouse-dp https on "), "{printed:?}");
    let stream = Client::new(&pki).connect(addr(&printed[1]), None, "default.test").await.unwrap();
    assert_eq!(get(stream, "default.test", "/orders/8").await.0, 200);
    drop(child);
    std::fs::remove_dir_all(&dir).ok();
}
