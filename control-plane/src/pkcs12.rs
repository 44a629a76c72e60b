//! PKCS#12 files read the way the tools that write them mean them: OpenSSL, Windows, the JDK's
//! keytool, NSS `pk12util`, BouncyCastle, node-forge, Python. Gives back the certificates and
//! PKCS#8 private keys a file holds, or the operator's reason it cannot be opened.
//!
//! Built on RustCrypto's `pkcs12` (structures, RFC 7292 KDF), `pkcs5` (PBES2) and the block
//! ciphers, rather than on `p12-keystore`, whose one call verifies, decrypts and decodes at once:
//! it cannot read BER, try the empty password's second reading, tell a wrong password from a key
//! under another password, or say which algorithm or iteration count it refused.

mod ber;
mod decrypt;
mod mac;

pub use ber::BerError;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Reader as _, Tag, Tagged};
use pkcs8::PrivateKeyInfoRef;
use pkcs8::spki::AlgorithmIdentifierOwned;
use pkcs12::cms::content_info::ContentInfo;
use pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use pkcs12::safe_bag::SafeContents;
use pkcs12::{AuthenticatedSafe, CertBag, Pfx};

use crate::certificate::{Algorithm, AlgorithmRole, CertificateError, DecryptError, FormatError, Pkcs12Part};

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const SAFE_CONTENTS_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");

/// How deep safeContents bags may nest inside one another.
const MAX_NESTED_SAFES: usize = 4;

/// What a PKCS#12 file holds for a client certificate, in file order.
#[derive(Default)]
pub(crate) struct Contents {
    /// DER certificates, exactly as stored (their thumbprints are taken from these bytes).
    pub certificates: Vec<Vec<u8>>,
    /// DER PKCS#8 private keys.
    pub private_keys: Vec<Vec<u8>>,
}

/// Opens a PKCS#12 file (BER or DER): verifies its MAC if it has one, decrypts what is encrypted.
pub(crate) fn open(pfx: &[u8], password: &str) -> Result<Contents, CertificateError> {
    let der = ber::to_der(pfx).map_err(|e| CertificateError::NotPkcs12(e.into()))?;
    let pfx = Pfx::from_der(&der).map_err(|e| CertificateError::NotPkcs12(e.into()))?;
    if pfx.auth_safe.content_type != DATA {
        return Err(unsupported_content(pfx.auth_safe.content_type));
    }
    let authenticated = data_octets(&pfx.auth_safe).map_err(CertificateError::NotPkcs12)?;

    let mut password = Password::new(password);
    if let Some(mac_data) = &pfx.mac_data {
        password.confirmed = Some(mac::verify(mac_data, authenticated, &password)?);
    }
    let malformed = |e: FormatError| CertificateError::Malformed { part: Pkcs12Part::Contents, source: e };
    let safes = decode_der::<AuthenticatedSafe<'_>>(authenticated).map_err(malformed)?;

    let mut reader = Reader { password, contents: Contents::default(), decrypted: false, failure: None };
    for safe in &safes {
        reader.safe(safe)?;
    }
    match reader.failure {
        // The MAC or another part proved the password: this part was encrypted under another one.
        Some((part, source)) if reader.password.confirmed.is_some() || reader.decrypted => {
            Err(CertificateError::DifferentPassword { part, source })
        }
        Some((part, source)) => Err(CertificateError::CannotDecrypt { part, source }),
        None => Ok(reader.contents),
    }
}

// === impl Password ===

/// RFC 7292 (Appendix B.1) leaves open how the KDF encodes the empty password: as the BMPString
/// of "" with its two-byte terminator (OpenSSL, the JDK) or as no bytes at all (.NET, and OpenSSL
/// given no password). An empty password is tried both ways; the MAC says which one the file used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Bmp,
    NoBytes,
}

/// The operator's password, as each key derivation function takes it.
struct Password<'a> {
    text: &'a str,
    /// The reading the MAC verified under, tried first for decryption.
    confirmed: Option<Reading>,
}

impl<'a> Password<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, confirmed: None }
    }

    /// The password as PKCS#12's own KDF takes it, in each reading that applies, the confirmed first.
    fn pkcs12_readings(&self) -> Vec<(Reading, Vec<u8>)> {
        let mut bmp: Vec<u8> = self.text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        bmp.extend([0, 0]);
        let mut readings = vec![(Reading::Bmp, bmp)];
        if self.text.is_empty() {
            readings.push((Reading::NoBytes, Vec::new()));
            if self.confirmed == Some(Reading::NoBytes) {
                readings.reverse();
            }
        }
        readings
    }

    /// The password as PBKDF2 takes it (RFC 8018): its UTF-8 bytes.
    fn utf8(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

// === impl Reader ===

/// Walks the safes of a file whose MAC (if any) has been checked, collecting what they hold.
struct Reader<'a> {
    password: Password<'a>,
    contents: Contents,
    /// Some encrypted part opened under the password.
    decrypted: bool,
    /// The first encrypted part that did not open, and why.
    failure: Option<(Pkcs12Part, DecryptError)>,
}

