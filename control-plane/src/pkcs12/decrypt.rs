//! Password-based decryption of PKCS#12 contents: RFC 7292's own PBE (SHA-1 with 3DES, 2-key
//! 3DES or RC2) and RFC 8018's PBES2 (PBKDF2 with AES-CBC, AES-GCM or DES-EDE3-CBC, any SHA
//! PRF including the default hmacWithSHA1). Parameters are checked, and refusals named, before
//! any key is derived.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
use der::Sequence;
use der::asn1::{AnyRef, ObjectIdentifier};
use pkcs5::pbes2;
use pkcs8::spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use pkcs12::pbe_params::Pkcs12PbeParams;
use sha1::Sha1;

use super::Password;
use crate::certificate::{
    Algorithm, AlgorithmRole, CertificateError, DecryptError, MAX_KDF_ITERATIONS, Pkcs12Part, Protection,
};

const PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";
const PBE_SHA1_2DES: &str = "1.2.840.113549.1.12.1.4";
const PBE_SHA1_RC2_128: &str = "1.2.840.113549.1.12.1.5";
const PBE_SHA1_RC2_40: &str = "1.2.840.113549.1.12.1.6";
const PBES2: &str = "1.2.840.113549.1.5.13";
const PBKDF2: &str = "1.2.840.113549.1.5.12";
const PRFS: [&str; 5] = [
    "1.2.840.113549.2.7",  // hmacWithSHA1, also the default when the field is absent
    "1.2.840.113549.2.8",  // hmacWithSHA224
    "1.2.840.113549.2.9",  // hmacWithSHA256
    "1.2.840.113549.2.10", // hmacWithSHA384
    "1.2.840.113549.2.11", // hmacWithSHA512
];
const DES_EDE3_CBC: &str = "1.2.840.113549.3.7";
const CIPHERS: [&str; 6] = [
    DES_EDE3_CBC,
    "2.16.840.1.101.3.4.1.2",  // aes128-CBC
    "2.16.840.1.101.3.4.1.22", // aes192-CBC
    "2.16.840.1.101.3.4.1.42", // aes256-CBC
    "2.16.840.1.101.3.4.1.6",  // aes128-GCM
    "2.16.840.1.101.3.4.1.46", // aes256-GCM
];

/// A supported encryption scheme with its parameters, ready to decrypt.
pub(super) enum Scheme {
    Pkcs12 { cipher: Pkcs12Cipher, salt: Vec<u8>, iterations: i32 },
    Pbes2(pbes2::Parameters),
}

#[derive(Clone, Copy)]
pub(super) enum Pkcs12Cipher {
    TripleDes,
    TwoKeyTripleDes,
    Rc2 { key_bytes: usize },
}

/// PBES2-params (RFC 8018 A.4), looked at before `pkcs5` decodes them so refusals can be named.
#[derive(Sequence)]
struct Pbes2Params<'a> {
    kdf: AlgorithmIdentifierRef<'a>,
    cipher: AlgorithmIdentifierRef<'a>,
}

/// PBKDF2-params (RFC 8018 A.2).
#[derive(Sequence)]
struct Pbkdf2Params<'a> {
    salt: AnyRef<'a>,
    iterations: u64,
    key_length: Option<u32>,
    prf: Option<AlgorithmIdentifierRef<'a>>,
}

