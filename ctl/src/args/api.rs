//! `gatehousectl api …`: APIs, their backend trust, policy and client certificate.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::WriteFlags;

/// The verbs of `api`.
#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Create or replace a whole API: trust settings left out return to their defaults (the
    /// binding is kept unless given). To change some fields only, use `api update`.
    #[command(
        after_help = "Examples:\n  gatehousectl api put orders --path /orders --service-url https://orders.internal:8443 --client-cert orders-client\n  gatehousectl api put orders-eu --path /orders --service-url https://orders-eu.internal:8443 --host eu.example.com\n\nTwo APIs may share a path only when both list hostnames (--host) and no hostname is in both.\nOn an existing API, what the replace removed or reset is printed on stderr."
    )]
    Put {
        id: String,
        /// Path prefix on the data planes, e.g. /orders.
        #[arg(long)]
        path: String,
        /// Backend base URL, https://host:port[/base] (or http://).
        #[arg(long)]
        service_url: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[command(flatten)]
        credentials: OptionalCredential,
        /// Trust this CA certificate (id from `ca upload`) for the backend; repeatable.
        #[arg(long = "ca")]
        ca_ids: Vec<String>,
        /// Answer only on this hostname (from `hostname put`); repeatable. Without --host the
        /// API answers on any host.
        #[arg(long = "host", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Trust only the --ca certificates, not the system roots.
        #[arg(long)]
        no_system_roots: bool,
        /// Do not validate the backend's certificate chain (self-signed backends). The backend
        /// must still prove it holds its certificate's key.
        #[arg(long)]
        no_verify_chain: bool,
        /// Do not check that the backend's certificate names its host.
        #[arg(long)]
        no_verify_name: bool,
        /// Callers need a subscription key (`subscription create`) for this API or all APIs.
        #[arg(long)]
        subscription_required: bool,
        /// The header callers send the key in [default: Ocp-Apim-Subscription-Key]; the query
        /// parameter subscription-key works too.
        #[arg(long, value_name = "NAME", default_value = "")]
        subscription_key_header: String,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Change only the fields given (the others stay as they are).
    #[command(
        after_help = "Examples:\n  gatehousectl api update orders --display-name \"Orders v2\"\n  gatehousectl --wait api update orders --ca orders-ca --ca new-ca --verify-name true\n  gatehousectl api update orders --no-client-cert\n  gatehousectl api update orders --host api.example.com --host api.example.org\n  gatehousectl api update orders --no-host\n  gatehousectl --wait api update orders --subscription-required true --subscription-key-header X-Api-Key"
    )]
    Update {
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Path prefix on the data planes, e.g. /orders.
        #[arg(long)]
        path: Option<String>,
        /// Backend base URL, https://host:port[/base].
        #[arg(long)]
        service_url: Option<String>,
        #[command(flatten)]
        credentials: OptionalCredential,
        /// Present no client certificate.
        #[arg(long, conflicts_with_all = ["client_cert", "thumbprint"])]
        no_client_cert: bool,
        /// The CA certificates trusted for the backend (replaces the list; repeatable).
        #[arg(long = "ca")]
        ca_ids: Vec<String>,
        /// Trust no API-specific CA certificates.
        #[arg(long, conflicts_with = "ca_ids")]
        no_ca: bool,
        /// The hostnames the API answers on (replaces the list; repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Answer on any host (clears the hostnames).
        #[arg(long, conflicts_with = "hostnames")]
        no_host: bool,
        /// Trust the system roots too.
        #[arg(long)]
        system_roots: Option<bool>,
        /// Validate the backend's certificate chain.
        #[arg(long)]
        verify_chain: Option<bool>,
        /// Check that the backend's certificate names its host.
        #[arg(long)]
        verify_name: Option<bool>,
        /// Whether callers need a subscription key.
        #[arg(long, value_name = "true|false")]
        subscription_required: Option<bool>,
        /// The header callers send the key in ("" for Ocp-Apim-Subscription-Key).
        #[arg(long, value_name = "NAME")]
        subscription_key_header: Option<String>,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// List APIs.
    #[command(after_help = "Example:\n  gatehousectl api list -o json")]
    List,
    /// Show one API, with its backend trust and etag.
    #[command(after_help = "Example:\n  gatehousectl api show orders")]
    Show { id: String },
    /// Delete an API.
    #[command(after_help = "Example:\n  gatehousectl --wait api delete orders")]
    Delete {
        id: String,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Show the API's policy XML, or replace it with --set.
    #[command(
        after_help = "Examples:\n  gatehousectl api policy orders > policy.xml\n  gatehousectl api policy orders --set policy.xml\n\nSupported in <inbound>: <authentication-certificate thumbprint|certificate-id>, <authentication-basic username password>,\n<set-header name exists-action=override|skip|append|delete [secret=true]><value>..</value></set-header>.\nSecrets read back as ******** ; setting that mask back keeps the stored secret."
    )]
    Policy {
        id: String,
        /// Policy XML file to set ("-" for stdin).
        #[arg(long)]
        set: Option<PathBuf>,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Choose the client certificate the gateway presents to the API's backend.
    #[command(
        after_help = "Examples:\n  gatehousectl api credentials orders --client-cert orders-client\n  gatehousectl api credentials orders --thumbprint 8D292672A59E787D257B77E4DF2D9D6FD261AF68\n  gatehousectl api credentials orders --none"
    )]
    Credentials {
        id: String,
        #[command(flatten)]
        credential: Credential,
        #[command(flatten)]
        write: WriteFlags,
        /// Allow binding a certificate that has expired.
        #[arg(long)]
        allow_expired: bool,
    },
}

/// The client certificate `api credentials` binds: exactly one of the three.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Credential {
    /// Present the certificate with this ID (follows its rotation).
    #[arg(long)]
    pub client_cert: Option<String>,
    /// Present exactly the certificate with this thumbprint.
    #[arg(long)]
    pub thumbprint: Option<String>,
    /// Present no client certificate.
    #[arg(long)]
    pub none: bool,
}

/// The client certificate `api put` and `api update` bind, if given.
#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
pub struct OptionalCredential {
    /// Present the certificate with this ID (follows its rotation).
    #[arg(long)]
    pub client_cert: Option<String>,
    /// Present exactly the certificate with this thumbprint.
    #[arg(long)]
    pub thumbprint: Option<String>,
}
