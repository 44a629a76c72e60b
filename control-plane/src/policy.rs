//! API policy XML in Azure API Management's dialect, limited to backend credentials, client
//! certificates and the backend call: `authentication-certificate`, `authentication-basic`,
//! `set-header`, `validate-client-certificate` and (a Gatehouse extension)
//! `forward-client-certificate` in `<inbound>`, `<forward-request timeout>` in `<backend>`.
//!
//! A document must never mean something else here than in APIM: whatever this gateway would not
//! do as written (an unknown element or attribute, a named value where APIM would not read one,
//! a policy expression, a backend that is not forwarded to) is refused with its line and column,
//! never accepted literally. Named values (`{{name}}`) are read where APIM reads them for these
//! elements: the Basic username and password and `set-header` values.

use std::fmt;

use gatehouse_shared::Thumbprint;

mod client_certificate;
pub mod named_values;
mod parse;
mod render;
mod secrets;
mod value;

pub use client_certificate::{
    CertificateIdentity, ClientCertificateValidation, ForwardClientCertificate, MAX_IDENTITIES,
};
pub use parse::{parse, parse_limited, refusal_at};
pub use render::render;
pub use secrets::{UnmaskError, unmask};

/// How the gateway authenticates to an API's backend with a client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Binding {
    /// No client certificate.
    #[default]
    None,
    /// Follows rotation of the certificate stored under this id.
    CertificateId(String),
    /// Pins one exact certificate.
    Thumbprint(Thumbprint),
}

/// `<authentication-basic>`: sent as `Authorization: Basic …`. The password is write-only.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// Never holds ':' (it ends the username in the header).
    pub username: String,
    /// Write-only: reads show [`MASK`].
    pub password: String,
}

/// What `set-header` does when the request already has the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistsAction {
    /// Replace any value the client sent.
    Override,
    /// Keep the client's value if it sent one.
    Skip,
    /// Add to the client's values.
    Append,
    /// Remove the header.
    Delete,
}

impl ExistsAction {
    /// The `exists-action` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Skip => "skip",
            Self::Append => "append",
            Self::Delete => "delete",
        }
    }
}

/// One `<set-header>`. `name` is lower case; `Host` only ever comes with
/// [`ExistsAction::Override`] and one `host[:port]` value.
#[derive(Clone, PartialEq, Eq)]
pub struct SetHeader {
    /// Lower case.
    pub name: String,
    /// What to do when the request already has the header.
    pub action: ExistsAction,
    /// Literal values, sent in order; none for [`ExistsAction::Delete`].
    pub values: Vec<String>,
    /// Write-only: reads show the values masked.
    pub secret: bool,
}

/// The backend credentials and backend call settings of one API.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    /// `<authentication-certificate>`.
    pub certificate: Binding,
    /// `<authentication-basic>`.
    pub basic: Option<BasicAuth>,
    /// The `<set-header>`s in document order (applied after the Basic credentials).
    pub headers: Vec<SetHeader>,
    /// Seconds to wait for the backend's response headers (`<forward-request timeout="N" />`,
    /// 1 to [`MAX_BACKEND_TIMEOUT_SECS`]); `None` leaves the data plane's own default.
    pub backend_timeout: Option<u32>,
    /// `<validate-client-certificate>`: which client certificates the API accepts.
    pub client_certificate: Option<ClientCertificateValidation>,
    /// `<forward-client-certificate>`: headers that tell the backend which one it was.
    pub forward_client_certificate: Option<ForwardClientCertificate>,
}

/// An element of a parsed document's `<inbound>`, for refusals found after parsing (a
/// certificate that does not exist, a mask with nothing stored behind it): [`refusal_at`] gives
/// them the element's line and column like every other refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundElement {
    /// The `<authentication-certificate>`.
    AuthenticationCertificate,
    /// The `<authentication-basic>`.
    AuthenticationBasic,
    /// The n-th (from 0) `<set-header>`, which is `Policy::headers[n]`.
    SetHeader(usize),
    /// The n-th (from 0) `<identity>` of the `<validate-client-certificate>`, which is
    /// `Policy::client_certificate.identities[n]`.
    Identity(usize),
}

/// What reads show instead of a secret. Setting it back keeps the stored secret.
pub const MASK: &str = "********";

/// Largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Largest `<forward-request timeout>`, in seconds: APIM does not promise to honour more,
/// because idle connections may be dropped beyond it.
pub const MAX_BACKEND_TIMEOUT_SECS: u32 = 240;

/// Why a policy document was refused. Every refusal of the document's content says where.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not well-formed XML (or a DTD).
    #[error("policy XML is malformed at line {line}, column {column}: {message}")]
    Malformed {
        /// Line, from 1.
        line: u32,
        /// Column, from 1.
        column: u32,
        /// What the XML parser said.
        message: String,
    },
    /// Well-formed, but not a policy this gateway carries out as written.
    #[error("policy XML, line {line}, column {column}, <{element}>: {message}")]
    Invalid {
        /// The element refused.
        element: String,
        /// Its line, from 1.
        line: u32,
        /// Its column, from 1.
        column: u32,
        /// Why, and what would be accepted.
        message: String,
    },
    /// Larger than the limit, not read.
    #[error("policy XML is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

// === impl BasicAuth ===

// Debug never shows secrets: an `Api` or `State` printed into a log stays write-only too.
impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).field("password", &MASK).finish()
    }
}

// === impl SetHeader ===

impl fmt::Debug for SetHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked;
        let values = match self.secret {
            true => {
                masked = vec![MASK; self.values.len()];
                &masked as &dyn fmt::Debug
            }
            false => &self.values as &dyn fmt::Debug,
        };
        f.debug_struct("SetHeader")
            .field("name", &self.name)
            .field("action", &self.action)
            .field("values", values)
            .field("secret", &self.secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let policy = Policy {
            basic: Some(BasicAuth { username: "svc".into(), password: "basic-s3cret".into() }),
            headers: vec![
                SetHeader {
                    name: "x-api-key".into(),
                    action: ExistsAction::Override,
                    values: vec!["header-s3cret".into()],
                    secret: true,
                },
                SetHeader {
                    name: "x-env".into(),
                    action: ExistsAction::Skip,
                    values: vec!["prod".into()],
                    secret: false,
                },
            ],
            ..Policy::default()
        };
        let printed = format!("{policy:?}");
        assert!(!printed.contains("basic-s3cret") && !printed.contains("header-s3cret"), "{printed}");
        assert!(printed.contains("svc") && printed.contains("prod"), "{printed}");
    }
}
