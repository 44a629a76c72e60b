//! BER rewritten as DER, for the PKCS#12 files that NSS `pk12util` and BouncyCastle write:
//! indefinite lengths become definite, and strings cut into constructed segments are joined.
//! Contents are never changed, so a MAC over an OCTET STRING's value still checks.
//!
//! The `der` crate reads DER (and BER's indefinite lengths only for some string types), and no
//! maintained crate turns BER into DER, so this small rewrite runs before every decode.

/// Why bytes could not be read as BER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input ends inside an element.
    #[error("the encoding ends inside an element")]
    Truncated,
    /// A length (or tag number) that is malformed or too large.
    #[error("an element has a malformed length")]
    BadLength,
    /// A primitive element with an indefinite length.
    #[error("a primitive element has an indefinite length")]
    IndefinitePrimitive,
    /// Elements nested deeper than the limit, which it holds.
    #[error("elements are nested more than {0} levels deep")]
    TooDeep(usize),
    /// Bytes after the outermost element.
    #[error("bytes follow the outermost element")]
    TrailingBytes,
    /// A segmented string with a segment of another type.
    #[error("a segmented string holds a segment of another type")]
    MixedSegments,
    /// A segmented BIT STRING.
    #[error("a BIT STRING is split into segments, which is not supported")]
    SegmentedBitString,
}

/// Deep enough for any PKCS#12 structure, shallow enough that a hostile file cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

const BIT_STRING: u32 = 3;
const OCTET_STRING: u32 = 4;
const CONSTRUCTED: u8 = 0x20;

/// Rewrites one BER element (and nothing after it) as DER.
pub fn to_der(ber: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut input = Cursor { bytes: ber };
    let mut out = Vec::with_capacity(ber.len());
    element(&mut input, 0, &mut out)?;
    if !input.bytes.is_empty() {
        return Err(BerError::TrailingBytes);
    }
    Ok(out)
}

/// The value of an implicitly tagged OCTET STRING given the DER contents of its constructed form
/// (as EncryptedData's `[0] IMPLICIT` content arrives from BER writers): its segments joined.
pub fn joined_segments(contents: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut input = Cursor { bytes: contents };
    let mut out = Vec::with_capacity(contents.len());
    while !input.bytes.is_empty() {
        segments(&mut input, OCTET_STRING, 0, &mut out)?;
    }
    Ok(out)
}

struct Header<'a> {
    /// The identifier octets as written (high tag numbers included).
    identifier: &'a [u8],
    constructed: bool,
    /// The tag number of a universal-class element.
    universal: Option<u32>,
    /// `None` for an indefinite length.
    length: Option<usize>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BerError> {
        if n > self.bytes.len() {
            return Err(BerError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, BerError> {
        Ok(self.take(1)?[0])
    }

    /// Consumes an end-of-contents marker if one is next.
    fn end_of_contents(&mut self) -> bool {
        if self.bytes.starts_with(&[0, 0]) {
            self.bytes = &self.bytes[2..];
            true
        } else {
            false
        }
    }

    fn header(&mut self) -> Result<Header<'a>, BerError> {
        let start = self.bytes;
        let first = self.byte()?;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = 0;
            loop {
                let b = self.byte()?;
                if number > u32::MAX >> 7 {
                    return Err(BerError::BadLength);
                }
                number = number << 7 | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let identifier = &start[..start.len() - self.bytes.len()];
        let constructed = first & CONSTRUCTED != 0;
        let universal = (first >> 6 == 0).then_some(number);
        let length = match self.byte()? {
            short @ 0..=0x7f => Some(usize::from(short)),
            0x80 if constructed => None,
            0x80 => return Err(BerError::IndefinitePrimitive),
            long => {
                let count = usize::from(long & 0x7f);
                if count > 4 {
                    return Err(BerError::BadLength);
                }
                let value = self.take(count)?.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
                if value > self.bytes.len() {
                    return Err(BerError::Truncated);
                }
                Some(value)
            }
        };
        Ok(Header { identifier, constructed, universal, length })
    }
}

/// Universal string types, which BER may split into segments (X.690 §8.7, §8.23).
fn is_string_type(number: u32) -> bool {
    matches!(number, OCTET_STRING | 12 | 18..=22 | 25..=28 | 30)
}

fn element(input: &mut Cursor<'_>, depth: usize, out: &mut Vec<u8>) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep(MAX_DEPTH));
    }
    let header = input.header()?;
    if !header.constructed {
        let length = header.length.ok_or(BerError::IndefinitePrimitive)?;
        let contents = input.take(length)?;
        write(out, header.identifier, contents);
        return Ok(());
    }
    let mut contents = Vec::new();
    match header.universal {
        Some(BIT_STRING) => return Err(BerError::SegmentedBitString),
        Some(number) if is_string_type(number) => {
            each_child(input, header.length, |child| segments(child, number, depth + 1, &mut contents))?;
            let mut identifier = header.identifier.to_vec();
            identifier[0] &= !CONSTRUCTED;
            write(out, &identifier, &contents);
        }
        _ => {
            each_child(input, header.length, |child| element(child, depth + 1, &mut contents))?;
            write(out, header.identifier, &contents);
        }
    }
    Ok(())
}

/// Appends the value of one segment of a string of universal type `number` (itself possibly segmented).
fn segments(input: &mut Cursor<'_>, number: u32, depth: usize, out: &mut Vec<u8>) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep(MAX_DEPTH));
    }
    let header = input.header()?;
    if header.universal != Some(number) {
        return Err(BerError::MixedSegments);
    }
    if header.constructed {
        each_child(input, header.length, |child| segments(child, number, depth + 1, out))
    } else {
        let length = header.length.ok_or(BerError::IndefinitePrimitive)?;
        out.extend_from_slice(input.take(length)?);
        Ok(())
    }
}

