//! `gatehousectl gateway …`: the data planes the control plane knows.

use clap::Subcommand;

/// The verbs of `gateway`.
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// List data planes and the revision each has applied.
    #[command(after_help = "Example:\n  gatehousectl gateway list -o json")]
    List,
}
