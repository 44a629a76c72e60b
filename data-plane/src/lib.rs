//! The Gatehouse data plane. A request arrives at [`proxy`] (over plaintext, or over HTTPS with
//! the certificate of one of the [`hostnames`]), is matched against the current
//! [`routes::RoutingTable`], and leaves through the [`upstream`] pool of the TLS identity its
//! API must present. [`config_client`] keeps the table current from the control plane.
//! [`DataPlane`] assembles them, for `gatehouse-dp` and the demo.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod admin;
pub mod cache;
pub mod client_certificates;
pub mod config_client;
pub mod configuration;
pub mod hostnames;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod subscriptions;
pub mod upstream;

pub use config_client::{ConfigClient, ConfigClientSettings};
pub use routes::Routing;
pub use server::{DataPlane, DataPlaneConfig, StartError};
