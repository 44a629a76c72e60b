//! The client certificate request of a hostname with `negotiate_client_certificate`: asks for a
//! certificate (naming the hostname's client CAs as hints), does not require one, and accepts
//! any chain. Whether a certificate is good enough is a request's question (an API's policy),
//! answered later with the chain the handshake kept; the handshake only makes sure the client
//! holds the key of the certificate it shows: signatures are always verified.

use gatehouse_proto::v1 as pb;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore};

use super::HostnameError;

/// Requests a client certificate, accepts any that parses and whose key signs the handshake.
#[derive(Debug)]
pub(super) struct RequestClientCertificate {
    hints: Vec<DistinguishedName>,
}

impl RequestClientCertificate {
    /// Hints are the subjects of `client_cas`.
    pub(super) fn new(client_cas: &[pb::TrustedCa]) -> Result<Self, HostnameError> {
        let mut store = RootCertStore::empty();
        for ca in client_cas {
            store
                .add(CertificateDer::from(ca.certificate.as_slice()))
                .map_err(|source| HostnameError::BadClientCa { thumbprint: ca.thumbprint.clone(), source })?;
        }
        Ok(Self { hints: store.subjects() })
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Something that is not a certificate cannot be checked later: refuse it now.
        rustls::server::ParsedCertificate::try_from(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    gatehouse_shared::delegate_signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_the_client_cas_subjects_and_any_parsable_chain_passes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Client CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let trusted = pb::TrustedCa { thumbprint: "CA".into(), certificate: ca.der().to_vec(), ..Default::default() };
        let verifier = RequestClientCertificate::new(&[trusted]).unwrap();
        assert_eq!(verifier.root_hint_subjects().len(), 1);
        assert!(verifier.offer_client_auth() && !verifier.client_auth_mandatory());

        let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_string()]).unwrap();
        assert!(verifier.verify_client_cert(stranger.cert.der(), &[], UnixTime::now()).is_ok());
        assert!(verifier.verify_client_cert(&CertificateDer::from(&b"garbage"[..]), &[], UnixTime::now()).is_err());

        let bad = pb::TrustedCa { thumbprint: "BAD".into(), certificate: b"garbage".to_vec(), ..Default::default() };
        assert!(matches!(RequestClientCertificate::new(&[bad]), Err(HostnameError::BadClientCa { .. })));
    }
}
