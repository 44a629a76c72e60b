//! The store's rules in process, on a temporary sled database and (with the etcd feature) on
//! a real etcd: what each write refuses, and that a refused write changes nothing.

use crate::certificate::{ClientCertificate, ServerCertificateError};
use gatehouse_shared::sealed::SealingKey;
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

use super::*;
use crate::model::etag;

fn sled_store() -> Arc<Store> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Arc::new(Store::open(db, SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap())
}

/// An empty store of each kind: sled, and with the etcd feature an etcd one (a prefix of its
/// own on the test etcd).
pub(super) async fn stores() -> Vec<Arc<Store>> {
    #[allow(unused_mut)]
    let mut stores = vec![sled_store()];
    #[cfg(feature = "etcd")]
    stores.push(etcd_fixture::store().await);
    stores
}

mod declarations;
#[cfg(feature = "etcd")]
pub(super) mod etcd_fixture;
#[cfg(feature = "etcd")]
mod shared;

/// A self-signed client certificate with its PKCS#8 key.
pub(super) fn certificate(name: &str) -> ClientCertificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    ClientCertificate::from_parts(vec![cert.der().to_vec()], key.serialize_der()).unwrap()
}

/// A self-signed certificate with these subjectAltName DNS names and extended key usages (none:
/// no extendedKeyUsage extension).
pub(super) fn server_certificate(names: &[&str], usages: &[rcgen::ExtendedKeyUsagePurpose]) -> ClientCertificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("server"));
    params.extended_key_usages = usages.to_vec();
    let cert = params.self_signed(&key).unwrap();
    ClientCertificate::from_parts(vec![cert.der().to_vec()], key.serialize_der()).unwrap()
}

/// A self-signed CA certificate, as `parse_ca_certificate` accepts it.
fn ca_certificate(name: &str) -> (Vec<u8>, gatehouse_shared::CertificateInfo) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    crate::certificate::parse_ca_certificate(params.self_signed(&key).unwrap().der()).unwrap()
}

pub(super) fn hostname(name: &str, certificate_id: &str) -> HostnameDefinition {
    HostnameDefinition {
        name: name.into(),
        certificate_id: certificate_id.into(),
        default: false,
        negotiate_client_certificate: false,
        client_ca_ids: Vec::new(),
    }
}

pub(super) fn api(id: &str, path: &str, binding: Option<Binding>) -> ApiDefinition {
    ApiDefinition {
        id: id.into(),
        display_name: String::new(),
        path: path.into(),
        service_url: "https://backend.internal:8443".into(),
        binding,
        tls: BackendTls::default(),
        hostnames: Vec::new(),
        subscription: Default::default(),
    }
}

fn api_on(id: &str, path: &str, hostnames: &[&str]) -> ApiDefinition {
    ApiDefinition { hostnames: hostnames.iter().map(|h| h.to_string()).collect(), ..api(id, path, None) }
}

fn by_id(id: &str) -> Option<Binding> {
    Some(Binding::CertificateId(id.into()))
}

pub(super) const ANY: WriteOptions = WriteOptions { if_match: String::new(), allow_expired: false };

#[tokio::test]
async fn a_stale_etag_is_refused_and_writes_nothing() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let first = store.put_api(api("a", "/a", None), &ANY).await.unwrap();
        store.put_api(api("a", "/a2", None), &ANY).await.unwrap();
        let revision = store.state().revision;
        let stale = WriteOptions { if_match: etag(first.revision), ..ANY };
        let error = store.put_api(api("a", "/a3", None), &stale).await.unwrap_err();
        assert!(matches!(error, StoreError::EtagMismatch { kind: ResourceKind::Api, .. }), "{error}");
        assert_eq!(store.state().revision, revision);
        assert_eq!(store.state().apis["a"].path, "/a2");
        let missing = WriteOptions { if_match: "7".into(), ..ANY };
        let error = store.put_api(api("new", "/new", None), &missing).await.unwrap_err();
        assert!(matches!(error, StoreError::EtagOnMissing { .. }), "{error}");
    }
}

#[tokio::test]
async fn a_create_never_replaces_an_api() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.create_api(api("a", "/a", None), &ANY).await.unwrap();
        let revision = store.state().revision;
        let error = store.create_api(api("a", "/other", None), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::Exists { kind: ResourceKind::Api, .. }), "{error}");
        assert_eq!((store.state().revision, store.state().apis["a"].path.as_str()), (revision, "/a"));
    }
}

#[tokio::test]
async fn deleting_a_certificate_in_use_names_every_api() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let cert = certificate("c");
        let thumbprint = cert.info.thumbprint.clone();
        store.upload_certificate("c", cert, &ANY).await.unwrap();
        store.put_api(api("by-id", "/x", by_id("c")), &ANY).await.unwrap();
        store.put_api(api("pinned", "/y", Some(Binding::Thumbprint(thumbprint))), &ANY).await.unwrap();
        let error = store.delete_certificate("c", &ANY).await.unwrap_err();
        match error {
            StoreError::CertificateInUse { apis, .. } => assert_eq!(apis, ["by-id", "pinned"]),
            other => panic!("{other}"),
        }
        assert!(store.state().certificates.contains_key("c"));
    }
}

