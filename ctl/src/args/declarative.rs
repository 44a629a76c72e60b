//! `gatehousectl export`, `diff` and `apply`: the whole configuration as one declaration file.

use std::path::PathBuf;

use clap::Args;

/// The declaration file `diff` and `apply` read.
#[derive(Args, Debug)]
pub struct DeclarationFile {
    /// The declaration (YAML or JSON, as `export` writes it); "-" for stdin. Files it names
    /// (pfx, passwordFile, valueFile, certificateFile, crlFile) are relative to its folder.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Delete what the file does not declare (subscriptions, APIs, hostnames, named values,
    /// certificates, CA certificates).
    #[arg(long)]
    pub prune: bool,
}

/// `export`'s help; it takes no flags but the global ones.
pub const EXPORT_HELP: &str = "Examples:
  gatehousectl export > gatehouse.yaml
  gatehousectl export -o json > gatehouse.json

Never exported: private keys, PFX passwords, secret named values' values, secrets in policies
(shown as ********, which apply reads as \"keep the stored one\"), subscription keys.";

/// `diff`'s help.
pub const DIFF_HELP: &str = "Examples:
  gatehousectl diff -f gatehouse.yaml
  gatehousectl diff -f gatehouse.yaml --prune

One line per change: '+ api orders' (create), '~ hostname api.example.com' (update),
'- certificate old-client' (delete, with --prune). Exit status: 0 when nothing would change,
1 when something would, 2 or more on an error (as diff(1)).";

/// `apply`'s help.
pub const APPLY_HELP: &str = "Examples:
  gatehousectl apply -f gatehouse.yaml
  gatehousectl --wait apply -f gatehouse.yaml --prune

The whole file is applied as one revision, or refused whole with every error listed.
Applying what is stored already makes no revision (\"no changes\").";
