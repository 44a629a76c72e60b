//! APIM policy documents in the shapes operators bring (tests/fixtures/policies), each with what
//! Gatehouse must make of it: the policy it means, or the refusal and the line it points at.
//! Nothing may be accepted meaning something else than it does in APIM.

use std::collections::BTreeSet;
use std::path::PathBuf;

use gatehouse_control_plane::policy::{
    self, BasicAuth, Binding, CertificateIdentity, ClientCertificateValidation, ExistsAction, ForwardClientCertificate,
    MASK, Policy, PolicyError, SetHeader,
};
use gatehouse_shared::Thumbprint;

enum Expect {
    Accepted(Policy),
    Refused { line: u32, says: &'static str },
}

const NAMED_VALUE: &str = "named values are read only in authentication-basic and set-header values";
const EXPRESSION: &str = "policy expressions are not supported";

fn header(name: &str, action: ExistsAction, values: &[&str], secret: bool) -> SetHeader {
    SetHeader { name: name.into(), action, values: values.iter().map(|v| v.to_string()).collect(), secret }
}

fn expectations() -> Vec<(&'static str, Expect)> {
    use ExistsAction::{Append, Delete, Override, Skip};
    use Expect::{Accepted, Refused};
    vec![
        ("default-skeleton.xml", Accepted(Policy::default())),
        ("global-forward-request.xml", Accepted(Policy::default())),
        ("forward-request-timeout.xml", Accepted(Policy { backend_timeout: Some(120), ..Policy::default() })),
        (
            "certificate-by-id.xml",
            Accepted(Policy { certificate: Binding::CertificateId("orders-client".into()), ..Policy::default() }),
        ),
        (
            "certificate-by-thumbprint.xml",
            Accepted(Policy {
                certificate: Binding::Thumbprint(
                    Thumbprint::parse("8D292672A59E787D257B77E4DF2D9D6FD261AF68").unwrap(),
                ),
                ..Policy::default()
            }),
        ),
        (
            "basic-auth.xml",
            Accepted(Policy {
                basic: Some(BasicAuth { username: "ledger-reader".into(), password: "correct horse & battery".into() }),
                ..Policy::default()
            }),
        ),
        (
            "set-header-variants.xml",
            Accepted(Policy {
                headers: vec![
                    header("x-tenant", Override, &["contoso-eu"], false),
                    header("x-api-key", Override, &["k-7f3a9c"], true),
                    header("accept-language", Skip, &["en-GB"], false),
                    header("x-route-tag", Append, &["edge", "gatehouse"], false),
                    header("x-debug-session", Delete, &[], false),
                ],
                ..Policy::default()
            }),
        ),
        (
            "host-override.xml",
            Accepted(Policy {
                headers: vec![header("host", Override, &["billing.internal.example:8443"], false)],
                ..Policy::default()
            }),
        ),
        (
            "credentials-combined.xml",
            Accepted(Policy {
                certificate: Binding::CertificateId("payments-mtls".into()),
                basic: Some(BasicAuth { username: "gateway".into(), password: "p@ss:word".into() }),
                headers: vec![header("x-correlation-source", Skip, &["gatehouse"], false)],
                backend_timeout: Some(30),
                ..Policy::default()
            }),
        ),
        (
            "client-certificate-identities.xml",
            Accepted(Policy {
                certificate: Binding::CertificateId("orders-client".into()),
                client_certificate: Some(ClientCertificateValidation {
                    identities: vec![
                        CertificateIdentity {
                            thumbprint: Some(Thumbprint::parse("8D292672A59E787D257B77E4DF2D9D6FD261AF68").unwrap()),
                            serial_number: Some("3A0F".into()),
                            common_name: Some("partner-orders".into()),
                            subject: Some("CN=partner-orders, O=Contoso Corp., L=Chicago, ST=Illinois, C=US".into()),
                            dns_name: Some("orders.partners.contoso.com".into()),
                            issuer_subject: Some("CN=Contoso Partners CA, O=Contoso Corp., C=US".into()),
                            issuer_thumbprint: Some(
                                Thumbprint::parse("A1B2C3D4E5F60718293A4B5C6D7E8F9012345678").unwrap(),
                            ),
                            issuer_certificate_id: None,
                        },
                        CertificateIdentity {
                            common_name: Some("partner-billing".into()),
                            issuer_certificate_id: Some("contoso-partners-ca".into()),
                            ..CertificateIdentity::default()
                        },
                    ],
                    ..ClientCertificateValidation::default()
                }),
                forward_client_certificate: Some(ForwardClientCertificate {
                    thumbprint_header: Some("x-client-thumbprint".into()),
                    subject_header: Some("x-client-subject".into()),
                }),
                ..Policy::default()
            }),
        ),
        (
            "client-certificate-defaults.xml",
            Accepted(Policy {
                client_certificate: Some(ClientCertificateValidation {
                    validate_revocation: false,
                    ignore_error: true,
                    ..ClientCertificateValidation::default()
                }),
                ..Policy::default()
            }),
        ),
        ("client-certificate-issuer-conflict.xml", Refused { line: 6, says: "cannot be combined" }),
        ("client-certificate-subject-not-a-name.xml", Refused { line: 7, says: "is not a distinguished name" }),
        ("client-certificate-expression.xml", Refused { line: 4, says: EXPRESSION }),
        ("forward-client-certificate-unvalidated.xml", Refused { line: 4, says: "add <validate-client-certificate>" }),
        (
            "named-value-header.xml",
            Accepted(Policy {
                headers: vec![SetHeader {
                    name: "x-api-key".into(),
                    action: ExistsAction::Override,
                    values: vec!["{{inventory-api-key}}".into()],
                    secret: false,
                }],
                ..Policy::default()
            }),
        ),
        ("named-value-certificate-id.xml", Refused { line: 4, says: NAMED_VALUE }),
        (
            "named-value-in-bearer.xml",
            Accepted(Policy {
                headers: vec![SetHeader {
                    name: "authorization".into(),
                    action: ExistsAction::Override,
                    values: vec!["Bearer {{reporting-token}}".into()],
                    secret: true,
                }],
                ..Policy::default()
            }),
        ),
        ("named-value-malformed.xml", Refused { line: 5, says: "not a named value reference" }),
        ("expression-header-value.xml", Refused { line: 5, says: EXPRESSION }),
        ("expression-multiline-block.xml", Refused { line: 5, says: EXPRESSION }),
        ("expression-basic-password.xml", Refused { line: 4, says: EXPRESSION }),
        ("expression-thumbprint.xml", Refused { line: 4, says: EXPRESSION }),
        ("expression-timeout.xml", Refused { line: 6, says: EXPRESSION }),
        ("expression-malformed.xml", Refused { line: 5, says: "malformed" }),
        ("backend-without-forward.xml", Refused { line: 5, says: "the request is not forwarded" }),
        ("forward-request-follow-redirects.xml", Refused { line: 6, says: "'follow-redirects' is not supported" }),
        ("forward-request-timeout-too-long.xml", Refused { line: 6, says: "from 1 to 240" }),
        ("host-append.xml", Refused { line: 4, says: "exists-action=\"append\" is not supported for Host" }),
        ("host-with-path.xml", Refused { line: 4, says: "not host or host:port" }),
        ("unsupported-rate-limit.xml", Refused { line: 4, says: "unknown element in <inbound>" }),
    ]
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policies")
}

fn read(name: &str) -> String {
    let path = corpus_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn line_of(error: &PolicyError) -> Option<u32> {
    match error {
        PolicyError::Malformed { line, .. } | PolicyError::Invalid { line, .. } => Some(*line),
        PolicyError::TooLarge { .. } => None,
    }
}

#[test]
fn every_fixture_has_an_expectation() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    let expected: BTreeSet<String> = expectations().into_iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(on_disk, expected);
}

#[test]
fn each_document_means_what_it_says_or_is_refused_where_it_goes_wrong() {
    for (name, expect) in expectations() {
        let xml = read(name);
        match (policy::parse(&xml), expect) {
            (Ok(policy), Expect::Accepted(expected)) => {
                assert_eq!(policy, expected, "{name}");
                // What a read shows (masked) parses back, with the secrets the store still holds.
                let read = policy::render(&policy, true);
                assert_eq!(policy::unmask(policy::parse(&read).unwrap(), &policy).unwrap(), policy, "{name}");
                assert_eq!(policy::parse(&policy::render(&policy, false)).unwrap(), policy, "{name}");
            }
            (Err(error), Expect::Refused { line, says }) => {
                let message = error.to_string();
                assert!(message.contains(says), "{name}: {message}");
                assert_eq!(line_of(&error), Some(line), "{name}: {message}");
            }
            (Ok(policy), Expect::Refused { says, .. }) => panic!("{name}: accepted as {policy:?}; expected '{says}'"),
            (Err(error), Expect::Accepted(_)) => panic!("{name}: refused: {error}"),
        }
    }
}

#[test]
fn malformed_expressions_get_the_hint() {
    let message = policy::parse(&read("expression-malformed.xml")).unwrap_err().to_string();
    assert!(message.contains(EXPRESSION), "{message}");
}

#[test]
fn refusals_never_echo_secrets() {
    for (name, secret) in [("expression-basic-password.xml", "vault-secret"), ("named-value-malformed.xml", "s3cret")] {
        let message = policy::parse(&read(name)).unwrap_err().to_string();
        assert!(!message.contains(secret), "{name}: {message}");
    }
}

#[test]
fn reads_of_the_corpus_show_no_secret() {
    for (name, secret) in [("basic-auth.xml", "correct horse"), ("set-header-variants.xml", "k-7f3a9c")] {
        let read = policy::render(&policy::parse(&read(name)).unwrap(), true);
        assert!(!read.contains(secret) && read.contains(MASK), "{name}: {read}");
    }
}
