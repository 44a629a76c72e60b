//! Contexts, as kubeconfig has them: named control planes (URL, CA file, operator token file)
//! kept in the user's config file, one of them current, so that commands need no connection
//! flags.
//!
//! The file names a token file and never holds a token: config files get copied, shown and
//! backed up far more freely than secrets.

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};

pub use file::config_path;

/// The config file: every context, and which one is current.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Contexts {
    /// The context commands use when no --context is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// Every context, by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One control plane and how to reach it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// The control plane's URL.
    pub server: String,
    /// The CA certificate (PEM) to verify it with; none: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The file holding the operator token (the token itself is never stored here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// The contexts and the file they were read from (and are written back to).
#[derive(Debug)]
pub struct ContextFile {
    /// Where the file is.
    pub path: PathBuf,
    /// What it holds; empty when the file does not exist yet.
    pub contexts: Contexts,
}

/// The context a command connects with: the one `--context` (or GATEHOUSE_CTL_CONTEXT) names,
/// else the current one; `None` when there is neither.
pub fn selected(name: Option<&str>) -> anyhow::Result<Option<(String, Context)>> {
    let Some(path) = config_path() else {
        return match name {
            Some(name) => Err(anyhow!(
                "no context '{name}': there is no config file, since neither GATEHOUSE_CTL_CONFIG, XDG_CONFIG_HOME nor HOME is set"
            )),
            None => Ok(None),
        };
    };
    let file = ContextFile::load(path)?;
    let Some(name) = name.map(str::to_string).or_else(|| file.contexts.current_context.clone()) else {
        return Ok(None);
    };
    let context = file.get(&name)?.clone();
    Ok(Some((name, context)))
}

// === impl ContextFile ===

impl ContextFile {
    /// Reads the file at `path`; a missing file holds no contexts. A file others may read or
    /// write is refused, as ssh refuses such a key.
    pub fn load(path: PathBuf) -> anyhow::Result<Self> {
        let contexts = match file::read_private(&path)? {
            Some(text) => toml::from_str(&text).map_err(|error| {
                anyhow!("{} is not a valid gatehousectl config file: {}", path.display(), error.message())
            })?,
            None => Contexts::default(),
        };
        Ok(Self { path, contexts })
    }

    /// The file in the user's config directory (see [`config_path`]).
    pub fn load_default() -> anyhow::Result<Self> {
        let path = config_path().ok_or_else(|| {
            anyhow!("cannot tell where the config file goes: set HOME, XDG_CONFIG_HOME or GATEHOUSE_CTL_CONFIG")
        })?;
        Self::load(path)
    }

    /// Writes the file back: private to its owner (0600 in a 0700 directory), replaced at once
    /// so that a crash never leaves half a file.
    pub fn save(&self) -> anyhow::Result<()> {
        let text = toml::to_string(&self.contexts).context("cannot write the contexts as TOML")?;
        file::write_private(&self.path, &format!("{HEADER}{text}"))
    }

    /// The context `name`; the error lists the ones there are.
    pub fn get(&self, name: &str) -> anyhow::Result<&Context> {
        self.contexts.contexts.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.contexts.contexts.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none yet".to_string() } else { known.join(", ") };
            anyhow!(
                "no context '{name}' in {} (contexts: {known}; create one with gatehousectl config set-context)",
                self.path.display()
            )
        })
    }
}

/// The top of every file gatehousectl writes.
const HEADER: &str = "# gatehousectl contexts: edit with `gatehousectl config set-context|use-context|delete-context`.\n\
# Token files are named here; tokens are never stored in this file.\n\n";

// === impl Context ===

impl Context {
    /// The CA file, checked to exist; the error names the context.
    pub fn existing_ca_file(&self, name: &str) -> anyhow::Result<Option<PathBuf>> {
        match &self.ca_file {
            Some(path) if !path.is_file() => {
                bail!("context '{name}': its CA file {} does not exist", path.display())
            }
            ca_file => Ok(ca_file.clone()),
        }
    }

    /// The operator token, read from the context's token file; the error names the context.
    pub fn read_token(&self, name: &str) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.token_file else { return Ok(None) };
        gatehouse_shared::client::read_token_file(path).map(Some).with_context(|| format!("context '{name}'"))
    }
}

/// A context name: letters, digits, '-', '_', '.'; at most 64, not starting with '-'.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        bail!(
            "'{}' is not a valid context name: use letters, digits, '-', '_' and '.' (at most 64)",
            name.escape_debug()
        );
    }
    Ok(())
}

/// `path` as an absolute path (from the working directory), checked to name a file: a context
/// is used from any folder, and a typo is best caught when it is made.
pub fn absolute_file(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let absolute = std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))?;
    if !absolute.is_file() {
        bail!("the {what} {} does not exist", absolute.display());
    }
    Ok(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_with_kebab_case_keys_and_no_token() {
        let mut contexts = Contexts { current_context: Some("prod".into()), ..Contexts::default() };
        contexts.contexts.insert(
            "prod".into(),
            Context {
                server: "https://cp.example:7400".into(),
                ca_file: Some("/etc/gatehouse/ca.pem".into()),
                token_file: Some("/home/op/.config/gatehouse/prod.token".into()),
            },
        );
        contexts.contexts.insert(
            "local".into(),
            Context { server: "http://127.0.0.1:7400".into(), ca_file: None, token_file: None },
        );
        let text = toml::to_string(&contexts).unwrap();
        assert!(text.starts_with("current-context = \"prod\"\n"), "{text}");
        assert!(text.contains("[contexts.prod]\nserver = \"https://cp.example:7400\"\nca-file = "), "{text}");
        assert!(text.contains("token-file = \"/home/op/.config/gatehouse/prod.token\""), "{text}");
        assert_eq!(toml::from_str::<Contexts>(&format!("{HEADER}{text}")).unwrap(), contexts);
    }

    #[test]
    fn unknown_keys_are_refused_rather_than_ignored() {
        // A hand-written `token_file` (underscore) silently ignored would send no token.
        let error =
            toml::from_str::<Contexts>("[contexts.a]\nserver = \"https://a:7400\"\ntoken_file = \"/t\"\n").unwrap_err();
        assert!(error.message().contains("unknown field `token_file`"), "{error}");
    }

    #[test]
    fn names_are_plain_words() {
        assert!(check_name("prod-eu.1_a").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