#[tokio::test]
async fn rotating_away_from_a_pinned_thumbprint_is_refused_and_rotation_by_id_follows() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let old = certificate("old");
        let pinned = old.info.thumbprint.clone();
        store.upload_certificate("c", old, &ANY).await.unwrap();
        store.put_api(api("follows", "/f", by_id("c")), &ANY).await.unwrap();
        store.put_api(api("pins", "/p", Some(Binding::Thumbprint(pinned.clone()))), &ANY).await.unwrap();

        let error = store.upload_certificate("c", certificate("new"), &ANY).await.unwrap_err();
        match error {
            StoreError::PinnedByThumbprint { apis, thumbprint, .. } => {
                assert_eq!(apis, ["pins"]);
                assert_eq!(thumbprint, pinned);
            }
            other => panic!("{other}"),
        }
        // Unpinned, the rotation goes through and the API bound by id presents the new certificate.
        store.set_api_binding("pins", Binding::None, &ANY).await.unwrap();
        let new = certificate("new");
        let new_thumbprint = new.info.thumbprint.clone();
        store.upload_certificate("c", new, &ANY).await.unwrap();
        let published = store.latest();
        let route = published.routes.get("follows").expect("a route");
        assert_eq!(route.client_certificate_thumbprint, new_thumbprint.as_str());
    }
}

#[tokio::test]
async fn a_certificate_binding_needs_https_and_ids_stay_plain() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.upload_certificate("c", certificate("c"), &ANY).await.unwrap();
        let plain = ApiDefinition { service_url: "http://backend:8080".into(), ..api("a", "/a", by_id("c")) };
        let error = store.put_api(plain, &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::CertificateOverPlainHttp(_)), "{error}");
        for id in ["", ".", "..", "a/b", "a b"] {
            let error = store.put_api(api(id, "/z", None), &ANY).await.unwrap_err();
            assert!(matches!(error, StoreError::InvalidId { kind: ResourceKind::Api, .. }), "{id}: {error}");
        }
        assert_eq!(store.state().revision, 1, "only the upload was written");
    }
}

#[tokio::test]
async fn an_update_changes_only_what_it_names() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let tls = BackendTls { validate_name: false, ..BackendTls::default() };
        store.put_api(ApiDefinition { display_name: "A".into(), tls, ..api("a", "/a", None) }, &ANY).await.unwrap();
        store
            .update_api(
                "a",
                |current| ApiDefinition { path: "/moved".into(), binding: None, ..current_definition(current) },
                &ANY,
            )
            .await
            .unwrap();
        let api = &store.state().apis["a"];
        assert_eq!((api.path.as_str(), api.display_name.as_str(), api.tls.validate_name), ("/moved", "A", false));
    }
}

fn current_definition(api: &Api) -> ApiDefinition {
    ApiDefinition {
        id: api.id.clone(),
        display_name: api.display_name.clone(),
        path: api.path.clone(),
        service_url: api.service_url.clone(),
        binding: None,
        tls: api.tls.clone(),
        hostnames: api.hostnames.clone(),
        subscription: api.subscription.clone(),
    }
}

// === hostnames ===

