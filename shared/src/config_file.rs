//! Settings from a TOML file, under the flags: `--config FILE` (or the binary's
//! `GATEHOUSE_*_CONFIG` variable) names a flat file whose keys are the long flags
//! (`listen = "127.0.0.1:7400"`, `etcd-endpoints = ["https://a:2379"]`, `plaintext = true`,
//! `stale-after = 30`), and a value is taken from the first of: flag, environment variable, file,
//! default.
//!
//! It works from the binary's `clap::Command`, so every flag is a key with nothing to keep in
//! step, and a value from the file meets exactly the rules a flag meets (value parsers,
//! `requires`, `conflicts_with`). Two parses: the first (command line and environment alone)
//! says where the file is and which keys the command line or the environment already set; the
//! second runs on the command line with `--key=value` inserted for every other key of the file.
//! clap's `ArgMatches::value_source` of the first parse is what decides, so `--key value`,
//! `--key=value`, a global flag after a subcommand and an environment variable are all seen as
//! clap sees them.

mod file;
mod keys;
mod print;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches};

use file::ConfigFile;
use keys::Key;

/// Id of the `--config` argument ([`ConfigArgs::config`]).
const CONFIG_ID: &str = "config";
/// Id of the `--print-config` argument ([`ConfigArgs::print_config`]).
const PRINT_CONFIG_ID: &str = "print_config";

/// `--config FILE` and `--print-config`, flattened into a server binary's flags
/// (`#[command(flatten)]`); [`parse`] gives `--config` the binary's own environment variable.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML file of settings, one key per long flag (`listen = "127.0.0.1:7400"`); flags and
    /// environment variables win over it.
    #[arg(long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML (every key, its value and where it came from:
    /// flag, env, file or default) and exit.
    #[arg(long, global = true)]
    pub print_config: bool,
}

/// Parses this process's arguments into `P`, with the file named by `--config` (or by the
/// environment variable `config_env`) under the flags and the environment. On `--print-config`
/// prints the effective configuration and exits 0; on a usage or config file error prints it
/// and exits 2, as clap does for a bad flag. `binary` starts the error line.
pub fn parse<P: clap::Parser>(binary: &str, config_env: &'static str) -> P {
    let command = P::command().mut_arg(CONFIG_ID, |arg| arg.env(config_env));
    let effective = match parse_from(command, std::env::args_os().collect()) {
        Ok(effective) => effective,
        Err(Error::Usage(error)) => error.exit(),
        Err(Error::File(error)) => {
            eprintln!("{binary}: {error}");
            std::process::exit(2);
        }
    };
    if effective.print_config_requested() {
        print!("{}", effective.to_toml(binary));
        std::process::exit(0);
    }
    effective.into_parsed().unwrap_or_else(|error| error.exit())
}

/// Parses `args` (the program name first) with `command`, with the file named by `--config`
/// under the flags and the environment: see the module's description.
pub fn parse_from(command: Command, args: Vec<OsString>) -> Result<Effective, Error> {
    // The command line and environment alone: where is the file, and what do they set already?
    let mut complete = true;
    let first = match command.clone().try_get_matches_from(&args) {
        Ok(matches) => matches,
        // The file may supply what is missing; anything else (a bad value, an unknown flag,
        // --help, --version) no value from a file can change.
        Err(error) if error.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
            let lenient = command.clone().ignore_errors(true).try_get_matches_from(&args)?;
            if lenient.get_one::<PathBuf>(CONFIG_ID).is_none() {
                return Err(error.into());
            }
            complete = false;
            lenient
        }
        Err(error) => return Err(error.into()),
    };
    // An empty GATEHOUSE_*_CONFIG (a unit file's way to unset it) names no file.
    let Some(path) = first.get_one::<PathBuf>(CONFIG_ID).filter(|path| !path.as_os_str().is_empty()).cloned() else {
        return Ok(Effective { command, matches: first, file: None, from_file: BTreeSet::new() });
    };
    let file = ConfigFile::read(&path)?;
    let keys = Key::all(&command);
    let mut inserted = Vec::new();
    let mut from_file = BTreeSet::new();
    for entry in file.entries() {
        let key = keys.iter().find(|key| key.name() == entry.key).ok_or_else(|| {
            let known: Vec<&str> = keys.iter().map(Key::name).collect();
            ConfigFileError::UnknownKey {
                key: entry.key.clone(),
                path: path.clone(),
                line: entry.line,
                suggestion: keys::closest(&entry.key, &known).map(str::to_owned),
                known: known.join(", "),
            }
        })?;
        // Checked even when a flag or variable wins: a wrong file is wrong on every start.
        let values = key.values(&entry.value).map_err(|problem| ConfigFileError::Value {
            key: entry.key.clone(),
            path: path.clone(),
            line: entry.line,
            problem,
        })?;
        let id = key.id();
        if matches!(first.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        inserted.extend(key.command_line(&values));
        from_file.insert(id.to_owned());
    }
    // After the program name and before the user's own words, so the top-level flags come
    // before any subcommand.
    let mut layered = Vec::with_capacity(args.len() + inserted.len());
    layered.extend(args.first().cloned());
    layered.extend(inserted);
    layered.extend(args.into_iter().skip(1));
    let matches = command.clone().try_get_matches_from(layered).map_err(|error| {
        if complete {
            // The command line was fine alone: the file's values broke a rule (a conflict), and
            // clap's message alone would name flags nobody typed.
            Error::File(ConfigFileError::Rules { path: path.clone(), message: keys::clap_message(&error) })
        } else {
            Error::Usage(error)
        }
    })?;
    Ok(Effective { command, matches, file: Some(path), from_file })
}

