//! `gatehousectl ca …`: CA certificates for backend trust.

use std::path::PathBuf;

use clap::Subcommand;

use super::WriteFlags;

/// The verbs of `ca`.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Upload a CA certificate (PEM or DER; must have basicConstraints CA:TRUE), optionally with
    /// its CRL; or, with --crl alone, replace the CRL of the CA certificate stored under ID.
    #[command(
        after_help = "Examples:\n  gatehousectl ca upload internal-root --file root-ca.pem\n  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443 --ca internal-root\n  gatehousectl ca upload partners-ca --file partners-ca.pem --crl partners-ca.crl\n  gatehousectl ca upload partners-ca --crl partners-ca.crl   # a new CRL for the stored CA"
    )]
    Upload {
        id: String,
        /// The CA certificate (PEM or DER).
        #[arg(long, required_unless_present = "crl")]
        file: Option<PathBuf>,
        /// Its certificate revocation list (PEM or DER), issued and signed by it: what
        /// validate-client-certificate's validate-revocation checks client certificates against.
        #[arg(long)]
        crl: Option<PathBuf>,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Link ID to a CA certificate file (PEM or DER) on the CONTROL PLANE's host: read now with
    /// the checks of an upload, then watched like `cert link`. A later `ca upload` of another
    /// certificate to ID drops the link.
    #[command(after_help = "Example:\n  gatehousectl ca link internal-root --file /etc/pki/internal/root-ca.pem")]
    Link {
        id: String,
        /// Absolute path of the CA certificate on the control plane's host.
        #[arg(long)]
        file: String,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Re-read a linked CA certificate's file now.
    Refresh { id: String },
    /// List CA certificates and the APIs that trust each.
    #[command(after_help = "Examples:\n  gatehousectl ca list\n  gatehousectl ca list --refresh-failed -o json")]
    List {
        /// Only linked CA certificates whose last refresh from their file failed.
        #[arg(long)]
        refresh_failed: bool,
    },
    /// Delete a CA certificate (refused while an API trusts it).
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}
