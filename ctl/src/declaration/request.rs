//! From a declaration, and the files it names, to an `ApplyConfigurationRequest`. Files are
//! read here (paths relative to the declaration's folder) and sent; what cannot be read or
//! makes no sense is listed whole, one line per resource, before anything is sent.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail};
use gatehouse_proto::v1 as pb;
use gatehouse_shared::Thumbprint;
use pb::credential_binding::Kind as BindingKind;

use super::{Api, CaCertificate, Certificate, Credentials, Declaration, NamedValue, SubscriptionState};
use crate::args::PasswordSource;
use crate::input::{read_input, read_named_value, read_password};

/// A CA certificate declared by reference with a thumbprint. The request has no place for the
/// thumbprint, so gatehousectl checks it against the stored CA certificate itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaReference {
    /// The CA certificate's id.
    pub id: String,
    /// The thumbprint it must have.
    pub thumbprint: Thumbprint,
}

/// The request that applies `declaration` (`origin` names it in errors), reading the files it
/// names relative to `base`, with the CA references whose thumbprints are still to check.
/// Every problem is listed, one line each (`KIND/ID: what`), as the control plane lists its
/// refusals.
pub fn request(
    declaration: Declaration,
    origin: &str,
    base: &Path,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<(pb::ApplyConfigurationRequest, Vec<CaReference>)> {
    let mut problems = Problems::default();
    let mut request = pb::ApplyConfigurationRequest { prune, dry_run, ..Default::default() };
    let mut references = Vec::new();
    for ca in declaration.ca_certificates {
        let field = problems.field("ca-certificate", &ca.id);
        if let Some((upload, reference)) = problems.take(&field, ca_certificate(ca, base)) {
            request.ca_certificates.push(upload);
            references.extend(reference);
        }
    }
    for certificate in declaration.certificates {
        let field = problems.field("certificate", &certificate.id);
        request.certificates.extend(problems.take(&field, self::certificate(certificate, base)));
    }
    for hostname in declaration.hostnames {
        problems.field("hostname", &hostname.name);
        request.hostnames.push(pb::PutHostnameRequest {
            name: hostname.name,
            certificate_id: hostname.certificate_id,
            default: hostname.default,
            negotiate_client_certificate: hostname.negotiate_client_certificate,
            client_ca_ids: hostname.client_ca_ids,
            ..Default::default()
        });
    }
    for named in declaration.named_values {
        let field = problems.field("named-value", &named.name);
        request.named_values.extend(problems.take(&field, named_value(named, base)));
    }
    for api in declaration.apis {
        let field = problems.field("api", &api.id);
        request.apis.extend(problems.take(&field, self::api(api)));
    }
    for subscription in declaration.subscriptions {
        problems.field("subscription", &subscription.name);
        let state = match subscription.state {
            SubscriptionState::Active => pb::SubscriptionState::Active,
            SubscriptionState::Suspended => pb::SubscriptionState::Suspended,
        };
        request.subscriptions.push(pb::DeclaredSubscription {
            name: subscription.name,
            display_name: subscription.display_name,
            scope: subscription.scope.unwrap_or_default(),
            state: state as i32,
        });
    }
    problems.into_result(origin)?;
    Ok((request, references))
}

/// A CA certificate to upload, or a reference (empty certificate and CRL) to keep the stored
/// one as it is.
fn ca_certificate(
    ca: CaCertificate,
    base: &Path,
) -> anyhow::Result<(pb::UploadCaCertificateRequest, Option<CaReference>)> {
    let certificate = inline_or_file(ca.certificate, ca.certificate_file, base, "certificate", "certificateFile")?;
    let crl = inline_or_file(ca.crl, ca.crl_file, base, "crl", "crlFile")?;
    let expected = ca.thumbprint.as_deref().map(Thumbprint::parse).transpose()?;
    let mut reference = None;
    match expected {
        Some(expected) if !certificate.is_empty() => {
            let actual = Thumbprint::of_der(&der(&certificate)?);
            if actual != expected {
                bail!("the thumbprint is {expected}, but the certificate's is {actual}");
            }
        }
        Some(thumbprint) => reference = Some(CaReference { id: ca.id.clone(), thumbprint }),
        None => {}
    }
    Ok((pb::UploadCaCertificateRequest { id: ca.id, certificate, crl, ..Default::default() }, reference))
}

/// Text given inline or a file's bytes (empty when neither is given).
fn inline_or_file(
    inline: Option<String>,
    file: Option<std::path::PathBuf>,
    base: &Path,
    inline_key: &str,
    file_key: &str,
) -> anyhow::Result<Vec<u8>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("give {inline_key} or {file_key}, not both"),
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(path)) => read_input(&base.join(path)),
        (None, None) => Ok(Vec::new()),
    }
}

