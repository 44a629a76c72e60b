//! Certificate thumbprints: uppercase hex SHA-1 of the DER certificate, as Windows and APIM show them.

use std::fmt;

/// A SHA-1 certificate thumbprint, always stored as 40 uppercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint(String);

/// Text that is not 40 hex characters.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a certificate thumbprint: expected 40 hexadecimal characters (SHA-1)")]
pub struct InvalidThumbprint(String);

impl Thumbprint {
    /// The thumbprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let mut hex = String::with_capacity(40);
        for byte in digest.as_ref() {
            hex.push_str(&format!("{byte:02X}"));
        }
        Self(hex)
    }

    /// Parses what people paste: any case, with or without `:` or space separators.
    pub fn parse(text: &str) -> Result<Self, InvalidThumbprint> {
        let hex: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
        if hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(hex))
        } else {
            Err(InvalidThumbprint(text.to_string()))
        }
    }

    /// The 40 uppercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_openssl_fingerprint_format() {
        let t = Thumbprint::parse("ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01").unwrap();
        assert_eq!(t.as_str(), "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
        assert!(Thumbprint::parse("ABCD").is_err());
        assert!(Thumbprint::parse(&"G".repeat(40)).is_err());
    }
}
