//! Client certificates as operators upload them: PKCS#12 files checked, split into a
//! certificate chain and a PKCS#8 private key, and described the way people read them.

use std::fmt;

use p12_keystore::Pkcs12Archive;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::public_key::PublicKey;

use crate::Thumbprint;

/// Why a PKCS#12 upload was refused. Messages are for operators; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the PFX password is incorrect")]
    WrongPassword,
    #[error("the file is not a PKCS#12 (.pfx/.p12) file")]
    NotPkcs12(#[source] p12_keystore::error::Error),
    #[error("the PKCS#12 file uses an unsupported algorithm")]
    Unsupported(#[source] p12_keystore::error::Error),
    #[error("the PKCS#12 file holds no private key; export it with its private key")]
    NoPrivateKey,
    #[error("the PKCS#12 file holds {0} private keys; upload one client certificate per file")]
    SeveralPrivateKeys(usize),
    #[error("the PKCS#12 file holds no certificate")]
    NoCertificate,
    #[error("the private key does not belong to any certificate in the PKCS#12 file")]
    KeyMismatch,
    #[error("the private key is not usable for TLS client authentication")]
    UnsupportedKey(#[source] rustls::Error),
    #[error("a certificate in the PKCS#12 file is malformed")]
    MalformedCertificate,
    #[error("the PKCS#12 file is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the certificate chain has {found} certificates; at most {limit} are accepted")]
    ChainTooLong { found: usize, limit: usize },
    #[error("the file is neither a PEM nor a DER X.509 certificate")]
    NotCertificate,
    #[error("the file holds {0} certificates; upload one CA certificate per id")]
    SeveralCertificates(usize),
    #[error("the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa,
}

/// What people are shown about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Distinguished name, CN first.
    pub subject: String,
    pub issuer: String,
    pub thumbprint: Thumbprint,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// "RSA 2048", "EC P-256", "Ed25519".
    pub key_algorithm: String,
}

impl CertificateInfo {
    /// not_after is in the past.
    pub fn is_expired(&self) -> bool {
        self.not_after < crate::unix_now()
    }

    /// Days until not_after (negative once expired).
    pub fn days_to_expiry(&self) -> f64 {
        (self.not_after - crate::unix_now()) as f64 / 86_400.0
    }
}

/// A client certificate with its private key: what a data plane presents to a backend.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// DER certificates, leaf first, then the intermediates that lead to its issuer.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub private_key: Vec<u8>,
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

/// Default limits on what an upload may carry.
pub const MAX_PFX_BYTES: usize = 1024 * 1024;
pub const MAX_CHAIN_LENGTH: usize = 10;

impl ClientCertificate {
    /// Opens a PKCS#12 file: checks the password (and the MAC), finds the one private key and
    /// the certificate it belongs to, and orders the rest of the chain after it. Handles OpenSSL 3
    /// (AES-256-CBC/PBKDF2) and legacy (RC2-40/3DES, SHA-1 MAC) files.
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
        let archive = open_archive(pfx, password)?;
        let key = match archive.keys.as_slice() {
            [] => return Err(CertificateError::NoPrivateKey),
            [key] => key.key.as_der().to_vec(),
            keys => return Err(CertificateError::SeveralPrivateKeys(keys.len())),
        };
        if archive.certs.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        let certs: Vec<Vec<u8>> = archive.certs.iter().map(|bag| bag.cert.as_der().to_vec()).collect();
        if certs.len() > max_chain {
            return Err(CertificateError::ChainTooLong { found: certs.len(), limit: max_chain });
        }
        Self::from_parts(certs, key)
    }

    /// Builds a client certificate from DER certificates (in any order) and a PKCS#8 key.
    pub fn from_parts(certs: Vec<Vec<u8>>, private_key: Vec<u8>) -> Result<Self, CertificateError> {
        let signing_key = crate::crypto::provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key.clone())))
            .map_err(CertificateError::UnsupportedKey)?;
        let public_key = signing_key.public_key().ok_or(CertificateError::KeyMismatch)?;

        let parsed: Vec<X509Certificate<'_>> = certs
            .iter()
            .map(|der| X509Certificate::from_der(der).map(|(_, c)| c))
            .collect::<Result<_, _>>()
            .map_err(|_| CertificateError::MalformedCertificate)?;
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

fn open_archive(pfx: &[u8], password: &str) -> Result<Pkcs12Archive, CertificateError> {
    use p12_keystore::error::Error as P12;
    match Pkcs12Archive::from_pkcs12(pfx, password) {
        Ok(archive) => Ok(archive),
        // No outer structure at all: this is not PKCS#12.
        Err(e @ (P12::DerError(_) | P12::InvalidVersion | P12::UnsupportedContentType)) => {
            Err(CertificateError::NotPkcs12(e))
        }
        // A MAC mismatch, or (for files without a MAC) a decryption that yields garbage.
        Err(P12::MacError(_) | P12::UnpadError | P12::InvalidPrivateKey) => Err(CertificateError::WrongPassword),
        Err(
            e @ (P12::UnsupportedEncryptionScheme | P12::UnsupportedMacAlgorithm | P12::UnsupportedCertificateType),
        ) => Err(CertificateError::Unsupported(e)),
        Err(e) => Err(CertificateError::NotPkcs12(e)),
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

/// Describes a DER certificate (used for leaf certificates and CA certificates alike).
pub fn describe_der(der: &[u8]) -> Result<CertificateInfo, CertificateError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertificateError::MalformedCertificate)?;
    Ok(describe(&cert, der))
}

fn describe(cert: &X509Certificate<'_>, der: &[u8]) -> CertificateInfo {
    CertificateInfo {
        subject: display_name(cert.subject()),
        issuer: display_name(cert.issuer()),
        thumbprint: Thumbprint::of_der(der),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_algorithm: key_algorithm(cert),
    }
}

/// "CN=api-client, O=Example, C=US": the common name first, then the other attributes most
/// specific first (reverse of the encoded order), as Windows and APIM show names.
pub fn display_name(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in name.iter_rdn().collect::<Vec<_>>().into_iter().rev() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().map(str::to_string).unwrap_or_else(|_| "<binary>".to_string());
            parts.push(format!("{key}={value}"));
        }
    }
    if let Some(cn) = parts.iter().position(|p| p.starts_with("CN=")) {
        let cn = parts.remove(cn);
        parts.insert(0, cn);
    }
    parts.join(", ")
}

fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "EC P-256".to_string(),
                Some("1.3.132.0.34") => "EC P-384".to_string(),
                Some("1.3.132.0.35") => "EC P-521".to_string(),
                Some(other) => format!("EC {other}"),
                None => "EC".to_string(),
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "Ed25519".to_string(),
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}
