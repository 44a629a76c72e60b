//! PKCS#12 files made by the tools operators export with: OpenSSL, the JDK's keytool, NSS
//! `pk12util`, BouncyCastle, Python `cryptography`. tests/fixtures/pkcs12/make-producers.sh writes
//! them afresh on each run; a missing tool fails every test here with its Debian package named.
//! Each test asserts what the operator sees: the thumbprint and key type, or the reason refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gatehouse_control_plane::certificate::{CertificateError, ClientCertificate};
use gatehouse_control_plane::certificate::{KeyType, Pkcs12Part, Protection};

/// Runs make-producers.sh once per test process, into a directory of its own under cargo's
/// temporary directory (test runs may overlap); directories left by earlier runs are removed.
fn produced() -> &'static Path {
    static PRODUCED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let produced = PRODUCED.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(tmp);
        let dir = tmp.join(format!("pkcs12-producers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pkcs12/make-producers.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run bash (Debian package bash): {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(dir)
    });
    match produced {
        Ok(dir) => dir,
        Err(why) => panic!("tests/fixtures/pkcs12/make-producers.sh failed; these tests need its tools:\n{why}"),
    }
}

/// Removes producer directories more than an hour old: no test run takes that long.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        let ours = entry.file_name().to_string_lossy().starts_with("pkcs12-producers-");
        if ours && old.is_some_and(|age| age > Duration::from_secs(3600)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn open(name: &str, password: &str) -> Result<ClientCertificate, CertificateError> {
    let path = produced().join(format!("{name}.p12"));
    let pfx = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ClientCertificate::from_pkcs12(&pfx, password)
}

/// Opens `name` with `password` and checks it is accepted as the thumbprint made beside it.
fn accepted(name: &str, password: &str, key_algorithm: &str) -> ClientCertificate {
    let cert = open(name, password).unwrap_or_else(|e| panic!("{name} refused: {}", gatehouse_shared::error_chain(&e)));
    let expected = std::fs::read_to_string(produced().join(format!("{name}.sha1"))).unwrap();
    assert_eq!(cert.info.thumbprint.as_str(), expected.trim(), "{name}");
    assert_eq!(cert.info.key_algorithm, key_algorithm, "{name}");
    cert
}

fn refused(name: &str, password: &str) -> CertificateError {
    match open(name, password) {
        Ok(cert) => panic!("{name} accepted as {:?}", cert.info),
        Err(e) => e,
    }
}

const KEY_TYPES: &str = "supported keys: RSA 2048–4096 bits, EC P-256, EC P-384, Ed25519";

// === keytool ===

#[test]
fn keytool_ec_keys_without_public_key_are_accepted() {
    for (name, algorithm) in [
        ("keytool-ec-p256", "EC P-256"),
        ("keytool-ec-p384", "EC P-384"),
        ("keytool-ec-p256-legacy", "EC P-256"),
        ("keytool-ec-p384-legacy", "EC P-384"),
    ] {
        let cert = accepted(name, "keytool-pass", algorithm);
        assert_eq!(cert.info.subject, format!("CN={name}, O=Gatehouse Fixtures, C=US"));
    }
}

#[test]
fn keytool_rsa_is_accepted() {
    accepted("keytool-rsa", "keytool-pass", "RSA 2048");
}

#[test]
fn keytool_wrong_password_is_named() {
    let err = refused("keytool-ec-p256", "nope");
    assert!(matches!(err, CertificateError::WrongPassword), "{err:?}");
}

#[test]
fn keytool_ec_p521_is_refused_with_the_supported_types() {
    let err = refused("keytool-ec-p521", "keytool-pass");
    assert!(matches!(&err, CertificateError::UnsupportedKeyType(KeyType::Ec { curve }) if curve == "P-521"), "{err:?}");
    assert!(err.to_string().starts_with("the private key is EC P-521,"), "{err}");
    assert!(err.to_string().ends_with(KEY_TYPES), "{err}");
}

// === NSS pk12util and BouncyCastle: BER ===

#[test]
fn nss_pk12util_ber_files_are_accepted() {
    accepted("nss-rsa", "nss-pass", "RSA 2048");
    accepted("nss-ec", "nss-pass", "EC P-256");
    accepted("nss-rsa-legacy", "nss-pass", "RSA 2048");
}

#[test]
fn bouncycastle_ber_file_is_accepted() {
    accepted("bouncycastle-ec", "bc-pass", "EC P-256");
}

#[test]
fn nss_wrong_password_is_named() {
    let err = refused("nss-rsa-legacy", "nope");
    assert!(matches!(err, CertificateError::WrongPassword), "{err:?}");
}

// === OpenSSL ===

#[test]
fn openssl_pbes2_with_des_ede3_cbc_is_accepted() {
    accepted("openssl-pbes2-3des", "openssl-pass", "RSA 2048");
}

#[test]
fn openssl_ec_p384_and_ed25519_are_accepted() {
    accepted("openssl-ec-p384", "openssl-pass", "EC P-384");
    accepted("openssl-ed25519", "openssl-pass", "Ed25519");
}

#[test]
fn wrong_password_without_mac_says_the_password_is_wrong() {
    accepted("openssl-nomac", "openssl-pass", "RSA 2048");
    let err = refused("openssl-nomac", "nope");
    // openssl -nomac leaves the certificates unencrypted: only the key tells.
    assert!(matches!(err, CertificateError::CannotDecrypt { part: Pkcs12Part::PrivateKey, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the PFX password is incorrect: the file has no MAC, and its private key cannot be decrypted with this password"
    );
    assert!(std::error::Error::source(&err).is_some(), "the decryption failure is kept as the cause");
}

#[test]
fn iteration_count_over_the_cap_is_named_with_the_cap() {
    let err = refused("openssl-iter-over-cap", "openssl-pass");
    assert!(
        matches!(
            err,
            CertificateError::TooManyIterations { protection: Protection::Mac, found: 1_500_000, limit: 1_000_000 }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the PKCS#12 file's MAC uses 1500000 iterations; at most 1000000 are accepted");
}

#[test]
fn unsupported_encryption_is_named() {
    let err = refused("openssl-rc4", "openssl-pass");
    assert_eq!(
        err.to_string(),
        "the PKCS#12 file uses an unsupported encryption algorithm pbeWithSHAAnd128BitRC4 (1.2.840.113549.1.12.1.1)"
    );
}

#[test]
fn key_types_rustls_cannot_use_are_named() {
    for (name, key_type) in [
        ("openssl-ec-p521", "EC P-521"),
        ("openssl-ed448", "Ed448"),
        ("openssl-rsa-pss", "RSA-PSS"),
        ("openssl-rsa-1024", "RSA 1024"),
        ("openssl-rsa-4608", "RSA 4608"),
    ] {
        let err = refused(name, "openssl-pass");
        assert!(matches!(err, CertificateError::UnsupportedKeyType(_)), "{name}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!("the private key is {key_type}, which TLS client authentication here cannot use; {KEY_TYPES}"),
            "{name}"
        );
    }
}

// === Python cryptography ===

#[test]
fn python_names_in_every_string_type_are_shown() {
    let cert = accepted("python-names", "python-pass", "EC P-256");
    let name = "CN=python-names + UID=u-1, L=😀 City, OU=Ωmega, O=Zoë Fixtures, C=US";
    assert_eq!(cert.info.subject, name);
    assert_eq!(cert.info.issuer, name);
}

#[test]
fn python_legacy_3des_with_sha1_mac_is_accepted() {
    accepted("python-3des-sha1", "python-pass", "EC P-384");
}

#[test]
fn python_unencrypted_file_opens_with_the_empty_password() {
    accepted("python-no-encryption", "", "EC P-256");
    let err = refused("python-no-encryption", "x");
    assert!(matches!(err, CertificateError::WrongPassword), "{err:?}");
}