#[test]
fn hostnames_are_lowercase_dns_names_exact_or_wildcard() {
    use super::rules::normalize_hostname;
    assert_eq!(normalize_hostname("API.Example.COM").unwrap(), "api.example.com");
    assert_eq!(normalize_hostname("*.Example.com").unwrap(), "*.example.com");
    let longest_label = format!("{}.example", "a".repeat(63));
    for name in ["localhost", "xn--bcher-kva.example", "a-1.b2.example", longest_label.as_str()] {
        assert_eq!(normalize_hostname(name).unwrap(), name);
    }
    let long = format!("{}.example", vec!["a".repeat(60); 5].join("."));
    let long_label = format!("{}.example", "a".repeat(64));
    for (name, reason) in [
        ("", "empty"),
        ("10.0.0.1", "IP address"),
        ("::1", "IP address"),
        ("[::1]", "IP address"),
        ("*.0.0.1", "IP address"),
        ("api.example.com.", "trailing dot"),
        ("*", "wildcard"),
        ("*example.com", "wildcard"),
        ("a.*.example.com", "wildcard"),
        ("*.*.example.com", "wildcard"),
        ("api*.example.com", "wildcard"),
        ("api..example.com", "empty label"),
        (".example.com", "empty label"),
        ("api_1.example.com", "letters, digits"),
        ("api.example.com:443", "letters, digits"),
        ("bücher.example", "ASCII form"),
        ("-api.example.com", "starts or ends"),
        (long_label.as_str(), "63"),
        (long.as_str(), "253"),
    ] {
        match normalize_hostname(name) {
            Err(error @ StoreError::InvalidHostname { .. }) => {
                assert!(error.to_string().contains(reason), "{name}: {error}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_hostname_is_stored_lowercase_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(reopen(dir.path()), SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap();
    let store = open();
    store.upload_certificate("server", server_certificate(&["api.example.com"], &[ServerAuth]), &ANY).await.unwrap();
    let (der, info) = ca_certificate("Clients CA");
    store.upload_ca_certificate("clients", der, info, None, &ANY).await.unwrap();
    let definition = HostnameDefinition {
        default: true,
        negotiate_client_certificate: true,
        client_ca_ids: vec!["clients".into()],
        ..hostname("API.example.com", "server")
    };
    let put = store.put_hostname(definition, &ANY).await.unwrap();
    assert_eq!(put.name, "api.example.com");
    store.put_api(api_on("a", "/a", &["Api.Example.com"]), &ANY).await.unwrap();
    assert_eq!(store.state().apis["a"].hostnames, ["api.example.com"]);
    drop(store);

    let state = open().state();
    assert_eq!(state.hostnames["api.example.com"], put);
    assert_eq!(state.apis["a"].hostnames, ["api.example.com"]);
}

#[tokio::test]
async fn a_hostname_needs_an_unexpired_server_certificate_valid_for_its_name() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let any = ANY;
        let put = |name: &str, cert: &str| store.put_hostname(hostname(name, cert), &any);
        let error = put("api.example.com", "missing").await.unwrap_err();
        assert!(matches!(error, StoreError::NotFound { kind: ResourceKind::Certificate, .. }), "{error}");

        store
            .upload_certificate("client-only", server_certificate(&["api.example.com"], &[ClientAuth]), &ANY)
            .await
            .unwrap();
        store.upload_certificate("no-san", certificate("api.example.com"), &ANY).await.unwrap();
        store.upload_certificate("exact", server_certificate(&["api.example.com"], &[ServerAuth]), &ANY).await.unwrap();
        store
            .upload_certificate("wildcard", server_certificate(&["*.example.com"], &[ServerAuth, ClientAuth]), &ANY)
            .await
            .unwrap();
        // No extendedKeyUsage extension: usable for anything, serverAuth included.
        store.upload_certificate("any-use", server_certificate(&["www.example.com"], &[]), &ANY).await.unwrap();
        let refusal = |error: StoreError| match error {
            StoreError::NotServerCertificate { reason, .. } => reason,
            other => panic!("{other}"),
        };

        let error = put("api.example.com", "client-only").await.unwrap_err();
        assert!(error.to_string().contains("does not include serverAuth"), "{error}");
        assert_eq!(refusal(error), ServerCertificateError::NoServerAuth);
        let error = put("api.example.com", "no-san").await.unwrap_err();
        assert!(error.to_string().contains("has no subjectAltName DNS names"), "{error}");
        assert_eq!(refusal(error), ServerCertificateError::NoDnsNames);
        let error = put("other.example.com", "exact").await.unwrap_err();
        assert!(error.to_string().contains("valid for api.example.com, not for 'other.example.com'"), "{error}");
        // A wildcard hostname needs the wildcard name; a wildcard name covers one label only.
        for (name, cert) in [("*.example.com", "exact"), ("a.b.example.com", "wildcard"), ("example.com", "wildcard")] {
            let reason = refusal(put(name, cert).await.unwrap_err());
            assert!(matches!(reason, ServerCertificateError::NotValidForName { .. }), "{name}: {reason}");
        }
        assert_eq!(store.state().revision, 5, "only the uploads were written");

        put("api.example.com", "exact").await.unwrap();
        put("shop.example.com", "wildcard").await.unwrap();
        put("*.example.com", "wildcard").await.unwrap();
        put("www.example.com", "any-use").await.unwrap();

        let mut expired = rcgen::CertificateParams::new(vec!["old.example.com".to_string()]).unwrap();
        expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = expired.self_signed(&key).unwrap().der().to_vec();
        let cert = ClientCertificate::from_parts(vec![der], key.serialize_der()).unwrap();
        store.upload_certificate("expired", cert, &ANY).await.unwrap();
        let error = put("old.example.com", "expired").await.unwrap_err();
        assert!(matches!(error, StoreError::Expired { .. }), "{error}");
        let allow = WriteOptions { allow_expired: true, ..ANY };
        store.put_hostname(hostname("old.example.com", "expired"), &allow).await.unwrap();
        // As with bindings, expiry is checked when the hostname gets the certificate, not on every put.
        let asks = HostnameDefinition { negotiate_client_certificate: true, ..hostname("old.example.com", "expired") };
        store.put_hostname(asks, &ANY).await.unwrap();
    }
}

#[tokio::test]
async fn a_second_default_hostname_is_refused_naming_the_default() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.upload_certificate("c", server_certificate(&["*.example.com"], &[ServerAuth]), &ANY).await.unwrap();
        let default = |name: &str| HostnameDefinition { default: true, ..hostname(name, "c") };
        store.put_hostname(default("a.example.com"), &ANY).await.unwrap();
        // Putting the default again keeps it the default.
        store.put_hostname(default("a.example.com"), &ANY).await.unwrap();
        let error = store.put_hostname(default("b.example.com"), &ANY).await.unwrap_err();
        match &error {
            StoreError::DefaultHostnameTaken { name, default } => {
                assert_eq!((name.as_str(), default.as_str()), ("b.example.com", "a.example.com"))
            }
            other => panic!("{other}"),
        }
        assert!(!store.state().hostnames.contains_key("b.example.com"));
        // Moving the default is two writes, on purpose.
        store.put_hostname(hostname("a.example.com", "c"), &ANY).await.unwrap();
        store.put_hostname(default("b.example.com"), &ANY).await.unwrap();
        assert_eq!(store.state().default_hostname("").map(|h| h.name.as_str()), Some("b.example.com"));
    }
}

#[tokio::test]
async fn client_cas_must_exist_and_stay_while_a_hostname_trusts_them() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.upload_certificate("c", server_certificate(&["api.example.com"], &[ServerAuth]), &ANY).await.unwrap();
        let with_ca = HostnameDefinition { client_ca_ids: vec!["clients".into()], ..hostname("api.example.com", "c") };
        let error = store.put_hostname(with_ca.clone(), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::NotFound { kind: ResourceKind::CaCertificate, .. }), "{error}");
        let (der, info) = ca_certificate("Clients CA");
        store.upload_ca_certificate("clients", der, info, None, &ANY).await.unwrap();
        store.put_hostname(with_ca, &ANY).await.unwrap();
        match store.delete_ca_certificate("clients", &ANY).await.unwrap_err() {
            StoreError::CaInUse { apis, hostnames, .. } => {
                assert!(apis.is_empty());
                assert_eq!(hostnames, ["api.example.com"]);
            }
            other => panic!("{other}"),
        }
    }
}

