//! Why an uploaded certificate was refused, worded for the operator who uploaded it. Messages
//! name the reason (and what would be accepted); causes stay attached as sources; none carries
//! key material.

use std::fmt;

pub use crate::pkcs12::BerError;

/// Why a PKCS#12 upload was refused. Messages are for operators; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The MAC does not verify under the password (in either reading of an empty one).
    #[error("the PFX password is incorrect")]
    WrongPassword,
    /// A file without a MAC whose encrypted contents do not decrypt under the password.
    #[error(
        "the PFX password is incorrect: the file has no MAC, and its {part} cannot be decrypted with this password"
    )]
    CannotDecrypt {
        /// The part that does not decrypt.
        part: Pkcs12Part,
        /// Why it does not.
        #[source]
        source: DecryptError,
    },
    /// The password opens the file, but one part is encrypted under another password.
    #[error(
        "the PKCS#12 file protects its {part} with a different password than the file itself; export it again with one password"
    )]
    DifferentPassword {
        /// The part under another password.
        part: Pkcs12Part,
        /// Why it does not decrypt under the file's password.
        #[source]
        source: DecryptError,
    },
    /// The outer structure is not PKCS#12.
    #[error("the file is not a PKCS#12 (.pfx/.p12) file")]
    NotPkcs12(#[source] FormatError),
    /// The outer structure is PKCS#12, but a part inside it cannot be decoded.
    #[error("the {part} in the PKCS#12 file cannot be read")]
    Malformed {
        /// The part that cannot be decoded.
        part: Pkcs12Part,
        /// Why it cannot.
        #[source]
        source: FormatError,
    },
    /// The file names an algorithm Gatehouse does not read.
    #[error("the PKCS#12 file uses an unsupported {0}")]
    Unsupported(Algorithm),
    /// A password-based iteration count above [`MAX_KDF_ITERATIONS`](super::MAX_KDF_ITERATIONS).
    #[error("the PKCS#12 file's {protection} uses {found} iterations; at most {limit} are accepted")]
    TooManyIterations {
        /// What the iterations protect.
        protection: Protection,
        /// The count the file asks for.
        found: u64,
        /// The most accepted.
        limit: u32,
    },
    /// The file has no private key.
    #[error("the PKCS#12 file holds no private key; export it with its private key")]
    NoPrivateKey,
    /// The file has more than one private key (how many).
    #[error("the PKCS#12 file holds {0} private keys; upload one client certificate per file")]
    SeveralPrivateKeys(usize),
    /// The file has no certificate.
    #[error("the PKCS#12 file holds no certificate")]
    NoCertificate,
    /// No certificate carries the private key's public key.
    #[error("the private key does not belong to any certificate in the PKCS#12 file")]
    KeyMismatch,
    /// A key type rustls with ring cannot sign with.
    #[error(
        "the private key is {0}, which TLS client authentication here cannot use; supported keys: RSA 2048–4096 bits, EC P-256, EC P-384, Ed25519"
    )]
    UnsupportedKeyType(KeyType),
    /// The private key is not well-formed PKCS#8.
    #[error("the private key is not a well-formed PKCS#8 key")]
    MalformedPrivateKey(#[source] der::Error),
    /// rustls cannot load the private key for signing.
    #[error("the private key is not usable for TLS client authentication")]
    UnsupportedKey(#[source] rustls::Error),
    /// A certificate does not parse as X.509.
    #[error("a certificate in the PKCS#12 file is malformed")]
    MalformedCertificate,
    /// The file is larger than the size limit.
    #[error("the PKCS#12 file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The file has more certificates than the chain limit.
    #[error("the certificate chain has {found} certificates; at most {limit} are accepted")]
    ChainTooLong {
        /// Certificates in the file.
        found: usize,
        /// The most accepted.
        limit: usize,
    },
    /// A CA upload that is neither PEM nor DER X.509.
    #[error("the file is neither a PEM nor a DER X.509 certificate")]
    NotCertificate,
    /// A CA upload with more than one certificate (how many).
    #[error("the file holds {0} certificates; upload one CA certificate per id")]
    SeveralCertificates(usize),
    /// A CA upload whose certificate lacks basicConstraints CA:TRUE.
    #[error("the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa,
    /// A PEM certificate file without one whole CERTIFICATE block.
    #[error("the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----), or a truncated one")]
    NoPemCertificate,
    /// A PEM key file without one whole private key block.
    #[error(
        "the key file holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY, unencrypted), or a truncated one"
    )]
    NoPemPrivateKey,
    /// A PEM key that belongs to none of the certificates beside it.
    #[error("the private key in the key file does not belong to the certificate in the certificate file")]
    PemKeyMismatch,
    /// A CA certificate file given as a client certificate's source.
    #[error("a CA certificate file holds no private key: link it as a CA certificate (gatehousectl ca link)")]
    NotClientSource,
}

/// The part of a PKCS#12 file an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pkcs12Part {
    /// The authenticated safe and its safe contents, before any bag is looked at.
    Contents,
    /// The certificate bags.
    Certificates,
    /// The private key's (shrouded) key bag.
    PrivateKey,
}

impl fmt::Display for Pkcs12Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Contents => "contents",
            Self::Certificates => "certificates",
            Self::PrivateKey => "private key",
        })
    }
}

