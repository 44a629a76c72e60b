//! The configuration as sled stores it: protobuf-encoded records under `cert/`, `ca/`, `api/`,
//! `host/` and `sub/` keys, private keys and secrets sealed under the master key, and the revision and
//! configuration id under `meta/`. Encoding for a commit and loading at start live here; the
//! rules a write must pass live in `rules.rs`.

use crate::certificate::ClientCertificate;

mod client_certificate;
use gatehouse_shared::sealed::SealingKey;

use super::StoreError;
use crate::model::{
    Api, BackendTls, BasicAuth, Binding, CertificateSource, ExistsAction, Hostname, LastRefresh, Policy, Revision,
    Scope, SetHeader, SourceFiles, State, StoredCaCertificate, StoredCertificate, Subscription, SubscriptionSettings,
    SubscriptionState,
};
use gatehouse_shared::Thumbprint;

/// On-disk forms, protobuf-encoded so fields can be added compatibly. Defaults (false, empty)
/// always mean the safe choice.
#[derive(Clone, PartialEq, prost::Message)]
struct CertificateRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    chain: Vec<Vec<u8>>,
    // Tag 3 would be a plaintext key: never written.
    #[prost(uint64, tag = "4")]
    revision: u64,
    /// PKCS#8 key sealed under the master key.
    #[prost(bytes = "vec", tag = "5")]
    sealed_private_key: Vec<u8>,
}

const KEY_CONTEXT: &[u8] = b"gatehouse-cp-private-key-v1";
const SECRET_CONTEXT: &[u8] = b"gatehouse-cp-secret-v1";

#[derive(Clone, PartialEq, prost::Message)]
struct CaRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bytes = "vec", tag = "2")]
    der: Vec<u8>,
    #[prost(uint64, tag = "3")]
    revision: u64,
    /// The CA's CRL, DER; empty: none.
    #[prost(bytes = "vec", tag = "4")]
    crl: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HeaderRecord {
    #[prost(string, tag = "1")]
    name: String,
    /// 0 override, 1 skip, 2 append, 3 delete.
    #[prost(uint32, tag = "2")]
    action: u32,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
    #[prost(bool, tag = "4")]
    secret: bool,
    /// For secret headers, the values sealed under the master key (and `values` empty).
    #[prost(bytes = "vec", repeated, tag = "5")]
    sealed_values: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ApiRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    display_name: String,
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    service_url: String,
    /// 0 none, 1 certificate id, 2 thumbprint.
    #[prost(uint32, tag = "5")]
    binding_kind: u32,
    #[prost(string, tag = "6")]
    binding_value: String,
    #[prost(uint64, tag = "7")]
    revision: u64,
    #[prost(bool, tag = "8")]
    skip_chain_validation: bool,
    #[prost(bool, tag = "9")]
    skip_name_validation: bool,
    #[prost(string, repeated, tag = "10")]
    ca_ids: Vec<String>,
    #[prost(bool, tag = "11")]
    exclude_system_roots: bool,
    #[prost(bool, tag = "12")]
    has_basic: bool,
    #[prost(string, tag = "13")]
    basic_username: String,
    // Tag 14 would be a plaintext password: never written.
    #[prost(message, repeated, tag = "15")]
    headers: Vec<HeaderRecord>,
    #[prost(bytes = "vec", tag = "16")]
    sealed_basic_password: Vec<u8>,
    /// `<forward-request timeout>` in seconds; 0: the data plane's default.
    #[prost(uint32, tag = "17")]
    backend_timeout_seconds: u32,
    /// Hostnames the API answers on; empty (as in records written before hostnames): any host.
    #[prost(string, repeated, tag = "18")]
    hostnames: Vec<String>,
    #[prost(bool, tag = "19")]
    subscription_required: bool,
    /// Empty (as in records written before subscriptions): the default header.
    #[prost(string, tag = "20")]
    subscription_key_header: String,
    /// `<validate-client-certificate>`; absent (as in records written before it): none.
    #[prost(message, optional, tag = "30")]
    client_certificate: Option<client_certificate::ValidationRecord>,
    /// `<forward-client-certificate>`; absent: none.
    #[prost(message, optional, tag = "31")]
    forward_client_certificate: Option<client_certificate::ForwardRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HostnameRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    certificate_id: String,
    #[prost(bool, tag = "3")]
    default: bool,
    #[prost(bool, tag = "4")]
    negotiate_client_certificate: bool,
    #[prost(string, repeated, tag = "5")]
    client_ca_ids: Vec<String>,
    #[prost(uint64, tag = "6")]
    revision: u64,
}