/// The first certificate of PEM text, or the bytes themselves when they are DER.
fn der(certificate: &[u8]) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    if certificate.trim_ascii_start().starts_with(b"-----BEGIN") {
        let der = CertificateDer::from_pem_slice(certificate)
            .map_err(|error| anyhow!("the certificate is not readable PEM: {error}"))?;
        Ok(der.to_vec())
    } else {
        Ok(certificate.to_vec())
    }
}

/// A PKCS#12 file to upload, or a reference by id (with the thumbprint it must have, except
/// for a linked certificate: its files decide, and may have been renewed since the export).
fn certificate(certificate: Certificate, base: &Path) -> anyhow::Result<pb::DeclaredCertificate> {
    let thumbprint = certificate.thumbprint.unwrap_or_default();
    let (pfx, password, thumbprint) = match (certificate.pfx, certificate.source, certificate.password_file) {
        (Some(_), Some(_), _) => {
            bail!("give pfx (a file here) or source (files on the control plane's host), not both")
        }
        (None, _, Some(_)) => bail!("passwordFile goes with pfx"),
        (Some(pfx), None, password_file) => {
            let bytes = read_input(&base.join(pfx))?;
            let password = match password_file {
                Some(path) => read_password(PasswordSource {
                    password_file: Some(base.join(path)),
                    password_stdin: false,
                    empty_password: false,
                })?,
                None => String::new(),
            };
            (bytes, password, thumbprint)
        }
        (None, Some(_), None) => (Vec::new(), String::new(), String::new()),
        (None, None, None) => (Vec::new(), String::new(), thumbprint),
    };
    Ok(pb::DeclaredCertificate { id: certificate.id, pfx, password, thumbprint })
}

/// A value inline or from a file; neither keeps the stored (secret) value.
fn named_value(named: NamedValue, base: &Path) -> anyhow::Result<pb::DeclaredNamedValue> {
    let value = match (named.value, named.value_file) {
        (Some(_), Some(_)) => bail!("give value or valueFile, not both"),
        (Some(value), None) => Some(value),
        (None, Some(path)) => Some(read_named_value(&base.join(path))?),
        (None, None) => None,
    };
    Ok(pb::DeclaredNamedValue { name: named.name, value, secret: named.secret })
}

fn api(api: Api) -> anyhow::Result<pb::DeclaredApi> {
    let credentials = api.credentials.map(binding).transpose()?;
    let backend_tls = api.backend_tls.map(|tls| pb::BackendTls {
        validate_certificate_chain: tls.validate_certificate_chain,
        validate_certificate_name: tls.validate_certificate_name,
        ca_certificate_ids: tls.ca_certificate_ids,
        trust_system_roots: tls.trust_system_roots,
    });
    Ok(pb::DeclaredApi {
        api: Some(pb::PutApiRequest {
            id: api.id,
            display_name: api.display_name,
            path: api.path,
            service_url: api.service_url,
            credentials,
            backend_tls,
            hostnames: api.hostnames,
            subscription_required: api.subscription_required,
            subscription_key_header: api.subscription_key_header,
            ..Default::default()
        }),
        policy_xml: api.policy.unwrap_or_default(),
    })
}

fn binding(credentials: Credentials) -> anyhow::Result<pb::CredentialBinding> {
    let kind = match (credentials.certificate_id, credentials.thumbprint) {
        (Some(id), None) => BindingKind::CertificateId(id),
        (None, Some(thumbprint)) => BindingKind::Thumbprint(thumbprint),
        _ => bail!("credentials takes one of certificateId and thumbprint"),
    };
    Ok(pb::CredentialBinding { kind: Some(kind) })
}

