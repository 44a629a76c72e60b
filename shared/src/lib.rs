//! What both Gatehouse planes share: client certificates parsed from PKCS#12, thumbprints,
//! API path and service URL rules, and the one rustls crypto provider.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod certificate;
pub mod crypto;
pub mod thumbprint;

pub use certificate::{CertificateError, CertificateInfo, ClientCertificate};
pub use thumbprint::Thumbprint;
