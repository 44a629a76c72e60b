//! Running a parsed command line: one module per noun, each mapping its verbs to Management
//! RPCs and returning the revision its write created, if it wrote.

mod api;
mod ca;
mod cert;
mod gateway;
mod hostname;
mod named_value;
mod subscription;
mod token;

use crate::args::{Cli, Format, Noun};
use crate::connection::Server;
use crate::output;
use crate::rollout::wait_for_rollout;

/// Runs the command `cli` holds; with --wait, then waits for the data planes to apply what
/// it wrote. A connection failure's error says which flag likely fixes it.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Noun::Completions { shell } = cli.command {
        output::print_completions(shell);
        return Ok(());
    }
    let server = Server::from_cli(&cli)?;
    let result = run_command(&server, cli.command, cli.output, cli.wait, cli.timeout).await;
    result.map_err(|error| server.explain(error))
}

async fn run_command(
    server: &Server,
    command: Noun,
    format: Format,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let revision = match command {
        Noun::Cert(command) => cert::run(server, format, command).await?,
        Noun::Api(command) => api::run(server, format, command).await?,
        Noun::Ca(command) => ca::run(server, format, command).await?,
        Noun::Hostname(command) => hostname::run(server, format, command).await?,
        Noun::Token(command) => token::run(server, format, command).await?,
        Noun::Subscription(command) => subscription::run(server, format, command).await?,
        Noun::NamedValue(command) => named_value::run(server, format, command).await?,
        Noun::Gateway(command) => gateway::run(server, format, command).await?,
        Noun::Completions { .. } => unreachable!("handled above"),
    };
    match (wait, revision) {
        (true, Some(revision)) => wait_for_rollout(server, format, revision, timeout).await,
        _ => Ok(()),
    }
}