#[tokio::test]
async fn a_hostname_apis_list_must_exist_and_cannot_be_deleted() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let error = store.put_api(api_on("a", "/a", &["api.example.com"]), &ANY).await.unwrap_err();
        match &error {
            StoreError::NotFound { kind: ResourceKind::Hostname, id } => assert_eq!(id, "api.example.com"),
            other => panic!("{other}"),
        }
        store.upload_certificate("c", server_certificate(&["api.example.com"], &[ServerAuth]), &ANY).await.unwrap();
        store.put_hostname(hostname("api.example.com", "c"), &ANY).await.unwrap();
        store.put_api(api_on("a", "/a", &["api.example.com"]), &ANY).await.unwrap();
        store.put_api(api_on("b", "/b", &["api.example.com"]), &ANY).await.unwrap();
        let error = store.delete_hostname("api.example.com", &ANY).await.unwrap_err();
        match &error {
            StoreError::HostnameInUse { apis, .. } => assert_eq!(apis, &["a", "b"]),
            other => panic!("{other}"),
        }
        assert!(error.to_string().contains("used by APIs: a, b"), "{error}");
        // An update that clears the list frees it.
        for id in ["a", "b"] {
            let clear = |current: &Api| ApiDefinition { hostnames: Vec::new(), ..current_definition(current) };
            store.update_api(id, clear, &ANY).await.unwrap();
        }
        store.delete_hostname("API.example.com", &ANY).await.unwrap();
        assert!(store.state().hostnames.is_empty());
    }
}

#[tokio::test]
async fn apis_share_a_path_only_on_disjoint_lists_of_hostnames() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.upload_certificate("c", server_certificate(&["*.example.com"], &[ServerAuth]), &ANY).await.unwrap();
        for name in ["a.example.com", "b.example.com", "c.example.com"] {
            store.put_hostname(hostname(name, "c"), &ANY).await.unwrap();
        }
        store.put_api(api_on("on-a", "/orders", &["a.example.com"]), &ANY).await.unwrap();
        store.put_api(api_on("on-b-c", "/orders", &["b.example.com", "c.example.com"]), &ANY).await.unwrap();
        let error = store.put_api(api_on("on-c", "/orders", &["c.example.com"]), &ANY).await.unwrap_err();
        match &error {
            StoreError::PathTaken { api, hostnames, .. } => {
                assert_eq!((api.as_str(), hostnames.as_slice()), ("on-b-c", &["c.example.com".to_string()][..]))
            }
            other => panic!("{other}"),
        }
        assert!(error.to_string().contains("on hostnames c.example.com"), "{error}");
        // Without hostnames an API answers on every host: it shares its path with nobody.
        let error = store.put_api(api("anywhere", "/orders", None), &ANY).await.unwrap_err();
        assert!(error.to_string().contains("without hostnames answers on every host"), "{error}");
        store.put_api(api("anywhere", "/other", None), &ANY).await.unwrap();
        let error = store.put_api(api_on("on-a-too", "/other", &["a.example.com"]), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::PathTaken { .. }), "{error}");
        // A hostname another API on the path lists is taken until that API drops it.
        let error =
            store.put_api(api_on("on-a", "/orders", &["a.example.com", "c.example.com"]), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::PathTaken { .. }), "{error}");
        store.put_api(api_on("on-b-c", "/orders", &["b.example.com"]), &ANY).await.unwrap();
        store.put_api(api_on("on-c", "/orders", &["c.example.com"]), &ANY).await.unwrap();
    }
}

#[tokio::test]
async fn a_hostnames_certificate_cannot_be_deleted_or_rotated_to_one_that_cannot_serve_it() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store
            .upload_certificate("c", server_certificate(&["api.example.com", "*.example.com"], &[ServerAuth]), &ANY)
            .await
            .unwrap();
        for name in ["api.example.com", "*.example.com"] {
            store.put_hostname(hostname(name, "c"), &ANY).await.unwrap();
        }
        let error = store.delete_certificate("c", &ANY).await.unwrap_err();
        match &error {
            StoreError::CertificateInUse { apis, hostnames, .. } => {
                assert!(apis.is_empty());
                assert_eq!(hostnames, &["*.example.com", "api.example.com"]);
            }
            other => panic!("{other}"),
        }
        assert!(error.to_string().contains("used by hostnames: *.example.com, api.example.com"), "{error}");

        // Rotation re-checks every hostname served with the id.
        let error = store
            .upload_certificate("c", server_certificate(&["api.example.com"], &[ServerAuth]), &ANY)
            .await
            .unwrap_err();
        match &error {
            StoreError::BreaksHostnames { hostnames, .. } => {
                let names: Vec<&str> = hostnames.iter().map(|(name, _)| name.as_str()).collect();
                assert_eq!(names, ["*.example.com"]);
            }
            other => panic!("{other}"),
        }
        let client_only = server_certificate(&["api.example.com", "*.example.com"], &[ClientAuth]);
        match store.upload_certificate("c", client_only, &ANY).await.unwrap_err() {
            StoreError::BreaksHostnames { hostnames, .. } => {
                assert_eq!(hostnames.len(), 2);
                assert!(hostnames.iter().all(|(_, reason)| *reason == ServerCertificateError::NoServerAuth));
            }
            other => panic!("{other}"),
        }
        // An expired one is refused too, unless allowed.
        let mut expired =
            rcgen::CertificateParams::new(vec!["api.example.com".into(), "*.example.com".into()]).unwrap();
        expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = expired.self_signed(&key).unwrap().der().to_vec();
        let expired = ClientCertificate::from_parts(vec![der], key.serialize_der()).unwrap();
        let error = store.upload_certificate("c", expired, &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::Expired { .. }), "{error}");
        // A certificate that serves both goes through, and data planes get it for both hostnames.
        let next = server_certificate(&["*.example.com", "api.example.com"], &[ServerAuth]);
        let thumbprint = next.info.thumbprint.to_string();
        store.upload_certificate("c", next, &ANY).await.unwrap();
        let published = store.latest();
        for name in ["api.example.com", "*.example.com"] {
            assert_eq!(published.hostnames[name].certificate_thumbprint, thumbprint);
        }
        assert_eq!(published.identities.keys().collect::<Vec<_>>(), [&thumbprint]);
    }
}

