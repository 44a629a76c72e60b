//! What one attribute or text value may hold. Each check returns the sentence to show; the
//! parser adds the element and its line and column. Messages never repeat a value that could
//! be a secret.

use super::{ExistsAction, MAX_BACKEND_TIMEOUT_SECS};

/// Whether a value may hold `{{name}}` references to named values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Named {
    /// A Basic username or password, or a set-header value: references are read.
    Read,
    /// Anywhere else: a reference would be taken literally, so it is refused.
    Refused,
}

/// APIM would evaluate `@(…)`/`@{…}`: taking it literally would send the backend something else
/// than the document means, so it is refused. `{{name}}` is a named value where `named` reads
/// them (its name must be valid) and refused elsewhere.
pub(super) fn check_literal(text: &str, named: Named) -> Result<(), String> {
    // APIM reads an expression after leading white space too (a multi-line `<value>`).
    let start = text.trim_start();
    if start.starts_with("@(") || start.starts_with("@{") {
        return Err("policy expressions are not supported; give a literal value".into());
    }
    // A named value can sit anywhere in a value ("Bearer {{token}}"); a lone "{{" is literal.
    let references = super::named_values::references(text)?;
    if named == Named::Refused && !references.is_empty() {
        return Err(
            "named values are read only in authentication-basic and set-header values; give the value itself".into()
        );
    }
    Ok(())
}

/// Header names the gateway owns or that describe the connection cannot be set by policy.
/// `Host` passes here: it is settable, but only as [`check_host_header`] allows.
pub(super) fn check_header_name(name: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{name}' is not a valid header name"));
    }
    if gatehouse_shared::headers::is_connection_header(name) {
        return Err(format!("the header '{name}' cannot be set by policy"));
    }
    Ok(())
}

pub(super) fn check_header_value(value: &str) -> Result<(), &'static str> {
    http::HeaderValue::from_str(value)
        .map(|_| ())
        .map_err(|_| "the value is not a valid header value (control characters?)")
}

/// A request has exactly one `Host`, so the only meaningful set-header for it is an override
/// with one `host[:port]`. It is not a credential, and a masked one could not be validated.
pub(super) fn check_host_header(action: ExistsAction, secret: bool, values: &[String]) -> Result<(), String> {
    if action != ExistsAction::Override {
        return Err(format!(
            "exists-action=\"{}\" is not supported for Host: a request has exactly one Host, so only \
             exists-action=\"override\" is",
            action.as_str()
        ));
    }
    if secret {
        return Err("Host cannot be secret=\"true\"; it is not a credential".into());
    }
    match values {
        [value] => check_authority(value),
        _ => Err("Host takes exactly one <value>".into()),
    }
}

/// `host[:port]`: a DNS name or IPv4 address, or `[IPv6]`; no user info, path or spaces.
fn check_authority(value: &str) -> Result<(), String> {
    let valid_port = |port: &str| port.bytes().all(|b| b.is_ascii_digit()) && matches!(port.parse::<u16>(), Ok(1..));
    let valid = match value.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(address, after)| {
            address.parse::<std::net::Ipv6Addr>().is_ok()
                && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port))
        }),
        None => {
            let (host, port) = match value.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (value, None),
            };
            let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            !host.is_empty() && host.len() <= 253 && host.chars().all(name_char) && port.is_none_or(valid_port)
        }
    };
    match valid {
        true => Ok(()),
        false => Err(format!(
            "the Host value '{value}' is not host or host:port (letters, digits, '-', '.', '_', \
             or [IPv6]; no spaces, '/' or '@')"
        )),
    }
}

/// `<forward-request timeout>`: whole seconds, 1 to [`MAX_BACKEND_TIMEOUT_SECS`].
pub(super) fn parse_timeout(text: &str) -> Result<u32, String> {
    let seconds = text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse::<u32>().ok()).flatten();
    match seconds {
        Some(seconds @ 1..=MAX_BACKEND_TIMEOUT_SECS) => Ok(seconds),
        _ => Err(format!("timeout=\"{text}\" must be a whole number of seconds from 1 to {MAX_BACKEND_TIMEOUT_SECS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_and_named_values_are_not_literals() {
        for expression in ["@(context.Request.Id)", "@{ return \"x\"; }", "  \n\t@(1)"] {
            assert!(check_literal(expression, Named::Read).unwrap_err().contains("policy expressions"), "{expression}");
        }
        for named in ["{{api-key}}", "Bearer {{token}}", "{{a}}b{{c}}"] {
            assert!(
                check_literal(named, Named::Refused).unwrap_err().contains("named values are read only in"),
                "{named}"
            );
            assert_eq!(check_literal(named, Named::Read), Ok(()), "{named}");
        }
        for literal in ["", "plain", "a@(b", "user@example.com", "{{", "}} {{", "{ {x} }"] {
            assert_eq!(check_literal(literal, Named::Refused), Ok(()), "{literal}");
        }
    }

    #[test]
    fn host_is_override_of_one_host_and_port() {
        let one = |v: &str| vec![v.to_string()];
        for good in ["api.example.com", "api.example.com:8443", "10.0.0.1", "[::1]", "[2001:db8::1]:443", "svc_a"] {
            assert_eq!(check_host_header(ExistsAction::Override, false, &one(good)), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "u@a", "a:", "a:0", "a:70000", "a:+1", "[::1", "[zz]", "[::1]x", "********"] {
            let error = check_host_header(ExistsAction::Override, false, &one(bad)).unwrap_err();
            assert!(error.contains("not host or host:port"), "{bad}: {error}");
        }
        for action in [ExistsAction::Skip, ExistsAction::Append, ExistsAction::Delete] {
            let error = check_host_header(action, false, &one("a")).unwrap_err();
            assert!(error.contains(&format!("exists-action=\"{}\" is not supported for Host", action.as_str())));
        }
        assert!(check_host_header(ExistsAction::Override, true, &one("a")).unwrap_err().contains("secret"));
        let two = vec!["a".to_string(), "b".to_string()];
        assert!(check_host_header(ExistsAction::Override, false, &two).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn timeout_is_whole_seconds_within_apims_range() {
        assert_eq!(parse_timeout("1"), Ok(1));
        assert_eq!(parse_timeout("240"), Ok(240));
        for bad in ["0", "241", "-1", "+5", " 5", "1.5", "", "99999999999"] {
            assert!(parse_timeout(bad).unwrap_err().contains("from 1 to 240"), "{bad}");
        }
    }
}
