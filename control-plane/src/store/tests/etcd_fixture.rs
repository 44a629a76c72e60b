//! One real etcd for the store's tests in this process: started on first use on free loopback
//! ports, and killed by a watcher shell once the test process is gone. Each store gets a
//! prefix of its own, so tests share the server without seeing each other.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gatehouse_shared::sealed::SealingKey;

use crate::store::Store;
use crate::store::etcd::{Etcd, EtcdOptions};

static ENDPOINT: OnceLock<String> = OnceLock::new();

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// The client URL of this process's etcd, started on first use.
pub(crate) fn endpoint() -> String {
    ENDPOINT
        .get_or_init(|| {
            assert!(
                std::path::Path::new("/usr/bin/etcd").exists(),
                "the etcd store tests need etcd: install Debian's etcd-server (bash .ci/test does)"
            );
            let dir = tempfile::tempdir().unwrap().keep();
            let (client, peer) = (free_port(), free_port());
            let script = format!(
                "etcd --name t --data-dir {dir}/data --listen-client-urls http://127.0.0.1:{client} \
                 --advertise-client-urls http://127.0.0.1:{client} --listen-peer-urls http://127.0.0.1:{peer} \
                 --initial-advertise-peer-urls http://127.0.0.1:{peer} --initial-cluster t=http://127.0.0.1:{peer} \
                 >{dir}/log 2>&1 & E=$!; \
                 while kill -0 {parent} 2>/dev/null && kill -0 $E 2>/dev/null; do sleep 0.5; done; \
                 kill -9 $E 2>/dev/null; rm -rf {dir}",
                dir = dir.display(),
                parent = std::process::id(),
            );
            let mut watcher = std::process::Command::new("sh").arg("-c").arg(script).spawn().expect("sh starts etcd");
            // Reaped when it ends, after this process: nothing waits on it but this thread.
            std::thread::spawn(move || watcher.wait());
            let deadline = Instant::now() + Duration::from_secs(20);
            while !healthy(client) {
                assert!(
                    Instant::now() < deadline,
                    "etcd did not become healthy; its log: {}",
                    dir.join("log").display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            format!("http://127.0.0.1:{client}")
        })
        .clone()
}

/// A connection to the test etcd under `prefix`.
pub(crate) async fn connect(prefix: &str) -> Etcd {
    let options = EtcdOptions {
        endpoints: vec![endpoint()],
        prefix: prefix.to_string(),
        ca_file: None,
        client_identity: None,
        user: None,
        timeout: Duration::from_secs(2),
    };
    Etcd::connect(&options).await.unwrap()
}

/// A fresh prefix.
pub(crate) fn prefix() -> String {
    format!("/test-{}", &crate::random::secret("")[..12])
}

/// An empty etcd store.
pub(crate) async fn store() -> Arc<Store> {
    open(&prefix()).await
}

/// The etcd store under `prefix`, as a control plane opens it.
pub(crate) async fn open(prefix: &str) -> Arc<Store> {
    // The first call starts etcd and waits for it: not on the runtime's thread.
    tokio::task::spawn_blocking(endpoint).await.unwrap();
    Store::open_etcd(connect(prefix).await, SealingKey::from_bytes(&[9u8; 32]).unwrap()).await.unwrap()
}