/// A subscription: the SHA-256 of its keys, never the keys.
#[derive(Clone, PartialEq, prost::Message)]
struct SubscriptionRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    display_name: String,
    /// An API id; empty: every API.
    #[prost(string, tag = "3")]
    scope: String,
    /// 1 active, 2 suspended; anything else does not load.
    #[prost(uint32, tag = "4")]
    state: u32,
    #[prost(int64, tag = "5")]
    created: i64,
    #[prost(bytes = "vec", tag = "6")]
    primary_key_sha256: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    secondary_key_sha256: Vec<u8>,
    #[prost(uint64, tag = "8")]
    revision: u64,
}

/// Where a linked certificate comes from: its files (the PFX password sealed) and its last read.
#[derive(Clone, PartialEq, prost::Message)]
struct SourceRecord {
    #[prost(string, tag = "1")]
    id: String,
    /// 1 PFX, 2 PEM, 3 CA certificate file; anything else does not load.
    #[prost(uint32, tag = "2")]
    kind: u32,
    /// The PFX path, or the PEM certificate path.
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    key_path: String,
    // Tag 5 would be a plaintext password: never written.
    #[prost(bytes = "vec", tag = "6")]
    sealed_password: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    content_hash: Vec<u8>,
    #[prost(bool, tag = "8")]
    refreshed: bool,
    #[prost(int64, tag = "9")]
    refreshed_at: i64,
    #[prost(bool, tag = "10")]
    refresh_ok: bool,
    #[prost(string, tag = "11")]
    refresh_message: String,
}

const CERT_PREFIX: &str = "cert/";
const SOURCE_PREFIX: &str = "certsrc/";
const CA_SOURCE_PREFIX: &str = "casrc/";
const CA_PREFIX: &str = "ca/";
const API_PREFIX: &str = "api/";
const HOSTNAME_PREFIX: &str = "host/";
const SUBSCRIPTION_PREFIX: &str = "sub/";
pub(super) const REVISION_KEY: &str = "meta/revision";
pub(super) const CONFIG_ID_KEY: &str = "meta/config-id";

pub(super) fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The on-disk code of each `exists-action`, both ways.
const ACTION_CODES: [(ExistsAction, u32); 4] =
    [(ExistsAction::Override, 0), (ExistsAction::Skip, 1), (ExistsAction::Append, 2), (ExistsAction::Delete, 3)];

fn action_code(action: ExistsAction) -> u32 {
    ACTION_CODES.iter().find(|(a, _)| *a == action).map(|(_, code)| *code).expect("every action has a code")
}

fn action_from_code(code: u32) -> Option<ExistsAction> {
    ACTION_CODES.iter().find(|(_, c)| *c == code).map(|(action, _)| *action)
}

