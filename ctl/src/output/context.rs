//! Contexts: the table `config get-contexts` prints, and the confirmations of the other verbs.

use std::path::Path;

use serde_json::{Value, json};

use super::print_json;
use super::text::{dash, table};
use crate::args::Format;
use crate::contexts::Contexts;

/// What a `config` verb did to a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextChange {
    /// `set-context` made it.
    Created,
    /// `set-context` changed it.
    Updated,
    /// `use-context` made it the current one.
    Current,
    /// `delete-context` removed it; no context is current if it was.
    Deleted {
        /// It was the current context.
        was_current: bool,
    },
}

/// Contexts, as `config get-contexts` prints them: '*' marks the current one.
pub fn print_contexts(format: Format, contexts: &Contexts) {
    let current = contexts.current_context.as_deref();
    let path = |p: Option<&Path>| p.map(|p| p.display().to_string()).unwrap_or_default();
    match format {
        Format::Json => print_json(&Value::Array(
            contexts
                .contexts
                .iter()
                .map(|(name, context)| {
                    json!({
                        "name": name,
                        "current": current == Some(name.as_str()),
                        "server": context.server,
                        "ca_file": path(context.ca_file.as_deref()),
                        "token_file": path(context.token_file.as_deref()),
                    })
                })
                .collect(),
        )),
        Format::Table => {
            let rows: Vec<Vec<String>> = contexts
                .contexts
                .iter()
                .map(|(name, context)| {
                    vec![
                        if current == Some(name.as_str()) { "*".into() } else { String::new() },
                        name.clone(),
                        context.server.clone(),
                        dash(&path(context.ca_file.as_deref())),
                        dash(&path(context.token_file.as_deref())),
                    ]
                })
                .collect();
            print!("{}", table(&["CURRENT", "NAME", "SERVER", "CA FILE", "TOKEN FILE"], &rows));
        }
    }
}

/// The current context's name, alone on its line (for `$(gatehousectl config current-context)`).
pub fn print_current_context(format: Format, name: &str) {
    match format {
        Format::Json => print_json(&json!({ "current_context": name })),
        Format::Table => println!("{name}"),
    }
}

/// The confirmation of `set-context`, `use-context` or `delete-context`; `path` is the file.
pub fn print_context_change(format: Format, name: &str, change: ContextChange, path: &Path) {
    let what = match change {
        ContextChange::Created => "created",
        ContextChange::Updated => "updated",
        ContextChange::Current => "current",
        ContextChange::Deleted { .. } => "deleted",
    };
    match format {
        Format::Json => print_json(&json!({ "context": name, "change": what, "file": path.display().to_string() })),
        Format::Table => match change {
            ContextChange::Created | ContextChange::Updated => {
                println!("context {name} {what} in {}", path.display());
            }
            ContextChange::Current => println!("switched to context {name}"),
            ContextChange::Deleted { was_current } => {
                println!("context {name} deleted");
                if was_current {
                    eprintln!(
                        "{name} was the current context: no context is current now (gatehousectl config use-context NAME)"
                    );
                }
            }
        },
    }
}
