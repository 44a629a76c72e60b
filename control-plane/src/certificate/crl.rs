//! A CA certificate's revocation list as operators upload it beside the CA (PEM or DER):
//! checked to be one CRL, issued and signed by that CA, that data planes can read (they check it
//! with rustls-webpki, so it is read here with the same code), and described for the CA view.

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// A CRL that belongs to its CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crl {
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// When it was issued, seconds since the Unix epoch.
    pub this_update: i64,
    /// When its issuer promises the next one, seconds since the Unix epoch.
    pub next_update: i64,
    /// How many certificates it revokes.
    pub entries: usize,
}

/// Why a CRL was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// Neither a PEM `X509 CRL` nor a DER CRL.
    #[error("the CRL is not a certificate revocation list (PEM 'X509 CRL' or DER)")]
    NotCrl,
    /// More than one CRL in the file.
    #[error("the CRL file holds {0} CRLs; upload the one this CA issued")]
    Several(usize),
    /// Issued by someone else (an indirect CRL, or the wrong file).
    #[error("the CRL was issued by '{crl_issuer}', not by this CA ('{ca_subject}')")]
    WrongIssuer {
        /// The CRL's issuer.
        crl_issuer: String,
        /// The CA's subject.
        ca_subject: String,
    },
    /// The signature does not verify with the CA's key.
    #[error("the CRL's signature does not verify with this CA's key")]
    BadSignature,
    /// A CRL data planes cannot use (no nextUpdate, a delta CRL, an unknown critical extension).
    #[error("the CRL cannot be used: {0}")]
    Unusable(webpki::Error),
}

/// Reads `bytes` (PEM or DER) as the CRL of the CA certificate `ca_der`.
pub fn parse_crl(bytes: &[u8], ca_der: &[u8]) -> Result<Crl, CrlError> {
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let crls: Vec<CertificateRevocationListDer<'static>> = CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|_| CrlError::NotCrl)?;
        match crls.len() {
            0 => return Err(CrlError::NotCrl),
            1 => crls[0].to_vec(),
            n => return Err(CrlError::Several(n)),
        }
    } else {
        bytes.to_vec()
    };
    let (rest, crl) = CertificateRevocationList::from_der(&der).map_err(|_| CrlError::NotCrl)?;
    if !rest.is_empty() {
        return Err(CrlError::NotCrl);
    }
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|_| CrlError::NotCrl)?;
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CrlError::WrongIssuer {
            crl_issuer: gatehouse_shared::certificate::display_name(crl.issuer()),
            ca_subject: gatehouse_shared::certificate::display_name(ca.subject()),
        });
    }
    crl.verify_signature(ca.public_key()).map_err(|_| CrlError::BadSignature)?;
    webpki::OwnedCertRevocationList::from_der(&der).map_err(CrlError::Unusable)?;
    // webpki refuses a CRL without nextUpdate, so there is one.
    let next_update = crl.next_update().map(|t| t.timestamp()).ok_or(CrlError::NotCrl)?;
    Ok(Crl {
        this_update: crl.last_update().timestamp(),
        next_update,
        entries: crl.iter_revoked_certificates().count(),
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    fn crl(
        issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
        revoked: &[u8],
    ) -> rcgen::CertificateRevocationList {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(revoked),
                revocation_time: now - time::Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .unwrap()
    }

    #[test]
    fn a_crl_of_its_ca_is_described_in_pem_and_der() {
        let ca = ca("Clients CA");
        let list = crl(&ca, &[7]);
        for bytes in [list.der().to_vec(), list.pem().unwrap().into_bytes()] {
            let parsed = parse_crl(&bytes, ca.der()).unwrap();
            assert_eq!(parsed.der, list.der().to_vec());
            assert_eq!(parsed.entries, 1);
            assert!(parsed.next_update > gatehouse_shared::unix_now() && parsed.this_update < parsed.next_update);
        }
    }

    #[test]
    fn a_crl_of_another_ca_or_not_a_crl_is_refused() {
        let (ca, other, twin) = (ca("Clients CA"), ca("Other CA"), ca("Clients CA"));
        let error = parse_crl(crl(&other, &[1]).der(), ca.der()).unwrap_err();
        assert!(error.to_string().contains("issued by 'CN=Other CA', not by this CA ('CN=Clients CA')"), "{error}");
        // Same name, other key: the signature gives it away.
        assert!(matches!(parse_crl(crl(&twin, &[1]).der(), ca.der()), Err(CrlError::BadSignature)));
        assert!(matches!(parse_crl(b"garbage", ca.der()), Err(CrlError::NotCrl)));
        assert!(matches!(parse_crl(ca.pem().as_bytes(), ca.der()), Err(CrlError::NotCrl)));
        let two = format!("{}{}", crl(&ca, &[1]).pem().unwrap(), crl(&ca, &[2]).pem().unwrap());
        assert!(matches!(parse_crl(two.as_bytes(), ca.der()), Err(CrlError::Several(2))));
    }
}
