//! API clients' certificates, as an API's policy treats them: APIM's
//! `<validate-client-certificate>` (which certificates the API accepts: `validation`, against
//! the CA certificates of `authorities`, with claims matched in `identity`) and Gatehouse's
//! `<forward-client-certificate>` (which headers tell the backend the certificate that passed).
//!
//! Rules are compiled when the routing table is built; a request only runs them. They run
//! before any byte goes to the backend: no certificate is `401`, one that fails is `403`, both
//! problem+json naming the rule that failed and never the trust configuration (no CA names or
//! thumbprints). With `ignore-error="true"` a failure is logged and counted and the request
//! goes on, as in APIM, and the certificate is not forwarded. A certificate reaches a request
//! only over HTTPS, on a hostname that asks for one (`negotiate_client_certificate`).
//!
//! Failures are counted in `gatehouse_client_certificate_failures_total{api, rule, outcome}`
//! (`outcome`: `refused` or `ignored`).

mod authorities;
mod identity;
#[cfg(test)]
mod test_pki;
mod validation;

use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use gatehouse_shared::Thumbprint;
use gatehouse_shared::certificate::claims::DistinguishedName;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use authorities::{Authorities, AuthoritiesBuilder, Authority, AuthorityCrl, AuthorityError};
pub use identity::IdentityError;
pub use validation::ValidationError;

use self::validation::Validation;
use crate::metrics::ClientCertificateFailureLabels;
use crate::proxy::{ClientConnection, ProxyBody, problem};

/// What an API's policy does with client certificates; nothing, for most APIs.
#[derive(Default)]
pub struct ClientCertificatePolicy {
    validation: Option<Validation>,
    forward: Option<Forward>,
}

/// `<forward-client-certificate>`: the headers it sets (and always clears).
struct Forward {
    thumbprint: Option<HeaderName>,
    subject: Option<HeaderName>,
}

/// A client certificate that passed the API's validation.
pub struct Validated {
    chain: Arc<Vec<CertificateDer<'static>>>,
}

/// The rule a client certificate failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client presented none (plaintext HTTP, a hostname that does not ask, or a client
    /// that declined).
    Missing,
    /// What it presented does not parse as a certificate.
    Unreadable,
    /// It does not chain to a trusted CA.
    NotTrusted,
    /// A certificate of its chain (not itself) is expired or not yet valid.
    ChainOutOfDate,
    /// Its extended key usage does not include client authentication.
    NotForClientAuth,
    /// Past its notAfter.
    Expired,
    /// Before its notBefore.
    NotYetValid,
    /// On its issuer's CRL.
    Revoked,
    /// No CRL is known for its issuer (validate-revocation fails closed).
    NoCrl,
    /// The issuer's CRL is past its nextUpdate.
    CrlExpired,
    /// Identities are listed and it matches none.
    NoIdentityMatched,
}

/// Why a route's client certificate rules cannot be compiled (the data plane NACKs).
#[derive(Debug, thiserror::Error)]
pub enum ClientCertificateError {
    /// `<validate-client-certificate>`.
    #[error("validate-client-certificate")]
    Validation(#[source] ValidationError),
    /// `<forward-client-certificate>`: a header name that is not one.
    #[error("forward-client-certificate: '{name}' is not a header name")]
    Header {
        /// The name.
        name: String,
    },
}

// === impl ClientCertificatePolicy ===

impl ClientCertificatePolicy {
    /// Compiles a route's rules; its CA certificates (RouteTls) join the hostname's client CAs
    /// as trust anchors.
    pub fn compile(route: &pb::RouteConfig, cas: &mut AuthoritiesBuilder<'_>) -> Result<Self, ClientCertificateError> {
        let api_cas = route.tls.as_ref().map(|tls| tls.ca_thumbprints.as_slice()).unwrap_or_default();
        let validation = route
            .client_certificate_validation
            .as_ref()
            .map(|v| Validation::compile(v, api_cas, cas))
            .transpose()
            .map_err(ClientCertificateError::Validation)?;
        let header = |name: &str| match name.is_empty() {
            true => Ok(None),
            false => HeaderName::from_bytes(name.as_bytes())
                .map(Some)
                .map_err(|_| ClientCertificateError::Header { name: name.to_string() }),
        };
        let forward = match &route.forward_client_certificate {
            None => None,
            Some(f) => Some(Forward { thumbprint: header(&f.thumbprint_header)?, subject: header(&f.subject_header)? }),
        };
        Ok(Self { validation, forward })
    }