/// Calls `f` once per child of a constructed element whose header has just been read.
fn each_child(
    input: &mut Cursor<'_>,
    length: Option<usize>,
    mut f: impl FnMut(&mut Cursor<'_>) -> Result<(), BerError>,
) -> Result<(), BerError> {
    match length {
        Some(length) => {
            let mut children = Cursor { bytes: input.take(length)? };
            while !children.bytes.is_empty() {
                f(&mut children)?;
            }
        }
        None => loop {
            if input.bytes.is_empty() {
                return Err(BerError::Truncated);
            }
            if input.end_of_contents() {
                break;
            }
            f(input)?;
        },
    }
    Ok(())
}

fn write(out: &mut Vec<u8>, identifier: &[u8], contents: &[u8]) {
    out.extend_from_slice(identifier);
    let length = contents.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_passes_through_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x03, 0x04, 0x01, 0xaa];
        assert_eq!(to_der(&der).unwrap(), der);
    }

    #[test]
    fn indefinite_lengths_and_segmented_strings_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" }, NULL }
        let ber =
            [0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x05, 0x00, 0x00, 0x00];
        assert_eq!(to_der(&ber).unwrap(), [0x30, 0x07, 0x04, 0x03, b'a', b'b', b'c', 0x05, 0x00]);
    }

    #[test]
    fn long_form_lengths_are_made_minimal() {
        let ber = [0x04, 0x82, 0x00, 0x01, 0xaa];
        assert_eq!(to_der(&ber).unwrap(), [0x04, 0x01, 0xaa]);
        let long = [vec![0x04, 0x81, 0x80], vec![7; 0x80]].concat();
        assert_eq!(to_der(&long).unwrap(), long);
    }

    #[test]
    fn implicit_segments_are_joined() {
        // [0] IMPLICIT OCTET STRING in constructed form, as EncryptedData carries it.
        let der = to_der(&[0xa0, 0x80, 0x04, 0x01, 1, 0x04, 0x02, 2, 3, 0x00, 0x00]).unwrap();
        assert_eq!(der, [0xa0, 0x07, 0x04, 0x01, 1, 0x04, 0x02, 2, 3]);
        assert_eq!(joined_segments(&der[2..]).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(to_der(&[0x30, 0x80, 0x05, 0x00]), Err(BerError::Truncated));
        assert_eq!(to_der(&[0x04, 0x80, 0x00, 0x00]), Err(BerError::IndefinitePrimitive));
        assert_eq!(to_der(&[0x05, 0x00, 0x05, 0x00]), Err(BerError::TrailingBytes));
        assert_eq!(to_der(&[0x24, 0x03, 0x0c, 0x01, b'a']), Err(BerError::MixedSegments));
        assert_eq!(to_der(&[0x23, 0x04, 0x03, 0x02, 0x00, 0xff]), Err(BerError::SegmentedBitString));
        assert_eq!(to_der(&[0x04, 0x85, 1, 0, 0, 0, 0]), Err(BerError::BadLength));
        let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 40).flatten().collect();
        assert_eq!(to_der(&deep), Err(BerError::TooDeep(MAX_DEPTH)));
    }
}
