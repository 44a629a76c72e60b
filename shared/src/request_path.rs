//! Request paths normalized as RFC 3986 §6 says (percent-encoded unreserved characters decoded,
//! other escapes in uppercase, dot-segments removed, runs of `/` merged), and refused where a
//! backend could read them differently from the gateway: an encoded `/` or `\`, a `..` above the
//! root, NUL or control characters, `..;` (a dot-segment with parameters, which servlet
//! containers treat as `..`), or escapes that do not decode to UTF-8 (overlong forms of `.`, `/`).
//!
//! The data plane routes on the normalized path and forwards it, so the API it picks and the path
//! the backend sees are the same; the control plane holds API paths to the same form.

use std::fmt;

/// Why a request path cannot be normalized safely. Messages quote no part of the path: the
/// caller decides how much of it to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not starting with `/` (e.g. `*` or an empty path).
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// `%2F` or `%5C` inside a segment: some backends decode it into a separator.
    #[error("the path has an encoded '/' or '\\' inside a segment")]
    EncodedSeparator,
    /// A literal `\`, which some backends treat as `/`.
    #[error("the path has a '\\'")]
    Backslash,
    /// NUL, a C0 control character or DEL, literal or encoded.
    #[error("the path has a control character")]
    ControlCharacter,
    /// `%` not followed by two hex digits.
    #[error("the path has a malformed percent-escape")]
    MalformedEscape,
    /// Escapes whose bytes are not UTF-8 (among them overlong forms of `.` and `/`).
    #[error("the path's percent-escapes do not decode to UTF-8")]
    NotUtf8,
    /// A `..` with more segments above it than the path has.
    #[error("the path climbs above the root with '..'")]
    AboveRoot,
    /// `..;x` or `.;x`: a dot-segment that servlet containers would still resolve.
    #[error("the path has a dot-segment with parameters ('..;')")]
    DotSegmentWithParameters,
}

/// A request path after normalization, with what its dot-segments did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedPath {
    path: String,
    /// The fewest segments left standing after any `..` removed one (None without `..`).
    lowest_after_parent: Option<usize>,
}

impl NormalizedPath {
    /// The normalized path: starts with `/`, no dot-segments, no empty segments but a final one.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// True unless a `..` climbed above the first `depth` segments on its way (so
    /// `/orders/../orders/1` does not stay within `/orders`, though it normalizes into it).
    pub fn stays_within(&self, depth: usize) -> bool {
        self.lowest_after_parent.is_none_or(|lowest| lowest >= depth)
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// The path with each segment's `;parameters` removed (`/sec;x/a` → `/sec/a`), as servlet
/// containers read it; None when it has none.
pub fn without_parameters(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    Some(path.split('/').map(|segment| segment.split(';').next().unwrap_or_default()).collect::<Vec<_>>().join("/"))
}

/// The number of segments in a normalized prefix: `/` has none, `/a/b` has two.
pub fn depth(prefix: &str) -> usize {
    prefix.split('/').filter(|s| !s.is_empty()).count()
}

/// Normalizes the path of a request target (the part before `?`).
pub fn normalize(raw: &str) -> Result<NormalizedPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments: Vec<String> = Vec::new();
    let mut lowest_after_parent: Option<usize> = None;
    // A path that ends in `/`, `/.` or `/..` keeps a final `/` (RFC 3986 §5.2.4).
    let mut trailing_slash = false;
    for raw_segment in rest.split('/') {
        let segment = decode_segment(raw_segment)?;
        trailing_slash = false;
        match segment.as_str() {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                lowest_after_parent = Some(lowest_after_parent.map_or(segments.len(), |l| l.min(segments.len())));
                trailing_slash = true;
            }
            _ => {
                if matches!(segment.split(';').next(), Some("." | "..")) {
                    return Err(PathError::DotSegmentWithParameters);
                }
                segments.push(segment);
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(NormalizedPath { path, lowest_after_parent })
}

/// Decodes the unreserved escapes of one segment and uppercases the others; checks that the
/// whole segment, fully decoded, is UTF-8 with no separator or control character in it.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::MalformedEscape)?;
            let value = hex_value(hex[0])
                .zip(hex_value(hex[1]))
                .map(|(high, low)| high << 4 | low)
                .ok_or(PathError::MalformedEscape)?;
            match value {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                v if is_unreserved(v) => out.push(v as char),
                v => push_escaped(&mut out, v),
            }
            decoded.push(value);
            i += 3;
        } else {
            match byte {
                b'\\' => return Err(PathError::Backslash),
                0..=0x20 | 0x7f => return Err(PathError::ControlCharacter),
                // Raw non-ASCII (which URI parsers should not let through) is sent escaped.
                0x80.. => push_escaped(&mut out, byte),
                _ => out.push(byte as char),
            }
            decoded.push(byte);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).map_err(|_| PathError::NotUtf8)?;
    Ok(out)
}

fn push_escaped(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(byte >> 4) as usize] as char);
    out.push(HEX[(byte & 0xf) as usize] as char);
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize(raw).map(|p| p.path)
    }

    #[test]
    fn rfc3986_normal_forms() {
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a/b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/").unwrap(), "/a/b/");
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("//a///b").unwrap(), "/a/b");
        assert_eq!(norm("/%7Euser/%41%62c").unwrap(), "/~user/Abc");
        assert_eq!(norm("/a%2e%2E/x").unwrap(), "/a../x");
        assert_eq!(norm("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(norm("/caf\u{e9}").unwrap(), "/caf%C3%A9");
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
        assert_eq!(norm("/a:b@c!$&'()*+,;=").unwrap(), "/a:b@c!$&'()*+,;=");
    }

    #[test]
    fn encoded_dot_segments_are_dot_segments() {
        assert_eq!(norm("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(norm("/a/%2E/b").unwrap(), "/a/b");
        assert_eq!(norm("/a/.%2e/b").unwrap(), "/b");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc"), Err(PathError::AboveRoot));
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%0d%0ab"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%7f"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%zz"), Err(PathError::MalformedEscape));
        assert_eq!(norm("/a%2"), Err(PathError::MalformedEscape));
        assert_eq!(norm("/a/..;/b"), Err(PathError::DotSegmentWithParameters));
        assert_eq!(norm("/a/.;x/b"), Err(PathError::DotSegmentWithParameters));
        assert_eq!(norm("/a/%c0%ae%c0%ae/b"), Err(PathError::NotUtf8));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn climbing_out_of_a_prefix_is_seen_even_when_the_result_is_back_inside() {
        let path = normalize("/orders/../orders/1").unwrap();
        assert_eq!(path.as_str(), "/orders/1");
        assert!(!path.stays_within(depth("/orders")));
        assert!(path.stays_within(depth("/")));
        let inside = normalize("/orders/a/../1").unwrap();
        assert!(inside.stays_within(depth("/orders")));
        assert!(normalize("/orders/1").unwrap().stays_within(5));
    }

    #[test]
    fn parameters_come_off_every_segment() {
        assert_eq!(without_parameters("/sec;x/a;b=1/c"), Some("/sec/a/c".to_string()));
        assert_eq!(without_parameters("/plain/path"), None);
    }

    #[test]
    fn depth_counts_segments() {
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a"), 1);
        assert_eq!(depth("/a/b"), 2);
    }
}
