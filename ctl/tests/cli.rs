//! `gatehousectl` failing the way people need: one line, non-zero exit.

use std::process::Command;

#[test]
fn unreachable_control_plane_is_one_line_and_non_zero() {
    // A port nothing listens on: bind, note it, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehousectl"))
        .args(["--server", &format!("http://127.0.0.1:{port}"), "cert", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach the control plane"), "{stderr}");
}

#[test]
fn upload_needs_a_password_source_and_never_takes_it_as_an_argument() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehousectl"))
        .args(["cert", "upload", "a", "--pfx", "x.pfx"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--password-file"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_gatehousectl"))
        .args(["cert", "upload", "a", "--pfx", "x.pfx", "--password", "secret"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "a --password flag must not exist");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unexpected argument '--password'"), "{stderr}");
}
