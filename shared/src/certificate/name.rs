//! Distinguished names as people read them: "CN=api-client, O=Example, C=US", every string type
//! X.509 allows decoded, multi-valued RDNs kept together with " + ".

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::prelude::X509Name;
use x509_parser::x509::AttributeTypeAndValue;

/// "CN=api-client, O=Example, C=US": the common name first, then the other attributes most
/// specific first (reverse of the encoded order), as Windows and APIM show names. Attributes of a
/// multi-valued RDN stay together, CN first among them: "CN=a + UID=b, O=Example".
pub fn display_name(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<Vec<String>> = name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|rdn| {
            let mut attributes: Vec<String> = rdn.iter().map(attribute).collect();
            if let Some(cn) = attributes.iter().position(|a| a.starts_with("CN=")) {
                let cn = attributes.remove(cn);
                attributes.insert(0, cn);
            }
            attributes
        })
        .collect();
    if let Some(cn) = rdns.iter().position(|rdn| rdn.iter().any(|a| a.starts_with("CN="))) {
        let cn = rdns.remove(cn);
        rdns.insert(0, cn);
    }
    rdns.iter().map(|rdn| rdn.join(" + ")).collect::<Vec<_>>().join(", ")
}

const RFC4514_KEYS: [&str; 9] = ["CN", "L", "ST", "O", "OU", "C", "STREET", "DC", "UID"];

fn attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let key = match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
        // RFC 4514's spelling where it has one (the registry says "uid").
        Ok(abbrev) => RFC4514_KEYS
            .iter()
            .find(|key| key.eq_ignore_ascii_case(abbrev))
            .map_or_else(|| abbrev.to_string(), |key| key.to_string()),
        Err(_) => attr.attr_type().to_id_string(),
    };
    let value = text(attr.attr_value()).unwrap_or_else(|| "<binary>".to_string());
    format!("{key}={value}")
}

/// The text of a string-typed attribute value, or `None` for other types and invalid encodings.
pub(super) fn text(value: &Any<'_>) -> Option<String> {
    let bytes = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::NumericString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(bytes.to_vec()).ok()
        }
        // T.61 in practice holds Latin-1 (OpenSSL, Windows) or UTF-8 (Python, Go); as NSS does,
        // take it as UTF-8 where it is valid UTF-8, which Latin-1 text beyond ASCII seldom is.
        Tag::TeletexString => {
            Some(String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| bytes.iter().map(|&b| char::from(b)).collect()))
        }
        Tag::BmpString if bytes.len().is_multiple_of(2) => {
            let units = bytes.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        Tag::UniversalString if bytes.len().is_multiple_of(4) => bytes
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    /// One attribute: its type's OID bytes, the string tag, the value bytes.
    type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

    /// A Name with one RDN per list of attributes.
    fn name_der(rdns: &[&[Attribute<'_>]]) -> Vec<u8> {
        fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
            assert!(contents.len() < 0x80);
            [&[tag, contents.len() as u8][..], contents].concat()
        }
        let rdns: Vec<u8> = rdns
            .iter()
            .flat_map(|rdn| {
                let attrs: Vec<u8> = rdn
                    .iter()
                    .flat_map(|(oid, tag, value)| tlv(0x30, &[tlv(0x06, oid), tlv(*tag, value)].concat()))
                    .collect();
                tlv(0x31, &attrs)
            })
            .collect();
        tlv(0x30, &rdns)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01];

    #[test]
    fn every_directory_string_type_is_decoded() {
        let der = name_der(&[
            &[(C, 0x13, b"US")],
            &[(O, 0x14, b"Z\xf6e")],                              // T61String, Latin-1 "Zöe"
            &[(O, 0x14, "Zoë".as_bytes())],                       // T61String holding UTF-8
            &[(O, 0x1e, &[0x03, 0xa9, 0x00, b'm'])],              // BMPString "Ωm"
            &[(CN, 0x1c, &[0, 0, 0, b'a', 0, 0x01, 0xf6, 0x00])], // UniversalString "a😀"
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(display_name(&name), "CN=a😀, O=Ωm, O=Zoë, O=Zöe, C=US");
    }

    #[test]
    fn multi_valued_rdns_keep_their_plus() {
        let der = name_der(&[&[(C, 0x13, b"US")], &[(UID, 0x0c, b"b"), (CN, 0x0c, b"a")]]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(display_name(&name), "CN=a + UID=b, C=US");
    }
}
