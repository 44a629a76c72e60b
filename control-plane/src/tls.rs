//! The control plane's TLS identity: the operator's certificate and key, or, without them, a
//! CA of its own (created on first start, kept in the data dir) and a server certificate from
//! it for localhost, 127.0.0.1, ::1 and every --tls-san.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Why the control plane has no TLS identity.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The generated CA cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// rcgen cannot make or load a certificate or key.
    #[error("cannot make a certificate")]
    Generate(#[from] rcgen::Error),
    /// Only one of certificate and key given.
    #[error("--tls-cert and --tls-key go together")]
    HalfPair,
    /// One half of the generated CA is on disk without the other: making a new CA would cut off
    /// every client that trusts the old one, so the control plane stops instead.
    #[error(
        "{present} exists but {missing} is missing: restore {missing} from a backup, or, to start over with a new CA that every client must then be given, move {present} away"
    )]
    CaHalfMissing {
        /// The half on disk.
        present: PathBuf,
        /// The half that is gone.
        missing: PathBuf,
    },
}

/// The certificate and key the gRPC listener serves with.
pub struct ServerIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// The CA that clients should trust, when the control plane made its own.
    pub ca_file: Option<PathBuf>,
}

/// The operator's `cert` and `key` when both are given; else a fresh server certificate from
/// the control plane's own CA (made on first start) for localhost, 127.0.0.1, ::1 and `sans`.
pub fn server_identity(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    sans: &[String],
) -> Result<ServerIdentity, TlsError> {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.into(), source });
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(ServerIdentity { cert_pem: read(cert)?, key_pem: read(key)?, ca_file: None }),
        (None, None) => generated(data_dir, sans),
        _ => Err(TlsError::HalfPair),
    }
}

fn generated(data_dir: &Path, sans: &[String]) -> Result<ServerIdentity, TlsError> {
    let dir = data_dir.join("tls");
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca.key");
    let write = |path: &Path, text: &str| {
        gatehouse_shared::sealed::write_private_file(path, text.as_bytes())
            .map_err(|source| TlsError::Write { path: path.into(), source })
    };
    match (ca_file.exists(), ca_key_file.exists()) {
        (true, false) => return Err(TlsError::CaHalfMissing { present: ca_file, missing: ca_key_file }),
        (false, true) => return Err(TlsError::CaHalfMissing { present: ca_key_file, missing: ca_file }),
        _ => {}
    }
    let (ca_pem, ca_key) = if ca_file.exists() {
        let read =
            |path: &Path| std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.into(), source });
        (read(&ca_file)?, KeyPair::from_pem(&read(&ca_key_file)?)?)
    } else {
        std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write { path: dir.clone(), source })?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "Gatehouse control plane CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write(&ca_key_file, &key.serialize_pem())?;
        write(&ca_file, &cert.pem())?;
        (cert.pem(), key)
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    names.extend(sans.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, "gatehouse-cp");
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServerIdentity { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_file: Some(ca_file) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_key_stops_the_start_instead_of_minting_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = server_identity(dir.path(), None, None, &[]).unwrap();
        let ca_before = std::fs::read(first.ca_file.as_ref().unwrap()).unwrap();
        std::fs::remove_file(dir.path().join("tls/ca.key")).unwrap();
        let error = server_identity(dir.path(), None, None, &[]).err().unwrap();
        assert!(matches!(error, TlsError::CaHalfMissing { .. }), "{error}");
        assert!(error.to_string().contains("ca.key is missing"), "{error}");
        assert_eq!(std::fs::read(dir.path().join("tls/ca.pem")).unwrap(), ca_before, "the CA was replaced");
    }
}
