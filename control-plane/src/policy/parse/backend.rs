//! The `<backend>` section: whether and how the request is forwarded.

use roxmltree::Node;

use super::{attributes, base, elements, invalid, no_content, unknown_in};
use crate::policy::PolicyError;
use crate::policy::value::parse_timeout;

/// The backend call's timeout. APIM forwards only through `<forward-request>`, its own or the
/// one `<base />` inherits from the global scope; a `<backend>` with neither answers without
/// calling the backend, which this gateway does not do, so it is refused rather than forwarded.
/// A missing `<backend>` section is taken as `<base />`, as documents accepted so far were.
pub(super) fn backend(section: Node<'_, '_>) -> Result<Option<u32>, PolicyError> {
    let mut inherits = false;
    let mut forward: Option<Option<u32>> = None;
    for element in elements(section)? {
        match element.tag_name().name() {
            "base" => {
                base(element)?;
                inherits = true;
            }
            "forward-request" if forward.is_some() => {
                return Err(invalid(element, "only one forward-request is allowed"));
            }
            "forward-request" => forward = Some(forward_request(element)?),
            _ => return Err(unknown_in(element, "backend", "<base /> or <forward-request>")),
        }
    }
    match (inherits, forward) {
        // Inheriting the global forward-request and adding one would call the backend twice.
        (true, Some(_)) => Err(invalid(section, "give <base /> or <forward-request>, not both")),
        (false, None) => Err(invalid(
            section,
            "without <base /> or <forward-request> the request is not forwarded, which this gateway does not \
             support; add <forward-request />",
        )),
        (_, forward) => Ok(forward.flatten()),
    }
}

/// Only `timeout` changes what the gateway does; the other APIM attributes are refused unless
/// they state what the gateway does anyway (it never follows redirects and never turns an error
/// status into `<on-error>`).
fn forward_request(element: Node<'_, '_>) -> Result<Option<u32>, PolicyError> {
    const KNOWN: [&str; 8] = [
        "timeout",
        "follow-redirects",
        "fail-on-error-status-code",
        "timeout-ms",
        "continue-timeout",
        "http-version",
        "buffer-request-body",
        "buffer-response",
    ];
    let values = attributes(element, KNOWN, &[], &[])?;
    no_content(element)?;
    for (name, value) in KNOWN.iter().zip(values).skip(1) {
        match (*name, value) {
            (_, None) | ("follow-redirects" | "fail-on-error-status-code", Some("false")) => {}
            (name, Some(_)) => {
                let message = format!("forward-request attribute '{name}' is not supported (only timeout is)");
                return Err(invalid(element, message));
            }
        }
    }
    values[0].map(parse_timeout).transpose().map_err(|m| invalid(element, m))
}

#[cfg(test)]
mod tests {
    use crate::policy::{Policy, parse};

    fn refusal(xml: &str) -> String {
        parse(xml).unwrap_err().to_string()
    }

    #[test]
    fn the_backend_must_forward() {
        let backend = |inner: &str| format!("<policies><backend>{inner}</backend></policies>");
        assert_eq!(parse(&backend("<forward-request />")).unwrap(), Policy::default());
        assert_eq!(parse(&backend("<base />")).unwrap(), Policy::default());
        assert_eq!(parse("<policies><inbound /></policies>").unwrap(), Policy::default());
        let cases = [
            ("", "the request is not forwarded"),
            ("<!-- off -->", "the request is not forwarded"),
            ("<base /><forward-request />", "not both"),
            ("<forward-request /><forward-request />", "only one forward-request"),
            ("<set-header name=\"a\"><value>x</value></set-header>", "unknown element in <backend>"),
        ];
        for (inner, expected) in cases {
            let error = refusal(&backend(inner));
            assert!(error.contains(expected) && error.contains("line 1"), "{inner}\n=> {error}");
        }
        assert!(
            refusal("<policies><inbound><forward-request /></inbound></policies>")
                .contains("unknown element in <inbound>")
        );
    }

    #[test]
    fn forward_request_takes_a_timeout_and_refuses_what_it_cannot_honour() {
        let forward =
            |attrs: &str| parse(&format!("<policies><backend><forward-request {attrs}/></backend></policies>"));
        assert_eq!(forward("timeout=\"240\"").unwrap().backend_timeout, Some(240));
        let defaults = forward("timeout=\"5\" follow-redirects=\"false\" fail-on-error-status-code=\"false\"").unwrap();
        assert_eq!(defaults.backend_timeout, Some(5));
        assert!(forward("timeout=\"0\"").unwrap_err().to_string().contains("from 1 to 240"));
        for attr in [
            "follow-redirects=\"true\"",
            "fail-on-error-status-code=\"true\"",
            "timeout-ms=\"500\"",
            "continue-timeout=\"5\"",
            "http-version=\"2\"",
            "buffer-request-body=\"true\"",
            "buffer-response=\"false\"",
        ] {
            let name = attr.split('=').next().unwrap();
            let error = forward(attr).unwrap_err().to_string();
            assert!(error.contains(&format!("attribute '{name}' is not supported")), "{attr}\n=> {error}");
        }
        assert!(forward("retries=\"2\"").unwrap_err().to_string().contains("unknown attribute 'retries'"));
    }
}