    /// Runs the API's validation for a request on `connection`: `Ok(Some)` with the certificate
    /// that passed, `Ok(None)` when the API validates nothing (or a failure is ignored), and
    /// otherwise the rule that failed ([`Failure::problem`] is the client's answer).
    pub fn check(
        &self,
        authorities: &Authorities,
        connection: &ClientConnection,
        api: &str,
        request_id: &str,
    ) -> Result<Option<Validated>, Failure> {
        let Some(validation) = &self.validation else { return Ok(None) };
        let tls = connection.tls.as_ref();
        let chain = tls.and_then(|tls| tls.client_certificates.clone());
        let hostname_cas = tls.map(|tls| authorities.for_hostname(&tls.hostname)).unwrap_or_default();
        let Err(failure) = validation.check(chain.as_deref().map(Vec::as_slice), hostname_cas, UnixTime::now()) else {
            return Ok(chain.map(|chain| Validated { chain }));
        };
        let ignored = validation.ignore_error;
        let outcome = if ignored { "ignored" } else { "refused" };
        crate::metrics::global()
            .client_certificate_failures
            .get_or_create(&ClientCertificateFailureLabels {
                api: api.to_string(),
                rule: failure.label().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        if ignored {
            let rule = failure.label();
            tracing::info!(api, rule, peer = %connection.peer, request_id, "client certificate failed; ignore-error lets it in");
            return Ok(None);
        }
        tracing::debug!(api, rule = failure.label(), peer = %connection.peer, request_id, "client certificate refused");
        Err(failure)
    }

    /// Sets the `<forward-client-certificate>` headers: always removes what the client sent
    /// under their names, then, for a certificate that passed, sends its thumbprint and subject.
    pub fn forward(&self, headers: &mut HeaderMap, validated: Option<&Validated>) {
        let Some(forward) = &self.forward else { return };
        for name in [&forward.thumbprint, &forward.subject].into_iter().flatten() {
            headers.remove(name);
        }
        let Some(leaf) = validated.and_then(|v| v.chain.first()) else { return };
        if let Some(name) = &forward.thumbprint
            && let Ok(value) = HeaderValue::from_str(Thumbprint::of_der(leaf).as_str())
        {
            headers.insert(name.clone(), value);
        }
        if let Some(name) = &forward.subject
            && let Ok((_, parsed)) = X509Certificate::from_der(leaf)
            && let Ok(value) = HeaderValue::from_str(&DistinguishedName::of(parsed.subject()).to_rfc4514())
        {
            headers.insert(name.clone(), value);
        }
    }
}

// === impl Failure ===

impl Failure {
    /// The problem+json answer to the client of API `api`.
    pub fn problem(self, api: &str, request_id: &str) -> Response<ProxyBody> {
        problem(self.status(), self.title(), self.detail(), Some(api), request_id)
    }

    /// 401 when there is no certificate to judge, 403 when the one presented fails.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Missing => "Client certificate required",
            _ => "Client certificate refused",
        }
    }

