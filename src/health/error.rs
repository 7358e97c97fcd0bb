//! Why a probe failed: one variant per cause an operator acts on differently, each with a short stable label for
//! metrics and a one-line `Display` for a status table.

use std::io;
use std::time::Duration;

/// The label of a probe that succeeded, beside [`ProbeError::outcome_label`]'s.
pub const OK_LABEL: &str = "ok";

/// A failed probe. Everything but [`ProbeError::InvalidCheck`] is the backend's (or the network's) answer;
/// `InvalidCheck` means the definition itself cannot be sent, which validation upstream should have caught.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The target answered the connection attempt with a reset (TCP) or an ICMP port unreachable (UDP): nothing
    /// listens there.
    #[error("connection refused")]
    Refused,
    /// The whole probe (connect, handshake, request, reply) did not finish within the check's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No route to the target (host or network unreachable).
    #[error("unreachable: {0}")]
    Unreachable(#[source] io::Error),
    /// Any other socket error, with the operation that failed (`bind`, `connect`, `send`, `recv`, ...).
    #[error("{op}: {source}")]
    Io {
        /// The socket operation that failed.
        op: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed: unknown issuer, name mismatch, expired certificate, protocol error, ...
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP exchange failed below the status line: the connection closed early, the reply was not HTTP, ...
    /// The message quotes hyper's causes ("connection error: frame with invalid size"), its top-level text alone
    /// is too vague for an operator.
    #[error("HTTP: {}", with_causes(.0))]
    Http(#[source] hyper::Error),
    /// The HTTP status is not one of the accepted ranges.
    #[error("HTTP status {got}, expected {expected}")]
    BadStatus {
        /// The status received.
        got: u16,
        /// The accepted ranges, as configured (`200-299`).
        expected: String,
    },
    /// The body does not contain the expected substring within the bytes read.
    #[error("body does not contain {expected:?} (read {read} bytes)")]
    BodyMismatch {
        /// The substring looked for.
        expected: String,
        /// How much of the body was searched (at most [`super::check::MAX_BODY_BYTES`]).
        read: usize,
    },
    /// A reply arrived but is not the one expected (UDP prefix mismatch, undecodable or mismatched DNS reply).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// The DNS server answered with an error response code (NXDOMAIN, SERVFAIL, REFUSED, ...).
    #[error("DNS answered {0}")]
    DnsRcode(String),
    /// The DNS server answered NOERROR with no answer record.
    #[error("DNS answered NOERROR without an answer")]
    DnsNoAnswer,
    /// The gRPC health service answered with a status other than `SERVING`.
    #[error("gRPC health status {0}")]
    GrpcNotServing(String),
    /// The gRPC call failed (`NOT_FOUND` for a service the server does not know, `UNIMPLEMENTED` when it has no
    /// health service, ...).
    #[error("gRPC call failed: {code}: {message}")]
    GrpcStatus {
        /// The gRPC status code's name.
        code: String,
        /// The message the server (or the client library) gave.
        message: String,
    },
    /// The definition cannot be sent (a path that is not origin-form, a name that is not a DNS name, a source
    /// address of the other family). Never the backend's fault.
    #[error("invalid check: {0}")]
    InvalidCheck(String),
}

/// The outcome labels and [`ProbeError::outcome_label`] from one list: a new variant does not compile until it has
/// a label, and its label cannot be missing from [`OUTCOME_LABELS`] (whose metric cells are registered up front;
/// a label left out would lose its counts without a word). Each entry is `Variant [its fields' pattern] => label`.
macro_rules! outcomes {
    ($($variant:ident [$($fields:tt)*] => $label:literal,)+) => {
        /// Every label [`ProbeError::outcome_label`] returns, so that metrics can be registered up front.
        pub const OUTCOME_LABELS: &[&str] = &[$($label,)+];

        impl ProbeError {
            /// A short stable label for metrics (`refused`, `timeout`, `bad_status`, ...); see [`OUTCOME_LABELS`] and
            /// [`OK_LABEL`].
            pub fn outcome_label(&self) -> &'static str {
                match self {
                    $(ProbeError::$variant $($fields)* => $label,)+
                }
            }
        }
    };
}

outcomes! {
    Refused [] => "refused",
    Timeout [(_)] => "timeout",
    Unreachable [(_)] => "unreachable",
    Io [{ .. }] => "io",
    Tls [(_)] => "tls",
    Http [(_)] => "http",
    BadStatus [{ .. }] => "bad_status",
    BodyMismatch [{ .. }] => "body_mismatch",
    UnexpectedReply [(_)] => "unexpected_reply",
    DnsRcode [(_)] => "dns_rcode",
    DnsNoAnswer [] => "dns_no_answer",
    GrpcNotServing [(_)] => "grpc_not_serving",
    GrpcStatus [{ .. }] => "grpc_status",
    InvalidCheck [(_)] => "invalid_check",
}

impl ProbeError {
    /// A socket error of `op`, classified: refusals and unreachable routes get their own variants because an
    /// operator reads them differently from other errors.
    pub(crate) fn socket(op: &'static str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => ProbeError::Refused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => ProbeError::Unreachable(source),
            _ => ProbeError::Io { op, source },
        }
    }
}