/// A self-signed CA (key usage keyCertSign and cRLSign) and a CRL it signed revoking serial 7.
fn ca_with_crl(name: &str) -> (Vec<u8>, gatehouse_shared::CertificateInfo, crate::certificate::Crl) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(7u64),
            revocation_time: now,
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    let (der, info) = crate::certificate::parse_ca_certificate(issuer.der()).unwrap();
    let crl = crate::certificate::parse_crl(crl.der(), &der).unwrap();
    (der, info, crl)
}

#[tokio::test]
async fn a_ca_keeps_its_crl_across_a_restart_and_a_policy_naming_it_as_issuer_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(reopen(dir.path()), SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap();
    let store = open();
    let (der, info, crl) = ca_with_crl("Partners CA");
    store.upload_ca_certificate("partners", der, info, Some(crl.clone()), &ANY).await.unwrap();
    store.put_api(api("orders", "/orders", None), &ANY).await.unwrap();
    let policy = crate::policy::parse(
        r#"<policies><inbound>
             <validate-client-certificate validate-trust="false">
               <identities><identity issuer-certificate-id="partners" common-name="orders" /></identities>
             </validate-client-certificate>
             <forward-client-certificate thumbprint-header="X-Client-Thumbprint" />
           </inbound></policies>"#,
    )
    .unwrap();
    // An issuer-certificate-id must name an uploaded CA certificate.
    let mut missing = policy.clone();
    missing.client_certificate.as_mut().unwrap().identities[0].issuer_certificate_id = Some("nope".into());
    let revision = store.state().revision;
    let error = store.set_api_policy("orders", missing, &ANY).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { kind: ResourceKind::CaCertificate, id } if id == "nope"),
        "{error}"
    );
    assert_eq!(store.state().revision, revision, "a refused policy writes nothing");
    store.set_api_policy("orders", policy.clone(), &ANY).await.unwrap();
    // ... and that CA certificate cannot go while the policy names it.
    let error = store.delete_ca_certificate("partners", &ANY).await.unwrap_err();
    assert!(matches!(&error, StoreError::CaInUse { apis, .. } if apis == &["orders"]), "{error}");
    drop(store);

    let state = open().state();
    assert_eq!(state.ca_certificates["partners"].crl, Some(crl));
    assert_eq!(state.apis["orders"].policy, policy);
}

/// Files no test reads: the store only compares them.
static X: crate::model::SourceFiles = crate::model::SourceFiles::Pfx { path: String::new(), password: String::new() };

fn pfx_source(path: &str, password: &str) -> CertificateSource {
    CertificateSource {
        files: crate::model::SourceFiles::Pfx { path: path.into(), password: password.into() },
        content_hash: vec![1],
        last_refresh: None,
    }
}