impl Reader<'_> {
    fn safe(&mut self, safe: &ContentInfo) -> Result<(), CertificateError> {
        let malformed = |e: FormatError| CertificateError::Malformed { part: Pkcs12Part::Contents, source: e };
        match safe.content_type {
            DATA => {
                let octets = data_octets(safe).map_err(malformed)?;
                let bags = decode_der::<SafeContents>(octets).map_err(malformed)?;
                self.bags(bags, 0)
            }
            ENCRYPTED_DATA => {
                let (algorithm, ciphertext) = encrypted_data(safe).map_err(malformed)?;
                if ciphertext.is_empty() {
                    return Ok(());
                }
                let decode = |plain: &[u8]| decode_der::<SafeContents>(plain);
                match self.decrypt(&algorithm, &ciphertext, Pkcs12Part::Certificates, decode)? {
                    Some(bags) => self.bags(bags, 0),
                    None => Ok(()),
                }
            }
            other => Err(unsupported_content(other)),
        }
    }

    fn bags(&mut self, bags: SafeContents, depth: usize) -> Result<(), CertificateError> {
        for bag in bags {
            let part = match bag.bag_id {
                CERT_BAG => Pkcs12Part::Certificates,
                KEY_BAG | SHROUDED_KEY_BAG => Pkcs12Part::PrivateKey,
                _ => Pkcs12Part::Contents,
            };
            let malformed = |e: der::Error| CertificateError::Malformed { part, source: e.into() };
            // bagValue is `[0] EXPLICIT`; its contents are the bag itself.
            let value = der::AnyRef::from_der(&bag.bag_value).map_err(malformed)?.value();
            match bag.bag_id {
                KEY_BAG => {
                    PrivateKeyInfoRef::from_der(value).map_err(malformed)?;
                    self.contents.private_keys.push(value.to_vec());
                }
                SHROUDED_KEY_BAG => {
                    let info = EncryptedPrivateKeyInfo::from_der(value).map_err(malformed)?;
                    let decode = |plain: &[u8]| {
                        let der = ber::to_der(plain)?;
                        PrivateKeyInfoRef::from_der(&der)?;
                        Ok(der)
                    };
                    let ciphertext = info.encrypted_data.as_bytes();
                    if let Some(key) = self.decrypt(&info.encryption_algorithm, ciphertext, part, decode)? {
                        self.contents.private_keys.push(key);
                    }
                }
                CERT_BAG => {
                    let cert = CertBag::from_der(value).map_err(malformed)?;
                    if cert.cert_id == X509_CERTIFICATE {
                        self.contents.certificates.push(cert.cert_value.as_bytes().to_vec());
                    }
                }
                SAFE_CONTENTS_BAG if depth < MAX_NESTED_SAFES => {
                    let nested = SafeContents::from_der(value).map_err(malformed)?;
                    self.bags(nested, depth + 1)?;
                }
                // CRLs, secrets and unknown bags hold nothing a client certificate needs.
                _ => {}
            }
        }
        Ok(())
    }

    /// Decrypts under each reading of the password until one yields what `decode` accepts. A part
    /// that opens under none is noted (the first such decides the error), not returned at once:
    /// whether it means a wrong password or a second password depends on the rest of the file.
    fn decrypt<T>(
        &mut self,
        algorithm: &AlgorithmIdentifierOwned,
        ciphertext: &[u8],
        part: Pkcs12Part,
        decode: impl Fn(&[u8]) -> Result<T, FormatError>,
    ) -> Result<Option<T>, CertificateError> {
        let scheme = decrypt::Scheme::new(algorithm, part)?;
        let mut failure = None;
        for secret in scheme.secrets(&self.password) {
            let opened = scheme.decrypt(ciphertext, &secret);
            match opened.and_then(|plain| decode(&plain).map_err(DecryptError::Undecodable)) {
                Ok(value) => {
                    self.decrypted = true;
                    return Ok(Some(value));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let (None, Some(e)) = (&self.failure, failure) {
            self.failure = Some((part, e));
        }
        Ok(None)
    }
}

// === ASN.1 helpers ===

/// Decodes BER or DER as `T`.
fn decode_der<T: for<'a> Decode<'a, Error = der::Error>>(ber: &[u8]) -> Result<T, FormatError> {
    Ok(T::from_der(&ber::to_der(ber)?)?)
}

/// The octets a `data` ContentInfo carries.
fn data_octets(info: &ContentInfo) -> Result<&[u8], FormatError> {
    let tag = info.content.tag();
    if tag != Tag::OctetString {
        return Err(der::Error::from(tag.unexpected_error(Some(Tag::OctetString))).into());
    }
    Ok(info.content.value())
}

fn unsupported_content(oid: ObjectIdentifier) -> CertificateError {
    CertificateError::Unsupported(Algorithm { role: AlgorithmRole::ContentType, oid: oid.to_string() })
}

/// EncryptedData (RFC 5652 §8): the algorithm and the ciphertext. Read by hand because BER
/// writers split the `[0] IMPLICIT OCTET STRING` ciphertext into segments, which a generic
/// BER-to-DER rewrite cannot tell from an explicit tag.
fn encrypted_data(info: &ContentInfo) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), FormatError> {
    let der = info.content.to_der()?;
    let (algorithm, ciphertext) = der::AnyRef::from_der(&der)?.sequence(|data| {
        let _version: u8 = data.decode()?;
        let parts = data.sequence(|content| {
            let _content_type: ObjectIdentifier = content.decode()?;
            let algorithm: AlgorithmIdentifierOwned = content.decode()?;
            let ciphertext: Option<der::AnyRef<'_>> = content.decode()?;
            Ok::<_, der::Error>((algorithm, ciphertext))
        })?;
        // unprotectedAttrs, if any, say nothing about decryption.
        while !data.is_finished() {
            let _: der::AnyRef<'_> = data.decode()?;
        }
        Ok::<_, der::Error>(parts)
    })?;
    let ciphertext = match ciphertext {
        None => Vec::new(),
        Some(any) if any.tag().is_constructed() => ber::joined_segments(any.value())?,
        Some(any) => any.value().to_vec(),
    };
    Ok((algorithm, ciphertext))
}
