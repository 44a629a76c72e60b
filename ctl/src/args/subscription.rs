//! `gatehousectl subscription …`: the keys API clients present to APIs that require a
//! subscription.

use clap::{Args, Subcommand};

use super::WriteFlags;

/// The verbs of `subscription`.
#[derive(Subcommand, Debug)]
pub enum SubscriptionCommand {
    /// Create a subscription; its primary and secondary keys are printed once.
    #[command(
        after_help = "Examples:\n  gatehousectl subscription create partner-a --api orders --display-name \"Partner A\"\n  gatehousectl -o json subscription create internal --all-apis > internal-keys.json\n  gatehousectl api update orders --subscription-required true\n\nClients send a key in the API's key header (Ocp-Apim-Subscription-Key unless the API names\nanother) or in the query parameter subscription-key. The keys are stored only as SHA-256\nhashes: keep them now, or regenerate one later."
    )]
    Create {
        /// Letters, digits, '-', '_', '.'.
        name: String,
        #[command(flatten)]
        scope: ScopeFlags,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List subscriptions (never their keys).
    #[command(after_help = "Example:\n  gatehousectl subscription list -o json")]
    List,
    /// Show one subscription (never its keys).
    #[command(after_help = "Example:\n  gatehousectl subscription show partner-a")]
    Show { name: String },
    /// Suspend a subscription: its keys get 403 until it is resumed.
    #[command(after_help = "Example:\n  gatehousectl --wait subscription suspend partner-a")]
    Suspend {
        name: String,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Resume a suspended subscription.
    #[command(after_help = "Example:\n  gatehousectl --wait subscription resume partner-a")]
    Resume {
        name: String,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Replace one key with a new one, printed once; the other key keeps working.
    #[command(
        after_help = "Examples:\n  gatehousectl --wait subscription regenerate partner-a --secondary\n  (clients move to the secondary key)\n  gatehousectl --wait subscription regenerate partner-a --primary"
    )]
    Regenerate {
        name: String,
        #[command(flatten)]
        key: KeyFlags,
        #[command(flatten)]
        write: WriteFlags,
    },
    /// Delete a subscription; its keys stop working.
    #[command(after_help = "Example:\n  gatehousectl --wait subscription delete partner-a")]
    Delete {
        name: String,
        #[command(flatten)]
        write: WriteFlags,
    },
}

/// Which APIs the keys open: exactly one of the two, so a key for every API is never made by
/// leaving a flag out.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ScopeFlags {
    /// The API (id) the keys open.
    #[arg(long, value_name = "ID")]
    pub api: Option<String>,
    /// The keys open every API, present and future.
    #[arg(long)]
    pub all_apis: bool,
}

/// Which key `subscription regenerate` replaces: exactly one of the two.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct KeyFlags {
    /// The primary key.
    #[arg(long)]
    pub primary: bool,
    /// The secondary key.
    #[arg(long)]
    pub secondary: bool,
}
