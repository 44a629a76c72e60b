//! `gatehousectl nv …`: named values, the text policies name as `{{name}}`.

use std::path::PathBuf;

use clap::Subcommand;

use super::WriteFlags;

/// The verbs of `nv`.
#[derive(Subcommand, Debug)]
pub enum NamedValueCommand {
    /// Create or replace a named value; APIs whose policy names it get the new value as a new
    /// revision. The value is read from a file or stdin, never taken from the command line
    /// (where shell history and `ps` would show it).
    #[command(
        after_help = "Examples:\n  gatehousectl nv put backend-user --value-file user.txt\n  gatehousectl --wait nv put backend-pw --secret --value-file pw.txt\n  vault kv get -field=password secret/orders | gatehousectl --wait nv put backend-pw --secret --value-file -\n\nPolicies name it as {{backend-pw}} in <authentication-basic username password> and <set-header><value>.\nA secret value is sealed at rest, and every read shows ******** instead.\nA value that would break a policy naming it (':' in a Basic username, say) is refused, naming the API."
    )]
    Put {
        /// Letters, digits, '-', '_', '.'; at most 256.
        name: String,
        /// File holding the value ("-" for stdin); one trailing newline is ignored. At most 4096
        /// bytes, no control characters.
        #[arg(long, value_name = "FILE")]
        value_file: PathBuf,
        /// Write-only: sealed at rest, and every read shows ******** instead.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Link NAME to a file on the CONTROL PLANE's host (Vault Agent, a Kubernetes Secret volume):
    /// read now with the rules of a put (one trailing newline ignored), then re-read every
    /// --source-poll; a valid change becomes a new revision, an invalid or missing file keeps the
    /// last good value. A later `nv put` to NAME drops the link.
    #[command(
        after_help = "Examples:\n  gatehousectl --wait nv link backend-pw --file /vault/secrets/orders-pw --secret\n  gatehousectl nv link backend-user --file /etc/gatehouse/secrets/orders/username\n\nThe path is an absolute path on the control plane's host; the control plane reads the file, gatehousectl never does.\nnv show NAME shows the file and how its last read went (a failed one says why, never the value)."
    )]
    Link {
        /// Letters, digits, '-', '_', '.'; at most 256.
        name: String,
        /// File on the control plane's host (absolute path) holding the value.
        #[arg(long, value_name = "PATH")]
        file: String,
        /// Write-only: sealed at rest, and every read shows ******** instead.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Re-read a linked named value's file now.
    #[command(after_help = "Example:\n  gatehousectl --wait nv refresh backend-pw")]
    Refresh { name: String },
    /// List named values with the APIs whose policy names each (secret values masked).
    #[command(after_help = "Example:\n  gatehousectl nv list -o json")]
    List,
    /// Show one named value (masked if secret), with its etag.
    #[command(after_help = "Example:\n  gatehousectl nv show backend-user -o json")]
    Show { name: String },
    /// Delete a named value (refused while a policy names it).
    #[command(after_help = "Example:\n  gatehousectl --wait nv delete old-token")]
    Delete {
        name: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}
