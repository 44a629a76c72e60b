//! `<validate-client-certificate>` as a route carries it: APIM's checks in order (validity
//! period, chain, revocation, then identities), each answering with the [`Failure`] that names
//! the rule, never with the trust configuration.
//!
//! The chain is built by rustls-webpki (`verify_for_usage` for clientAuth) to the trust
//! anchors: the client CAs of the hostname the connection was made for, then the API's CA
//! certificates. With validate-revocation, every certificate of the chain below its anchor
//! must be covered by a CRL (uploaded with its issuer's CA certificate) that is not past its
//! nextUpdate; a certificate no known CRL covers fails closed ([`Failure::NoCrl`]). With
//! validate-not-before or validate-not-after off, the chain is checked at a moment within the
//! client certificate's own validity, so that turning a check off does not fail it elsewhere.

use std::sync::Arc;

use gatehouse_proto::v1 as pb;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Failure;
use super::authorities::{AuthoritiesBuilder, Authority, AuthorityError};
use super::identity::{Identity, IdentityError, Presented};

/// A route's `<validate-client-certificate>`, compiled.
pub(super) struct Validation {
    check_revocation: bool,
    check_trust: bool,
    check_not_before: bool,
    check_not_after: bool,
    /// `ignore-error`: failures are counted and logged, the request goes on.
    pub(super) ignore_error: bool,
    identities: Vec<Identity>,
    /// The API's CA certificates.
    cas: Vec<Arc<Authority>>,
}

/// Why a route's client certificate rules cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// One of its CA certificates cannot be used.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// One of its identities cannot be compiled.
    #[error("identity {index}")]
    Identity {
        /// Which one, from 1.
        index: usize,
        /// Why.
        #[source]
        source: IdentityError,
    },
}

