//! Commands and how each maps to a Management RPC.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gatehouse_proto::v1::{self as pb, management_client::ManagementClient};
use gatehouse_shared::client::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::output;

/// Operate a Gatehouse control plane: client certificates, APIs, gateways.
#[derive(Parser, Debug)]
#[command(name = "gatehousectl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// URL of the control plane's gRPC API.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_SERVER", default_value = "https://127.0.0.1:7400")]
    pub server: String,
    /// CA certificate (PEM) to verify the control plane with [default: gatehouse-data/tls/ca.pem
    /// if it exists here, else the system roots].
    #[arg(long, global = true, env = "GATEHOUSE_CTL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding an operator token [default: gatehouse-data/operator.token if it exists
    /// here]. GATEHOUSE_CTL_TOKEN may hold the token itself; it is never taken from the command line.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// After a write, wait until every connected data plane has applied it; exit non-zero if
    /// one rejects it or --timeout passes.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_WAIT")]
    pub wait: bool,
    /// How long --wait waits (e.g. 10s, 2m).
    #[arg(long, global = true, env = "GATEHOUSE_CTL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Output format of reads.
    #[arg(short = 'o', long, global = true, env = "GATEHOUSE_CTL_OUTPUT", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Noun,
}

const EXAMPLES: &str = "Examples:
  gatehousectl cert upload orders-client --pfx client.pfx --password-file pw.txt
  gatehousectl cert list
  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443
  gatehousectl api credentials orders --client-cert orders-client
  gatehousectl gateway list -o json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Noun {
    /// Client certificates (PKCS#12) the gateway presents to backends.
    #[command(subcommand)]
    Cert(CertCommand),
    /// APIs: path prefix, backend URL, and the client certificate presented.
    #[command(subcommand)]
    Api(ApiCommand),
    /// CA certificates an API may trust for its backend's server certificate.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Data planes connected to the control plane.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Bearer tokens for operators and data planes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  gatehousectl completions bash > /etc/bash_completion.d/gatehousectl")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    #[command(
        after_help = "Examples:\n  gatehousectl token create ci-pipeline --role operator > ci.token\n  gatehousectl token create edge-1 --role gateway > edge-1.token\n  gatehousectl token create edge-fleet --role gateway --data-plane-names 'edge-*' > edge.token"
    )]
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: TokenRole,
        /// Gateway tokens: the data-plane names (--name) it may connect as: one name, a prefix
        /// ending in '*', or '*'. Default: the token's own name.
        #[arg(long)]
        data_plane_names: Option<String>,
    },
    /// List tokens (names and roles; secrets are never shown again).
    #[command(after_help = "Example:\n  gatehousectl token list")]
    List,
    /// Revoke a token; data planes using it are disconnected.
    #[command(after_help = "Example:\n  gatehousectl token revoke edge-1")]
    Revoke {
        name: String,
        /// Revoke even the last operator token (locks every operator out until the control
        /// plane is restarted, which writes a new DATA_DIR/operator.token).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    Operator,
    Gateway,
}

