//! Declarative configuration: make the store match a declaration in one revision. Each
//! declared resource is checked by the same rules as its own write, in dependency order (CA
//! certificates, certificates, hostnames, named values, APIs, subscriptions), each on the state
//! the ones before it leave; with `prune`, what is not declared is deleted in the reverse order,
//! by the rules of its delete. Every refusal is collected, and any refusal refuses the whole
//! declaration: nothing is written. What equals the stored resource is left alone, so applying
//! the same declaration twice makes no revision.

use crate::certificate::{ClientCertificate, Crl};
use crate::model::{
    Api, Hostname, NamedValue, Policy, Revision, Scope, State, StoredCaCertificate, StoredCertificate, Subscription,
    SubscriptionState,
};
use gatehouse_shared::{CertificateInfo, Thumbprint};

use super::certificates::check_rotation;
use super::rules::{check_binding, check_hostname, check_issuer_cas, check_scheme, normalize_hostname, validate_id};
use super::subscriptions::CreatedSubscription;
use super::{ApiDefinition, Change, HostnameDefinition, Plan, ResourceKind, Store, StoreError, WriteOptions};

/// A CA certificate as declared: a reference to the stored one (optionally with a new CRL for
/// it), or a certificate to store.
#[derive(Clone, Debug)]
pub struct DeclaredCa {
    /// Its id.
    pub id: String,
    /// The certificate to store (already parsed and checked to be a CA, its CRL to be its
    /// own); `None`: a reference to the stored one.
    pub certificate: Option<CaToStore>,
    /// For a reference: a CRL (DER) to put beside the stored certificate.
    pub crl_der: Option<Vec<u8>>,
}

/// A CA certificate to store, with its CRL.
#[derive(Clone, Debug)]
pub struct CaToStore {
    /// The id it goes under.
    pub id: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its description.
    pub info: CertificateInfo,
    /// Its CRL, if declared.
    pub crl: Option<Crl>,
}

/// A client certificate as declared: a reference to a stored one, or one to store.
#[derive(Clone, Debug)]
pub struct DeclaredCertificate {
    /// Its id.
    pub id: String,
    /// The certificate to store under the id when the stored one differs; `None`: a reference.
    pub certificate: Option<ClientCertificate>,
    /// The thumbprint the certificate must have, if declared.
    pub thumbprint: Option<Thumbprint>,
}

/// A named value as declared; `value: None` keeps the stored (secret) value.
#[derive(Clone, Debug)]
pub struct DeclaredNamedValue {
    /// Its name.
    pub name: String,
    /// Its value, or `None` to keep the stored one.
    pub value: Option<String>,
    /// Whether it is secret.
    pub secret: bool,
}

/// An API as declared: its definition (whose `binding` is used when no policy is declared) and
/// its whole policy, if declared.
#[derive(Clone, Debug)]
pub struct DeclaredApi {
    /// The definition, as PutApi takes it.
    pub definition: ApiDefinition,
    /// The policy (masked secrets keep the stored ones); `None`: only the binding.
    pub policy: Option<Policy>,
}

/// A subscription as declared (never its keys).
#[derive(Clone, Debug)]
pub struct DeclaredSubscription {
    /// Its name.
    pub name: String,
    /// The name shown to operators.
    pub display_name: String,
    /// Which APIs its keys open.
    pub scope: Scope,
    /// Active or suspended.
    pub state: SubscriptionState,
}

/// Everything a declaration holds.
#[derive(Clone, Debug, Default)]
pub struct Declaration {
    /// CA certificates.
    pub ca_certificates: Vec<DeclaredCa>,
    /// Client certificates.
    pub certificates: Vec<DeclaredCertificate>,
    /// Hostnames.
    pub hostnames: Vec<HostnameDefinition>,
    /// Named values.
    pub named_values: Vec<DeclaredNamedValue>,
    /// APIs.
    pub apis: Vec<DeclaredApi>,
    /// Subscriptions.
    pub subscriptions: Vec<DeclaredSubscription>,
    /// Delete what is not declared.
    pub prune: bool,
}