/// What a password-based iteration count protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// The MAC over the file.
    Mac,
    /// The encryption of one part.
    Encryption(Pkcs12Part),
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mac => f.write_str("MAC"),
            Self::Encryption(part) => write!(f, "{part} encryption"),
        }
    }
}

/// An algorithm a file names that Gatehouse does not read: its role, and its OID (with its
/// name where known), so the operator can export the file again with another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Algorithm {
    /// Where the file names it.
    pub role: AlgorithmRole,
    /// Dotted-decimal OID.
    pub oid: String,
}

/// Where in the file an algorithm is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmRole {
    /// The content type of the authenticated safe or of one of its parts.
    ContentType,
    /// The MAC's digest.
    MacDigest,
    /// A part's password-based encryption scheme (PKCS#12 PBE or PBES2).
    Encryption,
    /// PBES2's key derivation function.
    KeyDerivation,
    /// PBKDF2's pseudo-random function.
    Prf,
    /// PBES2's cipher.
    Cipher,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            AlgorithmRole::ContentType => "content type",
            AlgorithmRole::MacDigest => "MAC algorithm",
            AlgorithmRole::Encryption => "encryption algorithm",
            AlgorithmRole::KeyDerivation => "key derivation function",
            AlgorithmRole::Prf => "PBKDF2 pseudo-random function",
            AlgorithmRole::Cipher => "PBES2 cipher",
        };
        match oid_name(&self.oid) {
            Some(name) => write!(f, "{role} {name} ({})", self.oid),
            None => write!(f, "{role} {}", self.oid),
        }
    }
}

/// A key type rustls with ring cannot sign with, as operators know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA outside 2048–4096 bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// Named curve, e.g. "P-521", or its OID.
    Ec {
        /// The curve.
        curve: String,
    },
    /// "Ed448", "RSA-PSS", "DSA", or the algorithm's OID.
    Other {
        /// The algorithm.
        name: String,
    },
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits}"),
            Self::Ec { curve } => write!(f, "EC {curve}"),
            Self::Other { name } => f.write_str(name),
        }
    }
}

/// Why bytes that should be an ASN.1 structure are not.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not BER at all.
    #[error("not BER")]
    Ber(#[source] BerError),
    /// BER, but not the ASN.1 structure expected.
    #[error("unexpected ASN.1 structure")]
    Der(#[source] der::Error),
}

impl From<BerError> for FormatError {
    fn from(error: BerError) -> Self {
        Self::Ber(error)
    }
}

impl From<der::Error> for FormatError {
    fn from(error: der::Error) -> Self {
        Self::Der(error)
    }
}

/// Why encrypted contents did not open under a password.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The padding after decryption is wrong: the usual sign of a wrong password.
    #[error("the decrypted padding is wrong")]
    Padding,
    /// PBKDF2 or the PBES2 cipher failed.
    #[error("PBES2 decryption failed")]
    Pbes2(#[source] pkcs5::Error),
    /// Decryption ended well but the result is not what the bag holds.
    #[error("the decrypted bytes are not the expected structure")]
    Undecodable(#[source] FormatError),
}

/// The name of an OID as standards spell it, where Gatehouse or `const-oid`'s registry knows it.
pub(crate) fn oid_name(oid: &str) -> Option<&'static str> {
    let known = match oid {
        "1.2.840.113549.1.12.1.1" => "pbeWithSHAAnd128BitRC4",
        "1.2.840.113549.1.12.1.2" => "pbeWithSHAAnd40BitRC4",
        "1.2.840.113549.1.12.1.3" => "pbeWithSHAAnd3-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.4" => "pbeWithSHAAnd2-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.5" => "pbeWithSHAAnd128BitRC2-CBC",
        "1.2.840.113549.1.12.1.6" => "pbeWithSHAAnd40BitRC2-CBC",
        "1.2.840.113549.1.5.13" => "PBES2",
        "1.2.840.113549.1.5.14" => "PBMAC1",
        "1.2.840.113549.1.5.12" => "PBKDF2",
        "1.3.6.1.4.1.11591.4.11" => "scrypt",
        "1.3.14.3.2.7" => "desCBC",
        "1.2.840.113549.3.2" => "rc2CBC",
        "1.2.840.113549.3.7" => "des-EDE3-CBC",
        "1.2.840.113549.2.7" => "hmacWithSHA1",
        "1.2.840.113549.2.8" => "hmacWithSHA224",
        "1.2.840.113549.2.9" => "hmacWithSHA256",
        "1.2.840.113549.2.10" => "hmacWithSHA384",
        "1.2.840.113549.2.11" => "hmacWithSHA512",
        "1.2.840.113549.2.12" => "hmacWithSHA512-224",
        "1.2.840.113549.2.13" => "hmacWithSHA512-256",
        "1.2.840.113549.1.7.2" => "signedData (public-key integrity mode)",
        "1.2.840.113549.1.7.3" => "envelopedData (public-key privacy mode)",
        _ => "",
    };
    if !known.is_empty() {
        return Some(known);
    }
    let oid = der::oid::ObjectIdentifier::new(oid).ok()?;
    const_oid::db::DB.by_oid(&oid)
}
