//! The single crypto provider every TLS configuration in Gatehouse is built with.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// ring, chosen explicitly so no build ever depends on which provider features are enabled.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// Handshake signature checks with this provider's algorithms: what every certificate verifier
/// delegates to, whatever it decides about chains and names.
pub mod signatures {
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::pki_types::CertificateDer;
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Verifies a TLS 1.2 handshake signature made by `cert`'s key.
    pub fn verify_tls12(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &super::provider().signature_verification_algorithms)
    }

    /// Verifies a TLS 1.3 handshake signature made by `cert`'s key.
    pub fn verify_tls13(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &super::provider().signature_verification_algorithms)
    }

    /// The signature schemes the provider verifies, for a verifier to advertise.
    pub fn schemes() -> Vec<SignatureScheme> {
        super::provider().signature_verification_algorithms.supported_schemes()
    }
}