/// Conditions every write accepts.
#[derive(Args, Debug, Default)]
pub struct WriteFlags {
    /// Write only if the resource's etag is still this (from show/list -o json).
    #[arg(long, default_value = "")]
    if_match: String,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Upload a CA certificate (PEM or DER; must have basicConstraints CA:TRUE).
    #[command(
        after_help = "Example:\n  gatehousectl ca upload internal-root --file root-ca.pem\n  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443 --ca internal-root"
    )]
    Upload {
        id: String,
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// List CA certificates and the APIs that trust each.
    #[command(after_help = "Example:\n  gatehousectl ca list")]
    List,
    /// Delete a CA certificate (refused while an API trusts it).
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Upload a .pfx/.p12 file; uploading to an existing ID rotates that certificate.
    #[command(
        after_help = "Example:\n  gatehousectl cert upload orders-client --pfx client.pfx --password-file pw.txt\n  cat pw.txt | gatehousectl cert upload orders-client --pfx client.pfx --password-stdin"
    )]
    Upload {
        id: String,
        /// The PKCS#12 file.
        #[arg(long)]
        pfx: PathBuf,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow rotating a certificate that APIs use to one that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// List certificates with thumbprint, expiry and the APIs using each.
    #[command(
        after_help = "Examples:\n  gatehousectl cert list\n  gatehousectl cert list --expiring-within 30d -o json\n  gatehousectl cert list --expiring-within 30d --fail   # exit 1 if any (for cron alerts)"
    )]
    List {
        /// Only certificates that expire within this long (e.g. 30d, 12h, 2w), or have expired.
        #[arg(long, value_parser = parse_duration)]
        expiring_within: Option<std::time::Duration>,
        /// Exit with status 1 when the list is not empty.
        #[arg(long, requires = "expiring_within")]
        fail: bool,
    },
    /// Show one certificate.
    #[command(after_help = "Example:\n  gatehousectl cert show orders-client -o json")]
    Show { id: String },
    /// Delete a certificate (refused while an API uses it).
    #[command(after_help = "Example:\n  gatehousectl cert delete old-client --if-match 12")]
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}

/// "30d", "12h", "2w", "90m", "45s".
/// The most gatehousectl reads from one input file: the control plane's default gRPC message
/// limit, so nothing larger is sent only to be refused.
const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads an input file (PFX, CA certificate, policy, password), refusing one over the limit
/// before reading it; the OS reason is kept when it cannot be read.
fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("{} is larger than {} MiB; gatehousectl reads no larger input file", path.display(), MAX_INPUT_BYTES >> 20);
    }
    Ok(bytes)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("'{text}' is not a duration like 30d, 12h or 500ms"))?;
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "" => return Err(format!("'{text}' needs a unit: ms, s, m, h, d or w")),
        "w" => 7 * 86_400,
        _ => return Err(format!("'{text}': unknown unit '{unit}'; use ms, s, m, h, d or w")),
    };
    Ok(std::time::Duration::from_secs(n * seconds))
}

/// The PFX password comes from a file or stdin, never from the command line.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// File holding the password (one trailing newline is ignored).
    #[arg(long, env = "GATEHOUSE_CTL_PFX_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The file has an empty password.
    #[arg(long)]
    empty_password: bool,
}

