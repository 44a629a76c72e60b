//! The single crypto provider every TLS configuration in Gatehouse is built with.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// ring, chosen explicitly so no build ever depends on which provider features are enabled.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}
