//! What a policy may claim about a client certificate, read the same way on both planes: the
//! control plane parses a policy's `subject`, `issuer-subject` and `serial-number` when the
//! policy is set (and refuses what it cannot read), the data plane compares them with the
//! certificates clients present.
//!
//! Distinguished names are written as RFC 4514 has them (most specific first, as Windows, APIM
//! and `openssl x509 -nameopt RFC2253` show them: "CN=client, O=Example, C=US") or in encoded
//! order (as `openssl x509 -subject` shows them: "C=US, O=Example, CN=client"). Attribute names
//! are case-insensitive (`CN`, `cn`, `commonName`, or a dotted OID); values compare as X.500's
//! caseIgnoreMatch does: case-insensitively, with runs of white space as one space and none at
//! either end. A multi-valued RDN ("CN=a + UID=b") matches in any order of its attributes.

mod parser;

use std::fmt::Write as _;

use x509_parser::prelude::X509Name;

use self::parser::Parser;
use super::name::text;

/// A distinguished name: its RDNs in the order they were written or encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Rdn>,
}

/// One relative distinguished name: its attributes, sorted (a multi-valued RDN is a set).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rdn(Vec<Attribute>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Attribute {
    /// Dotted decimal.
    oid: String,
    /// As compared: see [`fold`]. None for a value that is not a string.
    folded: Option<String>,
    /// As written or encoded: for display.
    value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Text(String),
    /// Not a string type (RFC 4514 writes it as `#` and the hex of its encoding).
    Binary(Vec<u8>),
}

/// Text that is not a distinguished name this reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a distinguished name: {reason}")]
pub struct InvalidName {
    text: String,
    reason: String,
}

/// Text that is not a certificate serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a certificate serial number: expected hexadecimal digits (':' or ' ' between bytes allowed)")]
pub struct InvalidSerial(String);
/// The names RFC 4514 writes (§3); other attributes are written as dotted OIDs.
const RFC4514_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

const COMMON_NAME: &str = "2.5.4.3";

/// A value as caseIgnoreMatch compares it: ASCII letters lowercase, runs of ASCII spaces as one
/// space, trimmed. Only ASCII folds: Unicode case folding and white space would let look-alikes
/// match (the Kelvin sign K folds to 'k', a no-break space counts as a space).
pub fn fold(value: &str) -> String {
    value.split(' ').filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ").to_ascii_lowercase()
}

// === impl DistinguishedName ===

impl DistinguishedName {
    /// Reads a written name (see the module's documentation for the forms).
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let invalid = |reason: &str| InvalidName { text: text.to_string(), reason: reason.to_string() };
        let mut parser = Parser { chars: text.chars().collect(), at: 0 };
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        parser.skip_spaces();
        if parser.peek().is_none() {
            return Err(invalid("it is empty"));
        }
        loop {
            let oid = parser.attribute_type().map_err(|reason| invalid(&reason))?;
            let value = parser.value().map_err(|reason| invalid(&reason))?;
            rdn.push(Attribute { oid, folded: Some(fold(&value)), value: Value::Text(value) });
            match parser.next() {
                None => break,
                Some('+') => continue,
                Some(',' | ';') => rdns.push(Rdn::new(std::mem::take(&mut rdn))),
                Some(other) => return Err(invalid(&format!("unexpected '{other}' after a value"))),
            }
        }
        rdns.push(Rdn::new(rdn));
        Ok(Self { rdns })
    }

    /// A certificate's name, in encoded order.
    pub fn of(name: &X509Name<'_>) -> Self {
        let rdns = name
            .iter_rdn()
            .map(|rdn| {
                Rdn::new(
                    rdn.iter()
                        .map(|attr| {
                            let oid = attr.attr_type().to_id_string();
                            match text(attr.attr_value()) {
                                Some(value) => Attribute { oid, folded: Some(fold(&value)), value: Value::Text(value) },
                                None => {
                                    let value = attr.attr_value();
                                    let mut der = vec![value.tag().0 as u8];
                                    push_length(&mut der, value.data.len());
                                    der.extend_from_slice(value.data);
                                    Attribute { oid, folded: None, value: Value::Binary(der) }
                                }
                            }
                        })
                        .collect(),
                )
            })
            .collect();
        Self { rdns }
    }

    /// Whether `certificate`'s name (as [`Self::of`] reads it) is this written one: the same
    /// RDNs, written most specific first or in encoded order. Values that are not strings never
    /// match.
    pub fn matches(&self, certificate: &DistinguishedName) -> bool {
        if self.rdns.len() != certificate.rdns.len() {
            return false;
        }
        let same = |a: &Rdn, b: &Rdn| {
            a.0.len() == b.0.len()
                && a.0.iter().zip(&b.0).all(|(x, y)| x.oid == y.oid && x.folded.is_some() && x.folded == y.folded)
        };
        self.rdns.iter().zip(certificate.rdns.iter().rev()).all(|(a, b)| same(a, b))
            || self.rdns.iter().zip(&certificate.rdns).all(|(a, b)| same(a, b))
    }

    /// Whether a common name of this name is `common_name` (compared as values are).
    pub fn has_common_name(&self, common_name: &str) -> bool {
        let wanted = fold(common_name);
        self.rdns.iter().flat_map(|rdn| &rdn.0).any(|a| a.oid == COMMON_NAME && a.folded.as_deref() == Some(&wanted))
    }

    /// A certificate's name (read by [`Self::of`]) as RFC 4514 writes it, most specific first:
    /// "CN=client,O=Example\, Inc.,C=US". Characters outside printable ASCII are escaped as
    /// `\XX` (their UTF-8 bytes), so the text is ASCII and fits an HTTP header as it is.
    pub fn to_rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, attr) in rdn.0.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                match RFC4514_NAMES.iter().find(|(oid, _)| *oid == attr.oid) {
                    Some((_, name)) => out.push_str(name),
                    None => out.push_str(&attr.oid),
                }
                out.push('=');
                match &attr.value {
                    Value::Text(value) => escape_value(value, &mut out),
                    Value::Binary(der) => {
                        out.push('#');
                        for byte in der {
                            let _ = write!(out, "{byte:02X}");
                        }
                    }
                }
            }
        }
        out
    }
}