#[tokio::test]
async fn a_certificate_source_survives_a_restart_with_its_password_sealed_and_an_upload_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(reopen(dir.path()), SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap();
    let store = open();
    store.link_certificate("c", certificate("one"), pfx_source("/etc/certs/c.pfx", "s3cret-pw"), &ANY).await.unwrap();
    let linked = store.state().certificate_sources["c"].clone();
    assert!(linked.last_refresh.as_ref().is_some_and(|r| r.ok));
    drop(store);

    // The password is never on disk in the clear.
    let db = reopen(dir.path());
    let raw = db.get(records::source_key("c")).unwrap().unwrap();
    assert!(!raw.windows(9).any(|w| w == b"s3cret-pw"));
    drop(db);

    let store = open();
    assert_eq!(store.state().certificate_sources["c"], linked);
    // A plain upload replaces the certificate and drops the link.
    store.upload_certificate("c", certificate("two"), &ANY).await.unwrap();
    assert!(!store.state().certificate_sources.contains_key("c"));
    drop(store);
    assert!(!open().state().certificate_sources.contains_key("c"));
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_last_good_certificate_and_records_why() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let good = certificate("good");
        let good_thumbprint = good.info.thumbprint.clone();
        store.link_certificate("c", good, pfx_source("", ""), &ANY).await.unwrap();
        store.put_api(api("follows", "/f", by_id("c")), &ANY).await.unwrap();
        let revision = store.state().revision;

        let outcome = store.refresh_certificate(
            "c",
            &X,
            vec![2],
            Err("certificate refused: the PFX password is incorrect".into()),
        );
        assert_eq!(
            outcome.await.unwrap(),
            RefreshOutcome::Refused("certificate refused: the PFX password is incorrect".into())
        );
        let state = store.state();
        assert_eq!(state.revision, revision, "a refused refresh makes no revision");
        assert_eq!(state.certificates["c"].certificate.info.thumbprint, good_thumbprint);
        let last = state.certificate_sources["c"].last_refresh.clone().unwrap();
        assert!(!last.ok);
        assert_eq!(last.message, "certificate refused: the PFX password is incorrect");
        assert!(state.refresh_failed("c"));
        assert_eq!(state.certificate_sources["c"].content_hash, [2]);

        // An expired certificate is refused too, named as an upload would.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let expired =
            ClientCertificate::from_parts(vec![params.self_signed(&key).unwrap().der().to_vec()], key.serialize_der())
                .unwrap();
        match store.refresh_certificate("c", &X, vec![3], Ok(expired)).await.unwrap() {
            RefreshOutcome::Refused(message) => assert!(message.contains("expired"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.state().certificates["c"].certificate.info.thumbprint, good_thumbprint);

        // A valid new one becomes a revision the API bound by id presents, and clears the failure.
        let new = certificate("new");
        let new_thumbprint = new.info.thumbprint.clone();
        let outcome = store.refresh_certificate("c", &X, vec![4], Ok(new)).await.unwrap();
        assert!(matches!(outcome, RefreshOutcome::Rotated(r) if r == revision + 1));
        assert_eq!(store.latest().routes["follows"].client_certificate_thumbprint, new_thumbprint.as_str());
        assert!(!store.state().refresh_failed("c"));
    }
}

#[tokio::test]
async fn a_refresh_passes_the_rules_of_an_upload_and_needs_a_source() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let old = certificate("old");
        let pinned = old.info.thumbprint.clone();
        store.upload_certificate("plain", certificate("plain"), &ANY).await.unwrap();
        assert!(matches!(
            store.refresh_certificate("plain", &X, vec![1], Ok(certificate("x"))).await,
            Err(StoreError::NotLinked { .. })
        ));
        store.link_certificate("c", old, pfx_source("", ""), &ANY).await.unwrap();
        store.put_api(api("pins", "/p", Some(Binding::Thumbprint(pinned.clone()))), &ANY).await.unwrap();
        match store.refresh_certificate("c", &X, vec![2], Ok(certificate("new"))).await.unwrap() {
            RefreshOutcome::Refused(message) => assert!(message.contains("pinned to thumbprint"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.state().certificates["c"].certificate.info.thumbprint, pinned);
    }
}

fn ca_source() -> CertificateSource {
    CertificateSource {
        files: crate::model::SourceFiles::Ca { path: "/etc/pki/ca.pem".into() },
        content_hash: vec![1],
        last_refresh: None,
    }
}

#[tokio::test]
async fn a_linked_ca_rotates_on_a_valid_file_keeps_the_last_good_one_otherwise_and_never_drops_its_crl() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let files = ca_source().files;
        let (der, info, crl) = ca_with_crl("Old CA");
        store.upload_ca_certificate("ca", der.clone(), info.clone(), Some(crl), &ANY).await.unwrap();
        // Linking the same CA keeps its CRL (the CRL is still the CA's).
        store.link_ca_certificate("ca", der.clone(), info, ca_source(), &ANY).await.unwrap();
        assert!(store.state().ca_certificates["ca"].crl.is_some());

        // A file that is not a CA is refused and recorded; the old CA stays.
        let refused = store.refresh_ca_certificate("ca", &files, vec![2], Err("CA certificate refused: x".into()));
        assert_eq!(refused.await.unwrap(), RefreshOutcome::Refused("CA certificate refused: x".into()));
        assert!(store.state().refresh_failed_ca("ca"));
        // A new CA the stored CRL was not issued by is refused: revocation is never dropped silently.
        let (new_der, new_info) = ca_certificate("New CA");
        match store
            .refresh_ca_certificate("ca", &files, vec![3], Ok((new_der.clone(), new_info.clone())))
            .await
            .unwrap()
        {
            RefreshOutcome::Refused(message) => assert!(message.contains("CRL"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.state().ca_certificates["ca"].der, der);

        // Without a CRL the new CA becomes a revision; an upload of another CA drops the link.
        store.upload_ca_certificate("plain", new_der.clone(), new_info.clone(), None, &ANY).await.unwrap();
        store.link_ca_certificate("plain", new_der, new_info, ca_source(), &ANY).await.unwrap();
        let (newer_der, newer_info) = ca_certificate("Newer CA");
        let outcome =
            store.refresh_ca_certificate("plain", &files, vec![4], Ok((newer_der.clone(), newer_info.clone())));
        assert!(matches!(outcome.await.unwrap(), RefreshOutcome::Rotated(_)));
        assert_eq!(store.state().ca_certificates["plain"].der, newer_der);
        assert!(!store.state().refresh_failed_ca("plain"));
        let (other_der, other_info) = ca_certificate("Other CA");
        store.upload_ca_certificate("plain", other_der, other_info, None, &ANY).await.unwrap();
        assert!(!store.state().ca_sources.contains_key("plain"));
    }
}

#[tokio::test]
async fn paths_that_differ_only_in_case_are_one_path() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.put_api(api("lower", "/orders", None), &ANY).await.unwrap();
        let error = store.put_api(api("upper", "/Orders", None), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::PathTaken { .. }), "{error}");
    }
}

#[tokio::test]
async fn named_values_are_substituted_for_data_planes_checked_on_every_write_and_kept_while_named() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.put_api(api("orders", "/orders", None), &ANY).await.unwrap();
        let xml = r#"<policies><inbound>
            <authentication-basic username="{{user}}" password="{{pw}}" />
            <set-header name="x-key"><value>k-{{user}}</value></set-header>
        </inbound></policies>"#;
        let policy = crate::policy::parse(xml).unwrap();
        let error = store.set_api_policy("orders", policy.clone(), &ANY).await.unwrap_err();
        assert!(error.to_string().contains("no such named value"), "{error}");

        store.put_named_value("user", "svc", false, &ANY).await.unwrap();
        store.put_named_value("pw", "s3cret", true, &ANY).await.unwrap();
        store.set_api_policy("orders", policy, &ANY).await.unwrap();
        let headers = |store: &Store| store.latest().routes["orders"].headers.clone();
        let basic = |user: &str, pw: &str| {
            use base64::Engine as _;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
        };
        assert_eq!(headers(&store)[0].values, [basic("svc", "s3cret")]);
        assert_eq!(headers(&store)[1].values, ["k-svc"]);

        // A new value is a new revision, and data planes get it substituted.
        let before = store.state().revision;
        let changed = store.put_named_value("pw", "n3w", true, &ANY).await.unwrap();
        assert_eq!(changed.revision, before + 1);
        assert_eq!(headers(&store)[0].values, [basic("svc", "n3w")]);
        // The same value again writes nothing.
        assert_eq!(store.put_named_value("pw", "n3w", true, &ANY).await.unwrap().revision, before + 1);

        // A value that breaks a policy naming it is refused (without showing it), as is a delete.
        let error = store.put_named_value("user", "a:b", false, &ANY).await.unwrap_err();
        assert!(matches!(&error, StoreError::NamedValueBreaksApi { api, .. } if api == "orders"), "{error}");
        let error = store.put_named_value("pw", "line\nHIDDEN", true, &ANY).await.unwrap_err();
        assert!(error.to_string().contains("control character") && !error.to_string().contains("HIDDEN"), "{error}");
        let error = store.delete_named_value("user", &ANY).await.unwrap_err();
        assert!(matches!(&error, StoreError::NamedValueInUse { apis, .. } if apis == &["orders"]), "{error}");
        assert_eq!(store.state().named_values["user"].value, "svc");

        store.set_api_policy("orders", crate::policy::Policy::default(), &ANY).await.unwrap();
        store.delete_named_value("user", &ANY).await.unwrap();
        assert!(!store.state().named_values.contains_key("user"));
    }
}

