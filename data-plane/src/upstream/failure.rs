//! Why a backend call failed, read from the error's causes, in the words (and the HTTP status)
//! an API client's operator needs: the backend's certificate, the gateway's certificate, the
//! connection, or the client's own broken request body.

use std::error::Error as _;

/// Why a backend call failed, in the words an API client's operator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendFailure {
    /// The backend's certificate chain is not trusted (or not valid).
    CertificateNotTrusted,
    /// The backend's certificate is not for the host name the gateway called.
    NameMismatch,
    /// The backend refused the client certificate the gateway presented.
    ClientCertificateRejected,
    /// Any other TLS handshake failure.
    TlsHandshake,
    /// TCP connect failed (refused, unreachable, timed out).
    Connect,
    /// The connection failed after it was made.
    Protocol,
    /// The client's request body broke (malformed chunking, the client went away mid-body):
    /// the client's fault, not the backend's.
    ClientBody,
}

// === impl BackendFailure ===

impl BackendFailure {
    /// Whether the failure counts in the backend TLS failure metric.
    pub fn is_tls(self) -> bool {
        !matches!(self, Self::Connect | Self::Protocol | Self::ClientBody)
    }

    /// The status the API client gets: 400 for its own broken body, else 502.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::ClientBody => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The `reason` label of the TLS failure metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::CertificateNotTrusted => "certificate_not_trusted",
            Self::NameMismatch => "name_mismatch",
            Self::ClientCertificateRejected => "client_certificate_rejected",
            Self::TlsHandshake => "handshake",
            Self::Connect => "connect",
            Self::Protocol => "protocol",
            Self::ClientBody => "client_body",
        }
    }

    /// The error body's `detail`: one sentence an API client can act on.
    pub fn describe(self) -> &'static str {
        match self {
            Self::CertificateNotTrusted => "the backend's TLS certificate is not trusted",
            Self::NameMismatch => "the backend's TLS certificate does not match its host name",
            Self::ClientCertificateRejected => "the backend rejected the gateway's client certificate",
            Self::TlsHandshake => "the TLS handshake with the backend failed",
            Self::Connect => "could not connect to the backend",
            Self::Protocol => "the backend connection failed",
            Self::ClientBody => "the request body was malformed or ended before it was complete",
        }
    }

    /// Walks the error's causes for the rustls error underneath.
    pub fn classify(error: &super::SendError) -> Self {
        if is_client_body_error(error) {
            return Self::ClientBody;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
        while let Some(e) = cause {
            if let Some(tls) = find_tls(e) {
                return Self::from_tls(tls);
            }
            cause = e.source();
        }
        if error.is_connect() { Self::Connect } else { Self::Protocol }
    }

    fn from_tls(error: &rustls::Error) -> Self {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
        match error {
            Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
                Self::NameMismatch
            }
            Error::InvalidCertificate(_) => Self::CertificateNotTrusted,
            Error::AlertReceived(
                Alert::BadCertificate
                | Alert::CertificateRequired
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::AccessDenied
                | Alert::DecryptError,
            ) => Self::ClientCertificateRejected,
            _ => Self::TlsHandshake,
        }
    }
}

/// hyper reports a request body that failed while being sent as a user error whose cause is
/// the body's own error: here, the server side's error reading the client's body.
fn is_client_body_error(error: &super::SendError) -> bool {
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_user()
            && hyper.source().is_some_and(|inner| inner.is::<hyper::Error>())
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The rustls error inside `error`, looking through io::Error wrappers (hyper-rustls wraps
/// tokio-rustls's io::Error in another one, and io::Error's `source()` skips the inner error).
fn find_tls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_tls(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_client_body_is_the_clients_400_and_not_a_tls_failure() {
        assert_eq!(BackendFailure::ClientBody.status(), http::StatusCode::BAD_REQUEST);
        assert!(!BackendFailure::ClientBody.is_tls());
        assert_eq!(BackendFailure::ClientCertificateRejected.status(), http::StatusCode::BAD_GATEWAY);
        assert!(BackendFailure::ClientCertificateRejected.is_tls());
    }

    #[test]
    fn rustls_errors_are_found_through_io_wrappers() {
        use rustls::{AlertDescription, CertificateError, Error};
        let wrapped = |tls: Error| std::io::Error::other(std::io::Error::other(tls));
        let error = wrapped(Error::AlertReceived(AlertDescription::CertificateRequired));
        let found = find_tls(&error).map(BackendFailure::from_tls);
        assert_eq!(found, Some(BackendFailure::ClientCertificateRejected));
        let error = wrapped(Error::InvalidCertificate(CertificateError::NotValidForName));
        assert_eq!(find_tls(&error).map(BackendFailure::from_tls), Some(BackendFailure::NameMismatch));
        let error = wrapped(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(find_tls(&error).map(BackendFailure::from_tls), Some(BackendFailure::CertificateNotTrusted));
    }
}
