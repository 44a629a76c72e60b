//! Reading a distinguished name as a policy writes it: attribute names (keywords or dotted OIDs)
//! to OIDs, values quoted or not, with RFC 4514's `\` escapes.

/// Attribute names accepted in written names, and the OID each stands for: RFC 4514's, the ones
/// Windows and OpenSSL print, and their long forms.
const KEYWORDS: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("COMMONNAME", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SURNAME", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("COUNTRYNAME", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("LOCALITYNAME", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("STATEORPROVINCENAME", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("STREETADDRESS", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("ORGANIZATIONNAME", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("ORGANIZATIONALUNITNAME", "2.5.4.11"),
    ("T", "2.5.4.12"),
    ("TITLE", "2.5.4.12"),
    ("POSTALCODE", "2.5.4.17"),
    ("G", "2.5.4.42"),
    ("GN", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("I", "2.5.4.43"),
    ("INITIALS", "2.5.4.43"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("PSEUDONYM", "2.5.4.65"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("DOMAINCOMPONENT", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("USERID", "0.9.2342.19200300.100.1.1"),
    ("E", "1.2.840.113549.1.9.1"),
    ("EMAIL", "1.2.840.113549.1.9.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

pub(super) struct Parser {
    pub(super) chars: Vec<char>,
    pub(super) at: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    pub(super) fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    pub(super) fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// `CN`, `commonName`, `2.5.4.3` or `OID.2.5.4.3`, then `=`; returns the OID.
    pub(super) fn attribute_type(&mut self) -> Result<String, String> {
        self.skip_spaces();
        let mut name = String::new();
        loop {
            match self.next() {
                Some('=') => break,
                Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == '-' => name.push(c),
                Some(c) if c.is_whitespace() => {
                    self.skip_spaces();
                    if self.next() != Some('=') {
                        return Err(format!("expected '=' after '{name}'"));
                    }
                    break;
                }
                Some(c) => return Err(format!("'{c}' in an attribute name (expected NAME=value)")),
                None => return Err(format!("'{name}' has no '=' and value")),
            }
        }
        if name.is_empty() {
            return Err("an attribute has no name (expected NAME=value)".into());
        }
        let dotted = name.strip_prefix("OID.").or_else(|| name.strip_prefix("oid.")).unwrap_or(&name);
        if dotted.split('.').count() > 1
            && dotted.split('.').all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        {
            return Ok(dotted.to_string());
        }
        let upper = name.to_ascii_uppercase();
        match KEYWORDS.iter().find(|(keyword, _)| *keyword == upper) {
            Some((_, oid)) => Ok(oid.to_string()),
            None => Err(format!(
                "unknown attribute '{name}' (known: CN, O, OU, C, L, ST, STREET, DC, UID, E, SERIALNUMBER, T, G, SN, \
                 or a dotted OID)"
            )),
        }
    }

    /// A value, up to (not including) the `,`, `;` or `+` that ends it; quoted or not.
    pub(super) fn value(&mut self) -> Result<String, String> {
        self.skip_spaces();
        let mut bytes = Vec::new();
        match self.peek() {
            Some('#') => return Err("values written as '#' and hex are not supported; write the text".into()),
            Some('"') => {
                self.at += 1;
                loop {
                    match self.next() {
                        Some('"') => break,
                        Some('\\') => self.escape(&mut bytes)?,
                        Some(c) => push_char(&mut bytes, c),
                        None => return Err("a quoted value has no closing '\"'".into()),
                    }
                }
                self.skip_spaces();
            }
            _ => {
                // Trailing spaces are not part of the value unless escaped.
                let mut kept = 0;
                while let Some(c) = self.peek() {
                    match c {
                        ',' | ';' | '+' => break,
                        '\\' => {
                            self.at += 1;
                            self.escape(&mut bytes)?;
                            kept = bytes.len();
                        }
                        '"' => return Err("a '\"' inside a value must be escaped as '\\\"'".into()),
                        c => {
                            self.at += 1;
                            push_char(&mut bytes, c);
                            if !c.is_whitespace() {
                                kept = bytes.len();
                            }
                        }
                    }
                }
                bytes.truncate(kept);
            }
        }
        String::from_utf8(bytes).map_err(|_| "its '\\XX' escapes are not UTF-8".to_string())
    }

    /// After a `\`: a special character, or two hex digits (one byte).
    fn escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), String> {
        match self.next() {
            Some(high) if high.is_ascii_hexdigit() => {
                let low =
                    self.next().filter(char::is_ascii_hexdigit).ok_or("'\\' must be followed by two hex digits")?;
                let byte = u8::from_str_radix(&format!("{high}{low}"), 16).expect("two hex digits");
                bytes.push(byte);
            }
            Some(c) if " \"#+,;<=>\\".contains(c) => push_char(bytes, c),
            _ => return Err("'\\' must be followed by one of ' \"#+,;<=>\\' or two hex digits".into()),
        }
        Ok(())
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}
