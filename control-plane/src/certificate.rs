//! Client certificates as operators upload them: PKCS#12 files checked, split into a
//! certificate chain and a PKCS#8 private key (`pkcs12.rs` reads the file); and CA
//! certificates, PEM or DER, with their CRLs (`crl.rs`); and whether a certificate can serve TLS for a hostname
//! (`server.rs`). Descriptions (subject, thumbprint, expiry) come from
//! `gatehouse_shared::certificate`.

mod crl;
mod error;
mod private_key;
mod server;
mod source;

use std::fmt;

use gatehouse_shared::certificate::describe;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use crl::{Crl, CrlError, parse_crl};
pub use error::{
    Algorithm, AlgorithmRole, BerError, CertificateError, DecryptError, FormatError, KeyType, Pkcs12Part, Protection,
};
pub use gatehouse_shared::CertificateInfo;
pub use server::{ServerCertificateError, check_server_use};
pub use source::{SourceContents, SourceError, error_hash};

/// A client certificate with its private key: what a data plane presents to a backend.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// DER certificates, leaf first, then the intermediates that lead to its issuer.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub private_key: Vec<u8>,
    /// Subject, issuer, thumbprint and validity of the leaf.
    pub info: CertificateInfo,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("info", &self.info)
            .field("chain_length", &self.chain.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Default limit on the size of a PKCS#12 upload, in bytes.
pub const MAX_PFX_BYTES: usize = 1024 * 1024;
/// Default limit on the certificates in one PKCS#12 file, leaf included.
pub const MAX_CHAIN_LENGTH: usize = 10;
/// The most password-based iterations (MAC, PBKDF2, PKCS#12 KDF) a file may ask for: above what
/// any tool writes by default (OpenSSL 2048, the JDK 10000, NSS 600000), low enough that a
/// hostile upload cannot keep the control plane busy for long.
pub const MAX_KDF_ITERATIONS: u32 = 1_000_000;

impl ClientCertificate {
    /// Opens a PKCS#12 file: checks the password (and the MAC), finds the one private key and
    /// the certificate it belongs to, and orders the rest of the chain after it. Reads BER as well
    /// as DER, PKCS#12 PBE (RC2, 3DES) and PBES2 (AES, 3DES; any SHA PRF), and both encodings of
    /// an empty password. Key types rustls cannot sign with are refused by name.
    pub fn from_pkcs12(pfx: &[u8], password: &str) -> Result<Self, CertificateError> {
        Self::from_pkcs12_limited(pfx, password, MAX_PFX_BYTES, MAX_CHAIN_LENGTH)
    }

    /// As [`Self::from_pkcs12`], with the operator's limits on size and chain length.
    pub fn from_pkcs12_limited(
        pfx: &[u8],
        password: &str,
        max_bytes: usize,
        max_chain: usize,
    ) -> Result<Self, CertificateError> {
        if pfx.len() > max_bytes {
            return Err(CertificateError::TooLarge { limit: max_bytes });
        }
        let mut contents = crate::pkcs12::open(pfx, password)?;
        let key = match contents.private_keys.len() {
            0 => return Err(CertificateError::NoPrivateKey),
            1 => contents.private_keys.remove(0),
            n => return Err(CertificateError::SeveralPrivateKeys(n)),
        };
        private_key::check_type(&key)?;
        let certs = contents.certificates;
        if certs.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        if certs.len() > max_chain {
            return Err(CertificateError::ChainTooLong { found: certs.len(), limit: max_chain });
        }
        Self::from_parts(certs, key)
    }

    /// Builds a client certificate from DER certificates (in any order) and a PKCS#8 key. An EC
    /// key stored without its public key gets it from its certificate.
    pub fn from_parts(certs: Vec<Vec<u8>>, private_key: Vec<u8>) -> Result<Self, CertificateError> {
        let parsed: Vec<X509Certificate<'_>> = certs
            .iter()
            .map(|der| X509Certificate::from_der(der).map(|(_, c)| c))
            .collect::<Result<_, _>>()
            .map_err(|_| CertificateError::MalformedCertificate)?;
        let private_key = private_key::complete(private_key, &parsed)?;
        let signing_key = gatehouse_shared::crypto::provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key.clone())))
            .map_err(CertificateError::UnsupportedKey)?;
        let public_key = signing_key.public_key().ok_or(CertificateError::KeyMismatch)?;

        let leaf = parsed
            .iter()
            .position(|c| c.tbs_certificate.subject_pki.raw == public_key.as_ref())
            .ok_or(CertificateError::KeyMismatch)?;

        // Walk issuer links from the leaf; certificates that are not on its path are dropped,
        // and a self-signed root is not sent (backends must already trust it).
        let mut order = vec![leaf];
        loop {
            let current = &parsed[*order.last().expect("chain starts with the leaf")];
            if current.subject() == current.issuer() {
                break;
            }
            let next = parsed
                .iter()
                .enumerate()
                .position(|(i, c)| !order.contains(&i) && c.subject() == current.issuer() && c.subject() != c.issuer());
            match next {
                Some(i) => order.push(i),
                None => break,
            }
        }
        let chain = order.iter().map(|&i| certs[i].clone()).collect();
        let info = describe(&parsed[leaf], &certs[leaf]);
        Ok(Self { chain, private_key, info })
    }
}

/// A CA certificate as operators upload it: one certificate, PEM or DER, with
/// basicConstraints CA:TRUE. Returns the DER and its description.
pub fn parse_ca_certificate(bytes: &[u8]) -> Result<(Vec<u8>, CertificateInfo), CertificateError> {
    use rustls_pki_types::pem::PemObject;
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|_| CertificateError::NotCertificate)?;
        match certs.len() {
            0 => return Err(CertificateError::NotCertificate),
            1 => certs[0].to_vec(),
            n => return Err(CertificateError::SeveralCertificates(n)),
        }
    } else {
        bytes.to_vec()
    };
    let (rest, cert) = X509Certificate::from_der(&der).map_err(|_| CertificateError::NotCertificate)?;
    if !rest.is_empty() {
        return Err(CertificateError::NotCertificate);
    }
    let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CertificateError::NotCa);
    }
    let info = describe(&cert, &der);
    Ok((der, info))
}
