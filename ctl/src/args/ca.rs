//! `gatehousectl ca …`: CA certificates for backend trust.

use std::path::PathBuf;

use clap::Subcommand;

use super::WriteFlags;

/// The verbs of `ca`.
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
