//! `gatehousectl cert …`: client certificates, and where a PFX password comes from.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{WriteFlags, parse_duration};

/// The verbs of `cert`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Upload a .pfx/.p12 file; uploading to an existing ID rotates that certificate.
    #[command(
        after_help = "Example:\n  gatehousectl cert upload orders-client --pfx client.pfx --password-file pw.txt\n  cat pw.txt | gatehousectl cert upload orders-client --pfx client.pfx --password-stdin"
    )]
    Upload {
        id: String,
        /// The PKCS#12 file.
        #[arg(long)]
        pfx: PathBuf,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow rotating a certificate that APIs use to one that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// List certificates with thumbprint, expiry and the APIs using each.
    #[command(
        after_help = "Examples:\n  gatehousectl cert list\n  gatehousectl cert list --expiring-within 30d -o json\n  gatehousectl cert list --expiring-within 30d --fail   # exit 1 if any (for cron alerts)"
    )]
    List {
        /// Only certificates that expire within this long (e.g. 30d, 12h, 2w), or have expired.
        #[arg(long, value_parser = parse_duration)]
        expiring_within: Option<std::time::Duration>,
        /// Exit with status 1 when the list is not empty.
        #[arg(long, requires = "expiring_within")]
        fail: bool,
    },
    /// Show one certificate.
    #[command(after_help = "Example:\n  gatehousectl cert show orders-client -o json")]
    Show { id: String },
    /// Delete a certificate (refused while an API uses it).
    #[command(after_help = "Example:\n  gatehousectl cert delete old-client --if-match 12")]
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}

/// The PFX password comes from a file or stdin, never from the command line.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// File holding the password (one trailing newline is ignored).
    #[arg(long, env = "GATEHOUSE_CTL_PFX_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The file has an empty password.
    #[arg(long)]
    pub empty_password: bool,
}
