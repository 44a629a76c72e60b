//! Certificates described the way people read them: subject and issuer (CN first, every string
//! type X.509 allows), thumbprint, validity and key algorithm. Both planes describe the
//! certificates they hold this way; parsing uploads (PKCS#12, CA files) is the control plane's.

pub mod claims;
mod name;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

pub use name::display_name;

use crate::Thumbprint;

/// What people are shown about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Distinguished name, CN first.
    pub subject: String,
    /// Distinguished name of the issuer, CN first.
    pub issuer: String,
    /// SHA-1 of the DER encoding.
    pub thumbprint: Thumbprint,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
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
        crate::days_until(self.not_after)
    }
}

/// A DER certificate that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("a certificate is malformed")]
pub struct MalformedCertificate;

/// Describes a DER certificate (used for leaf certificates and CA certificates alike).
pub fn describe_der(der: &[u8]) -> Result<CertificateInfo, MalformedCertificate> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| MalformedCertificate)?;
    Ok(describe(&cert, der))
}

/// Describes a parsed certificate; `der` is its encoding (for the thumbprint).
pub fn describe(cert: &X509Certificate<'_>, der: &[u8]) -> CertificateInfo {
    CertificateInfo {
        subject: display_name(cert.subject()),
        issuer: display_name(cert.issuer()),
        thumbprint: Thumbprint::of_der(der),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_algorithm: key_algorithm(cert),
    }
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
