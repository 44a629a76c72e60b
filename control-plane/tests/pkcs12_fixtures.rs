//! Every kind of PFX operators bring, made by the openssl CLI (tests/fixtures/make-fixtures.sh), and
//! the checked-in files of tests/fixtures/pkcs12/ that no tool on this machine writes.

use std::path::PathBuf;

use gatehouse_control_plane::certificate::Pkcs12Part;
use gatehouse_control_plane::certificate::{CertificateError, ClientCertificate};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn thumbprint(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap().trim().to_string()
}

#[test]
fn openssl3_default_rsa() {
    let cert = ClientCertificate::from_pkcs12(&fixture("rsa-modern.pfx"), "modern-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), thumbprint("rsa.sha1"));
    assert_eq!(cert.info.subject, "CN=rsa-client, O=Gatehouse Fixtures, C=US");
    assert_eq!(cert.info.key_algorithm, "RSA 2048");
    assert_eq!(cert.chain.len(), 1);
}

#[test]
fn legacy_rc2_3des_sha1_mac() {
    let cert = ClientCertificate::from_pkcs12(&fixture("rsa-legacy.pfx"), "legacy-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), thumbprint("rsa.sha1"));
}

#[test]
fn ec_p256() {
    let cert = ClientCertificate::from_pkcs12(&fixture("ec-p256.pfx"), "ec-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), thumbprint("ec.sha1"));
    assert_eq!(cert.info.key_algorithm, "EC P-256");
}

#[test]
fn empty_password() {
    let cert = ClientCertificate::from_pkcs12(&fixture("empty-password.pfx"), "").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), thumbprint("ec.sha1"));
}

#[test]
fn chain_is_leaf_then_intermediate_without_root() {
    let cert = ClientCertificate::from_pkcs12(&fixture("chain.pfx"), "chain-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), thumbprint("chain.sha1"));
    assert_eq!(cert.info.subject, "CN=chained-client, O=Gatehouse Fixtures, C=US");
    assert_eq!(cert.info.issuer, "CN=Fixture Intermediate CA, O=Gatehouse Fixtures, C=US");
    assert_eq!(cert.chain.len(), 2, "leaf + intermediate; the self-signed root is not sent");
}

#[test]
fn wrong_password_is_named() {
    for (file, wrong) in [("rsa-modern.pfx", "nope"), ("rsa-legacy.pfx", "nope"), ("empty-password.pfx", "x")] {
        let err = ClientCertificate::from_pkcs12(&fixture(file), wrong).unwrap_err();
        assert!(matches!(err, CertificateError::WrongPassword), "{file}: {err:?}");
        assert_eq!(err.to_string(), "the PFX password is incorrect");
    }
}

#[test]
fn not_pkcs12_is_named() {
    let err = ClientCertificate::from_pkcs12(&fixture("root-ca.pem"), "x").unwrap_err();
    assert!(matches!(err, CertificateError::NotPkcs12(_)), "{err:?}");
    let err = ClientCertificate::from_pkcs12(b"", "x").unwrap_err();
    assert!(matches!(err, CertificateError::NotPkcs12(_)), "{err:?}");
}

#[test]
fn no_private_key_is_named() {
    let err = ClientCertificate::from_pkcs12(&fixture("no-key.pfx"), "nokey-pass").unwrap_err();
    assert!(matches!(err, CertificateError::NoPrivateKey), "{err:?}");
}

#[test]
fn debug_output_never_shows_the_key() {
    let cert = ClientCertificate::from_pkcs12(&fixture("ec-p256.pfx"), "ec-pass").unwrap();
    assert!(format!("{cert:?}").contains("<redacted>"));
}

// === Checked-in files no tool here writes (tests/fixtures/pkcs12/README.md) ===

fn pkcs12_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("pkcs12/{name}.p12"))
}

fn pkcs12_thumbprint(name: &str) -> String {
    thumbprint(&format!("pkcs12/{name}.sha1"))
}

#[test]
fn node_forge_pbes2_with_the_default_prf_is_accepted() {
    let cert = ClientCertificate::from_pkcs12(&pkcs12_fixture("forge-default"), "forge-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), pkcs12_thumbprint("forge-default"));
    assert_eq!(cert.info.key_algorithm, "RSA 2048");
    assert_eq!(cert.info.subject, "CN=forge-client, O=Gatehouse Fixtures, C=US");
}

#[test]
fn node_forge_without_mac_names_the_wrong_password() {
    let pfx = pkcs12_fixture("forge-aes256-nomac");
    let cert = ClientCertificate::from_pkcs12(&pfx, "forge-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), pkcs12_thumbprint("forge-aes256-nomac"));
    let err = ClientCertificate::from_pkcs12(&pfx, "nope").unwrap_err();
    assert!(matches!(err, CertificateError::CannotDecrypt { part: Pkcs12Part::PrivateKey, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the PFX password is incorrect: the file has no MAC, and its private key cannot be decrypted with this password"
    );
}

#[test]
fn pbes2_des_ede3_cbc_with_the_default_prf_is_accepted() {
    let cert =
        ClientCertificate::from_pkcs12(&pkcs12_fixture("handmade-pbes2-3des-default-prf"), "handmade-pass").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), pkcs12_thumbprint("handmade-pbes2-3des-default-prf"));
    assert_eq!(cert.info.key_algorithm, "EC P-256");
}

#[test]
fn empty_password_as_zero_bytes_is_accepted() {
    let pfx = pkcs12_fixture("handmade-empty-no-bytes");
    let cert = ClientCertificate::from_pkcs12(&pfx, "").unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), pkcs12_thumbprint("handmade-empty-no-bytes"));
    let err = ClientCertificate::from_pkcs12(&pfx, "x").unwrap_err();
    assert!(matches!(err, CertificateError::WrongPassword), "{err:?}");
}

#[test]
fn key_under_a_second_password_is_named() {
    let pfx = pkcs12_fixture("handmade-key-second-password");
    let err = ClientCertificate::from_pkcs12(&pfx, "store-pass").unwrap_err();
    assert!(matches!(err, CertificateError::DifferentPassword { part: Pkcs12Part::PrivateKey, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the PKCS#12 file protects its private key with a different password than the file itself; export it again with one password"
    );
    let err = ClientCertificate::from_pkcs12(&pfx, "key-pass").unwrap_err();
    assert!(matches!(err, CertificateError::WrongPassword), "{err:?}");
}
