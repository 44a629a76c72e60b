//! How a pool checks its backend's server certificate: the standard WebPKI verifier, relaxed
//! only where the API asks (skip the chain, skip the name). Handshake signatures are always
//! verified, whatever the API asks.

use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::{TlsPolicy, TrustAnchors, UpstreamError};

/// The verifier for one set of trust settings: roots (system and --backend-ca-file unless
/// excluded, plus the API's CA certificates, looked up by thumbprint in `cas`) and the
/// chain/name toggles.
pub(super) fn backend_verifier(
    tls: &TlsPolicy,
    cas: &crate::configuration::Entries<pb::TrustedCa>,
    trust: &TrustAnchors,
) -> Result<Arc<dyn ServerCertVerifier>, UpstreamError> {
    let mut roots = if tls.exclude_system_roots { RootCertStore::empty() } else { trust.roots().clone() };
    for thumbprint in &tls.ca_thumbprints {
        let ca = cas.get(thumbprint).ok_or_else(|| UpstreamError::MissingCa { thumbprint: thumbprint.clone() })?;
        roots
            .add(ca.certificate.clone().into())
            .map_err(|source| UpstreamError::BadCa { thumbprint: thumbprint.clone(), source })?;
    }
    Ok(Arc::new(BackendVerifier::new(roots, tls, gatehouse_shared::crypto::provider())?))
}

/// Checks a backend's certificate the way its API asks: by default the chain (against the
/// pool's roots) and the name; with chain validation off, any chain, and with name validation
/// off, any name. Handshake signatures are always verified, so the backend must hold the key
/// of the certificate it shows.
#[derive(Debug)]
struct BackendVerifier {
    /// None when chain validation is off.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    validate_name: bool,
}

// === impl BackendVerifier ===

impl BackendVerifier {
    fn new(
        roots: RootCertStore,
        tls: &TlsPolicy,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        let webpki = if tls.skip_chain_validation {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(UpstreamError::Verifier)?,
            )
        };
        Ok(Self { webpki, validate_name: !tls.skip_name_validation })
    }
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match &self.webpki {
            Some(webpki) => match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            {
                Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. }))
                    if !self.validate_name =>
                {
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            },
            None => {
                if self.validate_name {
                    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                    rustls::client::verify_server_name(&parsed, server_name)?;
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    gatehouse_shared::delegate_signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    /// A CA, a server certificate it issued for `backend.test`, and an unrelated CA.
    fn issued() -> (pb::TrustedCa, CertificateDer<'static>, pb::TrustedCa) {
        let (issuer, other) = (ca(), ca());
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["backend.test".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let trusted = |thumbprint: &str, ca: &rcgen::CertifiedIssuer<'_, rcgen::KeyPair>| pb::TrustedCa {
            thumbprint: thumbprint.into(),
            certificate: ca.der().to_vec(),
            ..Default::default()
        };
        (trusted("ISSUER", &issuer), server.der().clone(), trusted("OTHER", &other))
    }

    fn verify(
        policy: TlsPolicy,
        cas: &crate::configuration::Entries<pb::TrustedCa>,
        cert: &CertificateDer<'_>,
        name: &str,
    ) -> bool {
        let verifier = backend_verifier(&policy, cas, &TrustAnchors::system()).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).is_ok()
    }

    #[test]
    fn each_toggle_relaxes_only_its_own_check() {
        let (issuer, server, other) = issued();
        let cas = [(issuer.thumbprint.clone(), Arc::new(issuer)), (other.thumbprint.clone(), Arc::new(other))]
            .into_iter()
            .collect();
        let trusting =
            TlsPolicy { ca_thumbprints: vec!["ISSUER".into()], exclude_system_roots: true, ..Default::default() };
        assert!(verify(trusting.clone(), &cas, &server, "backend.test"));
        assert!(!verify(trusting.clone(), &cas, &server, "other.test"), "the name is checked by default");
        let any_name = TlsPolicy { skip_name_validation: true, ..trusting };
        assert!(verify(any_name, &cas, &server, "other.test"));

        let untrusted =
            TlsPolicy { ca_thumbprints: vec!["OTHER".into()], exclude_system_roots: true, ..Default::default() };
        assert!(!verify(untrusted.clone(), &cas, &server, "backend.test"), "the chain is checked by default");
        let any_chain = TlsPolicy { skip_chain_validation: true, ..untrusted };
        assert!(verify(any_chain.clone(), &cas, &server, "backend.test"));
        assert!(!verify(any_chain, &cas, &server, "other.test"), "skipping the chain still checks the name");
    }

    #[test]
    fn a_ca_missing_from_the_snapshot_is_an_error() {
        let policy = TlsPolicy { ca_thumbprints: vec!["AB".into()], ..Default::default() };
        let error = backend_verifier(&policy, &Default::default(), &TrustAnchors::system()).err().unwrap();
        assert!(matches!(error, UpstreamError::MissingCa { thumbprint } if thumbprint == "AB"));
    }
}
