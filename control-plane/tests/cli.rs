//! `gatehouse-cp` as an operator starts it.

use std::process::Command;

#[test]
fn unusable_data_dir_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-cp"))
        .args(["--data-dir", file.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the data directory"), "{stderr}");
}

#[test]
fn every_flag_has_an_environment_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-cp")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for var in [
        "GATEHOUSE_CP_DATA_DIR",
        "GATEHOUSE_CP_LISTEN",
        "GATEHOUSE_CP_ADMIN_LISTEN",
        "GATEHOUSE_CP_TLS_CERT",
        "GATEHOUSE_CP_TLS_KEY",
        "GATEHOUSE_CP_TLS_SAN",
        "GATEHOUSE_CP_PLAINTEXT",
        "GATEHOUSE_CP_MASTER_KEY_FILE",
        "GATEHOUSE_CP_KEEPALIVE",
        "GATEHOUSE_CP_STALE_AFTER",
        "GATEHOUSE_CP_MAX_MESSAGE_BYTES",
        "GATEHOUSE_CP_MAX_PFX_BYTES",
        "GATEHOUSE_CP_MAX_CHAIN_LENGTH",
        "GATEHOUSE_CP_MAX_POLICY_BYTES",
        "GATEHOUSE_CP_MAX_STREAMS_PER_TOKEN",
        "GATEHOUSE_CP_TLS_HANDSHAKE_TIMEOUT",
        "GATEHOUSE_CP_LOG_FORMAT",
        "GATEHOUSE_CP_LOG",
    ] {
        assert!(help.contains(var), "{var} missing from --help:\n{help}");
    }
}

#[test]
fn a_ca_certificate_without_its_key_stops_the_start_and_is_never_replaced() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_gatehouse-cp"))
            .args(["--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin-listen", "none"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first start makes the CA; stop it once it listens.
    let mut first = start();
    let stdout = BufReader::new(first.stdout.take().unwrap());
    for line in stdout.lines() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
    std::fs::remove_file(data.join("tls/ca.key")).unwrap();

    let output = start().wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ca.key is missing") && stderr.contains("restore"), "{stderr}");
    assert_eq!(std::fs::read(data.join("tls/ca.pem")).unwrap(), ca, "the CA was replaced");
    assert!(!data.join("tls/ca.key").exists(), "a new CA key was minted");
}
