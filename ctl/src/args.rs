//! The command line: global flags, the nouns, flag groups several verbs share, and durations.
//!
//! Doc comments on fields and variants here are the `--help` text; a field or variant without
//! one has no help line on purpose.

mod api;
mod ca;
mod cert;
mod config;
mod declarative;
mod gateway;
mod hostname;
mod named_value;
mod subscription;
mod token;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::completion::IdKind;

pub use api::{ApiCommand, OptionalCredential};
pub use ca::CaCommand;
pub use cert::{CertCommand, PasswordSource};
pub use config::ConfigCommand;
pub use declarative::DeclarationFile;
pub use gateway::GatewayCommand;
pub use hostname::HostnameCommand;
pub use named_value::NamedValueCommand;
pub use subscription::SubscriptionCommand;
pub use token::{TokenCommand, TokenRole};

/// Operate a Gatehouse control plane: client certificates, APIs, hostnames, subscriptions, named
/// values, gateways.
#[derive(Parser, Debug)]
#[command(name = "gatehousectl", version = gatehouse_shared::VERSION, after_help = EXAMPLES)]
pub struct Cli {
    /// URL of the control plane's gRPC API [default: the context's, else https://127.0.0.1:7400].
    #[arg(long, global = true, env = "GATEHOUSE_CTL_SERVER")]
    pub server: Option<String>,
    /// CA certificate (PEM) to verify the control plane with [default: the context's; without a
    /// context, gatehouse-data/tls/ca.pem if it exists here; else the system roots].
    #[arg(long, global = true, env = "GATEHOUSE_CTL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding an operator token [default: the context's; without a context,
    /// gatehouse-data/operator.token if it exists here]. GATEHOUSE_CTL_TOKEN may hold the token
    /// itself; it is never taken from the command line.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The context (see `config set-context`) to connect with [default: the current one]; the
    /// flags above override its fields.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_CONTEXT")]
    pub context: Option<String>,
    /// After a write, wait until every connected data plane has applied it; exit non-zero if
    /// one rejects it or --timeout passes.
    #[arg(long, global = true, env = "GATEHOUSE_CTL_WAIT")]
    pub wait: bool,
    /// How long --wait waits (e.g. 10s, 2m).
    #[arg(long, global = true, env = "GATEHOUSE_CTL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Output format: table (the default) or json; `export` writes yaml (its default) or json.
    #[arg(short = 'o', long, global = true, env = "GATEHOUSE_CTL_OUTPUT", value_enum)]
    pub output: Option<OutputFlag>,
    /// The noun and its verb.
    // clap takes no help text from a subcommand field's doc comment; each noun has its own.
    #[command(subcommand)]
    pub command: Noun,
    /// Which connection flags were typed rather than taken from the environment.
    #[arg(skip)]
    pub typed: TypedFlags,
}

/// Which of --server, --ca-file and --token-file were given on the command line itself:
/// `config set-context` stores those only, never a GATEHOUSE_CTL_* variable of the shell.
#[derive(Clone, Copy, Debug, Default)]
pub struct TypedFlags {
    /// --server was typed.
    pub server: bool,
    /// --ca-file was typed.
    pub ca_file: bool,
    /// --token-file was typed.
    pub token_file: bool,
}

const EXAMPLES: &str = "Examples:
  gatehousectl cert upload orders-client --pfx client.pfx --password-file pw.txt
  gatehousectl cert list
  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443
  gatehousectl api credentials orders --client-cert orders-client
  gatehousectl hostname put api.example.com --cert api-server --default
  gatehousectl subscription create partner-a --api orders
  gatehousectl nv put backend-pw --secret --value-file pw.txt
  gatehousectl gateway list -o json
  gatehousectl export > gatehouse.yaml
  gatehousectl apply -f gatehouse.yaml";

/// How results are printed: what `-o` asks for, once checked against the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables and lines for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// What `-o` names; only `export` writes YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFlag {
    // No doc comments on the values: clap would show them in --help.
    Table,
    Json,
    Yaml,
}

/// The format a declaration is written in (`export -o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentFormat {
    /// YAML, the default.
    Yaml,
    /// JSON.
    Json,
}

// === impl Cli ===

impl Cli {
    /// This process's command line, as `Parser::parse` reads it (exiting with clap's message on
    /// an error), noting which connection flags were typed.
    pub fn from_command_line() -> Self {
        let mut command = Self::command();
        let matches = command.get_matches_mut();
        Self::from_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit())
    }

    /// `matches` as a `Cli`, noting which connection flags were typed.
    pub fn from_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut cli = Self::from_arg_matches(matches)?;
        let typed = |id| matches.value_source(id) == Some(ValueSource::CommandLine);
        cli.typed = TypedFlags { server: typed("server"), ca_file: typed("ca_file"), token_file: typed("token_file") };
        Ok(cli)
    }

    /// The exit status of a failure: 2 for `diff`, whose 1 means "something would change"
    /// (as diff(1)), 1 for everything else.
    pub fn failure_code(&self) -> u8 {
        if matches!(self.command, Noun::Diff(_)) { 2 } else { 1 }
    }
}

// === impl OutputFlag ===

impl OutputFlag {
    /// The format of a read or a write: table unless `-o json`; `-o yaml` is export's only.
    pub fn format(flag: Option<Self>) -> anyhow::Result<Format> {
        match flag {
            None | Some(Self::Table) => Ok(Format::Table),
            Some(Self::Json) => Ok(Format::Json),
            Some(Self::Yaml) => anyhow::bail!("-o yaml is for `export`; this command prints table or json"),
        }
    }

    /// The format `export` writes: yaml unless `-o json`.
    pub fn document(flag: Option<Self>) -> anyhow::Result<DocumentFormat> {
        match flag {
            None | Some(Self::Yaml) => Ok(DocumentFormat::Yaml),
            Some(Self::Json) => Ok(DocumentFormat::Json),
            Some(Self::Table) => anyhow::bail!("`export` writes yaml (the default) or json, not a table"),
        }
    }
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
    /// Write the whole configuration as a declaration file for `apply` (YAML, or -o json).
    #[command(after_help = declarative::EXPORT_HELP)]
    Export,
    /// Show what `apply -f FILE` would change, without changing it.
    #[command(after_help = declarative::DIFF_HELP)]
    Diff(DeclarationFile),
    /// Make the control plane match a declaration file, in one revision.
    #[command(after_help = declarative::APPLY_HELP)]
    Apply(DeclarationFile),
    /// Contexts: named control planes (URL, CA file, token file) to connect to, as kubeconfig
    /// has them.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script; bash and zsh also complete ids, asking the control plane.
    #[command(
        after_help = "Examples:\n  gatehousectl completions bash > /etc/bash_completion.d/gatehousectl\n  gatehousectl completions zsh > \"${fpath[1]}/_gatehousectl\"\n\nIds (cert show <TAB>, api put --client-cert <TAB>, ...) come from the control plane the\ncommand line or the current context names: `gatehousectl __complete KIND` lists them."
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The ids of one kind, one a line, for the completion scripts (nothing on any error).
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(value_enum)]
        kind: IdKind,
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
