//! Private keys made ready for rustls with ring: key types it cannot sign with are refused by
//! name, and EC keys stored without their public key (as the JDK writes them) get it back from
//! the certificate they belong to, since ring insists on finding it inside the PKCS#8.

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Reader, Sequence};
use pkcs8::PrivateKeyInfoRef;
use pkcs8::spki::AlgorithmIdentifierRef;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::X509Certificate;

use super::{CertificateError, KeyType};

const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// ECPrivateKey (RFC 5915 §3).
#[derive(Sequence)]
struct EcPrivateKey<'a> {
    version: u8,
    private_key: &'a OctetStringRef,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    parameters: Option<AnyRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    public_key: Option<BitStringRef<'a>>,
}

/// A key type rustls with ring signs with.
enum Usable {
    Rsa,
    Ec { curve: &'static str, scalar_bytes: usize },
    Ed25519,
}

/// Refuses, by name, the key types an upload may not bring: RSA outside 2048–4096 bits, EC on
/// curves other than P-256 and P-384, anything else but Ed25519.
pub(super) fn check_type(pkcs8: &[u8]) -> Result<(), CertificateError> {
    usable(&parse(pkcs8)?).map(|_| ())
}

/// Returns the PKCS#8 key rustls will be given: `pkcs8` itself, or for an EC key without its
/// public key, the same key with the public key of the certificate it matches.
pub(super) fn complete(pkcs8: Vec<u8>, certs: &[X509Certificate<'_>]) -> Result<Vec<u8>, CertificateError> {
    let info = parse(&pkcs8)?;
    // Other keys go to ring as they are; it has the last word on what it can load.
    let Ok(Usable::Ec { curve, scalar_bytes }) = usable(&info) else {
        return Ok(pkcs8);
    };
    let key = EcPrivateKey::from_der(info.private_key.as_bytes()).map_err(CertificateError::MalformedPrivateKey)?;
    if key.public_key.is_some() {
        return Ok(pkcs8);
    }
    with_public_key_from(&info, &key, curve, scalar_bytes, certs)
}

fn parse(pkcs8: &[u8]) -> Result<PrivateKeyInfoRef<'_>, CertificateError> {
    PrivateKeyInfoRef::from_der(pkcs8).map_err(CertificateError::MalformedPrivateKey)
}

fn usable(info: &PrivateKeyInfoRef<'_>) -> Result<Usable, CertificateError> {
    let algorithm = info.algorithm.oid.to_string();
    match algorithm.as_str() {
        RSA => {
            let bits = rsa_modulus_bits(info.private_key.as_bytes()).map_err(CertificateError::MalformedPrivateKey)?;
            if !(2048..=4096).contains(&bits) {
                return Err(CertificateError::UnsupportedKeyType(KeyType::Rsa { bits }));
            }
            Ok(Usable::Rsa)
        }
        EC => {
            let Some(Ok(curve)) = info.algorithm.parameters.map(|p| p.decode_as::<ObjectIdentifier>()) else {
                return Err(ec_unsupported("without a named curve"));
            };
            match curve.to_string().as_str() {
                P256 => Ok(Usable::Ec { curve: "P-256", scalar_bytes: 32 }),
                P384 => Ok(Usable::Ec { curve: "P-384", scalar_bytes: 48 }),
                "1.3.132.0.35" => Err(ec_unsupported("P-521")),
                "1.3.132.0.10" => Err(ec_unsupported("secp256k1")),
                other => Err(ec_unsupported(super::error::oid_name(other).unwrap_or(other))),
            }
        }
        ED25519 => Ok(Usable::Ed25519),
        other => {
            let name = match other {
                RSA_PSS => "RSA-PSS".to_string(),
                "1.3.101.113" => "Ed448".to_string(),
                "1.2.840.10040.4.1" => "DSA".to_string(),
                other => super::error::oid_name(other).map_or_else(|| format!("key algorithm {other}"), str::to_string),
            };
            Err(CertificateError::UnsupportedKeyType(KeyType::Other { name }))
        }
    }
}

fn ec_unsupported(curve: &str) -> CertificateError {
    CertificateError::UnsupportedKeyType(KeyType::Ec { curve: curve.to_string() })
}

/// The bit length of an RSAPrivateKey's modulus (RFC 8017 A.1.2: version, then modulus).
fn rsa_modulus_bits(rsa_private_key: &[u8]) -> der::Result<usize> {
    der::AnyRef::from_der(rsa_private_key)?.sequence(|key| {
        let _version: u8 = key.decode()?;
        let modulus: UintRef<'_> = key.decode()?;
        let bytes = modulus.as_bytes();
        let leading = bytes.first().map_or(0, |b| b.leading_zeros() as usize);
        // The rest of the key is ring's to check; only its size matters here.
        while !key.is_finished() {
            let _: AnyRef<'_> = key.decode()?;
        }
        Ok(bytes.len() * 8 - leading)
    })
}

/// Tries the public key of every certificate on the key's curve; ring accepts a PKCS#8 EC key
/// only when its public key is the private scalar's, so the one it loads is the match.
fn with_public_key_from(
    info: &PrivateKeyInfoRef<'_>,
    key: &EcPrivateKey<'_>,
    curve: &str,
    scalar_bytes: usize,
    certs: &[X509Certificate<'_>],
) -> Result<Vec<u8>, CertificateError> {
    // ring reads the scalar only at the curve's exact size; some writers drop leading zeros.
    let scalar = key.private_key.as_bytes();
    let significant = &scalar[scalar.iter().take_while(|&&b| b == 0).count()..];
    if significant.len() > scalar_bytes {
        return Err(CertificateError::UnsupportedKeyType(KeyType::Ec { curve: curve.to_string() }));
    }
    let mut padded = vec![0; scalar_bytes - significant.len()];
    padded.extend_from_slice(significant);
    let malformed = CertificateError::MalformedPrivateKey;

    let curve_oid = info.algorithm.parameters.map(|p| p.value().to_vec());
    for cert in certs {
        let spki = cert.public_key();
        let same_curve = spki.algorithm.algorithm.to_id_string() == EC
            && spki.algorithm.parameters.as_ref().map(|p| p.data.to_vec()) == curve_oid;
        if !same_curve {
            continue;
        }
        let ec_key = EcPrivateKey {
            version: 1,
            private_key: OctetStringRef::new(&padded).map_err(malformed)?,
            parameters: None,
            public_key: Some(BitStringRef::from_bytes(&spki.subject_public_key.data).map_err(malformed)?),
        }
        .to_der()
        .map_err(malformed)?;
        let algorithm = AlgorithmIdentifierRef { oid: info.algorithm.oid, parameters: info.algorithm.parameters };
        let candidate = PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(&ec_key).map_err(malformed)?)
            .to_der()
            .map_err(malformed)?;
        let loaded = gatehouse_shared::crypto::provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(candidate.clone())));
        if loaded.is_ok() {
            return Ok(candidate);
        }
    }
    Err(CertificateError::KeyMismatch)
}