/// What is wrong with a declaration, one line per resource.
#[derive(Default)]
struct Problems {
    lines: Vec<String>,
    seen: BTreeSet<String>,
}

impl Problems {
    /// The field that names a resource in errors (`api/orders`), noting one declared twice.
    fn field(&mut self, kind: &str, id: &str) -> String {
        let field = format!("{kind}/{id}");
        if !self.seen.insert(field.clone()) {
            self.lines.push(format!("{field}: declared more than once"));
        }
        field
    }

    /// The value, or `None` with the problem noted.
    fn take<T>(&mut self, field: &str, outcome: anyhow::Result<T>) -> Option<T> {
        outcome.map_err(|error| self.lines.push(format!("{field}: {error:#}"))).ok()
    }

    fn into_result(self, origin: &str) -> anyhow::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        Err(super::error_list(&format!("{origin} was not sent"), &self.lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration(text: &str) -> Declaration {
        Declaration::parse(&format!("apiVersion: gatehouse/v1\nkind: Configuration\n{text}"), "test").unwrap()
    }

    #[test]
    fn files_are_read_relative_to_the_declaration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client.pfx"), b"PFX").unwrap();
        std::fs::write(dir.path().join("pw.txt"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("token.txt"), "t0ken\r\n").unwrap();
        let text = "certificates:\n- id: client\n  pfx: client.pfx\n  passwordFile: pw.txt\n- id: linked\n  thumbprint: AB\n  source:\n    pfx: /etc/linked.pfx\nnamedValues:\n- name: token\n  secret: true\n  valueFile: token.txt\n- name: kept\n  secret: true\n";
        let (request, references) = request(declaration(text), "test", dir.path(), true, false).unwrap();
        assert_eq!(
            (request.certificates[0].pfx.as_slice(), request.certificates[0].password.as_str()),
            (&b"PFX"[..], "s3cret")
        );
        // A linked certificate is a reference by id only.
        assert_eq!(request.certificates[1], pb::DeclaredCertificate { id: "linked".into(), ..Default::default() });
        assert_eq!(request.named_values[0].value.as_deref(), Some("t0ken"));
        assert_eq!(request.named_values[1].value, None);
        assert!(request.prune && !request.dry_run && references.is_empty());
    }

    #[test]
    fn every_problem_is_listed_with_its_resource() {
        let text = "certificates:\n- id: a\n  pfx: missing.pfx\n- id: b\n  passwordFile: pw.txt\napis:\n- id: orders\n  path: /o\n  serviceUrl: https://o\n  credentials: {}\n- id: orders\n  path: /p\n  serviceUrl: https://p\n";
        let error =
            request(declaration(text), "f.yaml", Path::new("/nonexistent"), false, true).unwrap_err().to_string();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines[0], "f.yaml was not sent, 4 errors:", "{error}");
        assert!(lines[1].starts_with("  certificate/a: cannot read /nonexistent/missing.pfx"), "{error}");
        assert_eq!(lines[2], "  certificate/b: passwordFile goes with pfx");
        assert_eq!(lines[3], "  api/orders: credentials takes one of certificateId and thumbprint");
        assert_eq!(lines[4], "  api/orders: declared more than once");
    }

    #[test]
    fn a_ca_certificate_thumbprint_is_checked_here() {
        let ca = rcgen_free_ca_pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
        let wrong = "caCertificates:\n- id: root\n  thumbprint: 0000000000000000000000000000000000000000\n  certificateFile: ca.pem\n";
        let error = request(declaration(wrong), "f", dir.path(), false, false).unwrap_err().to_string();
        assert!(error.contains("ca-certificate/root: the thumbprint is 0000"), "{error}");
        let reference =
            "caCertificates:\n- id: root\n  thumbprint: ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01\n";
        let (request, references) = request(declaration(reference), "f", dir.path(), false, false).unwrap();
        assert!(request.ca_certificates[0].certificate.is_empty());
        assert_eq!(references[0].thumbprint.as_str(), "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
    }

    /// A PEM block whose content is not a certificate at all: the thumbprint is of its bytes.
    fn rcgen_free_ca_pem() -> String {
        "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n".into()
    }
}
