//! Reaching the control plane: where it is, how we prove who we are, and what to tell the
//! operator when that fails.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use gatehouse_proto::v1::management_client::ManagementClient;
use gatehouse_shared::client::{BearerToken, resolve_token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::args::Cli;
use crate::contexts::{self, Context};

/// The variable that may hold the operator token itself.
const TOKEN_VARIABLE: &str = "GATEHOUSE_CTL_TOKEN";

/// A `Management` client that sends the operator's token with every call.
pub type Client = ManagementClient<InterceptedService<Channel, BearerToken>>;

/// Where the control plane is, and how to prove who we are to it.
pub struct Server {
    url: String,
    ca_file: Option<PathBuf>,
    token: Option<String>,
}

/// The control plane gatehousectl talks to when neither a flag nor a context names one.
const DEFAULT_SERVER: &str = "https://127.0.0.1:7400";

/// Where `gatehouse-cp` keeps its files when run with its default --data-dir in this folder,
/// then where `gatehouse-demo` keeps its control plane's.
const LOCAL_DATA_DIRS: [&str; 2] = ["gatehouse-data", "demo-data/control-plane"];

// === impl Server ===

impl Server {
    /// Where to connect and with what, field by field: the flag (or its GATEHOUSE_CTL_*
    /// variable), then the context (--context, else the current one). Without a context, the
    /// CA file and token of a control plane run in this folder, as before contexts existed;
    /// with one, never those: they belong to another control plane than the context's.
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        match contexts::selected(cli.context.as_deref())? {
            Some((name, context)) => Self::from_context(cli, &name, context),
            None => Self::from_local_defaults(cli),
        }
    }

    fn from_context(cli: &Cli, name: &str, context: Context) -> anyhow::Result<Self> {
        let ca_file = match &cli.ca_file {
            Some(path) => Some(path.clone()),
            None => context.existing_ca_file(name)?,
        };
        let token = match resolve_token(cli.token_file.as_deref(), TOKEN_VARIABLE, None)? {
            Some(token) => Some(token),
            None => context.read_token(name)?,
        };
        Ok(Self { url: cli.server.clone().unwrap_or(context.server), ca_file, token })
    }

    fn from_local_defaults(cli: &Cli) -> anyhow::Result<Self> {
        let local = LOCAL_DATA_DIRS
            .iter()
            .map(Path::new)
            .find(|dir| dir.join("tls/ca.pem").is_file())
            .unwrap_or(Path::new(LOCAL_DATA_DIRS[0]));
        let ca_file = cli.ca_file.clone().or_else(|| Some(local.join("tls/ca.pem")).filter(|p| p.is_file()));
        let default_token = local.join("operator.token");
        let token = resolve_token(cli.token_file.as_deref(), TOKEN_VARIABLE, Some(&default_token))?;
        Ok(Self { url: cli.server.clone().unwrap_or_else(|| DEFAULT_SERVER.to_string()), ca_file, token })
    }

    /// `error` with a hint appended when it looks like a connection problem a flag fixes.
    pub fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        match connection_hint(&self.url, &format!("{error:#}")) {
            Some(hint) => anyhow!("{error:#} ({hint})"),
            None => error,
        }
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

/// A client connected to `server`; the error names the URL and the innermost cause.
pub async fn connect(server: &Server) -> anyhow::Result<Client> {
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
pub fn status(status: tonic::Status) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::connection_hint;

    #[test]
    fn a_name_mismatch_names_the_flag_and_the_host() {
        let hint = connection_hint("https://cp.example:7400", "invalid peer certificate: NotValidForName").unwrap();
        assert!(hint.contains("--tls-san cp.example"), "{hint}");
    }

    #[test]
    fn plain_http_against_the_tls_port_suggests_https() {
        let hint = connection_hint("http://127.0.0.1:7400", "transport error").unwrap();
        assert!(hint.contains("use https://127.0.0.1:7400"), "{hint}");
        assert_eq!(connection_hint("https://127.0.0.1:7400", "not found: API orders"), None);
    }
}