/// What applying changes for one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It did not exist.
    Create,
    /// It exists and differs.
    Update,
    /// It exists and is not declared (prune).
    Delete,
}

impl Action {
    /// "create", "update" or "delete".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// The outcome of an apply.
#[derive(Debug)]
pub struct Applied {
    /// The revision made, or the current one when nothing changed.
    pub revision: Revision,
    /// What changed, in the order applied.
    pub changes: Vec<(ResourceKind, String, Action)>,
    /// Subscriptions created, with their keys.
    pub created_subscriptions: Vec<CreatedSubscription>,
}

/// Collects the pieces of one apply: the combined change, the state it leaves, and refusals.
struct Applying {
    state: State,
    revision: Revision,
    change: Change,
    changes: Vec<(ResourceKind, String, Action)>,
    errors: Vec<(ResourceKind, String, StoreError)>,
}

impl Applying {
    /// Takes one resource's outcome: a change (applied to the running state), nothing, or a
    /// refusal.
    fn take(&mut self, kind: ResourceKind, id: &str, outcome: Result<Option<(Change, Action)>, StoreError>) {
        match outcome {
            Ok(Some((piece, action))) => {
                piece.apply_to(&mut self.state, self.revision);
                self.change.merge(piece);
                self.changes.push((kind, id.to_string(), action));
            }
            Ok(None) => {}
            Err(error) => self.errors.push((kind, id.to_string(), error)),
        }
    }
}

fn action(exists: bool) -> Action {
    if exists { Action::Update } else { Action::Create }
}

impl Store {
    /// Makes the store match `declaration` in one revision (see the module documentation);
    /// with `dry_run`, only says what would change.
    pub async fn apply_declaration(&self, declaration: &Declaration, dry_run: bool) -> Result<Applied, StoreError> {
        self.write(|state| {
            let revision = state.revision + 1;
            let mut run = Applying {
                state: state.clone(),
                revision,
                change: Change::default(),
                changes: Vec::new(),
                errors: Vec::new(),
            };
            for ca in &declaration.ca_certificates {
                let outcome = plan_ca(&run.state, ca, revision);
                run.take(ResourceKind::CaCertificate, &ca.id, outcome);
            }
            for certificate in &declaration.certificates {
                let outcome = plan_certificate(&run.state, certificate, revision);
                run.take(ResourceKind::Certificate, &certificate.id, outcome);
            }
            for hostname in &declaration.hostnames {
                let outcome = plan_hostname(&run.state, hostname, revision);
                run.take(ResourceKind::Hostname, &hostname.name, outcome);
            }
            for named in &declaration.named_values {
                let outcome = plan_named_value(&run.state, named, revision);
                run.take(ResourceKind::NamedValue, &named.name, outcome);
            }
            for api in &declaration.apis {
                let outcome = plan_api(&run.state, api, revision);
                run.take(ResourceKind::Api, &api.definition.id, outcome);
            }
            let mut created = Vec::new();
            for subscription in &declaration.subscriptions {
                let outcome = plan_subscription(&run.state, subscription, revision, &mut created);
                run.take(ResourceKind::Subscription, &subscription.name, outcome);
            }
            if declaration.prune {
                prune(&mut run, declaration);
            }
            if !run.errors.is_empty() {
                return Err(StoreError::Declaration(run.errors));
            }
            if run.changes.is_empty() || dry_run {
                let applied =
                    Applied { revision: state.revision, changes: run.changes, created_subscriptions: Vec::new() };
                return Ok(Plan::Done(applied));
            }
            let applied = Applied { revision, changes: run.changes, created_subscriptions: created };
            Ok(Plan::Commit(run.change, applied))
        })
        .await
    }
}

fn plan_ca(state: &State, ca: &DeclaredCa, revision: Revision) -> Result<Option<(Change, Action)>, StoreError> {
    validate_id(ResourceKind::CaCertificate, &ca.id)?;
    let existing = state.ca_certificates.get(&ca.id);
    let ca = match (&ca.certificate, existing) {
        (Some(declared), _) => declared,
        // A reference keeps the stored CA (and its CRL, unless a new one is declared).
        (None, Some(stored)) => {
            let crl = match &ca.crl_der {
                None => return Ok(None),
                Some(der) => crate::certificate::parse_crl(der, &stored.der)
                    .map_err(|e| StoreError::Unreadable { reason: format!("CRL refused: {e}") })?,
            };
            if stored.crl.as_ref().is_some_and(|c| c.der == crl.der) {
                return Ok(None);
            }
            let updated = StoredCaCertificate { crl: Some(crl), revision, ..stored.clone() };
            return Ok(Some((Change { put_cas: vec![updated], ..Change::default() }, Action::Update)));
        }
        (None, None) => return Err(StoreError::NotFound { kind: ResourceKind::CaCertificate, id: ca.id.clone() }),
    };
    if existing.is_some_and(|stored| stored.der == ca.der && stored.crl == ca.crl) {
        return Ok(None);
    }
    let stored = StoredCaCertificate {
        id: ca.id.clone(),
        der: ca.der.clone(),
        info: ca.info.clone(),
        crl: ca.crl.clone(),
        revision,
    };
    let mut change = Change { put_cas: vec![stored], ..Change::default() };
    // As an upload: another certificate than the linked file's drops the link.
    if existing.is_some_and(|stored| stored.der != ca.der) && state.ca_sources.contains_key(&ca.id) {
        change.remove_ca_sources.push(ca.id.clone());
    }
    Ok(Some((change, action(existing.is_some()))))
}

fn plan_certificate(
    state: &State,
    declared: &DeclaredCertificate,
    revision: Revision,
) -> Result<Option<(Change, Action)>, StoreError> {
    validate_id(ResourceKind::Certificate, &declared.id)?;
    let existing = state.certificates.get(&declared.id);
    let thumbprint = match (&declared.certificate, existing) {
        (Some(certificate), _) => &certificate.info.thumbprint,
        (None, Some(stored)) => &stored.certificate.info.thumbprint,
        (None, None) => {
            return Err(StoreError::NotFound { kind: ResourceKind::Certificate, id: declared.id.clone() });
        }
    };
    if let Some(expected) = &declared.thumbprint
        && expected != thumbprint
    {
        return Err(StoreError::DeclaredThumbprint {
            id: declared.id.clone(),
            declared: expected.clone(),
            actual: thumbprint.clone(),
        });
    }
    let Some(certificate) = &declared.certificate else { return Ok(None) };
    if existing.is_some_and(|stored| stored.certificate.info.thumbprint == certificate.info.thumbprint) {
        return Ok(None);
    }
    check_rotation(state, &declared.id, certificate, false)?;
    let stored = StoredCertificate { id: declared.id.clone(), certificate: certificate.clone(), revision };
    let mut change = Change { put_certificates: vec![stored], ..Change::default() };
    if state.certificate_sources.contains_key(&declared.id) {
        change.remove_sources.push(declared.id.clone());
    }
    Ok(Some((change, action(existing.is_some()))))
}

fn plan_hostname(
    state: &State,
    definition: &HostnameDefinition,
    revision: Revision,
) -> Result<Option<(Change, Action)>, StoreError> {
    let name = normalize_hostname(&definition.name)?;
    let hostname = super::hostnames::hostname_of(definition, name.clone(), revision);
    let existing = state.hostnames.get(&name);
    if existing.is_some_and(|stored| Hostname { revision, ..stored.clone() } == hostname) {
        return Ok(None);
    }
    check_hostname(state, &hostname, false)?;
    Ok(Some((Change { put_hostnames: vec![hostname], ..Change::default() }, action(existing.is_some()))))
}

fn plan_named_value(
    state: &State,
    declared: &DeclaredNamedValue,
    revision: Revision,
) -> Result<Option<(Change, Action)>, StoreError> {
    let existing = state.named_values.get(&declared.name);
    let value = match (&declared.value, existing) {
        (Some(value), _) => value.clone(),
        // Kept: a secret (exports never hold it), or a value a linked file decides.
        (None, Some(stored))
            if (stored.secret && declared.secret) || state.named_value_sources.contains_key(&declared.name) =>
        {
            stored.value.clone()
        }
        (None, _) => {
            return Err(StoreError::InvalidNamedValue {
                name: gatehouse_shared::api::quote(&declared.name),
                reason: "no value is declared and no secret value is stored under the name: give its value (or valueFile)",
            });
        }
    };
    super::named_values::check_named_value(&declared.name, value.as_bytes())?;
    if existing.is_some_and(|stored| stored.value == value && stored.secret == declared.secret) {
        return Ok(None);
    }
    super::named_values::check_named_by(state, &declared.name, &value)?;
    let named = NamedValue { name: declared.name.clone(), value, secret: declared.secret, revision };
    let mut change = Change { put_named_values: vec![named.clone()], ..Change::default() };
    // As a put: a declared value replaces a linked file's.
    if declared.value.is_some() && state.named_value_sources.contains_key(&named.name) {
        change.remove_named_value_sources.push(named.name.clone());
    }
    Ok(Some((change, action(existing.is_some()))))
}

fn plan_api(state: &State, declared: &DeclaredApi, revision: Revision) -> Result<Option<(Change, Action)>, StoreError> {
    let mut definition = declared.definition.clone();
    validate_id(ResourceKind::Api, &definition.id)?;
    let existing = state.apis.get(&definition.id);
    // A declared policy decides the binding; without one, the definition's binding does.
    if let Some(policy) = &declared.policy {
        definition.binding = Some(policy.certificate.clone());
    }
    let mut api = super::apis::checked_api(state, definition, &WriteOptions::default())?;
    let policy = match &declared.policy {
        Some(policy) => {
            let policy = match existing {
                Some(current) => crate::policy::unmask(policy.clone(), &current.policy)?,
                None => crate::policy::unmask(policy.clone(), &Policy::default())?,
            };
            check_issuer_cas(state, &policy)?;
            state.resolved_policy(&policy)?;
            check_binding(state, &policy.certificate, false)?;
            check_scheme(&api.service_url, &policy.certificate)?;
            policy
        }
        None => Policy { certificate: api.policy.certificate.clone(), ..Policy::default() },
    };
    api.policy = policy;
    api.revision = revision;
    if existing.is_some_and(|stored| Api { revision, ..stored.clone() } == api) {
        return Ok(None);
    }
    Ok(Some((Change { put_apis: vec![api], ..Change::default() }, action(existing.is_some()))))
}

fn plan_subscription(
    state: &State,
    declared: &DeclaredSubscription,
    revision: Revision,
    created: &mut Vec<CreatedSubscription>,
) -> Result<Option<(Change, Action)>, StoreError> {
    validate_id(ResourceKind::Subscription, &declared.name)?;
    if let Scope::Api(id) = &declared.scope
        && !state.apis.contains_key(id)
    {
        return Err(StoreError::NotFound { kind: ResourceKind::Api, id: gatehouse_shared::api::quote(id) });
    }
    let subscription = match state.subscriptions.get(&declared.name) {
        Some(stored) => {
            let next = Subscription {
                display_name: declared.display_name.clone(),
                scope: declared.scope.clone(),
                state: declared.state,
                revision,
                ..stored.clone()
            };
            if (Subscription { revision, ..stored.clone() }) == next {
                return Ok(None);
            }
            return Ok(Some((Change { put_subscriptions: vec![next], ..Change::default() }, Action::Update)));
        }
        None => {
            let (primary, secondary) = (crate::model::NewKey::generate(), crate::model::NewKey::generate());
            let subscription = Subscription {
                name: declared.name.clone(),
                display_name: declared.display_name.clone(),
                scope: declared.scope.clone(),
                state: declared.state,
                created: gatehouse_shared::unix_now(),
                primary_key_sha256: primary.sha256,
                secondary_key_sha256: secondary.sha256,
                revision,
            };
            created.push(CreatedSubscription {
                subscription: subscription.clone(),
                primary_key: primary.key,
                secondary_key: secondary.key,
            });
            subscription
        }
    };
    Ok(Some((Change { put_subscriptions: vec![subscription], ..Change::default() }, Action::Create)))
}

/// Deletes what is not declared, users before what they use, each by the rules of its delete
/// (on the state the declaration leaves).
fn prune(run: &mut Applying, declaration: &Declaration) {
    let declared = |names: Vec<String>| -> std::collections::BTreeSet<String> { names.into_iter().collect() };
    let subscriptions = declared(declaration.subscriptions.iter().map(|s| s.name.clone()).collect());
    for name in run.state.subscriptions.keys().filter(|n| !subscriptions.contains(*n)).cloned().collect::<Vec<_>>() {
        let change = Change { remove_subscriptions: vec![name.clone()], ..Change::default() };
        run.take(ResourceKind::Subscription, &name, Ok(Some((change, Action::Delete))));
    }
    let apis = declared(declaration.apis.iter().map(|a| a.definition.id.clone()).collect());
    for id in run.state.apis.keys().filter(|id| !apis.contains(*id)).cloned().collect::<Vec<_>>() {
        let subscriptions = run.state.subscriptions_scoped_to(&id);
        let outcome = match subscriptions.is_empty() {
            true => Ok(Some((Change { remove_apis: vec![id.clone()], ..Change::default() }, Action::Delete))),
            false => Err(StoreError::ApiHasSubscriptions { id: id.clone(), subscriptions }),
        };
        run.take(ResourceKind::Api, &id, outcome);
    }
    let hostnames: std::collections::BTreeSet<String> =
        declaration.hostnames.iter().filter_map(|h| normalize_hostname(&h.name).ok()).collect();
    for name in run.state.hostnames.keys().filter(|n| !hostnames.contains(*n)).cloned().collect::<Vec<_>>() {
        let apis = run.state.apis_on_hostname(&name);
        let outcome = match apis.is_empty() {
            true => Ok(Some((Change { remove_hostnames: vec![name.clone()], ..Change::default() }, Action::Delete))),
            false => Err(StoreError::HostnameInUse { name: name.clone(), apis }),
        };
        run.take(ResourceKind::Hostname, &name, outcome);
    }
    let named_values = declared(declaration.named_values.iter().map(|n| n.name.clone()).collect());
    for name in run.state.named_values.keys().filter(|n| !named_values.contains(*n)).cloned().collect::<Vec<_>>() {
        let apis = run.state.apis_naming(&name);
        let outcome = match apis.is_empty() {
            true => {
                let mut change = Change { remove_named_values: vec![name.clone()], ..Change::default() };
                if run.state.named_value_sources.contains_key(&name) {
                    change.remove_named_value_sources.push(name.clone());
                }
                Ok(Some((change, Action::Delete)))
            }
            false => Err(StoreError::NamedValueInUse { name: name.clone(), apis }),
        };
        run.take(ResourceKind::NamedValue, &name, outcome);
    }
    let certificates = declared(declaration.certificates.iter().map(|c| c.id.clone()).collect());
    for id in run.state.certificates.keys().filter(|id| !certificates.contains(*id)).cloned().collect::<Vec<_>>() {
        let (apis, hostnames) = (run.state.orphaned_without(&id), run.state.hostnames_using(&id));
        let outcome = match apis.is_empty() && hostnames.is_empty() {
            true => {
                let mut change = Change { remove_certificates: vec![id.clone()], ..Change::default() };
                if run.state.certificate_sources.contains_key(&id) {
                    change.remove_sources.push(id.clone());
                }
                Ok(Some((change, Action::Delete)))
            }
            false => Err(StoreError::CertificateInUse { id: id.clone(), apis, hostnames }),
        };
        run.take(ResourceKind::Certificate, &id, outcome);
    }
    let cas = declared(declaration.ca_certificates.iter().map(|c| c.id.clone()).collect());
    for id in run.state.ca_certificates.keys().filter(|id| !cas.contains(*id)).cloned().collect::<Vec<_>>() {
        let (apis, hostnames) = (run.state.ca_used_by(&id), run.state.ca_used_by_hostnames(&id));
        let outcome = match apis.is_empty() && hostnames.is_empty() {
            true => {
                let mut change = Change { remove_cas: vec![id.clone()], ..Change::default() };
                if run.state.ca_sources.contains_key(&id) {
                    change.remove_ca_sources.push(id.clone());
                }
                Ok(Some((change, Action::Delete)))
            }
            false => Err(StoreError::CaInUse { id: id.clone(), apis, hostnames }),
        };
        run.take(ResourceKind::CaCertificate, &id, outcome);
    }
}

// === impl Change ===

impl Change {
    /// Adds `other`'s records and removals to this change.
    fn merge(&mut self, other: Change) {
        let Change {
            put_certificates,
            put_cas,
            put_apis,
            put_hostnames,
            put_subscriptions,
            remove_certificates,
            remove_cas,
            remove_apis,
            remove_hostnames,
            remove_subscriptions,
            put_sources,
            remove_sources,
            put_ca_sources,
            remove_ca_sources,
            put_named_values,
            remove_named_values,
            put_named_value_sources,
            remove_named_value_sources,
        } = other;
        self.put_certificates.extend(put_certificates);
        self.put_cas.extend(put_cas);
        self.put_apis.extend(put_apis);
        self.put_hostnames.extend(put_hostnames);
        self.put_subscriptions.extend(put_subscriptions);
        self.remove_certificates.extend(remove_certificates);
        self.remove_cas.extend(remove_cas);
        self.remove_apis.extend(remove_apis);
        self.remove_hostnames.extend(remove_hostnames);
        self.remove_subscriptions.extend(remove_subscriptions);
        self.put_sources.extend(put_sources);
        self.remove_sources.extend(remove_sources);
        self.put_ca_sources.extend(put_ca_sources);
        self.remove_ca_sources.extend(remove_ca_sources);
        self.put_named_values.extend(put_named_values);
        self.remove_named_values.extend(remove_named_values);
        self.put_named_value_sources.extend(put_named_value_sources);
        self.remove_named_value_sources.extend(remove_named_value_sources);
    }

