//! A private PKI made on the spot: a CA, server certificates for backends on loopback, and
//! client certificates exported as PKCS#12 files.

use std::path::{Path, PathBuf};

use gatehouse_shared::Thumbprint;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate with its key, as the test needs it.
pub struct Issued {
    /// Certificate, DER.
    pub der: Vec<u8>,
    /// Certificate, PEM.
    pub pem: String,
    /// PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
    /// SHA-1 thumbprint of the certificate.
    pub thumbprint: Thumbprint,
}

/// A self-signed test CA that issues server and client certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its common name.
    pub name: String,
}

impl TestCa {
    /// A new CA with common name `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "Gatehouse Test");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer, name: name.to_string() })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate as PEM (for SSL_CERT_FILE and the like).
    pub fn write_pem(&self, dir: &Path, file: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(file);
        std::fs::write(&path, self.pem())?;
        Ok(path)
    }

    /// A TLS server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A TLS client certificate with the given common name.
    pub fn client(&self, common_name: &str) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "Gatehouse Test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// A client certificate that expired in 2021.
    pub fn expired_client(&self, common_name: &str) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        self.issue(params)
    }

    /// A TLS client certificate with the given common name and serial number (for CRLs).
    pub fn client_with_serial(&self, common_name: &str, serial: u64) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "Gatehouse Test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        self.issue(params)
    }

    /// A certificate revocation list (PEM) signed by this CA, revoking these serial numbers,
    /// issued an hour ago and due again in a week.
    pub fn crl_pem(&self, revoked_serials: &[u64]) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*serial),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    fn issue(&self, params: CertificateParams) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued::new(&cert, &key))
    }
}

/// A self-signed server certificate (for "chain validation" cases).
pub fn self_signed_server(names: &[&str]) -> anyhow::Result<Issued> {
    let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Issued::new(&cert, &key))
}

/// Exports a certificate chain and key as a PKCS#12 file (AES-256, SHA-256 MAC).
pub fn pfx(chain: &[&[u8]], key_der: &[u8], password: &str) -> anyhow::Result<Vec<u8>> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let certs = chain.iter().map(|der| Certificate::from_der(der)).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKey::from_der(key_der)?;
    let local_key_id = Thumbprint::of_der(chain[0]).to_string();
    let entry = PrivateKeyChain::new(local_key_id.as_bytes(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry("client", KeyStoreEntry::PrivateKeyChain(entry));
    Ok(store.writer(password).write()?)
}

impl Issued {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Self {
        Self {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
            thumbprint: Thumbprint::of_der(cert.der()),
        }
    }

    /// This certificate and key as a PKCS#12 file (see [`pfx`](fn@pfx)).
    pub fn pfx(&self, password: &str) -> anyhow::Result<Vec<u8>> {
        pfx(&[&self.der], &self.key_der, password)
    }
}
