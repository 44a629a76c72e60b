//! `gatehouse-dp` as an operator starts it.

use std::process::Command;

#[test]
fn a_taken_port_is_refused_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", &addr, "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

#[test]
fn a_taken_https_port_is_refused_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--listen-https", &addr, "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on {addr} (https)")), "{stderr}");
}

#[test]
fn plaintext_off_without_https_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "none", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no listener for API clients") && stderr.contains("--listen-https"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing may be announced: {}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn every_flag_has_an_environment_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for var in [
        "GATEHOUSE_DP_CONTROL_PLANE",
        "GATEHOUSE_DP_LISTEN",
        "GATEHOUSE_DP_LISTEN_HTTPS",
        "GATEHOUSE_DP_ADMIN_LISTEN",
        "GATEHOUSE_DP_NAME",
        "GATEHOUSE_DP_BACKEND_TIMEOUT",
        "GATEHOUSE_DP_BACKEND_CA_FILE",
        "GATEHOUSE_DP_HEADER_READ_TIMEOUT",
        "GATEHOUSE_DP_SHUTDOWN_GRACE",
        "GATEHOUSE_DP_CONTROL_PLANE_CA",
        "GATEHOUSE_DP_TOKEN_FILE",
        "GATEHOUSE_DP_CONTROL_PLANE_CONNECT_TIMEOUT",
        "GATEHOUSE_DP_CACHE_DIR",
        "GATEHOUSE_DP_CACHE_KEY_FILE",
        "GATEHOUSE_DP_MAX_ROUTES",
        "GATEHOUSE_DP_KEEPALIVE",
        "GATEHOUSE_DP_MAX_HEADER_BYTES",
        "GATEHOUSE_DP_BACKEND_CONNECT_TIMEOUT",
        "GATEHOUSE_DP_WORKER_THREADS",
        "GATEHOUSE_DP_ACCESS_LOG",
        "GATEHOUSE_DP_LOG_FORMAT",
        "GATEHOUSE_DP_LOG",
    ] {
        assert!(help.contains(var), "{var} missing from --help:\n{help}");
    }
}

#[test]
fn a_backend_ca_file_without_certificates_is_refused() {
    let dir = std::env::temp_dir().join(format!("gatehouse-dp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("empty.pem");
    std::fs::write(&file, "not a certificate\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--backend-ca-file", file.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
}

#[test]
fn only_its_own_environment_prefix_is_read() {
    // The CLI's token file, exported in the same shell, is not this data plane's.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--control-plane", "https://127.0.0.1:1"])
        .env("GATEHOUSE_CTL_TOKEN_FILE", "/nonexistent/operator.token")
        .env("GATEHOUSE_TOKEN_FILE", "/nonexistent/operator.token")
        .env("GATEHOUSE_CTL_TOKEN", "gh_operator_secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no gateway token"), "{stderr}");
    assert!(!stderr.contains("operator.token"), "{stderr}");

    // Its own variable pointing at a missing file: one clear line, non-zero, the OS reason kept.
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--control-plane", "https://127.0.0.1:1"])
        .env("GATEHOUSE_DP_TOKEN_FILE", "/nonexistent/edge.token")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/edge.token") && stderr.contains("No such file"), "{stderr}");
}

#[test]
fn a_static_misconfiguration_stops_at_start_with_one_line() {
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{extra:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--control-plane", "127.0.0.1:7400"]);
    assert!(stderr.contains("not a valid control plane URL") && stderr.contains("https://"), "{stderr}");
    let stderr = run(&["--control-plane", "https://127.0.0.1:1", "--control-plane-ca", "/nonexistent/ca.pem"]);
    assert!(stderr.contains("/nonexistent/ca.pem") && stderr.contains("No such file"), "{stderr}");
}

#[test]
fn every_failed_attempt_is_logged_with_its_reason() {
    // A port nothing listens on: bind, note it, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--control-plane", &format!("https://127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let attempts = stderr.lines().filter(|l| l.contains("cannot sync with the control plane; retrying")).count();
    assert!(attempts >= 2, "{stderr}");
    assert!(stderr.contains("Connection refused") || stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn a_control_plane_that_accepts_and_never_answers_does_not_hang_the_data_plane() {
    // Accepts connections and never says a word (no TLS handshake).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut streams = Vec::new();
        for stream in silent.incoming().take(8) {
            streams.push(stream);
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-dp"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--control-plane-connect-timeout", "1"])
        .args(["--control-plane", &format!("https://127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let timeouts = stderr.lines().filter(|l| l.contains("did not complete the connection within 1s")).count();
    assert!(timeouts >= 2, "{stderr}");
    drop(held);
}
