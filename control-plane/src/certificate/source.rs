//! Certificates read from files on the control plane's host (cert-manager, Vault Agent,
//! certbot): what the files hold, hashed so an unchanged file is not parsed again, and parsed
//! with exactly the checks of an upload.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{CertificateError, ClientCertificate, private_key};
use crate::model::SourceFiles;

/// What a source's files held at one read.
pub struct SourceContents {
    files: Vec<Vec<u8>>,
}

/// Why a source could not be read or its certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file that cannot be read (missing, unreadable, a dangling symlink).
    #[error("cannot read {path}")]
    Read {
        /// The path, as linked.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file larger than an upload may be.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// What the files hold is refused as an upload would be.
    #[error("certificate refused: {0}")]
    Certificate(#[from] CertificateError),
}

impl SourceContents {
    /// Reads every file of the source now, following symlinks at each read (a Kubernetes
    /// `..data` swap is seen as soon as it happens).
    pub fn read(files: &SourceFiles, max_bytes: usize) -> Result<Self, SourceError> {
        let paths = files.paths();
        let files = paths
            .into_iter()
            .map(|path| {
                let bytes =
                    std::fs::read(path).map_err(|source| SourceError::Read { path: path.to_string(), source })?;
                match bytes.len() > max_bytes {
                    true => Err(SourceError::TooLarge { path: path.to_string(), limit: max_bytes }),
                    false => Ok(bytes),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files })
    }

    /// SHA-256 over every file, each length-prefixed: changes with any byte of any file.
    pub fn hash(&self) -> Vec<u8> {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for file in &self.files {
            context.update(&(file.len() as u64).to_be_bytes());
            context.update(file);
        }
        context.finish().as_ref().to_vec()
    }

    /// The certificate the files hold, checked as an upload is.
    pub fn parse(&self, files: &SourceFiles, max_chain: usize) -> Result<ClientCertificate, CertificateError> {
        match (files, self.files.as_slice()) {
            (SourceFiles::Pfx { password, .. }, [pfx]) => {
                ClientCertificate::from_pkcs12_limited(pfx, password, usize::MAX, max_chain)
            }
            (SourceFiles::Pem { .. }, [certificate, key]) => ClientCertificate::from_pem(certificate, key, max_chain),
            (SourceFiles::Ca { .. }, _) => Err(CertificateError::NotClientSource),
            _ => unreachable!("one file per PFX source, two per PEM source"),
        }
    }

    /// The CA certificate the file holds, checked as a CA upload is.
    pub fn parse_ca(&self) -> Result<(Vec<u8>, super::CertificateInfo), CertificateError> {
        match self.files.as_slice() {
            [file] => super::parse_ca_certificate(file),
            _ => Err(CertificateError::NotCertificate),
        }
    }
}

/// SHA-256 of a read error's message: a lasting error is recorded once, not at every poll.
pub fn error_hash(error: &SourceError) -> Vec<u8> {
    let message = format!("unreadable: {}", gatehouse_shared::error_chain(error));
    ring::digest::digest(&ring::digest::SHA256, message.as_bytes()).as_ref().to_vec()
}

impl ClientCertificate {
    /// A client certificate from a PEM chain (any order) and a PEM private key (PKCS#8,
    /// PKCS#1 or SEC1, unencrypted), with the checks of a PFX upload.
    pub fn from_pem(certificate: &[u8], key: &[u8], max_chain: usize) -> Result<Self, CertificateError> {
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(certificate)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| CertificateError::NoPemCertificate)?;
        if certs.is_empty() {
            return Err(CertificateError::NoPemCertificate);
        }
        if certs.len() > max_chain {
            return Err(CertificateError::ChainTooLong { found: certs.len(), limit: max_chain });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| CertificateError::NoPemPrivateKey)?;
        let key = private_key::to_pkcs8(key)?;
        private_key::check_type(&key)?;
        Self::from_parts(certs, key).map_err(|error| match error {
            CertificateError::KeyMismatch => CertificateError::PemKeyMismatch,
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "pem-client");
        (params.self_signed(&key).unwrap().pem(), key)
    }

    #[test]
    fn pem_keys_in_pkcs8_and_sec1_are_read_and_a_mismatch_or_truncation_is_refused() {
        let (cert, key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let pkcs8 = key.serialize_pem();
        let read = ClientCertificate::from_pem(cert.as_bytes(), pkcs8.as_bytes(), 10).unwrap();
        assert_eq!(read.info.subject, "CN=pem-client");

        let (_, other) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let mismatch = ClientCertificate::from_pem(cert.as_bytes(), other.serialize_pem().as_bytes(), 10);
        assert!(matches!(mismatch, Err(CertificateError::PemKeyMismatch)), "{mismatch:?}");
        let half = &cert.as_bytes()[..cert.len() / 2];
        assert!(matches!(
            ClientCertificate::from_pem(half, pkcs8.as_bytes(), 10),
            Err(CertificateError::NoPemCertificate)
        ));
    }

    #[test]
    fn the_hash_follows_a_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pfx"), b"first").unwrap();
        std::fs::write(dir.path().join("b.pfx"), b"second").unwrap();
        let link = dir.path().join("current.pfx");
        std::os::unix::fs::symlink(dir.path().join("a.pfx"), &link).unwrap();
        let files = SourceFiles::Pfx { path: link.to_string_lossy().into_owned(), password: String::new() };
        let first = SourceContents::read(&files, 1024).unwrap().hash();
        let tmp = dir.path().join("tmp-link");
        std::os::unix::fs::symlink(dir.path().join("b.pfx"), &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert_ne!(SourceContents::read(&files, 1024).unwrap().hash(), first);
        assert!(matches!(SourceContents::read(&files, 3), Err(SourceError::TooLarge { .. })));
    }
}
