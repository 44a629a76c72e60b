//! The store's rules in process, on a temporary sled database: what each write refuses, and
//! that a refused write changes nothing.

use crate::certificate::ClientCertificate;
use gatehouse_shared::sealed::SealingKey;

use super::*;
use crate::model::etag;

fn store() -> Store {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Store::open(db, SealingKey::from_bytes(&[9u8; 32]).unwrap(), None).unwrap()
}

/// A self-signed client certificate with its PKCS#8 key.
fn certificate(name: &str) -> ClientCertificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    ClientCertificate::from_parts(vec![cert.der().to_vec()], key.serialize_der()).unwrap()
}

fn api(id: &str, path: &str, binding: Option<Binding>) -> ApiDefinition {
    ApiDefinition {
        id: id.into(),
        display_name: String::new(),
        path: path.into(),
        service_url: "https://backend.internal:8443".into(),
        binding,
        tls: BackendTls::default(),
    }
}

fn by_id(id: &str) -> Option<Binding> {
    Some(Binding::CertificateId(id.into()))
}

const ANY: WriteOptions = WriteOptions { if_match: String::new(), allow_expired: false };

#[tokio::test]
async fn a_stale_etag_is_refused_and_writes_nothing() {
    let store = store();
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

#[tokio::test]
async fn deleting_a_certificate_in_use_names_every_api() {
    let store = store();
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

#[tokio::test]
async fn rotating_away_from_a_pinned_thumbprint_is_refused_and_rotation_by_id_follows() {
    let store = store();
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

#[tokio::test]
async fn a_certificate_binding_needs_https_and_ids_stay_plain() {
    let store = store();
    store.upload_certificate("c", certificate("c"), &ANY).await.unwrap();
    let plain = ApiDefinition { service_url: "http://backend:8080".into(), ..api("a", "/a", by_id("c")) };
    let error = store.put_api(plain, &ANY).await.unwrap_err();
    assert!(matches!(error, StoreError::Definition(_)), "{error}");
    for id in ["", ".", "..", "a/b", "a b"] {
        let error = store.put_api(api(id, "/z", None), &ANY).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidId { kind: ResourceKind::Api, .. }), "{id}: {error}");
    }
    assert_eq!(store.state().revision, 1, "only the upload was written");
}

#[tokio::test]
async fn an_update_changes_only_what_it_names() {
    let store = store();
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

fn current_definition(api: &Api) -> ApiDefinition {
    ApiDefinition {
        id: api.id.clone(),
        display_name: api.display_name.clone(),
        path: api.path.clone(),
        service_url: api.service_url.clone(),
        binding: None,
        tls: api.tls.clone(),
    }
}