#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Create or replace a whole API: trust settings left out return to their defaults (the
    /// binding is kept unless given). To change some fields only, use `api update`.
    #[command(
        after_help = "Example:\n  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443 --client-cert orders-client\n\nOn an existing API, what the replace removed or reset is printed on stderr."
    )]
    Put {
        id: String,
        /// Path prefix on the data planes, e.g. /orders.
        #[arg(long)]
        path: String,
        /// Backend base URL, https://host:port[/base] (or http://).
        #[arg(long)]
        service_url: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[command(flatten)]
        credentials: OptionalCredential,
        /// Trust this CA certificate (id from `ca upload`) for the backend; repeatable.
        #[arg(long = "ca")]
        ca_ids: Vec<String>,
        /// Trust only the --ca certificates, not the system roots.
        #[arg(long)]
        no_system_roots: bool,
        /// Do not validate the backend's certificate chain (self-signed backends). The backend
        /// must still prove it holds its certificate's key.
        #[arg(long)]
        no_verify_chain: bool,
        /// Do not check that the backend's certificate names its host.
        #[arg(long)]
        no_verify_name: bool,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Change only the fields given (the others stay as they are).
    #[command(
        after_help = "Examples:\n  gatehousectl api update orders --display-name \"Orders v2\"\n  gatehousectl --wait api update orders --ca orders-ca --ca new-ca --verify-name true\n  gatehousectl api update orders --no-client-cert"
    )]
    Update {
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Path prefix on the data planes, e.g. /orders.
        #[arg(long)]
        path: Option<String>,
        /// Backend base URL, https://host:port[/base].
        #[arg(long)]
        service_url: Option<String>,
        #[command(flatten)]
        credentials: OptionalCredential,
        /// Present no client certificate.
        #[arg(long, conflicts_with_all = ["client_cert", "thumbprint"])]
        no_client_cert: bool,
        /// The CA certificates trusted for the backend (replaces the list; repeatable).
        #[arg(long = "ca")]
        ca_ids: Vec<String>,
        /// Trust no API-specific CA certificates.
        #[arg(long, conflicts_with = "ca_ids")]
        no_ca: bool,
        /// Trust the system roots too.
        #[arg(long)]
        system_roots: Option<bool>,
        /// Validate the backend's certificate chain.
        #[arg(long)]
        verify_chain: Option<bool>,
        /// Check that the backend's certificate names its host.
        #[arg(long)]
        verify_name: Option<bool>,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// List APIs.
    #[command(after_help = "Example:\n  gatehousectl api list -o json")]
    List,
    /// Show one API, with its backend trust and etag.
    #[command(after_help = "Example:\n  gatehousectl api show orders")]
    Show { id: String },
    /// Delete an API.
    #[command(after_help = "Example:\n  gatehousectl --wait api delete orders")]
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Show the API's policy XML, or replace it with --set.
    #[command(
        after_help = "Examples:\n  gatehousectl api policy orders > policy.xml\n  gatehousectl api policy orders --set policy.xml\n\nSupported in <inbound>: <authentication-certificate thumbprint|certificate-id>, <authentication-basic username password>,\n<set-header name exists-action=override|skip|append|delete [secret=true]><value>..</value></set-header>.\nSecrets read back as ******** ; setting that mask back keeps the stored secret."
    )]
    Policy {
        id: String,
        /// Policy XML file to set ("-" for stdin).
        #[arg(long)]
        set: Option<PathBuf>,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Choose the client certificate the gateway presents to the API's backend.
    #[command(
        after_help = "Examples:\n  gatehousectl api credentials orders --client-cert orders-client\n  gatehousectl api credentials orders --thumbprint 8D292672A59E787D257B77E4DF2D9D6FD261AF68\n  gatehousectl api credentials orders --none"
    )]
    Credentials {
        id: String,
        #[command(flatten)]
        credential: Credential,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Credential {
    /// Present the certificate with this ID (follows its rotation).
    #[arg(long)]
    client_cert: Option<String>,
    /// Present exactly the certificate with this thumbprint.
    #[arg(long)]
    thumbprint: Option<String>,
    /// Present no client certificate.
    #[arg(long)]
    none: bool,
}

#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
pub struct OptionalCredential {
    /// Present the certificate with this ID (follows its rotation).
    #[arg(long)]
    client_cert: Option<String>,
    /// Present exactly the certificate with this thumbprint.
    #[arg(long)]
    thumbprint: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// List data planes and the revision each has applied.
    #[command(after_help = "Example:\n  gatehousectl gateway list -o json")]
    List,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Noun::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "gatehousectl", &mut std::io::stdout());
        return Ok(());
    }
    let server = Server::from_cli(&cli)?;
    let result = run_command(&server, cli.command, cli.output, cli.wait, cli.timeout).await;
    result.map_err(|error| match connection_hint(&server.url, &format!("{error:#}")) {
        Some(hint) => anyhow!("{error:#} ({hint})"),
        None => error,
    })
}

async fn run_command(
    server: &Server,
    command: Noun,
    output: Format,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let revision = match command {
        Noun::Cert(command) => cert(server, output, command).await?,
        Noun::Api(command) => api(server, output, command).await?,
        Noun::Ca(command) => ca(server, output, command).await?,
        Noun::Token(command) => token(server, output, command).await?,
        Noun::Completions { .. } => unreachable!("handled above"),
        Noun::Gateway(GatewayCommand::List) => {
            let list = list_all_gateways(server).await?;
            match output {
                Format::Json => print_json(&serde_json::json!({
                    "revision": list.revision,
                    "gateways": list.gateways.iter().map(output::gateway_json).collect::<Vec<_>>(),
                })),
                Format::Table => print!("{}", output::gateways_table(&list)),
            }
            None
        }
    };
    match (wait, revision) {
        (true, Some(revision)) => wait_for_rollout(server, output, revision, timeout).await,
        _ => Ok(()),
    }
}

