//! `gatehousectl config …`: contexts, the named control planes kept in the user's config file.

use clap::Subcommand;

/// The verbs of `config`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Create or update a context: a control plane (--server) with the CA (--ca-file) and the
    /// operator token file (--token-file) to reach it. Only the token file's path is stored,
    /// never the token; relative paths are stored absolute. On an existing context, flags left
    /// out keep their values. The flags are taken from the command line only, not from
    /// GATEHOUSE_CTL_*.
    #[command(
        after_help = "Examples:\n  gatehousectl config set-context prod --server https://cp.example.com:7400 --ca-file prod-ca.pem --token-file ~/.gatehouse/prod.token\n  gatehousectl config set-context local --server https://127.0.0.1:7400 --ca-file gatehouse-data/tls/ca.pem --token-file gatehouse-data/operator.token\n  gatehousectl config use-context prod\n\nThe file is $GATEHOUSE_CTL_CONFIG, else $XDG_CONFIG_HOME/gatehouse/config.toml, else\n~/.config/gatehouse/config.toml; it is written 0600, and refused if others may read or change it."
    )]
    SetContext {
        /// Letters, digits, '-', '_', '.'.
        name: String,
    },
    /// Make a context the current one: commands without --context (or connection flags) use it.
    #[command(after_help = "Example:\n  gatehousectl config use-context prod")]
    UseContext { name: String },
    /// List contexts; the current one is marked with '*'.
    #[command(after_help = "Example:\n  gatehousectl config get-contexts -o json")]
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Delete a context (if it is the current one, no context is current afterwards).
    #[command(after_help = "Example:\n  gatehousectl config delete-context old-lab")]
    DeleteContext { name: String },
}
