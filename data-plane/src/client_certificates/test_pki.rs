//! A PKI for the unit tests: a root, intermediates, client certificates and CRLs made with
//! rcgen, and the snapshot entries a control plane would send for them.

use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::configuration::Configuration;

/// A certificate, DER.
#[derive(Clone)]
pub struct Issued {
    pub der: CertificateDer<'static>,
}

/// A CA that issues certificates and CRLs.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub certificate: Issued,
}

/// A root CA, "CN=Test Root".
pub struct Pki {
    pub root: Ca,
}

impl Pki {
    pub fn new() -> Self {
        Self { root: Ca::root("Test Root") }
    }

    /// A snapshot holding the root (without a CRL) and `extra`.
    pub fn configuration(&self, extra: &[pb::TrustedCa]) -> Configuration {
        let mut cas: Vec<pb::TrustedCa> = vec![self.root.trusted(None)];
        cas.extend(extra.iter().cloned());
        Configuration {
            revision: 1,
            cas: cas.into_iter().map(|ca| (ca.thumbprint.clone(), ca)).collect(),
            ..Default::default()
        }
    }
}

/// Parameters of a client certificate (clientAuth) with this common name, valid now.
pub fn client_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    pub fn root(name: &str) -> Self {
        let issuer = CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap();
        let certificate = Issued { der: issuer.der().clone() };
        Self { issuer, certificate }
    }

    /// A CA under this one.
    pub fn intermediate(&self, name: &str) -> Self {
        let issuer = CertifiedIssuer::signed_by(ca_params(name), KeyPair::generate().unwrap(), &self.issuer).unwrap();
        let certificate = Issued { der: issuer.der().clone() };
        Self { issuer, certificate }
    }

    pub fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        Issued { der: params.signed_by(&key, &self.issuer).unwrap().der().clone() }
    }

    pub fn thumbprint(&self) -> String {
        self.certificate.thumbprint()
    }

    /// A CRL revoking `revoked`, due again in `next_update_days` (negative: out of date).
    pub fn crl(&self, revoked: &[&Issued], next_update_days: i64) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::days(30),
            next_update: now + time::Duration::days(next_update_days),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|cert| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&cert.serial()),
                    revocation_time: now - time::Duration::days(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    /// This CA as the snapshot carries it.
    pub fn trusted(&self, crl: Option<Vec<u8>>) -> pb::TrustedCa {
        pb::TrustedCa {
            thumbprint: self.thumbprint(),
            certificate: self.certificate.der.to_vec(),
            crl: crl.unwrap_or_default(),
        }
    }
}

impl Issued {
    pub fn thumbprint(&self) -> String {
        gatehouse_shared::Thumbprint::of_der(&self.der).to_string()
    }

    pub fn serial(&self) -> Vec<u8> {
        let (_, parsed) = X509Certificate::from_der(&self.der).unwrap();
        parsed.raw_serial().to_vec()
    }

    /// As a TLS session keeps a client's chain.
    pub fn chain(certificates: &[&Issued]) -> Arc<Vec<CertificateDer<'static>>> {
        Arc::new(certificates.iter().map(|c| c.der.clone()).collect())
    }
}
