//! `config`: contexts in the user's config file. Nothing here talks to a control plane.

use anyhow::{anyhow, bail};

use crate::args::{Cli, ConfigCommand, OutputFlag};
use crate::contexts::{self, Context, ContextFile};
use crate::output::{self, ContextChange};

/// Runs a `config` verb.
pub fn run(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    let format = OutputFlag::format(cli.output)?;
    let mut file = ContextFile::load_default()?;
    match command {
        ConfigCommand::SetContext { name } => {
            contexts::check_name(name)?;
            // Only what was typed: a GATEHOUSE_CTL_* variable in this shell is not meant to
            // be written into a context.
            let typed = &cli.typed;
            let server = cli.server.clone().filter(|_| typed.server);
            if let Some(url) = &server {
                check_url(url)?;
            }
            let ca_file = match cli.ca_file.as_deref().filter(|_| typed.ca_file) {
                Some(path) => Some(contexts::absolute_file(path, "CA file")?),
                None => None,
            };
            let token_file = match cli.token_file.as_deref().filter(|_| typed.token_file) {
                Some(path) => Some(contexts::absolute_file(path, "token file")?),
                None => None,
            };
            let change = match file.contexts.contexts.get_mut(name) {
                Some(context) => {
                    if server.is_none() && ca_file.is_none() && token_file.is_none() {
                        bail!("nothing to change in context '{name}': give --server, --ca-file or --token-file");
                    }
                    context.server = server.unwrap_or(context.server.clone());
                    context.ca_file = ca_file.or(context.ca_file.take());
                    context.token_file = token_file.or(context.token_file.take());
                    ContextChange::Updated
                }
                None => {
                    let server = server
                        .ok_or_else(|| anyhow!("context '{name}' is new: give its control plane with --server URL"))?;
                    file.contexts.contexts.insert(name.clone(), Context { server, ca_file, token_file });
                    ContextChange::Created
                }
            };
            file.save()?;
            output::print_context_change(format, name, change, &file.path);
        }
        ConfigCommand::UseContext { name } => {
            file.get(name)?;
            file.contexts.current_context = Some(name.clone());
            file.save()?;
            output::print_context_change(format, name, ContextChange::Current, &file.path);
        }
        ConfigCommand::GetContexts => output::print_contexts(format, &file.contexts),
        ConfigCommand::CurrentContext => {
            let name = file.contexts.current_context.as_deref().ok_or_else(|| {
                anyhow!("no context is current (choose one with gatehousectl config use-context NAME)")
            })?;
            output::print_current_context(format, name);
        }
        ConfigCommand::DeleteContext { name } => {
            file.get(name)?;
            file.contexts.contexts.remove(name);
            let was_current = file.contexts.current_context.as_deref() == Some(name.as_str());
            if was_current {
                file.contexts.current_context = None;
            }
            file.save()?;
            output::print_context_change(format, name, ContextChange::Deleted { was_current }, &file.path);
        }
    }
    Ok(())
}

/// A context's URL is checked when it is set, not first when it is used.
fn check_url(url: &str) -> anyhow::Result<()> {
    let valid = (url.starts_with("https://") || url.starts_with("http://"))
        && url.parse::<tonic::transport::Uri>().is_ok_and(|uri| uri.authority().is_some());
    if !valid {
        bail!("'{url}' is not a control plane URL: give https://HOST:PORT (or http:// for a --plaintext one)");
    }
    Ok(())
}
