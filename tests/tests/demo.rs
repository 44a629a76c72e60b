//! The README's main command, run the way CI can: on free ports, exiting after the show.

use std::process::Command;

#[test]
fn the_demo_binds_a_then_b_and_the_backend_sees_each() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-demo"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "--once"])
        .args(["--control-plane-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("= demo-client-a"), "{stdout}");
    assert!(stdout.contains("= demo-client-b"), "{stdout}");
    assert!(stdout.contains("curl -i"), "{stdout}");
    // The demo's data is really in sled under the folder it was given.
    assert!(dir.path().join("control-plane/sled/conf").exists(), "no sled database in the demo folder");
}

#[test]
fn the_demos_try_it_lines_run_as_printed() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gatehouse-demo"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--control-plane-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut export, mut console) = (None, None);
    for line in BufReader::new(demo.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("export ") {
            export = Some(rest.to_string());
        }
        if let Some(url) = line.strip_prefix("Web console: ") {
            console = Some(url.trim().to_string());
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let export = export.expect("the demo prints an export line");
    let ctl = gatehouse_tests::process::binary("gatehousectl").unwrap();
    let mut command = Command::new(ctl);
    command.current_dir(std::env::temp_dir()).args(["cert", "list"]);
    for assignment in export.split_whitespace() {
        let (name, value) = assignment.split_once('=').unwrap();
        assert!(name.starts_with("GATEHOUSE_CTL_"), "{name}");
        command.env(name, value);
    }
    let output = command.output().unwrap();
    // The console's printed address answers with its sign-in page, over the CA the export names.
    let ca = export.split_whitespace().find_map(|a| a.strip_prefix("GATEHOUSE_CTL_CA_FILE=")).unwrap();
    let console = console.expect("the demo prints the console's address");
    let page = Command::new("curl").args(["-sSL", "--cacert", ca, &console]).output().unwrap();
    demo.kill().unwrap();
    demo.wait().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("demo-client-a") && stdout.contains("demo-client-b"), "{stdout}");
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains("id=\"sign-in\"") && page.contains("Operator token"), "{console}: {page}");
}

#[test]
fn gatehousectl_finds_the_demos_ca_and_token_in_the_folder_it_ran_in() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gatehouse-demo"))
        .current_dir(dir.path())
        .args(["--control-plane-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = None;
    for line in BufReader::new(demo.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(url) = line.split_whitespace().find_map(|w| w.strip_prefix("GATEHOUSE_CTL_SERVER=")) {
            server = Some(url.to_string());
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    // Only the server (the demo ran on a free port); CA and token come from ./demo-data.
    let output = Command::new(gatehouse_tests::process::binary("gatehousectl").unwrap())
        .current_dir(dir.path())
        .args(["--server", &server.expect("the demo prints its server"), "gateway", "list"])
        .output()
        .unwrap();
    demo.kill().unwrap();
    demo.wait().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("demo-data-plane"));
}

#[test]
fn the_switch_latency_harness_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-switch-latency"))
        .args(["--switches", "4", "--data-planes", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("non-2xx responses 0") && stdout.contains("every data plane ACKed"), "{stdout}");
}

#[test]
fn the_fleet_bench_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-fleet-bench"))
        .args(["--apis", "20", "--data-planes", "2", "--rollouts", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("one-API change"), "{stdout}");
    assert!(stdout.contains("data plane apply"), "{stdout}");
}

#[test]
fn the_fanout_bench_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-fanout-bench"))
        .args(["--streams", "20,40", "--changes", "3", "--apis", "5", "--streams-per-connection", "16"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("   40 streams: every stream ACKed"), "{stdout}");
}

#[test]
fn the_rotation_bench_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-rotation-bench"))
        .args(["--seconds", "2", "--clients", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("non-2xx responses 0"), "{stdout}");
    assert!(stdout.contains("presenting the wrong certificate 0"), "{stdout}");
}
