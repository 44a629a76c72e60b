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
    /// Link ID to files on the CONTROL PLANE's host (cert-manager, Vault Agent, certbot): read
    /// now with the checks of an upload, then watched; a valid change becomes a new revision,
    /// an invalid one keeps the last good certificate. A later `cert upload` to ID drops the link.
    #[command(
        after_help = "Examples:\n  gatehousectl cert link orders-client --pfx /etc/gatehouse/certs/orders.pfx --password-file pw.txt\n  gatehousectl cert link orders-client --cert-pem /etc/certs/orders/tls.crt --key-pem /etc/certs/orders/tls.key\n\nPaths are absolute paths on the control plane's host; the password is read here and sealed in the store."
    )]
    Link {
        id: String,
        /// PKCS#12 file on the control plane's host (absolute path).
        #[arg(long, conflicts_with_all = ["cert_pem", "key_pem"], required_unless_present = "cert_pem")]
        pfx: Option<String>,
        /// PEM certificate with its chain, on the control plane's host (absolute path).
        #[arg(long, requires = "key_pem")]
        cert_pem: Option<String>,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted), on the control plane's host.
        #[arg(long, requires = "cert_pem")]
        key_pem: Option<String>,
        /// File (here) holding the PFX password (one trailing newline is ignored).
        #[arg(long, requires = "pfx")]
        password_file: Option<PathBuf>,
        /// The PFX has an empty password.
        #[arg(long, requires = "pfx", conflicts_with = "password_file")]
        empty_password: bool,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow linking, in place of a certificate APIs use, files holding an expired one.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Re-read a linked certificate's files now.
    #[command(after_help = "Example:\n  gatehousectl cert refresh orders-client")]
    Refresh { id: String },
    /// List certificates with thumbprint, expiry and the APIs using each.
    #[command(
        after_help = "Examples:\n  gatehousectl cert list\n  gatehousectl cert list --expiring-within 30d -o json\n  gatehousectl cert list --expiring-within 30d --fail   # exit 1 if any (for cron alerts)\n  gatehousectl cert list --refresh-failed"
    )]
    List {
        /// Only certificates that expire within this long (e.g. 30d, 12h, 2w), or have expired.
        #[arg(long, value_parser = parse_duration)]
        expiring_within: Option<std::time::Duration>,
        /// Exit with status 1 when the list is not empty.
        #[arg(long, requires = "expiring_within")]
        fail: bool,
        /// Only linked certificates whose last refresh from their files failed.
        #[arg(long)]
        refresh_failed: bool,
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
