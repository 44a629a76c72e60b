//! The single crypto provider every TLS configuration in Gatehouse is built with.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// ring, chosen explicitly so no build ever depends on which provider features are enabled.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The three signature methods of a rustls certificate verifier (`ServerCertVerifier` or
/// `ClientCertVerifier`), delegated to [`signatures`]: every verifier of Gatehouse decides about
/// chains and names its own way but checks handshake signatures this one way. Use it inside the
/// trait's `impl` block.
#[macro_export]
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $crate::crypto::signatures::verify_tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $crate::crypto::signatures::verify_tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            $crate::crypto::signatures::schemes()
        }
    };
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
