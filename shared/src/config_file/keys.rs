//! The keys of a command: one per long flag, with what its value looks like in TOML, how a
//! file value becomes command-line words, and which keys hold secrets.

use std::any::TypeId;
use std::ffi::OsString;

use clap::{Arg, ArgAction, Command};

use super::file::Value;
use super::{CONFIG_ID, PRINT_CONFIG_ID};

/// One key: a top-level long flag.
#[derive(Debug)]
pub(super) struct Key<'c> {
    arg: &'c Arg,
    name: &'c str,
    kind: Kind,
    many: bool,
}

/// What one value of a key is, in TOML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A flag without value (`--plaintext`): `true` or `false`.
    Switch,
    /// An integer.
    Integer,
    /// A number, integer or float.
    Float,
    /// A boolean an option takes as its value.
    Boolean,
    /// Anything else: a string (a path, an address, a name, one of a list of words).
    Text,
}

impl<'c> Key<'c> {
    /// Every key of `command`, in declaration order: its long flags, less `--help`,
    /// `--version`, `--config` and `--print-config`; a subcommand's own flags are not keys.
    pub fn all(command: &'c Command) -> Vec<Self> {
        command
            .get_arguments()
            .filter(|arg| !arg.is_positional())
            .filter(|arg| ![CONFIG_ID, PRINT_CONFIG_ID, "help", "version"].contains(&arg.get_id().as_str()))
            .filter_map(|arg| arg.get_long().map(|name| Self::new(arg, name)))
            .collect()
    }

    fn new(arg: &'c Arg, name: &'c str) -> Self {
        let action = arg.get_action();
        let many = matches!(action, ArgAction::Append)
            || arg.get_value_delimiter().is_some()
            || arg.get_num_args().is_some_and(|range| range.max_values() > 1);
        let kind = if matches!(action, ArgAction::SetTrue | ArgAction::SetFalse) {
            Kind::Switch
        } else {
            let produces = arg.get_value_parser().type_id();
            let is = |types: &[TypeId]| types.iter().any(|t| produces == *t);
            if is(&integers()) {
                Kind::Integer
            } else if is(&[TypeId::of::<f32>(), TypeId::of::<f64>()]) {
                Kind::Float
            } else if is(&[TypeId::of::<bool>()]) {
                Kind::Boolean
            } else {
                Kind::Text
            }
        };
        Self { arg, name, kind, many }
    }

    /// The key: the long flag's name (`stale-after`).
    pub fn name(&self) -> &'c str {
        self.name
    }

    /// clap's id of the argument (`stale_after`).
    pub fn id(&self) -> &'c str {
        self.arg.get_id().as_str()
    }

    /// What one of its values is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it takes a list.
    pub fn many(&self) -> bool {
        self.many
    }

    /// Its environment variable, if it has one.
    pub fn env(&self) -> Option<String> {
        self.arg.get_env().map(|name| name.to_string_lossy().into_owned())
    }

    /// Whether its value is a secret itself (a token or password; not a file holding one, and
    /// not a number such as `max-streams-per-token`): `--print-config` masks these.
    pub fn is_secret(&self) -> bool {
        let names_secret = self.name.split('-').any(|word| ["token", "password", "secret"].contains(&word));
        let is_path = ["file", "dir", "path"].iter().any(|end| self.name.ends_with(&format!("-{end}")));
        names_secret && !is_path && self.kind == Kind::Text
    }

    /// The file's value as the flag's values, in command-line text: checked against the TOML
    /// type the flag takes, then against the flag's own parser, so a file value is refused for
    /// exactly what the flag would refuse.
    pub fn values(&self, value: &Value) -> Result<Vec<String>, String> {
        let values = match (value, self.many) {
            (Value::Array(items), true) => items.iter().map(|item| self.scalar(item)).collect::<Result<_, _>>()?,
            // A list key takes one string too (comma-separated where its flag is).
            (Value::String(_), true) => vec![self.scalar(value)?],
            (value, true) => return Err(format!("expected an array, found {}", value.type_name())),
            (value, false) => vec![self.scalar(value)?],
        };
        if self.kind != Kind::Switch {
            for text in &values {
                self.check(text)?;
            }
        }
        Ok(values)
    }

    /// Runs the flag's own value parser on `text`, alone: a one-flag command, since the others'
    /// rules (`requires`, `conflicts_with`) are for the real parse.
    fn check(&self, text: &str) -> Result<(), String> {
        let mut arg = Arg::new(self.arg.get_id().clone())
            .required(true)
            .action(ArgAction::Set)
            .value_parser(self.arg.get_value_parser().clone());
        if let Some(names) = self.arg.get_value_names() {
            arg = arg.value_names(names.to_vec());
        }
        Command::new("config")
            .no_binary_name(true)
            .arg(arg)
            .try_get_matches_from(["--", text])
            .map(drop)
            .map_err(|error| clap_message(&error))
    }

    fn scalar(&self, value: &Value) -> Result<String, String> {
        match (self.kind, value) {
            (Kind::Switch | Kind::Boolean, Value::Boolean(b)) => Ok(b.to_string()),
            (Kind::Integer | Kind::Float, Value::Integer(i)) => Ok(i.to_string()),
            (Kind::Float, Value::Float(f)) => Ok(f.clone()),
            (Kind::Text, Value::String(s)) => Ok(s.clone()),
            (kind, value) => Err(format!("expected {}, found {}", kind.expected(), value.type_name())),
        }
    }

    /// The command-line words giving `values` (from [`Self::values`]) to the flag.
    pub fn command_line(&self, values: &[String]) -> Vec<OsString> {
        let flag = format!("--{}", self.name);
        match self.kind {
            Kind::Switch => match values {
                // SetTrue flags take no value: `true` is the flag, `false` is its absence
                // (and the reverse for SetFalse).
                [only] if (only == "true") == matches!(self.arg.get_action(), ArgAction::SetTrue) => {
                    vec![flag.into()]
                }
                _ => Vec::new(),
            },
            // `--key=value`: a value starting with '-' is still a value.
            _ if self.many && !matches!(self.arg.get_action(), ArgAction::Append) => {
                let delimiter = self.arg.get_value_delimiter().unwrap_or(',');
                vec![format!("{flag}={}", values.join(&delimiter.to_string())).into()]
            }
            _ => values.iter().map(|value| format!("{flag}={value}").into()).collect(),
        }
    }
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Self::Switch | Self::Boolean => "true or false",
            Self::Integer => "an integer",
            Self::Float => "a number",
            Self::Text => "a string",
        }
    }
}

fn integers() -> [TypeId; 12] {
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<u128>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<i128>(),
        TypeId::of::<isize>(),
    ]
}

/// clap's message for a refused value, without its "error: " prefix and usage tail: "invalid
/// value 'x' for '<LISTEN>': invalid socket address syntax".
pub(super) fn clap_message(error: &clap::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The known key closest to a misspelt one, if one is close (at most two edits, or a third of
/// its length).
pub(super) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).max(2);
    known.iter().map(|candidate| (edits(key, candidate), *candidate)).filter(|(d, _)| *d <= limit).min().map(|(_, c)| c)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
