//! The command line: global flags, the nouns, flag groups several verbs share, and durations.
//!
//! Doc comments on fields and variants here are the `--help` text; a field or variant without
//! one has no help line on purpose.

mod api;
mod ca;
mod cert;
mod gateway;
mod hostname;
mod named_value;
mod subscription;
mod token;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use api::{ApiCommand, OptionalCredential};
pub use ca::CaCommand;
pub use cert::{CertCommand, PasswordSource};
pub use gateway::GatewayCommand;
pub use hostname::HostnameCommand;
pub use named_value::NamedValueCommand;
pub use subscription::SubscriptionCommand;
pub use token::{TokenCommand, TokenRole};

/// Operate a Gatehouse control plane: client certificates, APIs, hostnames, subscriptions, named
/// values, gateways.
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
    /// The noun and its verb.
    // clap takes no help text from a subcommand field's doc comment; each noun has its own.
    #[command(subcommand)]
    pub command: Noun,
}

const EXAMPLES: &str = "Examples:
  gatehousectl cert upload orders-client --pfx client.pfx --password-file pw.txt
  gatehousectl cert list
  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443
  gatehousectl api credentials orders --client-cert orders-client
  gatehousectl hostname put api.example.com --cert api-server --default
  gatehousectl subscription create partner-a --api orders
  gatehousectl nv put backend-pw --secret --value-file pw.txt
  gatehousectl gateway list -o json";

/// How results are printed (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    // No doc comments on the values: clap would show them in --help.
    Table,
    Json,
}

/// What the command is about; each noun has its own verbs.
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
    /// Hostnames API clients reach over HTTPS, each with its server certificate.
    #[command(subcommand)]
    Hostname(HostnameCommand),
    /// Data planes connected to the control plane.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Bearer tokens for operators and data planes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Subscriptions: the keys API clients present to APIs that require one.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Named values: text policies name as {{name}} (secret ones are write-only).
    #[command(subcommand, name = "nv", alias = "named-value")]
    NamedValue(NamedValueCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  gatehousectl completions bash > /etc/bash_completion.d/gatehousectl")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Conditions every write accepts.
#[derive(Args, Debug, Default)]
pub struct WriteFlags {
    /// Write only if the resource's etag is still this (from show/list -o json).
    #[arg(long, default_value = "")]
    pub if_match: String,
}

/// "30d", "12h", "2w", "90m", "45s", "500ms".
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_need_a_known_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("5"), Err("'5' needs a unit: ms, s, m, h, d or w".to_string()));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit 'x'"));
        assert!(parse_duration("m").unwrap_err().contains("is not a duration"));
    }
}
