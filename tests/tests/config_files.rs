//! Config files and versions through the real binaries: `--config FILE` under the flags and
//! the environment, `--print-config` saying where each value came from, unknown keys refused,
//! a control plane serving where its file says, and `--version` naming the git commit.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use gatehouse_tests::process::{Access, binary, start};

/// What a one-shot run printed and how it ended.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `name ARGS` with `envs` and none of the test runner's own GATEHOUSE_* variables, so
/// every origin in the output is the test's doing.
async fn run(name: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(binary(name)?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command.args(args).envs(envs.iter().copied()).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .with_context(|| format!("{name} {args:?} did not exit"))??;
    Ok(Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// Asserts `text` has exactly `line` among its lines.
fn has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
}

#[tokio::test]
async fn print_config_shows_each_value_with_where_it_came_from() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write(
        dir.path(),
        "cp.toml",
        "# control plane\nlisten = \"127.0.0.1:7555\"\nstale-after = 99\nsource-poll = 20\netcd-endpoints = [\"https://a:2379\", \"https://b:2379\"]\nplaintext = true\n",
    )?;
    let out = run(
        "gatehouse-cp",
        &["--config", &file, "--print-config", "--source-poll", "5"],
        &[("GATEHOUSE_CP_STALE_AFTER", "30")],
    )
    .await?;
    assert!(out.success, "{}", out.stderr);
    has_line(&out.stdout, &format!("listen = \"127.0.0.1:7555\" # file {file}"));
    has_line(&out.stdout, "stale-after = 30 # env GATEHOUSE_CP_STALE_AFTER");
    has_line(&out.stdout, "source-poll = 5 # flag --source-poll");
    has_line(&out.stdout, &format!("etcd-endpoints = [\"https://a:2379\", \"https://b:2379\"] # file {file}"));
    has_line(&out.stdout, &format!("plaintext = true # file {file}"));
    has_line(&out.stdout, "keepalive = 10 # default");
    has_line(&out.stdout, "# tls-cert is not set");

    // The data plane's too; its token (GATEHOUSE_DP_TOKEN) is no key and never printed.
    let file = write(
        dir.path(),
        "dp.toml",
        "control-plane = [\"https://cp-a:7400\", \"https://cp-b:7400\"]\naccess-log = true\ntoken-file = \"/etc/gatehouse/dp.token\"\n",
    )?;
    let out = run(
        "gatehouse-dp",
        &["--print-config"],
        &[("GATEHOUSE_DP_CONFIG", &file), ("GATEHOUSE_DP_TOKEN", "s3cret-token"), ("GATEHOUSE_DP_LISTEN", "none")],
    )
    .await?;
    assert!(out.success, "{}", out.stderr);
    has_line(&out.stdout, &format!("control-plane = [\"https://cp-a:7400\", \"https://cp-b:7400\"] # file {file}"));
    has_line(&out.stdout, &format!("access-log = true # file {file}"));
    has_line(&out.stdout, &format!("token-file = \"/etc/gatehouse/dp.token\" # file {file}"));
    has_line(&out.stdout, "listen = \"none\" # env GATEHOUSE_DP_LISTEN");
    has_line(&out.stdout, "admin-listen = \"127.0.0.1:8081\" # default");
    assert!(!out.stdout.contains("s3cret-token"), "{}", out.stdout);
    Ok(())
}

#[tokio::test]
async fn an_unknown_key_or_a_wrong_type_stops_the_start_naming_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write(dir.path(), "cp.toml", "listen = \"127.0.0.1:0\"\nlisen = \"127.0.0.1:7555\"\n")?;
    let out = run("gatehouse-cp", &["--config", &file], &[]).await?;
    assert!(!out.success);
    assert!(
        out.stderr.starts_with(&format!(
            "gatehouse-cp: unknown key 'lisen' in {file} (line 2); did you mean 'listen'? known keys: data-dir,"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening"), "{}", out.stdout);

    let file = write(dir.path(), "dp.toml", "max-routes = \"many\"\n")?;
    let out = run("gatehouse-dp", &["--config", &file], &[]).await?;
    assert!(!out.success);
    assert_eq!(
        out.stderr.trim_end(),
        format!("gatehouse-dp: key 'max-routes' in {file} (line 1): expected an integer, found a string")
    );
    Ok(())
}

#[tokio::test]
async fn a_control_plane_started_from_a_config_file_listens_where_the_file_says() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("cp");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let file = write(
        dir.path(),
        "cp.toml",
        &format!(
            "data-dir = \"{}\"\nlisten = \"{listen}\"\nadmin-listen = \"127.0.0.1:0\"\nplaintext = true\n",
            data_dir.display()
        ),
    )?;
    let cp = start("gatehouse-cp", &[], &[("GATEHOUSE_CP_CONFIG", &file)], 2).await?;
    assert_eq!(cp.addrs[0], listen);
    let access = Access {
        url: format!("http://{listen}"),
        ca_file: None,
        operator_token_file: Some(data_dir.join("operator.token")),
        gateway_token_file: None,
    };
    let certificates = access
        .management()
        .await?
        .list_certificates(gatehouse_proto::v1::ListCertificatesRequest {})
        .await?
        .into_inner();
    assert!(certificates.certificates.is_empty());
    Ok(())
}

#[tokio::test]
async fn every_binary_names_its_git_commit_in_its_version() -> anyhow::Result<()> {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    for name in ["gatehouse-cp", "gatehouse-dp", "gatehousectl", "gatehouse-demo"] {
        let out = run(name, &["--version"], &[]).await?;
        assert!(out.success, "{name}: {}", out.stderr);
        let expected = format!("{name} {} (git {}", env!("CARGO_PKG_VERSION"), head.as_deref().unwrap_or(""));
        assert!(out.stdout.starts_with(&expected), "{name}: {:?} does not start with {expected:?}", out.stdout);
    }
    Ok(())
}
