//! The real binaries as child processes: started on 127.0.0.1:0, their bound addresses read
//! from the line they print, killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Finds a workspace binary in the target folder this test (or the demo) was built into.
/// `cargo test --workspace` builds them first; say so clearly when they are missing.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "debug" || n == "release") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "binary '{name}' not found next to {}: build it first with `cargo build --workspace` (cargo test --workspace does this)",
        exe.display()
    )
}

/// A started child process; killed when dropped.
pub struct Running {
    child: Child,
    /// Addresses the process printed, in order.
    pub addrs: Vec<SocketAddr>,
}

/// Starts `name` with `args`, waiting for `lines` "... on ADDR" lines on its stdout.
pub async fn start(name: &str, args: &[String], envs: &[(&str, &str)], lines: usize) -> anyhow::Result<Running> {
    start_logging(name, args, envs, lines, None).await
}

/// As [`start`], with stderr (the logs) written to `log`.
pub async fn start_logging(
    name: &str,
    args: &[String],
    envs: &[(&str, &str)],
    lines: usize,
    log: Option<&Path>,
) -> anyhow::Result<Running> {
    let mut command = Command::new(binary(name)?);
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None if std::env::var_os("GATEHOUSE_TEST_LOGS").is_some() => Stdio::inherit(),
        None => Stdio::null(),
    };
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().with_context(|| format!("starting {name}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout).lines();
    let mut addrs = Vec::new();
    let read = async {
        while addrs.len() < lines {
            let line = reader.next_line().await?.ok_or_else(|| anyhow!("{name} exited before it was listening"))?;
            // "... listening on 127.0.0.1:1234 (https)"
            let addr =
                line.rsplit(" on ").next().and_then(|a| a.split_whitespace().next()).and_then(|a| a.parse().ok());
            if let Some(addr) = addr {
                addrs.push(addr);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| anyhow!("{name} did not start within 30 s"))??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = reader.next_line().await {} });
    Ok(Running { child, addrs })
}

impl Running {
    /// SIGKILL: no chance to flush or say goodbye.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "HUP") with `kill`.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status();
        }
    }

    /// Waits for it to exit.
    pub async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.child.wait().await?)
    }
}

/// A `gatehouse-cp` child process.
pub struct ControlPlane {
    /// The process.
    pub process: Running,
    /// gRPC listener.
    pub addr: SocketAddr,
    /// /healthz and /metrics.
    pub admin: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    tls: bool,
}

/// Everything a client needs to reach a control plane: its URL, the CA it serves TLS from, and
/// token files for each role. Kept when the process is gone, to restart or to reconnect.
#[derive(Clone, Debug)]
pub struct Access {
    /// The control plane's URL.
    pub url: String,
    /// The CA to verify it with, when it made its own.
    pub ca_file: Option<PathBuf>,
    /// The first operator token's file.
    pub operator_token_file: Option<PathBuf>,
    /// A gateway token's file, for data planes.
    pub gateway_token_file: Option<PathBuf>,
}

impl Access {
    /// A control plane that is not there (nor ever was).
    pub fn nowhere(port: u16) -> Self {
        Self {
            url: format!("https://127.0.0.1:{port}"),
            ca_file: None,
            operator_token_file: None,
            gateway_token_file: None,
        }
    }

    /// The operator token, read from its file.
    pub fn operator_token(&self) -> anyhow::Result<String> {
        let path = self.operator_token_file.as_ref().ok_or_else(|| anyhow!("no operator token"))?;
        Ok(std::fs::read_to_string(path)?.trim().to_string())
    }

    /// A Management client authenticated as an operator.
    pub async fn management(&self) -> anyhow::Result<Management> {
        let channel = gatehouse_shared::client::endpoint(&self.url, self.ca_file.as_deref())?.connect().await?;
        let token = gatehouse_shared::client::BearerToken::new(Some(&self.operator_token()?))?;
        Ok(gatehouse_proto::v1::management_client::ManagementClient::with_interceptor(channel, token))
    }
}

/// A Management client authenticated as an operator.
pub type Management = gatehouse_proto::v1::management_client::ManagementClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, gatehouse_shared::client::BearerToken>,
>;

