//! The PKCS#12 integrity MAC (RFC 7292 §5.1, Appendix B): an HMAC over the authenticated safe,
//! keyed by the PKCS#12 KDF with the MAC's digest. It is what proves a password right or wrong.

use hmac::{Mac, SimpleHmac};
use pkcs12::MacData;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use sha2::digest::block_api::BlockSizeUser;
use sha2::digest::{Digest, FixedOutputReset, KeyInit, OutputSizeUser};

use super::{Password, Reading};
use crate::certificate::{Algorithm, AlgorithmRole, CertificateError, MAX_KDF_ITERATIONS, Pkcs12Part, Protection};

/// Verifies the MAC under each reading of the password; returns the reading that matched.
pub(super) fn verify(
    mac_data: &MacData,
    authenticated: &[u8],
    password: &Password<'_>,
) -> Result<Reading, CertificateError> {
    let iterations = mac_data.iterations;
    if iterations < 1 {
        let source = der::Error::from(der::Tag::Integer.value_error()).into();
        return Err(CertificateError::Malformed { part: Pkcs12Part::Contents, source });
    }
    if iterations as u64 > u64::from(MAX_KDF_ITERATIONS) {
        return Err(CertificateError::TooManyIterations {
            protection: Protection::Mac,
            found: iterations as u64,
            limit: MAX_KDF_ITERATIONS,
        });
    }
    let algorithm = &mac_data.mac.algorithm.oid;
    let check: Check = match algorithm.to_string().as_str() {
        "1.3.14.3.2.26" => matches::<sha1::Sha1>,
        "2.16.840.1.101.3.4.2.4" => matches::<sha2::Sha224>,
        "2.16.840.1.101.3.4.2.1" => matches::<sha2::Sha256>,
        "2.16.840.1.101.3.4.2.2" => matches::<sha2::Sha384>,
        "2.16.840.1.101.3.4.2.3" => matches::<sha2::Sha512>,
        "2.16.840.1.101.3.4.2.5" => matches::<sha2::Sha512_224>,
        "2.16.840.1.101.3.4.2.6" => matches::<sha2::Sha512_256>,
        _ => {
            let oid = algorithm.to_string();
            return Err(CertificateError::Unsupported(Algorithm { role: AlgorithmRole::MacDigest, oid }));
        }
    };
    let salt = mac_data.mac_salt.as_bytes();
    let expected = mac_data.mac.digest.as_bytes();
    password
        .pkcs12_readings()
        .into_iter()
        .find(|(_, secret)| check(secret, salt, iterations, authenticated, expected))
        .map(|(reading, _)| reading)
        .ok_or(CertificateError::WrongPassword)
}

type Check = fn(&[u8], &[u8], i32, &[u8], &[u8]) -> bool;

fn matches<D>(secret: &[u8], salt: &[u8], iterations: i32, data: &[u8], expected: &[u8]) -> bool
where
    D: Digest + FixedOutputReset + BlockSizeUser,
{
    let key = derive_key::<D>(secret, salt, Pkcs12KeyType::Mac, iterations, <D as OutputSizeUser>::output_size());
    let Ok(mut mac) = <SimpleHmac<D> as KeyInit>::new_from_slice(&key) else {
        return false;
    };
    Mac::update(&mut mac, data);
    mac.verify_slice(expected).is_ok()
}
