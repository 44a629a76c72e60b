//! Every kind of PFX operators bring, made by the openssl CLI (tests/fixtures/make-fixtures.sh).

use std::path::PathBuf;

use gatehouse_shared::{CertificateError, ClientCertificate};

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