impl Validation {
    pub(super) fn compile(
        validation: &pb::ClientCertificateValidation,
        api_cas: &[String],
        cas: &mut AuthoritiesBuilder<'_>,
    ) -> Result<Self, ValidationError> {
        let identities = validation
            .identities
            .iter()
            .enumerate()
            .map(|(i, identity)| {
                Identity::compile(identity, cas).map_err(|source| ValidationError::Identity { index: i + 1, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            check_revocation: !validation.skip_revocation,
            check_trust: !validation.skip_trust,
            check_not_before: !validation.skip_not_before,
            check_not_after: !validation.skip_not_after,
            ignore_error: validation.ignore_error,
            identities,
            cas: api_cas.iter().map(|t| cas.get(t)).collect::<Result<_, _>>()?,
        })
    }

    /// Checks `chain` (leaf first; None or empty: the client presented none) at `now`, with
    /// `hostname_cas` (the connection's hostname's client CAs) and the API's as anchors.
    pub(super) fn check(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
        hostname_cas: &[Arc<Authority>],
        now: UnixTime,
    ) -> Result<(), Failure> {
        let chain = chain.filter(|c| !c.is_empty()).ok_or(Failure::Missing)?;
        let (_, leaf) = X509Certificate::from_der(&chain[0]).map_err(|_| Failure::Unreadable)?;
        let now = now.as_secs() as i64;
        let (not_before, not_after) = (leaf.validity().not_before.timestamp(), leaf.validity().not_after.timestamp());
        if self.check_not_before && now < not_before {
            return Err(Failure::NotYetValid);
        }
        if self.check_not_after && now > not_after {
            return Err(Failure::Expired);
        }
        let mut anchors: Vec<&Authority> = Vec::with_capacity(hostname_cas.len() + self.cas.len());
        for ca in hostname_cas.iter().chain(&self.cas) {
            if !anchors.iter().any(|a| a.thumbprint == ca.thumbprint) {
                anchors.push(ca);
            }
        }
        // A check that is off must not fail the chain for it: look at a moment the leaf allows.
        let mut at = now;
        if !self.check_not_after {
            at = at.min(not_after);
        }
        if !self.check_not_before {
            at = at.max(not_before);
        }
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
        if self.check_trust {
            self.check_chain(chain, &anchors, at)?;
        } else if self.check_revocation {
            check_leaf_revocation(&chain[0], &anchors, now)?;
        }
        if !self.identities.is_empty() {
            let presented = Presented::new(chain, &leaf);
            if !self.identities.iter().any(|identity| identity.matches(&presented)) {
                return Err(Failure::NoIdentityMatched);
            }
        }
        Ok(())
    }

    /// The chain to an anchor, with revocation when asked for.
    fn check_chain(
        &self,
        chain: &[CertificateDer<'static>],
        anchors: &[&Authority],
        at: UnixTime,
    ) -> Result<(), Failure> {
        let end_entity = webpki::EndEntityCert::try_from(&chain[0]).map_err(|_| Failure::Unreadable)?;
        let trust: Vec<TrustAnchor<'_>> = anchors.iter().map(|a| a.anchor()).collect();
        let crls: Vec<_> = anchors.iter().filter_map(|a| a.crl.as_ref()).map(|crl| &crl.list).collect();
        let revocation = match self.check_revocation {
            false => None,
            true => match RevocationOptionsBuilder::new(&crls) {
                Ok(builder) => Some(
                    builder
                        .with_depth(RevocationCheckDepth::Chain)
                        .with_status_policy(UnknownStatusPolicy::Deny)
                        .with_expiration_policy(ExpirationPolicy::Enforce)
                        .build(),
                ),
                // No CRL at all: the chain still decides between "not trusted" and "no CRL".
                Err(_) => None,
            },
        };
        let algorithms = gatehouse_shared::crypto::provider().signature_verification_algorithms.all;
        end_entity
            .verify_for_usage(algorithms, &trust, &chain[1..], at, KeyUsage::client_auth(), revocation, None)
            .map_err(classify)?;
        match self.check_revocation && revocation.is_none() {
            true => Err(Failure::NoCrl),
            false => Ok(()),
        }
    }
}

/// Without validate-trust there is no chain: the leaf alone is looked up in the CRL of the CA
/// named as its issuer (among the anchors), and fails closed when there is none.
fn check_leaf_revocation(leaf: &CertificateDer<'_>, anchors: &[&Authority], now: i64) -> Result<(), Failure> {
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|_| Failure::Unreadable)?;
    let crl = anchors.iter().filter_map(|a| a.crl.as_ref()).find(|crl| crl.list.issuer() == end_entity.issuer());
    let crl = crl.ok_or(Failure::NoCrl)?;
    if now >= crl.next_update {
        return Err(Failure::CrlExpired);
    }
    match crl.list.find_serial(end_entity.serial()) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Failure::Revoked),
        Err(_) => Err(Failure::NoCrl),
    }
}

/// The rule a webpki refusal breaks.
fn classify(error: webpki::Error) -> Failure {
    use webpki::Error;
    match error {
        Error::CertRevoked => Failure::Revoked,
        Error::UnknownRevocationStatus => Failure::NoCrl,
        Error::CrlExpired { .. } => Failure::CrlExpired,
        // The leaf's own period was checked before: these are about its chain.
        Error::CertExpired { .. } | Error::CertNotValidYet { .. } => Failure::ChainOutOfDate,
        Error::RequiredEkuNotFoundContext(_) => Failure::NotForClientAuth,
        _ => Failure::NotTrusted,
    }
}

#[cfg(test)]
mod tests {
    use super::super::authorities::Authorities;
    use super::super::test_pki::{Ca, Issued, Pki, client_params};
    use super::*;
    use crate::configuration::Configuration;

    /// APIM's defaults (every check on), plus what `change` alters.
    fn validation(change: impl FnOnce(&mut pb::ClientCertificateValidation)) -> pb::ClientCertificateValidation {
        let mut v = pb::ClientCertificateValidation::default();
        change(&mut v);
        v
    }