impl ControlPlane {
    /// Starts a control plane on 127.0.0.1:0 (see [`Self::start_with`]).
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(data_dir, "127.0.0.1:0".parse()?).await
    }

    /// Starts a control plane on `listen` (see [`Self::start_with`]).
    pub async fn start_on(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with(data_dir, listen, &[]).await
    }

    /// With extra flags, e.g. `--keepalive 1`. Serves TLS from its own CA; on first start the
    /// test also makes a gateway token for data planes (data_dir/gateway.token).
    pub async fn start_with(data_dir: &Path, listen: SocketAddr, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_logging(data_dir, listen, extra, None).await
    }

    /// As [`Self::start_with`], writing the logs to `log`.
    pub async fn start_logging(
        data_dir: &Path,
        listen: SocketAddr,
        extra: &[&str],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--data-dir".into(), data_dir.display().to_string(), "--listen".into(), listen.to_string()];
        args.extend(["--admin-listen".into(), "127.0.0.1:0".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = start_logging("gatehouse-cp", &args, &[], 2, log).await?;
        let (addr, admin) = (process.addrs[0], process.addrs[1]);
        let cp = Self { process, addr, admin, data_dir: data_dir.to_path_buf(), tls: !extra.contains(&"--plaintext") };
        let gateway_token = data_dir.join("gateway.token");
        if !gateway_token.exists() {
            let created = cp
                .management()
                .await?
                .create_token(gatehouse_proto::v1::CreateTokenRequest {
                    name: "test-gateways".into(),
                    role: gatehouse_proto::v1::Role::Gateway as i32,
                    // Tests start data planes under many names with one token.
                    data_plane_names: "*".into(),
                })
                .await?
                .into_inner();
            std::fs::write(&gateway_token, created.secret)?;
        }
        Ok(cp)
    }

    /// Its gRPC URL.
    pub fn url(&self) -> String {
        self.access().url
    }

    /// How to reach it, also once it is gone.
    pub fn access(&self) -> Access {
        Access {
            url: format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr),
            ca_file: Some(self.data_dir.join("tls/ca.pem")).filter(|p| p.exists()),
            operator_token_file: Some(self.data_dir.join("operator.token")),
            gateway_token_file: Some(self.data_dir.join("gateway.token")),
        }
    }

    /// A Management client authenticated as an operator.
    pub async fn management(&self) -> anyhow::Result<Management> {
        self.access().management().await
    }
}

/// A `gatehouse-dp` child process.
pub struct DataPlane {
    /// The process.
    pub process: Running,
    /// Proxy listener.
    pub addr: SocketAddr,
    /// Admin listener (/healthz, /ready, /metrics).
    pub admin: SocketAddr,
    /// HTTPS listener, when started with `--listen-https`.
    pub https: Option<SocketAddr>,
    /// The name it connects as.
    pub name: String,
}

impl DataPlane {
    /// Starts a data plane; `backend_ca_file` is added to the roots it trusts backends by.
    pub async fn start(control_plane: &Access, name: &str, backend_ca_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::start_with(control_plane, name, backend_ca_file, &[]).await
    }

    /// With extra flags, e.g. `--cache-dir DIR`.
    pub async fn start_with(
        control_plane: &Access,
        name: &str,
        backend_ca_file: Option<&Path>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_logging(control_plane, name, backend_ca_file, extra, None).await
    }

    /// As [`Self::start_with`], writing the logs to `log`.
    pub async fn start_logging(
        control_plane: &Access,
        name: &str,
        backend_ca_file: Option<&Path>,
        extra: &[&str],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = vec![
            "--control-plane".into(),
            control_plane.url.clone(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--name".into(),
            name.into(),
        ];
        if let Some(ca) = &control_plane.ca_file {
            args.extend(["--control-plane-ca".into(), ca.display().to_string()]);
        }
        if let Some(token) = &control_plane.gateway_token_file {
            args.extend(["--token-file".into(), token.display().to_string()]);
        }
        if let Some(ca) = backend_ca_file {
            args.extend(["--backend-ca-file".into(), ca.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        // A third line, "gatehouse-dp https on ADDR", comes with --listen-https.
        let https = extra.contains(&"--listen-https");
        let process = start_logging("gatehouse-dp", &args, &[], if https { 3 } else { 2 }, log).await?;
        let https = https.then(|| process.addrs[2]);
        Ok(Self { addr: process.addrs[0], admin: process.addrs[1], https, process, name: name.to_string() })
    }

    /// The proxy URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin listener URL for `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// What `gatehousectl` printed and how it exited.
pub struct CtlOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `gatehousectl --server URL --ca-file CA --token-file OPERATOR ARGS...`, optionally
/// feeding `stdin`.
pub async fn ctl(access: &Access, args: &[&str], stdin: Option<&str>) -> anyhow::Result<CtlOutput> {
    use tokio::io::AsyncWriteExt;
    let mut command = Command::new(binary("gatehousectl")?);
    command.arg("--server").arg(&access.url);
    if let Some(ca) = &access.ca_file {
        command.arg("--ca-file").arg(ca);
    }
    if let Some(token) = &access.operator_token_file {
        command.arg("--token-file").arg(token);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await?;
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("gatehousectl {args:?} did not finish"))??;
    Ok(CtlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
