//! Secrets are write-only: reads show [`MASK`], and a write that gives the mask back keeps the
//! stored secret. No write can turn a stored secret into something a read shows in clear.

use super::{InboundElement, MASK, Policy, SetHeader};

/// Why a write that holds the mask was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnmaskError {
    /// The Basic password is the mask, and no password is stored.
    #[error("authentication-basic password is the mask '{MASK}' but no password is stored; give the real password")]
    NoStoredPassword,
    /// A set-header value is the mask, and no secret is stored for that header.
    #[error(
        "set-header '{name}' has the mask '{MASK}' as a value but no secret value is stored for it there; give the \
         real value"
    )]
    NoStoredHeader {
        /// The header's name.
        name: String,
        /// Which set-header: `Policy::headers[index]`.
        index: usize,
    },
    /// A set-header value is the mask, but the header is not `secret="true"`.
    #[error(
        "set-header '{name}' has the mask '{MASK}' as a value without secret=\"true\": a stored secret cannot become \
         a plain value; keep secret=\"true\", or give the value itself"
    )]
    MaskNotSecret {
        /// The header's name.
        name: String,
        /// Which set-header: `Policy::headers[index]`.
        index: usize,
    },
}

impl UnmaskError {
    /// The element refused, for [`super::refusal_at`].
    pub fn element(&self) -> InboundElement {
        match self {
            Self::NoStoredPassword => InboundElement::AuthenticationBasic,
            Self::NoStoredHeader { index, .. } | Self::MaskNotSecret { index, .. } => InboundElement::SetHeader(*index),
        }
    }
}

/// Replaces masked secrets in `incoming` with the ones stored in `current`, so that a policy
/// read (masked) and written back keeps its secrets.
///
/// - The Basic password: the mask keeps the stored password (even under a new username: it is
///   still never shown).
/// - A header value: the mask is taken only in a `secret="true"` header, and is refused
///   ([`UnmaskError::MaskNotSecret`]) in any other. Marking the header secret silently would store
///   something other than the document says; keeping it plain would show the secret on the next
///   read. So dropping `secret="true"` needs the real value.
/// - The n-th secret header of a name takes its values from the n-th secret header of that name
///   stored, value by value (the i-th mask takes the i-th stored value). Headers that are not
///   secret do not count, so adding a `delete` of the same name in front shifts nothing. The
///   exists-action may differ: the value stays secret either way.
pub fn unmask(mut incoming: Policy, current: &Policy) -> Result<Policy, UnmaskError> {
    if let Some(basic) = incoming.basic.as_mut()
        && basic.password == MASK
    {
        basic.password = current.basic.as_ref().map(|b| b.password.clone()).ok_or(UnmaskError::NoStoredPassword)?;
    }
    // Names of the secret headers before this one, to pair each with its stored counterpart.
    let mut secrets_before: Vec<String> = Vec::new();
    for (index, header) in incoming.headers.iter_mut().enumerate() {
        if !header.secret {
            if header.values.iter().any(|v| v == MASK) {
                return Err(UnmaskError::MaskNotSecret { name: header.name.clone(), index });
            }
            continue;
        }
        let n = secrets_before.iter().filter(|name| **name == header.name).count();
        secrets_before.push(header.name.clone());
        let stored = nth_secret(current, &header.name, n);
        for (i, value) in header.values.iter_mut().enumerate() {
            if value == MASK {
                *value = stored
                    .and_then(|h| h.values.get(i))
                    .cloned()
                    .ok_or_else(|| UnmaskError::NoStoredHeader { name: header.name.clone(), index })?;
            }
        }
    }
    Ok(incoming)
}