    /// Checks `chain` with the hostname trusting `hostname_cas` and the API `api_cas`.
    fn check(
        config: &Configuration,
        rules: &pb::ClientCertificateValidation,
        hostname_cas: &[&str],
        api_cas: &[String],
        chain: &[&Issued],
    ) -> Result<(), Failure> {
        let mut builder = Authorities::builder(config, None);
        let compiled = Validation::compile(rules, api_cas, &mut builder).unwrap();
        let hostname: Vec<_> = hostname_cas.iter().map(|t| builder.get(t).unwrap()).collect();
        let chain = Issued::chain(chain);
        compiled.check(Some(&chain), &hostname, UnixTime::now())
    }

    fn expired_params(common_name: &str) -> rcgen::CertificateParams {
        let mut params = client_params(common_name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        params
    }

    #[test]
    fn a_certificate_of_a_trusted_ca_passes_and_others_fail_naming_the_rule() {
        let pki = Pki::new();
        let stranger = Ca::root("Stranger Root");
        let crl = pki.root.crl(&[], 7);
        let config = pki.configuration(&[pki.root.trusted(Some(crl))]);
        let root = pki.root.thumbprint();
        let defaults = validation(|_| {});
        let ok = pki.root.issue(client_params("orders"));
        // Trusted through the hostname's client CAs, or through the API's CA certificates.
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&ok]), Ok(()));
        assert_eq!(check(&config, &defaults, &[], std::slice::from_ref(&root), &[&ok]), Ok(()));
        // No anchors, or another CA's certificate: not trusted.
        assert_eq!(check(&config, &defaults, &[], &[], &[&ok]), Err(Failure::NotTrusted));
        let untrusted = stranger.issue(client_params("orders"));
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&untrusted]), Err(Failure::NotTrusted));
        // Expired, and not yet valid.
        let expired = pki.root.issue(expired_params("old"));
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&expired]), Err(Failure::Expired));
        let mut future = client_params("future");
        future.not_before = rcgen::date_time_ymd(2090, 1, 1);
        future.not_after = rcgen::date_time_ymd(2091, 1, 1);
        let future = pki.root.issue(future);
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&future]), Err(Failure::NotYetValid));
        // A server certificate is not for client authentication.
        let mut server = client_params("server");
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server = pki.root.issue(server);
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&server]), Err(Failure::NotForClientAuth));
        // No certificate at all.
        let rules = Validation::compile(&defaults, &[], &mut Authorities::builder(&config, None)).unwrap();
        assert_eq!(rules.check(None, &[], UnixTime::now()), Err(Failure::Missing));
        assert_eq!(rules.check(Some(&[]), &[], UnixTime::now()), Err(Failure::Missing));
    }

    #[test]
    fn checks_that_are_off_do_not_fail() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let root = pki.root.thumbprint();
        let expired = pki.root.issue(expired_params("old"));
        let lenient = validation(|v| {
            v.skip_not_after = true;
            v.skip_revocation = true;
        });
        // The chain is checked within the certificate's own validity, so it still passes.
        assert_eq!(check(&config, &lenient, &[&root], &[], &[&expired]), Ok(()));
        let untrusted = Ca::root("Stranger Root").issue(client_params("x"));
        let no_trust = validation(|v| {
            v.skip_trust = true;
            v.skip_revocation = true;
        });
        assert_eq!(check(&config, &no_trust, &[], &[], &[&untrusted]), Ok(()));
    }

    #[test]
    fn revocation_by_crl_fails_closed_without_one() {
        let pki = Pki::new();
        let ok = pki.root.issue(client_params("orders"));
        let revoked = pki.root.issue(client_params("stolen"));
        let fresh = pki.root.crl(&[&revoked], 7);
        let config = pki.configuration(&[pki.root.trusted(Some(fresh))]);
        let root = pki.root.thumbprint();
        let defaults = validation(|_| {});
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&ok]), Ok(()));
        assert_eq!(check(&config, &defaults, &[&root], &[], &[&revoked]), Err(Failure::Revoked));
        // Without validate-trust, the leaf is still looked up in its issuer's CRL.
        let no_trust = validation(|v| v.skip_trust = true);
        assert_eq!(check(&config, &no_trust, &[&root], &[], &[&revoked]), Err(Failure::Revoked));
        assert_eq!(check(&config, &no_trust, &[&root], &[], &[&ok]), Ok(()));
        // Without validate-revocation, a revoked certificate passes.
        let no_revocation = validation(|v| v.skip_revocation = true);
        assert_eq!(check(&config, &no_revocation, &[&root], &[], &[&revoked]), Ok(()));

        // No CRL known for the issuer: fail closed, and say so.
        let without = pki.configuration(&[]);
        assert_eq!(check(&without, &defaults, &[&root], &[], &[&ok]), Err(Failure::NoCrl));
        assert_eq!(check(&without, &no_trust, &[&root], &[], &[&ok]), Err(Failure::NoCrl));
        // ...but a certificate that is not trusted anyway is said to be that.
        let stranger = Ca::root("Stranger Root").issue(client_params("x"));
        assert_eq!(check(&without, &defaults, &[&root], &[], &[&stranger]), Err(Failure::NotTrusted));
        // An intermediate without a CRL of its own: the leaf's status is unknown.
        let intermediate = pki.root.intermediate("Issuing CA");
        let leaf = intermediate.issue(client_params("deep"));
        let with_root_crl = pki.configuration(&[pki.root.trusted(Some(pki.root.crl(&[], 7)))]);
        let deep = [&leaf, &intermediate.certificate];
        assert_eq!(check(&with_root_crl, &defaults, &[&root], &[], &deep), Err(Failure::NoCrl));
        let both = pki.configuration(&[
            pki.root.trusted(Some(pki.root.crl(&[], 7))),
            intermediate.trusted(Some(intermediate.crl(&[&leaf], 7))),
        ]);
        let both_cas = [root.clone(), intermediate.thumbprint()];
        assert_eq!(check(&both, &defaults, &[], &both_cas, &deep), Err(Failure::Revoked));
        // A CRL past its nextUpdate no longer vouches for anything.
        let stale = pki.configuration(&[pki.root.trusted(Some(pki.root.crl(&[], -1)))]);
        assert_eq!(check(&stale, &defaults, &[&root], &[], &[&ok]), Err(Failure::CrlExpired));
        assert_eq!(check(&stale, &no_trust, &[&root], &[], &[&ok]), Err(Failure::CrlExpired));
    }

    #[test]
    fn identities_need_one_that_matches_every_claim() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let root = pki.root.thumbprint();
        let orders = pki.root.issue(client_params("orders"));
        let identity = |cn: &str| pb::CertificateIdentity { common_name: cn.into(), ..Default::default() };
        let rules = validation(|v| {
            v.skip_revocation = true;
            v.identities = vec![identity("billing"), identity("orders")];
        });
        assert_eq!(check(&config, &rules, &[&root], &[], &[&orders]), Ok(()));
        let rules = validation(|v| {
            v.skip_revocation = true;
            v.identities = vec![identity("billing")];
        });
        assert_eq!(check(&config, &rules, &[&root], &[], &[&orders]), Err(Failure::NoIdentityMatched));
        // The checks come first: an expired certificate is expired, whatever its name.
        let expired = pki.root.issue(expired_params("billing"));
        assert_eq!(check(&config, &rules, &[&root], &[], &[&expired]), Err(Failure::Expired));
    }

    #[test]
    fn a_ca_the_snapshot_lacks_or_a_foreign_crl_is_a_compile_error() {
        let pki = Pki::new();
        let config = pki.configuration(&[]);
        let missing =
            Validation::compile(&validation(|_| {}), &["AB".repeat(20)], &mut Authorities::builder(&config, None));
        assert!(matches!(missing, Err(ValidationError::Authority(AuthorityError::Missing { .. }))));
        let other = Ca::root("Other Root");
        let mut foreign = pki.root.trusted(None);
        foreign.crl = other.crl(&[], 7);
        let config = pki.configuration(&[foreign]);
        let error = Authorities::builder(&config, None).get(&pki.root.thumbprint()).err().unwrap();
        assert!(error.to_string().contains("not issued by this CA"), "{error}");
    }
}
