//! An API as sled stores it: its policy, backend TLS and headers, secrets (basic password, secret
//! header values) sealed under the master key.

use gatehouse_shared::Thumbprint;
use gatehouse_shared::sealed::SealingKey;

use super::{API_PREFIX, SECRET_CONTEXT, client_certificate};
use crate::model::{Api, BackendTls, BasicAuth, Binding, ExistsAction, Policy, SetHeader, SubscriptionSettings};

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
pub(super) struct ApiRecord {
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

    pub(super) fn into_api(self, key: &SealingKey) -> Result<Api, String> {
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

/// The batch entry for an API (at its own revision), secrets sealed.
pub(in crate::store) fn api_entry(api: &Api, seal: &SealingKey) -> (Vec<u8>, Vec<u8>) {
    (api_key(&api.id), prost::Message::encode_to_vec(&ApiRecord::from_api(api, seal)))
}

pub(in crate::store) fn api_key(id: &str) -> Vec<u8> {
    format!("{API_PREFIX}{id}").into_bytes()
}