/// The `n`-th (from 0) secret set-header named `name` in `policy`.
fn nth_secret<'a>(policy: &'a Policy, name: &str, n: usize) -> Option<&'a SetHeader> {
    policy.headers.iter().filter(|h| h.secret && h.name == name).nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{parse, refusal_at, render};

    const STORED: &str = r#"<policies><inbound>
      <authentication-basic username="svc" password="basic-s3cret" />
      <set-header name="X-Key" secret="true"><value>key-1</value><value>key-2</value></set-header>
      <set-header name="X-Key" exists-action="append" secret="true"><value>key-3</value></set-header>
      <set-header name="X-Env"><value>prod</value></set-header>
    </inbound></policies>"#;

    fn stored() -> Policy {
        parse(STORED).unwrap()
    }

    fn inbound(elements: &str) -> String {
        format!("<policies><inbound>{elements}</inbound></policies>")
    }

    /// `<set-header name="{name}" {attrs}>` with one `<value>` per entry of `values`.
    fn set_header(name: &str, attrs: &str, values: &[&str]) -> String {
        let values: String = values.iter().map(|v| format!("<value>{v}</value>")).collect();
        format!("<set-header name=\"{name}\" {attrs}>{values}</set-header>")
    }

    /// What a read after writing `xml` over [`STORED`] would show, or why the write is refused.
    fn write_then_read(xml: &str) -> Result<String, UnmaskError> {
        Ok(render(&unmask(parse(xml).unwrap(), &stored())?, true))
    }

    fn assert_no_secret_shows(read: &str) {
        for secret in ["basic-s3cret", "key-1", "key-2", "key-3"] {
            assert!(!read.contains(secret), "{secret} shows in\n{read}");
        }
    }

    #[test]
    fn a_read_written_back_keeps_every_secret() {
        let read = render(&stored(), true);
        assert_no_secret_shows(&read);
        assert_eq!(unmask(parse(&read).unwrap(), &stored()).unwrap(), stored());
    }

    #[test]
    fn the_basic_password_is_masked_and_kept() {
        let read = render(&stored(), true);
        assert!(read.contains(&format!("password=\"{MASK}\"")), "{read}");
        let basic = inbound(&format!("<authentication-basic username=\"other\" password=\"{MASK}\" />"));
        assert_no_secret_shows(&write_then_read(&basic).unwrap());
        let error = unmask(parse(&basic).unwrap(), &Policy::default()).unwrap_err();
        assert!(matches!(error, UnmaskError::NoStoredPassword));
    }

    #[test]
    fn the_mask_without_secret_true_is_refused() {
        let xml = inbound(&set_header("X-Key", "", &[MASK]));
        let error = write_then_read(&xml).unwrap_err();
        assert!(matches!(error, UnmaskError::MaskNotSecret { ref name, index: 0 } if name == "x-key"));
        assert!(error.to_string().contains("keep secret=\"true\""), "{error}");
    }

    #[test]
    fn the_mask_under_another_exists_action_stays_secret() {
        let xml = inbound(&set_header("X-Key", "exists-action=\"skip\" secret=\"true\"", &[MASK]));
        let policy = unmask(parse(&xml).unwrap(), &stored()).unwrap();
        assert_eq!(policy.headers[0].values, ["key-1"], "the backend still gets the stored secret");
        assert_no_secret_shows(&render(&policy, true));
    }

    #[test]
    fn duplicated_names_pair_in_order_of_the_secret_ones() {
        let secret = "secret=\"true\"";
        // A delete of the same name in front does not shift the pairing.
        let xml = inbound(
            &[
                "<set-header name=\"X-Key\" exists-action=\"delete\" />".to_string(),
                set_header("X-Key", secret, &[MASK, MASK]),
                set_header("X-Key", "exists-action=\"append\" secret=\"true\"", &[MASK]),
            ]
            .concat(),
        );
        let policy = unmask(parse(&xml).unwrap(), &stored()).unwrap();
        assert_eq!(policy.headers[1].values, ["key-1", "key-2"]);
        assert_eq!(policy.headers[2].values, ["key-3"]);
        // A third secret X-Key has no stored counterpart, nor does a third mask in the first.
        let third_header = [["a"], ["b"], [MASK]].map(|values| set_header("X-Key", secret, &values)).concat();
        let third_value = set_header("X-Key", secret, &["a", "b", MASK]);
        for (xml, index) in [(inbound(&third_header), 2), (inbound(&third_value), 0)] {
            let error = write_then_read(&xml).unwrap_err();
            assert!(matches!(error, UnmaskError::NoStoredHeader { index: i, .. } if i == index), "{xml}: {error}");
        }
    }

    #[test]
    fn a_plain_header_of_the_same_name_never_lends_its_value() {
        // X-Env is stored in clear: the mask there is not a secret to restore.
        let xml = inbound(&set_header("X-Env", "secret=\"true\"", &[MASK]));
        assert!(matches!(write_then_read(&xml), Err(UnmaskError::NoStoredHeader { index: 0, .. })));
    }

    #[test]
    fn refusals_point_at_the_element() {
        let xml = format!(
            "<policies>\n<inbound>\n{}\n{}\n<authentication-basic username=\"u\" password=\"{MASK}\" />\n</inbound>\n</policies>",
            set_header("X-Env", "", &["prod"]),
            set_header("X-Key", "", &[MASK]),
        );
        let error = unmask(parse(&xml).unwrap(), &stored()).unwrap_err();
        assert_eq!(error.element(), InboundElement::SetHeader(1));
        let located = refusal_at(&xml, error.element(), error.to_string()).to_string();
        assert!(located.starts_with("policy XML, line 4, column 1, <set-header>: set-header 'x-key'"), "{located}");
        let error = unmask(parse(&xml).unwrap(), &Policy::default()).unwrap_err();
        let located = refusal_at(&xml, error.element(), error.to_string()).to_string();
        assert!(located.starts_with("policy XML, line 5, column 1, <authentication-basic>"), "{located}");
    }
}
