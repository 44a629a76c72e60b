//! Text building blocks: aligned tables with control characters escaped, times, dashes.

/// Left-aligned columns separated by two spaces; no trailing spaces.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    // Values come from the server and, through it, from other callers: never let them move
    // the cursor, clear the screen or start a new line.
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| escape_controls(cell)).collect()).collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Control characters (newlines, ANSI escapes) shown as `\u{1b}` instead of acted on.
pub(super) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// Label/value lines, aligned like a table without its header.
pub(super) fn details(rows: &[Vec<String>]) -> String {
    let text = table(&["", ""], rows);
    // The empty header line of `table` is not wanted here.
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

/// "-" for an empty value, so a table column never looks missing.
pub(super) fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}

/// "4s ago", "3m ago", "2h ago", "5d ago".
pub(super) fn ago(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return "-".into() };
    let seconds = (gatehouse_shared::unix_now() - ts.seconds).max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

/// A timestamp as RFC 3339 (UTC), or empty when there is none.
pub(super) fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    time::OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// "in 23 days", "EXPIRED 3 days ago": what matters about an expiry date at a glance.
pub(super) fn expiry(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    let date = rfc3339(Some(ts)).get(..10).unwrap_or_default().to_string();
    let days = gatehouse_shared::days_until(ts.seconds).trunc() as i64;
    if ts.seconds < gatehouse_shared::unix_now() {
        format!("{date} (EXPIRED {} ago)", plural(-days, "day"))
    } else {
        format!("{date} (in {})", plural(days, "day"))
    }
}

/// "1 day", "2 days".
fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(&["ID", "PATH"], &[vec!["orders".into(), "/orders".into()], vec!["a".into(), "/a".into()]]);
        assert_eq!(text, "ID      PATH\norders  /orders\na       /a\n");
    }

    #[test]
    fn control_characters_are_shown_not_acted_on() {
        let text = table(&["ID"], &[vec!["a\nb\u{1b}[2J".into()]]);
        assert_eq!(text, "ID\na\\u{a}b\\u{1b}[2J\n");
    }
}