/// Waits until every connected data plane applied `revision`; fails if one rejected it or the
/// timeout passed. The report goes to stdout for people, and to stderr as JSON with -o json
/// (stdout then holds only the resource).
async fn wait_for_rollout(
    server: &Server,
    format: Format,
    revision: u64,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    use pb::gateway_rollout::Result as Outcome;
    let rollout = connect(server)
        .await?
        .wait_for_rollout(pb::WaitForRolloutRequest {
            revision,
            timeout_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
        })
        .await
        .map_err(status)?
        .into_inner();
    let outcome = |g: &pb::GatewayRollout| match Outcome::try_from(g.result).unwrap_or(Outcome::Pending) {
        Outcome::Applied => "applied",
        Outcome::Rejected => "REJECTED",
        Outcome::Pending => "PENDING",
    };
    match format {
        Format::Json => eprintln!(
            "{}",
            serde_json::json!({
                "revision": rollout.revision,
                "complete": rollout.complete,
                "gateways": rollout.gateways.iter().map(|g| serde_json::json!({
                    "name": g.name, "result": outcome(g), "reason": g.reason, "elapsed_ms": g.elapsed_ms,
                })).collect::<Vec<_>>(),
            })
        ),
        Format::Table => {
            if rollout.gateways.is_empty() {
                println!("revision {revision}: no data planes connected");
            }
            for g in &rollout.gateways {
                let detail = match Outcome::try_from(g.result).unwrap_or(Outcome::Pending) {
                    Outcome::Applied => format!("in {} ms", g.elapsed_ms),
                    Outcome::Rejected => g.reason.clone(),
                    Outcome::Pending => "no answer yet".to_string(),
                };
                println!("revision {revision}: {} {} {detail}", g.name, outcome(g));
            }
        }
    }
    let rejected: Vec<&str> =
        rollout.gateways.iter().filter(|g| g.result == Outcome::Rejected as i32).map(|g| g.name.as_str()).collect();
    let pending: Vec<&str> =
        rollout.gateways.iter().filter(|g| g.result == Outcome::Pending as i32).map(|g| g.name.as_str()).collect();
    if !rejected.is_empty() {
        bail!(
            "revision {revision} was rejected by {}; they keep serving their last good configuration",
            rejected.join(", ")
        );
    }
    if !pending.is_empty() {
        bail!("revision {revision} was not applied within {timeout:?} by {}", pending.join(", "));
    }
    Ok(())
}

/// Where the control plane is, and how to prove who we are to it.
pub struct Server {
    url: String,
    ca_file: Option<PathBuf>,
    token: Option<String>,
}

/// Where `gatehouse-cp` keeps its files when run with its default --data-dir in this folder,
/// then where `gatehouse-demo` keeps its control plane's.
const LOCAL_DATA_DIRS: [&str; 2] = ["gatehouse-data", "demo-data/control-plane"];

impl Server {
    fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        let local = LOCAL_DATA_DIRS
            .iter()
            .map(std::path::Path::new)
            .find(|dir| dir.join("tls/ca.pem").is_file())
            .unwrap_or(std::path::Path::new(LOCAL_DATA_DIRS[0]));
        let ca_file = cli.ca_file.clone().or_else(|| Some(local.join("tls/ca.pem")).filter(|p| p.is_file()));
        let default_token = local.join("operator.token");
        let token = gatehouse_shared::client::resolve_token(
            cli.token_file.as_deref(),
            "GATEHOUSE_CTL_TOKEN",
            Some(&default_token),
        )?;
        Ok(Self { url: cli.server.clone(), ca_file, token })
    }
}

