//! Test kit for Gatehouse's cross-process tests and its demo: a throwaway PKI that writes
//! PKCS#12 files, an mTLS backend that echoes which client certificate it saw, the real
//! binaries run as child processes, and a small HTTP client.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod backend;
pub mod http_client;
pub mod pki;
pub mod process;
