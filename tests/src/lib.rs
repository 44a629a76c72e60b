//! Test kit for Gatehouse's cross-process tests and its demo: a throwaway PKI that writes
//! PKCS#12 files, an mTLS backend that echoes which client certificate it saw, the real
//! binaries run as child processes, and a small HTTP client.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod backend;
pub mod etcd;
pub mod fleet;
pub mod http_client;
pub mod measure;
pub mod pki;
pub mod process;
pub mod requests;

/// Polls `check` every 50 ms until it holds or `timeout` passes; the error names `what`.
/// Returns how long it took.
pub async fn eventually<F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut check: F,
) -> anyhow::Result<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await? {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A file from tests/fixtures (made by the openssl CLI, see make-fixtures.sh).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The thumbprint openssl printed for a fixture certificate.
pub fn fixture_thumbprint(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("text").trim().to_string()
}