#[tokio::test]
async fn a_secret_named_value_is_sealed_at_rest_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(reopen(dir.path()), SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap();
    let store = open();
    store.put_named_value("pw", "sup3r-s3cret-value", true, &ANY).await.unwrap();
    store.put_named_value("user", "plain-user-name", false, &ANY).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    let db = reopen(dir.path());
    let raw: Vec<u8> = db.iter().flat_map(|item| item.unwrap().1.to_vec()).collect();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"sup3r-s3cret-value"), "a secret named value is stored in clear");
    assert!(contains(b"plain-user-name"));
    drop(db);
    let state = open().state();
    assert_eq!(state.named_values["pw"].value, "sup3r-s3cret-value");
    assert!(state.named_values["pw"].secret);
}

fn value_source(path: &str) -> crate::model::NamedValueSource {
    crate::model::NamedValueSource { path: path.into(), content_hash: vec![1], last_refresh: None }
}

#[tokio::test]
async fn a_linked_named_value_rotates_on_a_valid_read_and_keeps_the_last_good_value_otherwise() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let pw_file = "/run/secrets/orders-pw";
        store.put_api(api("orders", "/orders", None), &ANY).await.unwrap();
        store.link_named_value("user", "svc", false, value_source("/run/secrets/user"), &ANY).await.unwrap();
        let linked = store.link_named_value("pw", "s3cret", true, value_source(pw_file), &ANY).await.unwrap();
        let last = store.state().named_value_sources["pw"].last_refresh.clone();
        assert!(linked.secret && last.is_some_and(|r| r.ok));
        let xml =
            r#"<policies><inbound><authentication-basic username="{{user}}" password="{{pw}}" /></inbound></policies>"#;
        store.set_api_policy("orders", crate::policy::parse(xml).unwrap(), &ANY).await.unwrap();
        let authorization = |store: &Store| store.latest().routes["orders"].headers[0].values.clone();
        let basic = |user: &str, pw: &str| {
            use base64::Engine as _;
            vec![format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))]
        };
        assert_eq!(authorization(&store), basic("svc", "s3cret"));

        // A new value is a new revision data planes get substituted; the source records the read.
        let revision = store.state().revision;
        let outcome = store.refresh_named_value("pw", pw_file, vec![2], Ok("n3w".into())).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::Rotated(revision + 1));
        assert_eq!(authorization(&store), basic("svc", "n3w"));
        let state = store.state();
        assert!(state.named_values["pw"].secret, "a refresh keeps the value secret");
        assert_eq!(state.named_value_sources["pw"].content_hash, [2]);
        assert!(!state.refresh_failed_named_value("pw"));
        // The same value again (a file rewritten unchanged but for its newline) makes no revision.
        let outcome = store.refresh_named_value("pw", pw_file, vec![3], Ok("n3w".into())).await.unwrap();
        assert_eq!((outcome, store.state().revision), (RefreshOutcome::Unchanged, revision + 1));
        assert_eq!(store.state().named_value_sources["pw"].content_hash, [3]);

        // A file that is gone, or holds what a put would refuse, keeps the last good value and
        // says why, without the value.
        let gone = "cannot read /run/secrets/orders-pw: No such file or directory (os error 2)";
        let outcome = store.refresh_named_value("pw", pw_file, vec![4], Err(gone.into())).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::Refused(gone.into()));
        let state = store.state();
        assert_eq!((state.revision, state.named_values["pw"].value.as_str()), (revision + 1, "n3w"));
        assert!(state.refresh_failed_named_value("pw"));
        assert_eq!(state.named_value_sources["pw"].last_refresh.as_ref().unwrap().message, gone);
        match store.refresh_named_value("pw", pw_file, vec![5], Ok("line\nHIDDEN".into())).await.unwrap() {
            RefreshOutcome::Refused(message) => {
                assert!(message.contains("control character") && !message.contains("HIDDEN"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // A value that would break the policy naming it is refused, naming the API.
        match store.refresh_named_value("user", "/run/secrets/user", vec![6], Ok("a:b".into())).await.unwrap() {
            RefreshOutcome::Refused(message) => {
                assert!(message.contains("API 'orders'") && !message.contains("a:b"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.state().revision, revision + 1, "refusals make no revision");
        assert_eq!(authorization(&store), basic("svc", "n3w"));

        // A read of a file the name is no longer linked to is dropped; so is nothing else.
        let outcome = store.refresh_named_value("pw", "/old/path", vec![7], Ok("other".into())).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::Unchanged);
        assert_eq!(store.state().named_values["pw"].value, "n3w");
        let fixed = store.refresh_named_value("pw", pw_file, vec![8], Ok("n3w".into())).await.unwrap();
        assert_eq!(fixed, RefreshOutcome::Unchanged);
        assert!(!store.state().refresh_failed_named_value("pw"), "a good read clears the failure");
    }
}

#[tokio::test]
async fn a_named_value_link_follows_the_rules_of_a_put_and_a_put_or_a_delete_ends_it() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        // A value a put would refuse is refused, and nothing is stored, not even the source.
        let error = store.link_named_value("bad", "x\ny", true, value_source("/f"), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidNamedValue { .. }), "{error}");
        let error = store.link_named_value("a b", "x", false, value_source("/f"), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidNamedValue { .. }), "{error}");
        let state = store.state();
        assert!(state.named_values.is_empty() && state.named_value_sources.is_empty());

        // Refreshing what was put, or what does not exist, says so.
        store.put_named_value("plain", "v", false, &ANY).await.unwrap();
        let error = store.refresh_named_value("plain", "/f", vec![1], Ok("w".into())).await.unwrap_err();
        assert!(matches!(error, StoreError::NotLinked { kind: ResourceKind::NamedValue, .. }), "{error}");
        assert!(error.to_string().contains("gatehousectl nv link"), "{error}");
        let error = store.refresh_named_value("missing", "/f", vec![1], Ok("w".into())).await.unwrap_err();
        assert!(matches!(error, StoreError::NotFound { kind: ResourceKind::NamedValue, .. }), "{error}");

        // Linking a put value to a file holding the same value records only the link.
        let revision = store.state().revision;
        let linked = store.link_named_value("plain", "v", false, value_source("/f"), &ANY).await.unwrap();
        assert_eq!((linked.revision, store.state().revision), (revision, revision));
        assert_eq!(store.state().named_value_sources["plain"].path, "/f");
        // A put drops the link, even of the same value; so does a delete.
        store.put_named_value("plain", "v", false, &ANY).await.unwrap();
        assert!(!store.state().named_value_sources.contains_key("plain"));
        store.link_named_value("plain", "w", false, value_source("/g"), &ANY).await.unwrap();
        assert_eq!(store.state().named_values["plain"].value, "w");
        store.delete_named_value("plain", &ANY).await.unwrap();
        let state = store.state();
        assert!(!state.named_values.contains_key("plain") && !state.named_value_sources.contains_key("plain"));
        // A stale etag refuses a link as it refuses a put.
        store.put_named_value("e", "1", false, &ANY).await.unwrap();
        let stale = WriteOptions { if_match: "1".into(), ..ANY };
        let error = store.link_named_value("e", "2", false, value_source("/f"), &stale).await.unwrap_err();
        assert!(matches!(error, StoreError::EtagMismatch { .. }), "{error}");
    }
}

