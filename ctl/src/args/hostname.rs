//! `gatehousectl hostname …`: the hostnames API clients reach over HTTPS, each with its server
//! certificate.

use clap::Subcommand;

use super::WriteFlags;

/// The verbs of `hostname`.
#[derive(Subcommand, Debug)]
pub enum HostnameCommand {
    /// Create or replace a hostname: exact (api.example.com) or wildcard (*.example.com), served
    /// with an uploaded certificate that has serverAuth and a subjectAltName covering the name.
    #[command(
        after_help = "Examples:\n  gatehousectl cert upload api-server --pfx api.example.com.pfx --password-file pw.txt\n  gatehousectl hostname put api.example.com --cert api-server --default\n  gatehousectl --wait hostname put '*.example.com' --cert wildcard-server --negotiate-client-certificate --client-ca partners-ca\n  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443 --host api.example.com\n\nAt most one hostname is the default (served to clients that send no SNI or an unknown one):\nto move the default, put the current one again without --default first.\nRe-uploading the certificate (cert upload ID) rotates it for every hostname served with it."
    )]
    Put {
        /// The DNS name; stored lowercase. Quote a wildcard ('*.example.com') in the shell.
        name: String,
        /// The id of the uploaded certificate (cert upload) to serve; follows its rotation.
        #[arg(long = "cert", value_name = "ID")]
        certificate_id: String,
        /// Serve this hostname to clients that send no SNI or an unknown one.
        #[arg(long)]
        default: bool,
        /// Ask API clients for a certificate during the TLS handshake.
        #[arg(long)]
        negotiate_client_certificate: bool,
        /// A CA certificate (id from `ca upload`) client certificates may chain to; repeatable.
        #[arg(long = "client-ca", value_name = "ID")]
        client_ca_ids: Vec<String>,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow a server certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// List hostnames with their certificate, expiry and the APIs on each.
    #[command(after_help = "Example:\n  gatehousectl hostname list -o json")]
    List,
    /// Show one hostname.
    #[command(after_help = "Example:\n  gatehousectl hostname show api.example.com")]
    Show { name: String },
    /// Delete a hostname (refused while an API lists it).
    #[command(after_help = "Example:\n  gatehousectl --wait hostname delete api.example.com")]
    Delete {
        name: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}
