//! The Gatehouse control plane: keeps certificates and APIs in sled, serves the operators'
//! `Management` API, and streams every committed revision to the data planes (`ConfigSync`).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod audit;
pub mod certificate;
pub mod config_sync;
mod console;
pub mod gateways;
pub mod management;
pub mod metrics;
pub mod model;
pub mod oversize;
mod pkcs12;
pub mod policy;
pub mod random;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod watermark;

pub use server::{Access, ControlPlane, ControlPlaneConfig, StoreConfig, Transport};
