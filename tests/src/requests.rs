//! Management requests as tests write them most often.

use gatehouse_proto::v1::{self as pb, credential_binding::Kind, set_api_credentials_request::Credential};

/// An upload of `pfx` under `id`.
pub fn upload(id: &str, pfx: Vec<u8>, password: &str) -> pb::UploadCertificateRequest {
    pb::UploadCertificateRequest { id: id.into(), pfx, password: password.into(), ..Default::default() }
}

/// An API with default backend trust and the given client certificate binding.
pub fn api(id: &str, path: &str, service_url: &str, credentials: Option<Kind>) -> pb::PutApiRequest {
    pb::PutApiRequest {
        id: id.into(),
        path: path.into(),
        service_url: service_url.into(),
        credentials: credentials.map(|k| pb::CredentialBinding { kind: Some(k) }),
        ..Default::default()
    }
}

/// Binds `api` to `credential`.
pub fn bind(api: &str, credential: Credential) -> pb::SetApiCredentialsRequest {
    pb::SetApiCredentialsRequest { api_id: api.into(), credential: Some(credential), ..Default::default() }
}

/// Sets `api`'s policy to `xml`.
pub fn set_policy(api: &str, xml: &str) -> pb::SetApiPolicyRequest {
    pb::SetApiPolicyRequest { api_id: api.into(), xml: xml.into(), ..Default::default() }
}
