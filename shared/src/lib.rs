//! What both Gatehouse planes use: certificate descriptions and thumbprints, the request-path
//! and service-URL rules, the one rustls crypto provider, how clients reach the control plane,
//! sealing at rest, and the process and admin-listener helpers every binary shares. Parsing
//! uploads (PKCS#12, policy XML) is the control plane's alone and lives there.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod certificate;
pub mod client;
pub mod config_file;
pub mod crypto;
pub mod headers;
pub mod process;
pub mod request_path;
pub mod sealed;
pub mod subscription_key;
pub mod thumbprint;

pub use certificate::CertificateInfo;
pub use thumbprint::Thumbprint;

/// What every binary's `--version` prints after its name: the workspace version, then the git
/// commit it was built from and that commit's date, e.g. `0.1.0 (git 1a2b3c4d5e6f, 2026-11-29)`.
/// Without a git checkout the commit comes from `GATEHOUSE_GIT_COMMIT` (and the date from
/// `GATEHOUSE_GIT_DATE`) at build time, else it reads `git unknown` (see `shared/build.rs`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("GATEHOUSE_BUILD_GIT"), ")");

/// An error and all its causes on one line ("a: b: c"), for logs and NACK reasons.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Days from now until `unix_seconds` (negative once past): how expiry is counted everywhere.
pub fn days_until(unix_seconds: i64) -> f64 {
    (unix_seconds - unix_now()) as f64 / 86_400.0
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
