//! Running a parsed command line: one module per noun, each mapping its verbs to Management
//! RPCs and returning the revision its write created, if it wrote.

mod api;
mod apply;
mod ca;
mod cert;
mod complete;
mod config;
mod export;
mod gateway;
mod hostname;
mod named_value;
mod subscription;
mod token;

use std::process::ExitCode;

use crate::args::{Cli, Noun, OutputFlag};
use crate::completion;
use crate::connection::Server;
use crate::rollout::wait_for_rollout;

/// Runs the command `cli` holds; with --wait, then waits for the data planes to apply what
/// it wrote. A connection failure's error says which flag likely fixes it. The exit status is
/// success but for `diff` finding differences (1, as diff(1)).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // These need no control plane (or, for __complete, fail quietly without one).
    match &cli.command {
        Noun::Completions { shell } => return completion::print_script(*shell).map(|()| ExitCode::SUCCESS),
        Noun::Config(command) => return config::run(&cli, command).map(|()| ExitCode::SUCCESS),
        Noun::Complete { kind } => {
            complete::run(&cli, *kind).await;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let server = Server::from_cli(&cli)?;
    let result = run_command(&server, cli.command, cli.output, cli.wait, cli.timeout).await;
    result.map_err(|error| server.explain(error))
}

async fn run_command(
    server: &Server,
    command: Noun,
    output: Option<OutputFlag>,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    if let Noun::Export = command {
        export::run(server, OutputFlag::document(output)?).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let format = OutputFlag::format(output)?;
    let revision = match command {
        Noun::Cert(command) => cert::run(server, format, command).await?,
        Noun::Api(command) => api::run(server, format, command).await?,
        Noun::Ca(command) => ca::run(server, format, command).await?,
        Noun::Hostname(command) => hostname::run(server, format, command).await?,
        Noun::Token(command) => token::run(server, format, command).await?,
        Noun::Subscription(command) => subscription::run(server, format, command).await?,
        Noun::NamedValue(command) => named_value::run(server, format, command).await?,
        Noun::Gateway(command) => gateway::run(server, format, command).await?,
        Noun::Apply(file) => apply::apply(server, format, file).await?,
        Noun::Diff(file) => return apply::diff(server, format, file).await,
        Noun::Completions { .. } | Noun::Config(_) | Noun::Complete { .. } | Noun::Export => {
            unreachable!("handled above")
        }
    };
    if let (true, Some(revision)) = (wait, revision) {
        wait_for_rollout(server, format, revision, timeout).await?;
    }
    Ok(ExitCode::SUCCESS)
}
