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
