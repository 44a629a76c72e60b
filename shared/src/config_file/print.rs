//! `--print-config`: the effective configuration as a config file, each value with where it
//! came from, secrets masked. What it prints can be fed back with `--config`.

use std::fmt::Write as _;

use super::keys::{Key, Kind};
use super::{Effective, Origin};

/// Shown instead of a secret's value.
const MASK: &str = "\"********\"";

/// The TOML text (see [`Effective::to_toml`]).
pub(super) fn render(effective: &Effective, binary: &str) -> String {
    let mut out = format!("# {binary}: effective configuration (flag > environment > file > default)\n");
    if let Some(path) = effective.file() {
        let _ = writeln!(out, "# config file: {}", path.display());
    }
    for key in Key::all(&effective.command) {
        let origin = match effective.origin_of(&key) {
            Origin::File => format!("file {}", effective.file().map(|p| p.display().to_string()).unwrap_or_default()),
            Origin::Flag => format!("flag --{}", key.name()),
            // A list nobody set is empty: its default.
            Origin::Unset if key.many() => Origin::Default.to_string(),
            origin => origin.to_string(),
        };
        let _ = match value(effective, &key) {
            None => writeln!(out, "# {} is not set", key.name()),
            Some(_) if key.is_secret() => writeln!(out, "{} = {MASK} # {origin}, masked", key.name()),
            Some(value) => writeln!(out, "{} = {value} # {origin}", key.name()),
        };
    }
    out
}

/// The key's effective value as TOML, `None` when it has none.
fn value(effective: &Effective, key: &Key<'_>) -> Option<String> {
    let matches = &effective.matches;
    if key.kind() == Kind::Switch {
        return matches.try_get_one::<bool>(key.id()).ok().flatten().map(bool::to_string);
    }
    let raw: Vec<String> = matches
        .try_get_raw(key.id())
        .ok()
        .flatten()
        .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if key.many() {
        let items: Vec<String> = raw.iter().map(|v| scalar(key.kind(), v)).collect();
        return Some(format!("[{}]", items.join(", ")));
    }
    raw.first().map(|v| scalar(key.kind(), v))
}

/// One value as TOML: numbers and booleans bare, everything else a string.
fn scalar(kind: Kind, text: &str) -> String {
    let bare = match kind {
        Kind::Integer => text.parse::<i128>().is_ok(),
        Kind::Float => text.parse::<f64>().is_ok_and(f64::is_finite),
        Kind::Boolean | Kind::Switch => text == "true" || text == "false",
        Kind::Text => false,
    };
    if bare { text.to_owned() } else { quote(text) }
}

/// A TOML basic string.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
