//! Reading a config file: TOML parsed with spans, so every key keeps its line, into a flat list
//! of entries in file order.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigFileError;

/// A config file's entries, in the order they appear.
#[derive(Debug)]
pub(super) struct ConfigFile {
    entries: Vec<Entry>,
}

/// One `key = value` line.
#[derive(Debug)]
pub(super) struct Entry {
    /// The key as written.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// Its line (from 1).
    pub line: usize,
}

/// A TOML value, owned, with what a flag can take.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    /// A string.
    String(String),
    /// An integer, in decimal.
    Integer(i128),
    /// A float, as written.
    Float(String),
    /// A boolean.
    Boolean(bool),
    /// An array.
    Array(Vec<Value>),
    /// What no flag takes (a datetime, a table, an integer beyond 128 bits), as an error names it.
    Other(&'static str),
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigFileError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|message| ConfigFileError::Syntax { path: path.to_path_buf(), message })
    }

    /// Parses `text`; a TOML error comes back as the parser's message (line, column, excerpt).
    pub fn parse(text: &str) -> Result<Self, String> {
        let table = DeTable::parse(text).map_err(|error| error.to_string().trim_end().to_owned())?;
        let mut entries: Vec<(usize, Entry)> = table
            .get_ref()
            .iter()
            .map(|(key, value)| {
                let start = key.span().start;
                let entry = Entry {
                    key: key.get_ref().to_string(),
                    value: Value::from_toml(value.get_ref()),
                    line: line_of(text, start),
                };
                (start, entry)
            })
            .collect();
        // The table is sorted by key; errors read better in the file's order.
        entries.sort_by_key(|(start, _)| *start);
        Ok(Self { entries: entries.into_iter().map(|(_, entry)| entry).collect() })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The line (from 1) holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

// === impl Value ===

impl Value {
    fn from_toml(value: &DeValue<'_>) -> Self {
        match value {
            DeValue::String(s) => Self::String(s.to_string()),
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .map_or(Self::Other("an integer out of range"), Self::Integer),
            DeValue::Float(f) => Self::Float(f.as_str().to_owned()),
            DeValue::Boolean(b) => Self::Boolean(*b),
            DeValue::Datetime(_) => Self::Other("a datetime"),
            DeValue::Array(items) => Self::Array(items.iter().map(|item| Self::from_toml(item.get_ref())).collect()),
            DeValue::Table(_) => Self::Other("a table (config files are flat: key = value, no [sections])"),
        }
    }

    /// Its TOML type, as an error message names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Integer(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Boolean(_) => "a boolean",
            Self::Array(_) => "an array",
            Self::Other(name) => name,
        }
    }
}