    /// What the client is told: the rule, never the trust configuration.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Missing => "this API requires a client certificate, and none was presented",
            Self::Unreadable => "the certificate cannot be read",
            Self::NotTrusted => "the certificate is not trusted",
            Self::ChainOutOfDate => "a certificate in its chain is expired or not yet valid",
            Self::NotForClientAuth => "the certificate is not for client authentication (extended key usage)",
            Self::Expired => "the certificate expired",
            Self::NotYetValid => "the certificate is not yet valid",
            Self::Revoked => "the certificate was revoked",
            Self::NoCrl => "no CRL is known for the issuer, so revocation cannot be checked",
            Self::CrlExpired => "the issuer's CRL is out of date, so revocation cannot be checked",
            Self::NoIdentityMatched => "no identity matched",
        }
    }

    /// The metric's `rule` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unreadable => "unreadable",
            Self::NotTrusted => "not_trusted",
            Self::ChainOutOfDate => "chain_out_of_date",
            Self::NotForClientAuth => "not_for_client_auth",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::NoCrl => "no_crl",
            Self::CrlExpired => "crl_expired",
            Self::NoIdentityMatched => "no_identity_matched",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pki::{Ca, Issued, Pki, client_params};
    use super::*;
    use crate::hostnames::HostPattern;
    use crate::proxy::tls::TlsSession;

    fn route(validation: Option<pb::ClientCertificateValidation>, root: &str) -> pb::RouteConfig {
        pb::RouteConfig {
            api_id: "orders".into(),
            tls: Some(pb::RouteTls { ca_thumbprints: vec![root.to_string()], ..Default::default() }),
            client_certificate_validation: validation,
            forward_client_certificate: Some(pb::ForwardClientCertificate {
                thumbprint_header: "x-client-thumbprint".into(),
                subject_header: "x-client-subject".into(),
            }),
            ..Default::default()
        }
    }

    fn connection(chain: Option<&[&Issued]>) -> ClientConnection {
        ClientConnection {
            peer: "127.0.0.1:40000".parse().unwrap(),
            tls: Some(TlsSession {
                sni: Some("api.example.com".into()),
                hostname: HostPattern::parse("api.example.com").unwrap(),
                client_certificates: chain.map(Issued::chain),
            }),
        }
    }

    fn lenient() -> pb::ClientCertificateValidation {
        pb::ClientCertificateValidation { skip_revocation: true, ..Default::default() }
    }

    fn forged() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-client-thumbprint", HeaderValue::from_static("FORGED"));
        headers.insert("x-client-subject", HeaderValue::from_static("CN=admin"));
        headers
    }

    #[tokio::test]
    async fn a_passing_certificate_is_forwarded_and_forged_headers_never_are() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let root = pki.root.thumbprint();
        let mut builder = Authorities::builder(&config, None);
        let policy = ClientCertificatePolicy::compile(&route(Some(lenient()), &root), &mut builder).unwrap();
        let authorities = builder.finish().unwrap();
        // Encoded as O, then CN: RFC 4514 writes the most specific (last) first.
        let mut params = client_params("orders, east");
        params.distinguished_name.remove(rcgen::DnType::CommonName);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        params.distinguished_name.push(rcgen::DnType::CommonName, "orders, east");
        let client = pki.root.issue(params);

        let validated = policy.check(&authorities, &connection(Some(&[&client])), "orders", "r1").unwrap();
        let mut headers = forged();
        policy.forward(&mut headers, validated.as_ref());
        assert_eq!(headers["x-client-thumbprint"], client.thumbprint().as_str());
        assert_eq!(headers["x-client-subject"], r"CN=orders\, east,O=Example");

        // No certificate: 401, and the forged headers are gone even so.
        let failure = policy.check(&authorities, &connection(None), "orders", "r2").err().unwrap();
        assert_eq!(failure.status(), StatusCode::UNAUTHORIZED);
        let mut headers = forged();
        policy.forward(&mut headers, None);
        assert!(headers.get("x-client-thumbprint").is_none() && headers.get("x-client-subject").is_none());
        // Over plaintext there is never a certificate.
        let plaintext = ClientConnection { peer: "127.0.0.1:1".parse().unwrap(), tls: None };
        assert_eq!(policy.check(&authorities, &plaintext, "orders", "r3").err(), Some(Failure::Missing));
    }

    #[tokio::test]
    async fn a_failure_names_the_rule_and_nothing_of_the_trust_configuration() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let root = pki.root.thumbprint();
        let mut builder = Authorities::builder(&config, None);
        let policy = ClientCertificatePolicy::compile(&route(Some(lenient()), &root), &mut builder).unwrap();
        let authorities = builder.finish().unwrap();
        let stranger = Ca::root("Stranger Root").issue(client_params("x"));
        let failure = policy.check(&authorities, &connection(Some(&[&stranger])), "orders", "r1").err().unwrap();
        let response = failure.problem("orders", "r1");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("the certificate is not trusted"), "{body}");
        assert!(!body.contains("Test Root") && !body.contains(&root), "{body}");
    }

    #[tokio::test]
    async fn ignore_error_lets_the_request_through_without_forwarding() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let root = pki.root.thumbprint();
        let mut builder = Authorities::builder(&config, None);
        let rules = pb::ClientCertificateValidation { ignore_error: true, ..lenient() };
        let policy = ClientCertificatePolicy::compile(&route(Some(rules), &root), &mut builder).unwrap();
        let authorities = builder.finish().unwrap();
        let stranger = Ca::root("Stranger Root").issue(client_params("x"));
        let before = ignored_count();
        let validated = policy.check(&authorities, &connection(Some(&[&stranger])), "orders", "r1").unwrap();
        assert!(validated.is_none());
        assert_eq!(ignored_count(), before + 1);
        let mut headers = forged();
        policy.forward(&mut headers, validated.as_ref());
        assert!(headers.get("x-client-thumbprint").is_none());
    }

    fn ignored_count() -> u64 {
        let labels = ClientCertificateFailureLabels {
            api: "orders".into(),
            rule: "not_trusted".into(),
            outcome: "ignored".into(),
        };
        crate::metrics::global().client_certificate_failures.get_or_create(&labels).get()
    }

    #[test]
    fn without_validation_nothing_is_checked_and_nothing_forwarded() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let mut builder = Authorities::builder(&config, None);
        let policy = ClientCertificatePolicy::compile(&route(None, &pki.root.thumbprint()), &mut builder).unwrap();
        let authorities = builder.finish().unwrap();
        let client = pki.root.issue(client_params("orders"));
        let validated = policy.check(&authorities, &connection(Some(&[&client])), "orders", "r1").unwrap();
        assert!(validated.is_none());
        let mut headers = forged();
        policy.forward(&mut headers, validated.as_ref());
        assert!(headers.is_empty());
    }
}