/// A PEM or DER private key as PKCS#8: PKCS#8 as it is, PKCS#1 (RSA) and SEC1 (EC, with its
/// named curve) wrapped in the PKCS#8 structure.
pub(super) fn to_pkcs8(key: PrivateKeyDer<'_>) -> Result<Vec<u8>, CertificateError> {
    let malformed = CertificateError::MalformedPrivateKey;
    match key {
        PrivateKeyDer::Pkcs8(key) => Ok(key.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(key) => {
            let algorithm =
                AlgorithmIdentifierRef { oid: ObjectIdentifier::new_unwrap(RSA), parameters: Some(AnyRef::NULL) };
            PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(key.secret_pkcs1_der()).map_err(malformed)?)
                .to_der()
                .map_err(malformed)
        }
        PrivateKeyDer::Sec1(key) => {
            let sec1 = key.secret_sec1_der();
            let parsed = EcPrivateKey::from_der(sec1).map_err(malformed)?;
            let Some(curve) = parsed.parameters else {
                return Err(ec_unsupported("without a named curve"));
            };
            let algorithm = AlgorithmIdentifierRef { oid: ObjectIdentifier::new_unwrap(EC), parameters: Some(curve) };
            // Inside PKCS#8 the curve is in the algorithm, as ring expects, not in the key.
            let inner = EcPrivateKey { parameters: None, ..parsed }.to_der().map_err(malformed)?;
            PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(&inner).map_err(malformed)?)
                .to_der()
                .map_err(malformed)
        }
        _ => Err(CertificateError::NoPemPrivateKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData as _;
    use rustls_pki_types::PrivateSec1KeyDer;

    #[test]
    fn a_sec1_key_with_its_named_curve_becomes_a_pkcs8_key_ring_loads() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = key.serialize_der();
        let info = PrivateKeyInfoRef::from_der(&pkcs8).unwrap();
        let inner = EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
        // SEC1 as OpenSSL writes it: the curve inside the key.
        let sec1 = EcPrivateKey { parameters: info.algorithm.parameters, ..inner }.to_der().unwrap();
        let converted = to_pkcs8(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(sec1))).unwrap();
        let loaded = gatehouse_shared::crypto::provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(converted)))
            .unwrap();
        assert_eq!(loaded.public_key().unwrap().as_ref(), key.subject_public_key_info().as_slice());
    }
}