// === impl Effective ===

/// The outcome of [`parse_from`]: the parsed arguments and where each value came from.
#[derive(Debug)]
pub struct Effective {
    command: Command,
    matches: ArgMatches,
    file: Option<PathBuf>,
    /// Ids of the arguments whose value the file supplied.
    from_file: BTreeSet<String>,
}

impl Effective {
    /// The config file read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Where the value of `key` (a long flag's name, e.g. `stale-after`) came from; `None` for a
    /// name that is no key.
    pub fn origin(&self, key: &str) -> Option<Origin> {
        Key::all(&self.command).into_iter().find(|k| k.name() == key).map(|key| self.origin_of(&key))
    }

    fn origin_of(&self, key: &Key<'_>) -> Origin {
        if self.from_file.contains(key.id()) {
            return Origin::File;
        }
        match self.matches.value_source(key.id()) {
            Some(ValueSource::CommandLine) => Origin::Flag,
            Some(ValueSource::EnvVariable) => Origin::Env(key.env().unwrap_or_default()),
            Some(ValueSource::DefaultValue) => Origin::Default,
            // ValueSource is non-exhaustive; nothing else exists today.
            Some(_) | None => Origin::Unset,
        }
    }

    /// Whether `--print-config` was given.
    pub fn print_config_requested(&self) -> bool {
        self.matches.get_flag(PRINT_CONFIG_ID)
    }

    /// The effective configuration as a TOML config file: every key with its value and, in a
    /// comment, where it came from; secrets masked. `binary` names the program in the header.
    pub fn to_toml(&self, binary: &str) -> String {
        print::render(self, binary)
    }

    /// The arguments as the binary's own type.
    pub fn into_parsed<P: FromArgMatches>(mut self) -> Result<P, clap::Error> {
        P::from_arg_matches_mut(&mut self.matches).map_err(|error| error.format(&mut self.command))
    }
}

// === impl Origin ===

/// Where a key's effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// The config file.
    File,
    /// The flag's default.
    Default,
    /// Nowhere: the key has no value (an optional flag without default).
    Unset,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Env(name) => write!(f, "env {name}"),
            Self::File => f.write_str("file"),
            Self::Default => f.write_str("default"),
            Self::Unset => f.write_str("not set"),
        }
    }
}

// === errors ===

/// Why [`parse_from`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A usage error, or `--help`/`--version` (clap's own: `exit()` prints it).
    #[error(transparent)]
    Usage(#[from] clap::Error),
    /// The config file cannot be read or has a wrong key or value.
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

/// What is wrong with a config file; every variant names the file, and the key when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key that is no flag of this binary.
    #[error(
        "unknown key '{key}' in {} (line {line}); {}known keys: {known}",
        path.display(),
        suggestion.as_ref().map(|s| format!("did you mean '{s}'? ")).unwrap_or_default()
    )]
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Its line (from 1).
        line: usize,
        /// The known key it is closest to, if one is close.
        suggestion: Option<String>,
        /// Every known key, comma-separated.
        known: String,
    },
    /// Values that break a rule between flags once the file's are added (e.g. a conflict).
    #[error("with the values of config file {}: {message}", path.display())]
    Rules {
        /// The file.
        path: PathBuf,
        /// clap's message, naming the flags.
        message: String,
    },
    /// A value of the wrong type, or one the flag would refuse.
    #[error("key '{key}' in {} (line {line}): {problem}", path.display())]
    Value {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Its line (from 1).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}