#[tokio::test]
async fn the_poller_reads_a_linked_file_again_only_when_it_changed() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let path_text = path.to_str().unwrap().to_string();
        std::fs::write(&path, "t0k-1\n").unwrap();
        let read = crate::sources::ValueFile::read("token", &path_text);
        let source = crate::model::NamedValueSource {
            path: path_text.clone(),
            content_hash: read.content_hash,
            last_refresh: None,
        };
        store.link_named_value("token", &read.value.unwrap(), true, source, &ANY).await.unwrap();
        assert_eq!(store.state().named_values["token"].value, "t0k-1");

        let refresh = |force| crate::sources::refresh_named_value(&store, "token", force);
        assert_eq!(refresh(false).await.unwrap(), RefreshOutcome::Unchanged);
        let tmp = dir.path().join("token.tmp");
        std::fs::write(&tmp, "t0k-2\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(matches!(refresh(false).await.unwrap(), RefreshOutcome::Rotated(_)));
        assert_eq!(store.state().named_values["token"].value, "t0k-2");

        std::fs::remove_file(&path).unwrap();
        let RefreshOutcome::Refused(message) = refresh(false).await.unwrap() else {
            panic!("a missing file is refused")
        };
        assert!(message.starts_with(&format!("cannot read {path_text}: ")), "{message}");
        let at = store.state().named_value_sources["token"].last_refresh.clone().unwrap();
        // A lasting failure is recorded once, not at every poll; a forced refresh reports it again.
        assert_eq!(refresh(false).await.unwrap(), RefreshOutcome::Unchanged);
        assert_eq!(store.state().named_value_sources["token"].last_refresh, Some(at));
        assert!(matches!(refresh(true).await.unwrap(), RefreshOutcome::Refused(_)));
        assert_eq!(store.state().named_values["token"].value, "t0k-2");
    }
}

#[tokio::test]
async fn a_linked_secret_named_value_is_sealed_at_rest_and_its_source_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(reopen(dir.path()), SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap();
    let store = open();
    store.link_named_value("pw", "linked-s3cret-value", true, value_source("/run/secrets/pw"), &ANY).await.unwrap();
    let failed = store.refresh_named_value("pw", "/run/secrets/pw", vec![2], Err("cannot read /run/secrets/pw".into()));
    assert!(matches!(failed.await.unwrap(), RefreshOutcome::Refused(_)));
    let linked = store.state().named_value_sources["pw"].clone();
    store.flush().await.unwrap();
    drop(store);

    let db = reopen(dir.path());
    let raw: Vec<u8> = db.iter().flat_map(|item| item.unwrap().1.to_vec()).collect();
    assert!(!raw.windows(19).any(|w| w == b"linked-s3cret-value"), "a linked secret is stored in clear");
    assert!(db.get(records::named_value_source_key("pw")).unwrap().is_some());
    drop(db);

    let store = open();
    let state = store.state();
    assert_eq!(
        (state.named_values["pw"].value.as_str(), state.named_values["pw"].secret),
        ("linked-s3cret-value", true)
    );
    assert_eq!(state.named_value_sources["pw"], linked);
    assert!(state.refresh_failed_named_value("pw"));
    // A put replaces the value and drops the link, also after a restart.
    store.put_named_value("pw", "put-by-hand", true, &ANY).await.unwrap();
    drop(store);
    assert!(!open().state().named_value_sources.contains_key("pw"));
}

/// Opens the database in `dir` again. sled's flusher thread may hold the file lock a moment
/// after the previous handle is dropped, so a "could not acquire lock" is waited out (2 s at most).
pub(super) fn reopen(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return db,
            Err(error) if std::time::Instant::now() < deadline && error.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(error) => panic!("cannot reopen the database: {error}"),
        }
    }
}