/// What to do about a failure to talk to the control plane, judged from the error's words
/// (rustls and hyper say what happened; the operator needs to know which flag fixes it).
fn connection_hint(url: &str, error: &str) -> Option<String> {
    let host = url.split("://").nth(1).and_then(|rest| rest.rsplit_once(':')).map_or("HOST", |(host, _)| host);
    if error.contains("not valid for name") || error.contains("NotValidForName") {
        Some(format!(
            "hint: the control plane's certificate does not name {host}: restart it with --tls-san {host}, or connect by a name it has (e.g. localhost)"
        ))
    } else if error.contains("UnknownIssuer") || error.contains("invalid peer certificate") {
        Some("hint: give the control plane's CA with --ca-file, e.g. DATA_DIR/tls/ca.pem".to_string())
    } else if error.contains("InvalidContentType") || error.contains("corrupt message") {
        Some(format!(
            "hint: {url} does not speak TLS: is it the control plane's gRPC port (its --listen, default 7400), and not started with --plaintext (then use http://)?"
        ))
    } else if url.starts_with("http://") && (error.contains("transport error") || error.contains("h2 protocol error")) {
        Some(format!(
            "hint: the control plane serves TLS unless started with --plaintext: use https://{}; or check that this is its gRPC port (--listen, default 7400)",
            url.trim_start_matches("http://")
        ))
    } else if error.contains("HTTP status code") || error.contains("transport error") {
        Some(format!("hint: {url} does not answer gRPC: is it the control plane's --listen port (default 7400)?"))
    } else {
        None
    }
}