/// `error` and its causes on one line, a cause the line already ends with not repeated.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = next.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_listed_and_distinct() {
        let samples = [
            ProbeError::Refused,
            ProbeError::Timeout(Duration::from_secs(1)),
            ProbeError::Unreachable(io::Error::from(io::ErrorKind::HostUnreachable)),
            ProbeError::Io { op: "connect", source: io::Error::from(io::ErrorKind::AddrNotAvailable) },
            ProbeError::Tls("invalid peer certificate: UnknownIssuer".into()),
            ProbeError::BadStatus { got: 503, expected: "200-299".into() },
            ProbeError::BodyMismatch { expected: "ok".into(), read: 2 },
            ProbeError::UnexpectedReply("x".into()),
            ProbeError::DnsRcode("NXDOMAIN".into()),
            ProbeError::DnsNoAnswer,
            ProbeError::GrpcNotServing("NOT_SERVING".into()),
            ProbeError::GrpcStatus { code: "NotFound".into(), message: "service not registered".into() },
            ProbeError::InvalidCheck("x".into()),
        ];
        let mut seen: Vec<&str> = samples.iter().map(ProbeError::outcome_label).collect();
        seen.push("http"); // hyper::Error cannot be built outside hyper; covered by the HTTP tests.
        for label in &seen {
            assert!(OUTCOME_LABELS.contains(label), "{label} missing from OUTCOME_LABELS");
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), OUTCOME_LABELS.len());
        assert!(!OUTCOME_LABELS.contains(&OK_LABEL));
    }

    #[test]
    fn socket_errors_are_classified() {
        assert!(matches!(
            ProbeError::socket("connect", io::Error::from(io::ErrorKind::ConnectionRefused)),
            ProbeError::Refused
        ));
        assert!(matches!(
            ProbeError::socket("connect", io::Error::from(io::ErrorKind::NetworkUnreachable)),
            ProbeError::Unreachable(_)
        ));
        let other = ProbeError::socket("bind", io::Error::from(io::ErrorKind::AddrNotAvailable));
        assert!(matches!(other, ProbeError::Io { op: "bind", .. }));
        assert!(other.to_string().starts_with("bind: "), "{other}");
    }

    #[test]
    fn display_fits_a_status_table() {
        assert_eq!(ProbeError::Timeout(Duration::from_millis(300)).to_string(), "timed out after 300ms");
        assert_eq!(
            ProbeError::BadStatus { got: 503, expected: "200-299".into() }.to_string(),
            "HTTP status 503, expected 200-299"
        );
        assert_eq!(ProbeError::DnsRcode("NXDOMAIN".into()).to_string(), "DNS answered NXDOMAIN");
    }
}