    /// What `state` becomes with this change committed at `revision` (in memory only: the
    /// next resource of a declaration is checked on it).
    fn apply_to(&self, state: &mut State, revision: Revision) {
        let Change {
            put_certificates,
            put_cas,
            put_apis,
            put_hostnames,
            put_subscriptions,
            remove_certificates,
            remove_cas,
            remove_apis,
            remove_hostnames,
            remove_subscriptions,
            put_sources,
            remove_sources,
            put_ca_sources,
            remove_ca_sources,
            put_named_values,
            remove_named_values,
            put_named_value_sources,
            remove_named_value_sources,
        } = self;
        for c in put_certificates {
            state.certificates.insert(c.id.clone(), StoredCertificate { revision, ..c.clone() });
        }
        for c in put_cas {
            state.ca_certificates.insert(c.id.clone(), StoredCaCertificate { revision, ..c.clone() });
        }
        for a in put_apis {
            state.apis.insert(a.id.clone(), Api { revision, ..a.clone() });
        }
        for h in put_hostnames {
            state.hostnames.insert(h.name.clone(), Hostname { revision, ..h.clone() });
        }
        for s in put_subscriptions {
            state.subscriptions.insert(s.name.clone(), Subscription { revision, ..s.clone() });
        }
        for (id, source) in put_sources {
            state.certificate_sources.insert(id.clone(), source.clone());
        }
        for (id, source) in put_ca_sources {
            state.ca_sources.insert(id.clone(), source.clone());
        }
        for n in put_named_values {
            state.named_values.insert(n.name.clone(), NamedValue { revision, ..n.clone() });
        }
        for id in remove_certificates {
            state.certificates.remove(id);
        }
        for id in remove_cas {
            state.ca_certificates.remove(id);
        }
        for id in remove_apis {
            state.apis.remove(id);
        }
        for name in remove_hostnames {
            state.hostnames.remove(name);
        }
        for name in remove_subscriptions {
            state.subscriptions.remove(name);
        }
        for id in remove_sources {
            state.certificate_sources.remove(id);
        }
        for id in remove_ca_sources {
            state.ca_sources.remove(id);
        }
        for name in remove_named_values {
            state.named_values.remove(name);
        }
        for (name, source) in put_named_value_sources {
            state.named_value_sources.insert(name.clone(), source.clone());
        }
        for name in remove_named_value_sources {
            state.named_value_sources.remove(name);
        }
    }
}