// === impl Rdn ===

impl Rdn {
    fn new(mut attributes: Vec<Attribute>) -> Self {
        attributes.sort();
        Self(attributes)
    }
}

/// RFC 4514 §2.4: `"+,;<>\` and NUL anywhere, `#` or space first, space last, escaped; and,
/// here, anything outside printable ASCII as `\XX` per UTF-8 byte.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{byte:02X}");
            }
        }
    }
}

fn push_length(der: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
}

// === serial numbers ===

/// A serial number as written (hex, any case, with or without `:` or ` ` between bytes) in the
/// form [`serial_hex`] gives: uppercase, without leading zeros.
pub fn normalize_serial(text: &str) -> Result<String, InvalidSerial> {
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(InvalidSerial(text.to_string()));
    }
    Ok(strip_zeros(&hex))
}

/// A certificate's serial number (its encoded bytes) as uppercase hex without leading zeros,
/// as Windows shows it less its padding.
pub fn serial_hex(raw: &[u8]) -> String {
    let mut hex = String::with_capacity(raw.len() * 2);
    for byte in raw {
        let _ = write!(hex, "{byte:02X}");
    }
    strip_zeros(&hex)
}

fn strip_zeros(hex: &str) -> String {
    let stripped = hex.trim_start_matches('0');
    if stripped.is_empty() { "0".to_string() } else { stripped.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ascii_folds() {
        assert_eq!(fold("  Back   Office "), "back office");
        assert_ne!(fold("bac\u{212A}office"), fold("backoffice"), "the Kelvin sign is not a k");
        assert_ne!(fold("back\u{a0}office"), fold("back office"), "a no-break space is not a space");
    }
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn certificate_name(dn: rcgen::DistinguishedName) -> DistinguishedName {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        let cert = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        DistinguishedName::of(parsed.subject())
    }

    fn client_name() -> DistinguishedName {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::CommonName, "Orders  Client");
        certificate_name(dn)
    }

    #[test]
    fn written_names_match_in_either_order_case_and_spacing() {
        let cert = client_name();
        for written in [
            r"CN=Orders Client, O=Example\, Inc., C=US",
            r#"CN=orders client,O="Example, Inc.",C=us"#,
            r"C=US, O=Example\2C Inc., CN=Orders Client",
            r"commonName = Orders Client ; O=Example\, Inc. ; OID.2.5.4.6=US",
        ] {
            let dn = DistinguishedName::parse(written).unwrap();
            assert!(dn.matches(&cert), "{written}");
        }
        for other in [
            "CN=Orders Client, O=Example\\, Inc.",
            "CN=Orders Client, O=Example, C=US",
            "O=Example\\, Inc., CN=Orders Client, C=US",
        ] {
            assert!(!DistinguishedName::parse(other).unwrap().matches(&cert), "{other}");
        }
        assert!(cert.has_common_name("orders client"));
        assert!(!cert.has_common_name("Orders"));
    }

    #[test]
    fn multi_valued_rdns_match_in_any_order() {
        let written = DistinguishedName::parse("CN=a + UID=b, O=x").unwrap();
        let reordered = DistinguishedName::parse("UID=b+CN=a,O=x").unwrap();
        assert_eq!(written, reordered);
    }

    #[test]
    fn what_is_not_a_name_says_why() {
        for (text, says) in [
            ("", "it is empty"),
            ("CN", "has no '=' and value"),
            ("XX=1", "unknown attribute 'XX'"),
            ("CN=#0403", "'#' and hex"),
            ("CN=\"open", "no closing"),
            ("CN=a\\zz", "must be followed"),
            ("CN=a\\C", "must be followed"),
            ("CN=a\\C3", "not UTF-8"),
            ("CN=a\\FF\\FF", "not UTF-8"),
            ("CN=a\"b", "must be escaped"),
            ("=a", "has no name"),
        ] {
            let error = DistinguishedName::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn rfc4514_text_is_ascii_and_escaped() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Müller, \"GmbH\"");
        dn.push(rcgen::DnType::CommonName, "#1 client ");
        let text = certificate_name(dn).to_rfc4514();
        assert_eq!(text, r#"CN=\#1 client\ ,O=M\C3\BCller\, \"GmbH\",C=DE"#);
        assert!(text.is_ascii());
        // And it reads back as the same name.
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Müller, \"GmbH\"");
        dn.push(rcgen::DnType::CommonName, "#1 client ");
        assert!(DistinguishedName::parse(&text).unwrap().matches(&certificate_name(dn)));
    }

    #[test]
    fn serial_numbers_compare_without_padding_case_or_separators() {
        assert_eq!(normalize_serial("00:1a:2B").unwrap(), "1A2B");
        assert_eq!(normalize_serial("0 0").unwrap(), "0");
        assert_eq!(serial_hex(&[0x00, 0x1A, 0x2B]), "1A2B");
        assert!(normalize_serial("xyz").unwrap_err().to_string().contains("not a certificate serial number"));
        assert!(normalize_serial("").is_err());
    }
}
