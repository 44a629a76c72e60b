//! Declarations: applied in one revision or refused whole with every error, nothing changed
//! when the declaration equals the store, pruning by the rules of each delete.

use super::{ANY, api, certificate, hostname, server_certificate, stores};
use crate::model::{Scope, SubscriptionState};
use crate::store::apply::{
    Action, Declaration, DeclaredApi, DeclaredCertificate, DeclaredNamedValue, DeclaredSubscription,
};
use crate::store::{ResourceKind, StoreError};

fn declared_api(id: &str, path: &str) -> DeclaredApi {
    DeclaredApi { definition: api(id, path, None), policy: None }
}

#[tokio::test]
async fn a_declaration_is_one_revision_and_the_same_one_again_is_none() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        let server = server_certificate(&["api.example.com"], &[rcgen::ExtendedKeyUsagePurpose::ServerAuth]);
        let declaration = Declaration {
            certificates: vec![DeclaredCertificate { id: "srv".into(), certificate: Some(server), thumbprint: None }],
            hostnames: vec![hostname("api.example.com", "srv")],
            named_values: vec![DeclaredNamedValue { name: "pw".into(), value: Some("s3cret".into()), secret: true }],
            apis: vec![declared_api("a", "/a"), declared_api("b", "/b"), declared_api("c", "/c")],
            subscriptions: vec![DeclaredSubscription {
                name: "team".into(),
                display_name: "Team".into(),
                scope: Scope::Api("a".into()),
                state: SubscriptionState::Active,
            }],
            ..Declaration::default()
        };
        let before = store.state().revision;
        let applied = store.apply_declaration(&declaration, false).await.unwrap();
        assert_eq!(applied.revision, before + 1, "one declaration, one revision");
        assert_eq!(store.state().revision, before + 1);
        assert_eq!(applied.changes.len(), 7, "{:?}", applied.changes);
        assert_eq!(applied.created_subscriptions.len(), 1);
        assert!(store.state().apis.values().all(|a| a.revision == before + 1));

        // The same declaration (a secret kept by reference, the certificate by reference):
        // nothing to do, no revision.
        let again = Declaration {
            certificates: vec![DeclaredCertificate { id: "srv".into(), certificate: None, thumbprint: None }],
            named_values: vec![DeclaredNamedValue { name: "pw".into(), value: None, secret: true }],
            ..declaration.clone()
        };
        let applied = store.apply_declaration(&again, false).await.unwrap();
        assert!(applied.changes.is_empty(), "{:?}", applied.changes);
        assert_eq!(store.state().revision, before + 1);

        // A dry run lists what prune would delete, and writes nothing.
        let fewer = Declaration { apis: vec![declared_api("a", "/a")], prune: true, ..again.clone() };
        let listed = store.apply_declaration(&fewer, true).await.unwrap();
        let deleted: Vec<&str> =
            listed.changes.iter().filter(|c| c.2 == Action::Delete).map(|c| c.1.as_str()).collect();
        assert_eq!(deleted, ["b", "c"]);
        assert_eq!(store.state().apis.len(), 3);
        store.apply_declaration(&fewer, false).await.unwrap();
        assert_eq!(store.state().apis.keys().collect::<Vec<_>>(), ["a"]);
    }
}

#[tokio::test]
async fn a_declaration_with_errors_is_refused_whole_listing_each() {
    for store in stores().await {
        eprintln!("on {}", store.kind());
        store.upload_certificate("kept", certificate("kept"), &ANY).await.unwrap();
        let before = store.state().revision;
        let mut bound = declared_api("bound", "/bound");
        bound.definition.binding = Some(crate::model::Binding::CertificateId("missing".into()));
        let declaration = Declaration {
            apis: vec![declared_api("fine", "/fine"), bound, declared_api("bad", "no-slash")],
            named_values: vec![DeclaredNamedValue { name: "nothing".into(), value: None, secret: true }],
            ..Declaration::default()
        };
        let error = store.apply_declaration(&declaration, false).await.unwrap_err();
        let StoreError::Declaration(errors) = &error else { panic!("{error}") };
        let refused: Vec<(ResourceKind, &str)> = errors.iter().map(|(k, id, _)| (*k, id.as_str())).collect();
        assert_eq!(
            refused,
            [(ResourceKind::NamedValue, "nothing"), (ResourceKind::Api, "bound"), (ResourceKind::Api, "bad")],
            "{error}"
        );
        assert_eq!(store.state().revision, before, "a refused declaration changed the store");
        assert!(!store.state().apis.contains_key("fine"));

        // Pruning what is still used is refused by the rules of its delete.
        let used = Declaration {
            apis: vec![DeclaredApi {
                definition: api("user", "/user", Some(crate::model::Binding::CertificateId("kept".into()))),
                policy: None,
            }],
            certificates: vec![],
            prune: true,
            ..Declaration::default()
        };
        let error = store.apply_declaration(&used, false).await.unwrap_err();
        assert!(error.to_string().contains("certificate 'kept'"), "{error}");
        assert_eq!(store.state().revision, before);
    }
}