async fn connect(server: &Server) -> anyhow::Result<ManagementClient<InterceptedService<Channel, BearerToken>>> {
    let url = &server.url;
    let endpoint = gatehouse_shared::client::endpoint(url, server.ca_file.as_deref())?;
    let channel =
        endpoint.connect().await.map_err(|e| anyhow!("cannot reach the control plane at {url}: {}", root_cause(&e)))?;
    let token = BearerToken::new(server.token.as_deref())?;
    Ok(ManagementClient::with_interceptor(channel, token))
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// One readable line: the server's message; the code in words where it helps.
fn status(status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let message = status.message();
    match status.code() {
        Code::Unavailable => anyhow!("the control plane is unavailable: {message}"),
        Code::Unauthenticated => anyhow!("not authenticated: {message}"),
        Code::PermissionDenied => anyhow!("permission denied: {message}"),
        Code::Internal | Code::Unknown => anyhow!("the control plane failed: {message}"),
        _ => anyhow!("{message}"),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

fn read_password(source: PasswordSource) -> anyhow::Result<String> {
    let mut raw = if let Some(path) = source.password_file {
        String::from_utf8(read_input(&path)?).with_context(|| format!("password file {} is not UTF-8", path.display()))?
    } else if source.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from stdin")?;
        text
    } else {
        String::new()
    };
    if raw.ends_with('\n') {
        raw.pop();
        if raw.ends_with('\r') {
            raw.pop();
        }
    }
    Ok(raw)
}

/// Each command returns the revision its write created, if it wrote.
async fn cert(server: &Server, format: Format, command: CertCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        CertCommand::Upload { id, pfx, password, write, allow_expired } => {
            let bytes = read_input(&pfx)?;
            let password = read_password(password)?;
            let mut client = connect(server).await?;
            let cert = client
                .upload_certificate(pb::UploadCertificateRequest {
                    id,
                    pfx: bytes,
                    password,
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(cert.revision);
            print_certificate(format, &cert);
        }
        CertCommand::List { expiring_within, fail } => {
            let mut list = connect(server)
                .await?
                .list_certificates(pb::ListCertificatesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if let Some(within) = expiring_within {
                let limit = gatehouse_shared::unix_now().saturating_add(within.as_secs() as i64);
                list.certificates.retain(|c| c.not_after.as_ref().is_some_and(|t| t.seconds <= limit));
            }
            match format {
                Format::Json => print_json(&serde_json::Value::Array(
                    list.certificates.iter().map(output::certificate_json).collect(),
                )),
                Format::Table => print!("{}", output::certificates_table(&list.certificates)),
            }
            if fail && !list.certificates.is_empty() {
                bail!("{} certificate(s) expire within the given time or have expired", list.certificates.len());
            }
        }
        CertCommand::Show { id } => {
            let cert = connect(server)
                .await?
                .get_certificate(pb::GetCertificateRequest { id })
                .await
                .map_err(status)?
                .into_inner();
            print_certificate(format, &cert);
        }
        CertCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_certificate(pb::DeleteCertificateRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(|s| with_hint(status(s), &id))?
                .into_inner();
            print_deleted(format, "certificate", &id, done.revision);
            revision = Some(done.revision);
        }
    }
    Ok(revision)
}

/// Says how to fix the most common refusal.
fn with_hint(error: anyhow::Error, _id: &str) -> anyhow::Error {
    let text = error.to_string();
    if let Some(list) = text.split("is used by APIs: ").nth(1) {
        let first = list.split([';', ',']).next().unwrap_or("").trim();
        return anyhow!("{text} (e.g. gatehousectl api credentials {first} --none)");
    }
    error
}

fn print_deleted(format: Format, kind: &str, id: &str, revision: u64) {
    match format {
        Format::Json => print_json(&serde_json::json!({ "deleted": id, "revision": revision })),
        Format::Table => println!("{kind} {id} deleted (revision {revision})"),
    }
}

fn print_certificate(format: Format, cert: &pb::Certificate) {
    match format {
        Format::Json => print_json(&output::certificate_json(cert)),
        Format::Table => print!("{}", output::certificate_details(cert)),
    }
}

fn print_api(format: Format, api: &pb::Api) {
    match format {
        Format::Json => print_json(&output::api_json(api)),
        Format::Table => print!("{}", output::api_details(api)),
    }
}

async fn api(server: &Server, format: Format, command: ApiCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    use pb::credential_binding::Kind;
    match command {
        ApiCommand::Put {
            id,
            path,
            service_url,
            display_name,
            credentials,
            ca_ids,
            no_system_roots,
            no_verify_chain,
            no_verify_name,
            write,
            allow_expired,
        } => {
            let credentials = match (credentials.client_cert, credentials.thumbprint) {
                (Some(id), _) => Some(pb::CredentialBinding { kind: Some(Kind::CertificateId(id)) }),
                (_, Some(t)) => Some(pb::CredentialBinding { kind: Some(Kind::Thumbprint(t)) }),
                _ => None,
            };
            let mut client = connect(server).await?;
            let before = match client.get_api(pb::GetApiRequest { id: id.clone() }).await {
                Ok(api) => Some(api.into_inner()),
                Err(error) if error.code() == tonic::Code::NotFound => None,
                Err(error) => return Err(status(error)),
            };
            let api = client
                .put_api(pb::PutApiRequest {
                    id,
                    display_name,
                    path,
                    service_url,
                    credentials,
                    backend_tls: Some(pb::BackendTls {
                        validate_certificate_chain: Some(!no_verify_chain),
                        validate_certificate_name: Some(!no_verify_name),
                        ca_certificate_ids: ca_ids,
                        trust_system_roots: Some(!no_system_roots),
                    }),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            print_api(format, &api);
            if let Some(removed) = before.as_ref().and_then(|before| output::replaced(before, &api)) {
                eprintln!("replaced API {}; {removed} (use `api update` to change fields one by one)", api.id);
            }
        }
        ApiCommand::Update {
            id,
            display_name,
            path,
            service_url,
            credentials,
            no_client_cert,
            ca_ids,
            no_ca,
            system_roots,
            verify_chain,
            verify_name,
            write,
            allow_expired,
        } => {
            let mut mask = Vec::new();
            let mut patch = pb::Api { id, ..Default::default() };
            let mut tls = pb::BackendTls::default();
            let mut set = |field: &str| mask.push(field.to_string());
            if let Some(value) = display_name {
                patch.display_name = value;
                set("display_name");
            }
            if let Some(value) = path {
                patch.path = value;
                set("path");
            }
            if let Some(value) = service_url {
                patch.service_url = value;
                set("service_url");
            }
            match (credentials.client_cert, credentials.thumbprint, no_client_cert) {
                (Some(id), _, _) => patch.credentials = Some(pb::CredentialBinding { kind: Some(Kind::CertificateId(id)) }),
                (_, Some(t), _) => patch.credentials = Some(pb::CredentialBinding { kind: Some(Kind::Thumbprint(t)) }),
                // --no-client-cert: the mask names credentials and the patch has none.
                _ => {}
            }
            if patch.credentials.is_some() || no_client_cert {
                set("credentials");
            }
            if !ca_ids.is_empty() || no_ca {
                tls.ca_certificate_ids = ca_ids;
                set("backend_tls.ca_certificate_ids");
            }
            if let Some(value) = system_roots {
                tls.trust_system_roots = Some(value);
                set("backend_tls.trust_system_roots");
            }
            if let Some(value) = verify_chain {
                tls.validate_certificate_chain = Some(value);
                set("backend_tls.validate_certificate_chain");
            }
            if let Some(value) = verify_name {
                tls.validate_certificate_name = Some(value);
                set("backend_tls.validate_certificate_name");
            }
            if mask.is_empty() {
                bail!("nothing to update: give at least one field, e.g. --display-name (see --help)");
            }
            patch.backend_tls = Some(tls);
            let api = connect(server)
                .await?
                .update_api(pb::UpdateApiRequest {
                    api: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths: mask }),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            print_api(format, &api);
        }
        ApiCommand::List => {
            let list = connect(server).await?.list_apis(pb::ListApisRequest {}).await.map_err(status)?.into_inner();
            match format {
                Format::Json => print_json(&serde_json::Value::Array(list.apis.iter().map(output::api_json).collect())),
                Format::Table => print!("{}", output::apis_table(&list.apis)),
            }
        }
        ApiCommand::Show { id } => {
            let api = connect(server).await?.get_api(pb::GetApiRequest { id }).await.map_err(status)?.into_inner();
            print_api(format, &api);
            // The trust that applies also depends on each data plane's own --backend-ca-file.
            let gateways = list_all_gateways(server).await?;
            if let Some(warning) = output::trust_bundle_warning(&gateways.gateways) {
                eprintln!("{warning}");
            }
        }
        ApiCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_api(pb::DeleteApiRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            print_deleted(format, "API", &id, done.revision);
            revision = Some(done.revision);
        }
        ApiCommand::Policy { id, set, write, allow_expired } => {
            let mut client = connect(server).await?;
            let policy = match set {
                None => {
                    client.get_api_policy(pb::GetApiPolicyRequest { api_id: id }).await.map_err(status)?.into_inner()
                }
                Some(path) => {
                    let xml = if path.as_os_str() == "-" {
                        let mut text = String::new();
                        std::io::stdin().read_to_string(&mut text).context("cannot read the policy from stdin")?;
                        text
                    } else {
                        String::from_utf8(read_input(&path)?)
                            .with_context(|| format!("{} is not UTF-8 text", path.display()))?
                    };
                    let written = client
                        .set_api_policy(pb::SetApiPolicyRequest {
                            api_id: id,
                            xml,
                            if_match: write.if_match,
                            allow_expired,
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    revision = Some(written.revision);
                    written
                }
            };
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "api_id": policy.api_id,
                    "xml": policy.xml,
                    "etag": policy.etag,
                    "revision": policy.revision,
                })),
                Format::Table => print!("{}", policy.xml),
            }
        }
        ApiCommand::Credentials { id, credential, write, allow_expired } => {
            use pb::set_api_credentials_request::Credential as C;
            let credential = match (credential.client_cert, credential.thumbprint, credential.none) {
                (Some(cert), _, _) => C::CertificateId(cert),
                (_, Some(t), _) => C::Thumbprint(t),
                (_, _, true) => C::None(()),
                _ => bail!("say which credential: --client-cert ID, --thumbprint T or --none"),
            };
            let api = connect(server)
                .await?
                .set_api_credentials(pb::SetApiCredentialsRequest {
                    api_id: id,
                    credential: Some(credential),
                    if_match: write.if_match,
                    allow_expired,
                })
                .await
                .map_err(status)?
                .into_inner();
            revision = Some(api.revision);
            print_api(format, &api);
        }
    }
    Ok(revision)
}

async fn ca(server: &Server, format: Format, command: CaCommand) -> anyhow::Result<Option<u64>> {
    let mut revision = None;
    match command {
        CaCommand::Upload { id, file, write } => {
            let certificate = read_input(&file)?;
            let ca = connect(server)
                .await?
                .upload_ca_certificate(pb::UploadCaCertificateRequest { id, certificate, if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            match format {
                Format::Json => print_json(&output::ca_json(&ca)),
                Format::Table => print!("{}", output::ca_details(&ca)),
            }
            revision = Some(ca.revision);
        }
        CaCommand::List => {
            let list = connect(server)
                .await?
                .list_ca_certificates(pb::ListCaCertificatesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            match format {
                Format::Json => {
                    print_json(&serde_json::Value::Array(list.ca_certificates.iter().map(output::ca_json).collect()))
                }
                Format::Table => print!("{}", output::cas_table(&list.ca_certificates)),
            }
        }
        CaCommand::Delete { id, write } => {
            let done = connect(server)
                .await?
                .delete_ca_certificate(pb::DeleteCaCertificateRequest { id: id.clone(), if_match: write.if_match })
                .await
                .map_err(status)?
                .into_inner();
            print_deleted(format, "CA certificate", &id, done.revision);
            revision = Some(done.revision);
        }
    }
    Ok(revision)
}

/// Every page of `ListGateways`.
async fn list_all_gateways(server: &Server) -> anyhow::Result<pb::ListGatewaysResponse> {
    let mut client = connect(server).await?;
    let mut all = pb::ListGatewaysResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_gateways(pb::ListGatewaysRequest { page_size: 1000, page_token })
            .await
            .map_err(status)?
            .into_inner();
        all.gateways.extend(page.gateways);
        all.revision = page.revision;
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

async fn token(server: &Server, format: Format, command: TokenCommand) -> anyhow::Result<Option<u64>> {
    match command {
        TokenCommand::Create { name, role, data_plane_names } => {
            let role = match role {
                TokenRole::Operator => pb::Role::Operator,
                TokenRole::Gateway => pb::Role::Gateway,
            };
            let created = connect(server)
                .await?
                .create_token(pb::CreateTokenRequest {
                    name,
                    role: role as i32,
                    data_plane_names: data_plane_names.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "name": created.token.as_ref().map(|t| t.name.clone()),
                    "role": role.as_str_name().to_lowercase(),
                    "secret": created.secret,
                })),
                // Only the secret on stdout, so `> file` makes a token file.
                Format::Table => println!("{}", created.secret),
            }
        }
        TokenCommand::List => {
            let list = connect(server).await?.list_tokens(pb::ListTokensRequest {}).await.map_err(status)?.into_inner();
            match format {
                Format::Json => print_json(&serde_json::Value::Array(
                    list.tokens
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "name": t.name,
                                "role": pb::Role::try_from(t.role).map(|r| r.as_str_name().to_lowercase()).unwrap_or_default(),
                                "created": output::rfc3339(t.created.as_ref()),
                            })
                        })
                        .collect(),
                )),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                pb::Role::try_from(t.role).map(|r| r.as_str_name().to_lowercase()).unwrap_or_default(),
                                output::rfc3339(t.created.as_ref()),
                            ]
                        })
                        .collect();
                    print!("{}", output::table(&["NAME", "ROLE", "CREATED"], &rows));
                }
            }
        }
        TokenCommand::Revoke { name, force } => {
            connect(server).await?.revoke_token(pb::RevokeTokenRequest { name: name.clone(), force }).await.map_err(status)?;
            match format {
                Format::Json => print_json(&serde_json::json!({ "revoked": name })),
                Format::Table => println!("token {name} revoked"),
            }
        }
    }
    Ok(None)
}
