//! `gatehousectl token …`: bearer tokens for operators and data planes.

use clap::{Subcommand, ValueEnum};

/// The verbs of `token`.
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

/// What a token may do (`--role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    // No doc comments on the values: clap would show them in --help.
    Operator,
    Gateway,
}