impl Scheme {
    /// Checks an encryption algorithm of `part`: supported, well-formed, within the iteration cap.
    pub(super) fn new(algorithm: &AlgorithmIdentifierOwned, part: Pkcs12Part) -> Result<Self, CertificateError> {
        let malformed = |e: der::Error| CertificateError::Malformed { part, source: e.into() };
        let oid = algorithm.oid.to_string();
        let cipher = match oid.as_str() {
            PBE_SHA1_3DES => Some(Pkcs12Cipher::TripleDes),
            PBE_SHA1_2DES => Some(Pkcs12Cipher::TwoKeyTripleDes),
            PBE_SHA1_RC2_128 => Some(Pkcs12Cipher::Rc2 { key_bytes: 16 }),
            PBE_SHA1_RC2_40 => Some(Pkcs12Cipher::Rc2 { key_bytes: 5 }),
            PBES2 => None,
            _ => return Err(unsupported(AlgorithmRole::Encryption, algorithm.oid)),
        };
        let params = algorithm.parameters.as_ref().ok_or_else(|| malformed(der::Tag::Sequence.value_error().into()))?;
        if let Some(cipher) = cipher {
            let params: Pkcs12PbeParams = params.decode_as().map_err(malformed)?;
            if params.iterations < 1 {
                return Err(malformed(der::Tag::Integer.value_error().into()));
            }
            check_iterations(params.iterations as u64, part)?;
            return Ok(Self::Pkcs12 { cipher, salt: params.salt.as_bytes().to_vec(), iterations: params.iterations });
        }

        let shape: Pbes2Params<'_> = params.decode_as().map_err(malformed)?;
        if shape.kdf.oid.to_string() != PBKDF2 {
            return Err(unsupported(AlgorithmRole::KeyDerivation, shape.kdf.oid));
        }
        let kdf: Pbkdf2Params<'_> = shape
            .kdf
            .parameters
            .ok_or_else(|| malformed(der::Tag::Sequence.value_error().into()))?
            .decode_as()
            .map_err(malformed)?;
        if let Some(prf) = kdf.prf.filter(|prf| !PRFS.contains(&prf.oid.to_string().as_str())) {
            return Err(unsupported(AlgorithmRole::Prf, prf.oid));
        }
        let cipher_oid = shape.cipher.oid.to_string();
        if !CIPHERS.contains(&cipher_oid.as_str()) {
            return Err(unsupported(AlgorithmRole::Cipher, shape.cipher.oid));
        }
        // `pkcs5` slices a DES IV without checking its length; a short one must not reach it.
        if cipher_oid == DES_EDE3_CBC {
            let iv = shape.cipher.parameters.map(|iv| iv.decode_as::<&der::asn1::OctetStringRef>());
            if !matches!(iv, Some(Ok(iv)) if iv.as_bytes().len() == 8) {
                return Err(malformed(der::Tag::OctetString.value_error().into()));
            }
        }
        check_iterations(kdf.iterations, part)?;
        let params = pbes2::Parameters::try_from(params.to_ref()).map_err(malformed)?;
        Ok(Self::Pbes2(params))
    }

    /// The password encodings this scheme's KDF could have been given, most likely first.
    pub(super) fn secrets(&self, password: &Password<'_>) -> Vec<Vec<u8>> {
        match self {
            Self::Pkcs12 { .. } => password.pkcs12_readings().into_iter().map(|(_, bytes)| bytes).collect(),
            Self::Pbes2(_) => vec![password.utf8().to_vec()],
        }
    }

    pub(super) fn decrypt(&self, ciphertext: &[u8], secret: &[u8]) -> Result<Vec<u8>, DecryptError> {
        match self {
            Self::Pkcs12 { cipher, salt, iterations } => {
                let key_bytes = match cipher {
                    Pkcs12Cipher::TripleDes => 24,
                    Pkcs12Cipher::TwoKeyTripleDes => 16,
                    Pkcs12Cipher::Rc2 { key_bytes } => *key_bytes,
                };
                let key = derive_key::<Sha1>(secret, salt, Pkcs12KeyType::EncryptionKey, *iterations, key_bytes);
                let iv = derive_key::<Sha1>(secret, salt, Pkcs12KeyType::Iv, *iterations, 8);
                match cipher {
                    Pkcs12Cipher::TripleDes => cbc_decrypt::<des::TdesEde3>(&key, &iv, ciphertext),
                    Pkcs12Cipher::TwoKeyTripleDes => cbc_decrypt::<des::TdesEde2>(&key, &iv, ciphertext),
                    Pkcs12Cipher::Rc2 { .. } => cbc_decrypt::<rc2::Rc2>(&key, &iv, ciphertext),
                }
            }
            Self::Pbes2(params) => params.decrypt(secret, ciphertext).map_err(DecryptError::Pbes2),
        }
    }
}

fn cbc_decrypt<C: BlockCipherDecrypt + KeyInit>(
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .expect("key and IV are derived at the cipher's sizes")
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| DecryptError::Padding)
}

fn check_iterations(found: u64, part: Pkcs12Part) -> Result<(), CertificateError> {
    if found > u64::from(MAX_KDF_ITERATIONS) {
        return Err(CertificateError::TooManyIterations {
            protection: Protection::Encryption(part),
            found,
            limit: MAX_KDF_ITERATIONS,
        });
    }
    Ok(())
}

fn unsupported(role: AlgorithmRole, oid: ObjectIdentifier) -> CertificateError {
    CertificateError::Unsupported(Algorithm { role, oid: oid.to_string() })
}