impl ApiRecord {
    fn from_api(api: &Api, key: &SealingKey) -> Self {
        let (binding_kind, binding_value) = match &api.policy.certificate {
            Binding::None => (0, String::new()),
            Binding::CertificateId(id) => (1, id.clone()),
            Binding::Thumbprint(t) => (2, t.to_string()),
        };
        let basic = api.policy.basic.clone();
        Self {
            id: api.id.clone(),
            display_name: api.display_name.clone(),
            path: api.path.clone(),
            service_url: api.service_url.clone(),
            binding_kind,
            binding_value,
            revision: api.revision,
            skip_chain_validation: !api.tls.validate_chain,
            skip_name_validation: !api.tls.validate_name,
            ca_ids: api.tls.ca_ids.clone(),
            exclude_system_roots: !api.tls.system_roots,
            hostnames: api.hostnames.clone(),
            subscription_required: api.subscription.required,
            subscription_key_header: api.subscription.header.clone(),
            backend_timeout_seconds: api.policy.backend_timeout.unwrap_or(0),
            client_certificate: api.policy.client_certificate.as_ref().map(client_certificate::validation_record),
            forward_client_certificate: api
                .policy
                .forward_client_certificate
                .as_ref()
                .map(client_certificate::forward_record),
            has_basic: basic.is_some(),
            basic_username: basic.as_ref().map(|b| b.username.clone()).unwrap_or_default(),
            sealed_basic_password: basic.map(|b| key.seal(SECRET_CONTEXT, b.password.as_bytes())).unwrap_or_default(),
            headers: api
                .policy
                .headers
                .iter()
                .map(|h| HeaderRecord {
                    name: h.name.clone(),
                    action: action_code(h.action),
                    values: if h.secret { Vec::new() } else { h.values.clone() },
                    secret: h.secret,
                    sealed_values: if h.secret {
                        h.values.iter().map(|v| key.seal(SECRET_CONTEXT, v.as_bytes())).collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }

    fn into_api(self, key: &SealingKey) -> Result<Api, String> {
        let open = |sealed: &[u8]| -> Result<String, String> {
            let plain = key.open(SECRET_CONTEXT, sealed).map_err(|e| e.to_string())?;
            String::from_utf8(plain).map_err(|_| "a sealed secret is not text".to_string())
        };
        let certificate = match self.binding_kind {
            0 => Binding::None,
            1 => Binding::CertificateId(self.binding_value),
            2 => Binding::Thumbprint(Thumbprint::parse(&self.binding_value).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown binding kind {other}")),
        };
        let headers = self
            .headers
            .into_iter()
            .map(|h| {
                let action = action_from_code(h.action).ok_or_else(|| format!("unknown header action {}", h.action))?;
                let values = if h.secret {
                    h.sealed_values.iter().map(|v| open(v)).collect::<Result<_, _>>()?
                } else {
                    h.values
                };
                Ok(SetHeader { name: h.name, action, values, secret: h.secret })
            })
            .collect::<Result<_, String>>()?;
        let basic = match self.has_basic {
            true => Some(BasicAuth { username: self.basic_username, password: open(&self.sealed_basic_password)? }),
            false => None,
        };
        Ok(Api {
            id: self.id,
            display_name: self.display_name,
            path: self.path,
            service_url: self.service_url,
            policy: Policy {
                certificate,
                basic,
                headers,
                backend_timeout: Some(self.backend_timeout_seconds).filter(|s| *s > 0),
                client_certificate: self.client_certificate.map(client_certificate::validation_from).transpose()?,
                forward_client_certificate: self.forward_client_certificate.map(client_certificate::forward_from),
            },
            tls: BackendTls {
                validate_chain: !self.skip_chain_validation,
                validate_name: !self.skip_name_validation,
                ca_ids: self.ca_ids,
                system_roots: !self.exclude_system_roots,
            },
            hostnames: self.hostnames,
            subscription: SubscriptionSettings {
                required: self.subscription_required,
                header: Some(self.subscription_key_header)
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| SubscriptionSettings::default().header),
            },
            revision: self.revision,
        })
    }
}

/// The batch entry (key, value) for a certificate at `revision`, its key sealed.
pub(super) fn certificate_entry(cert: &StoredCertificate, revision: Revision, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    let record = CertificateRecord {
        id: cert.id.clone(),
        chain: cert.certificate.chain.clone(),
        sealed_private_key: seal.seal(KEY_CONTEXT, &cert.certificate.private_key),
        revision,
    };
    (certificate_key(&cert.id), prost::Message::encode_to_vec(&record))
}

/// The batch entry for a CA certificate's source.
pub(super) fn ca_source_entry(id: &str, source: &CertificateSource, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    (ca_source_key(id), source_entry(id, source, seal).1)
}

pub(super) fn ca_source_key(id: &str) -> Vec<u8> {
    format!("{CA_SOURCE_PREFIX}{id}").into_bytes()
}

/// The batch entry for a certificate's source, its password sealed.
pub(super) fn source_entry(id: &str, source: &CertificateSource, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    let mut record =
        SourceRecord { id: id.to_string(), content_hash: source.content_hash.clone(), ..SourceRecord::default() };
    match &source.files {
        SourceFiles::Pfx { path, password } => {
            record.kind = 1;
            record.path = path.clone();
            record.sealed_password = seal.seal(SECRET_CONTEXT, password.as_bytes());
        }
        SourceFiles::Ca { path } => {
            record.kind = 3;
            record.path = path.clone();
        }
        SourceFiles::Pem { certificate_path, key_path } => {
            record.kind = 2;
            record.path = certificate_path.clone();
            record.key_path = key_path.clone();
        }
    }
    if let Some(last) = &source.last_refresh {
        record.refreshed = true;
        record.refreshed_at = last.at;
        record.refresh_ok = last.ok;
        record.refresh_message = last.message.clone();
    }
    (source_key(id), prost::Message::encode_to_vec(&record))
}

pub(super) fn source_key(id: &str) -> Vec<u8> {
    format!("{SOURCE_PREFIX}{id}").into_bytes()
}

impl SourceRecord {
    fn into_source(self, seal: &SealingKey) -> Result<(String, CertificateSource), String> {
        let files = match self.kind {
            1 => {
                let password = seal.open(SECRET_CONTEXT, &self.sealed_password).map_err(|e| e.to_string())?;
                let password = String::from_utf8(password).map_err(|_| "a sealed password is not text".to_string())?;
                SourceFiles::Pfx { path: self.path, password }
            }
            2 => SourceFiles::Pem { certificate_path: self.path, key_path: self.key_path },
            3 => SourceFiles::Ca { path: self.path },
            other => return Err(format!("unknown certificate source kind {other}")),
        };
        let last_refresh = self.refreshed.then_some(LastRefresh {
            at: self.refreshed_at,
            ok: self.refresh_ok,
            message: self.refresh_message,
        });
        Ok((self.id, CertificateSource { files, content_hash: self.content_hash, last_refresh }))
    }
}

/// The batch entry for a CA certificate at `revision`.
pub(super) fn ca_entry(ca: &StoredCaCertificate, revision: Revision) -> (Vec<u8>, Vec<u8>) {
    let crl = ca.crl.as_ref().map(|crl| crl.der.clone()).unwrap_or_default();
    let record = CaRecord { id: ca.id.clone(), der: ca.der.clone(), revision, crl };
    (ca_key(&ca.id), prost::Message::encode_to_vec(&record))
}

/// The batch entry for an API (at its own revision), secrets sealed.
pub(super) fn api_entry(api: &Api, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    (api_key(&api.id), prost::Message::encode_to_vec(&ApiRecord::from_api(api, seal)))
}

/// The batch entry for a hostname (at its own revision).
pub(super) fn hostname_entry(hostname: &Hostname) -> (Vec<u8>, Vec<u8>) {
    let record = HostnameRecord {
        name: hostname.name.clone(),
        certificate_id: hostname.certificate_id.clone(),
        default: hostname.default,
        negotiate_client_certificate: hostname.negotiate_client_certificate,
        client_ca_ids: hostname.client_ca_ids.clone(),
        revision: hostname.revision,
    };
    (hostname_key(&hostname.name), prost::Message::encode_to_vec(&record))
}

/// The batch entry for a subscription (at its own revision): its keys' hashes, never the keys.
pub(super) fn subscription_entry(subscription: &Subscription) -> (Vec<u8>, Vec<u8>) {
    let record = SubscriptionRecord {
        name: subscription.name.clone(),
        display_name: subscription.display_name.clone(),
        scope: subscription.scope.api_id().to_string(),
        state: match subscription.state {
            SubscriptionState::Active => 1,
            SubscriptionState::Suspended => 2,
        },
        created: subscription.created,
        primary_key_sha256: subscription.primary_key_sha256.to_vec(),
        secondary_key_sha256: subscription.secondary_key_sha256.to_vec(),
        revision: subscription.revision,
    };
    (subscription_key(&subscription.name), prost::Message::encode_to_vec(&record))
}

pub(super) fn subscription_key(name: &str) -> Vec<u8> {
    format!("{SUBSCRIPTION_PREFIX}{name}").into_bytes()
}

impl SubscriptionRecord {
    fn into_subscription(self) -> Result<Subscription, String> {
        let state = match self.state {
            1 => SubscriptionState::Active,
            2 => SubscriptionState::Suspended,
            other => return Err(format!("unknown subscription state {other}")),
        };
        let hash = |bytes: Vec<u8>| <[u8; 32]>::try_from(bytes).map_err(|_| "a key hash is not 32 bytes".to_string());
        Ok(Subscription {
            scope: Scope::from_api_id(&self.scope),
            name: self.name,
            display_name: self.display_name,
            state,
            created: self.created,
            primary_key_sha256: hash(self.primary_key_sha256)?,
            secondary_key_sha256: hash(self.secondary_key_sha256)?,
            revision: self.revision,
        })
    }
}

pub(super) fn certificate_key(id: &str) -> Vec<u8> {
    format!("{CERT_PREFIX}{id}").into_bytes()
}

pub(super) fn ca_key(id: &str) -> Vec<u8> {
    format!("{CA_PREFIX}{id}").into_bytes()
}

pub(super) fn api_key(id: &str) -> Vec<u8> {
    format!("{API_PREFIX}{id}").into_bytes()
}

pub(super) fn hostname_key(name: &str) -> Vec<u8> {
    format!("{HOSTNAME_PREFIX}{name}").into_bytes()
}

/// Reads the whole configuration.
pub(super) fn load(db: &sled::Db, seal: &SealingKey) -> Result<State, StoreError> {
    let corrupt = |key: &[u8], source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    };
    let mut state = State::default();
    if let Some(bytes) = db.get(REVISION_KEY)? {
        let raw: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(REVISION_KEY.as_bytes(), "revision is not 8 bytes".into()))?;
        state.revision = u64::from_be_bytes(raw);
    }
    for item in db.scan_prefix(CERT_PREFIX) {
        let (key, value) = item?;
        let record: CertificateRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        // A key that does not open means the wrong master key (or tampering): say so, load nothing.
        let private_key = seal.open(KEY_CONTEXT, &record.sealed_private_key).map_err(|e| corrupt(&key, e.into()))?;
        let certificate =
            ClientCertificate::from_parts(record.chain, private_key).map_err(|e| corrupt(&key, e.into()))?;
        state
            .certificates
            .insert(record.id.clone(), StoredCertificate { id: record.id, certificate, revision: record.revision });
    }
    for item in db.scan_prefix(SOURCE_PREFIX) {
        let (key, value) = item?;
        let record: SourceRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let (id, source) = record.into_source(seal).map_err(|e| corrupt(&key, e.into()))?;
        state.certificate_sources.insert(id, source);
    }
    for item in db.scan_prefix(CA_SOURCE_PREFIX) {
        let (key, value) = item?;
        let record: SourceRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let (id, source) = record.into_source(seal).map_err(|e| corrupt(&key, e.into()))?;
        state.ca_sources.insert(id, source);
    }
    for item in db.scan_prefix(CA_PREFIX) {
        let (key, value) = item?;
        let record: CaRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let info = gatehouse_shared::certificate::describe_der(&record.der).map_err(|e| corrupt(&key, e.into()))?;
        let crl = match record.crl.is_empty() {
            true => None,
            false => {
                Some(crate::certificate::parse_crl(&record.crl, &record.der).map_err(|e| corrupt(&key, e.into()))?)
            }
        };
        state.ca_certificates.insert(
            record.id.clone(),
            StoredCaCertificate { id: record.id, der: record.der, info, crl, revision: record.revision },
        );
    }
    for item in db.scan_prefix(API_PREFIX) {
        let (key, value) = item?;
        let record: ApiRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let api = record.into_api(seal).map_err(|e| corrupt(&key, e.into()))?;
        state.apis.insert(api.id.clone(), api);
    }
    for item in db.scan_prefix(HOSTNAME_PREFIX) {
        let (key, value) = item?;
        let record: HostnameRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let hostname = Hostname {
            name: record.name,
            certificate_id: record.certificate_id,
            default: record.default,
            negotiate_client_certificate: record.negotiate_client_certificate,
            client_ca_ids: record.client_ca_ids,
            revision: record.revision,
        };
        state.hostnames.insert(hostname.name.clone(), hostname);
    }
    for item in db.scan_prefix(SUBSCRIPTION_PREFIX) {
        let (key, value) = item?;
        let record: SubscriptionRecord = prost::Message::decode(value.as_ref()).map_err(|e| corrupt(&key, e.into()))?;
        let subscription = record.into_subscription().map_err(|e| corrupt(&key, e.into()))?;
        state.subscriptions.insert(subscription.name.clone(), subscription);
    }
    Ok(state)
}
