//! Errors of the IPVS client: typed kernel refusals, each with the request it answered, and transport failures
//! that keep their cause.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_core::DecodeError;
use nix::errno::Errno;
use thiserror::Error;

use super::packet::IpvsCmd;
use crate::model::{DestKey, Op, ServiceKey};

/// What a request was about: the operation and the entry, for messages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Short name of the operation: an [`Op::verb`] (`add-destination`) or a read/global verb (`read-services`).
    pub operation: &'static str,
    /// The service it was about, if any.
    pub service: Option<ServiceKey>,
    /// The destination it was about, if any.
    pub dest: Option<DestKey>,
}

impl Request {
    /// A request about no particular entry.
    pub fn global(operation: &'static str) -> Self {
        Request { operation, service: None, dest: None }
    }

    /// A request about one service.
    pub fn service(operation: &'static str, key: &ServiceKey) -> Self {
        Request { operation, service: Some(*key), dest: None }
    }

    /// The request that carries out `op`.
    pub fn from_op(op: &Op) -> Self {
        Request { operation: op.verb(), service: Some(*op.service_key()), dest: op.dest_key().copied() }
    }
}

/// `add-destination TCP 192.0.2.1:80 -> 10.0.0.1:80`, like [`Op`]'s display.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation)?;
        if let Some(svc) = &self.service {
            write!(f, " {svc}")?;
        }
        if let Some(dest) = &self.dest {
            write!(f, " -> {dest}")?;
        }
        Ok(())
    }
}

/// A refusal by the kernel: the request, the errno and the kernel's extended-ack message if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    /// The request refused.
    pub request: Request,
    /// The positive errno.
    pub errno: i32,
    /// The kernel's explanation (`NLMSGERR_ATTR_MSG`), when given.
    pub message: Option<String>,
}

impl KernelError {
    /// `(EEXIST: File exists)` or `(EINVAL: Invalid argument; kernel says: ...)`.
    fn detail(&self) -> String {
        let errno = Errno::from_raw(self.errno);
        match &self.message {
            Some(msg) => format!("({errno}; kernel says: {msg})"),
            None => format!("({errno})"),
        }
    }
}

/// Everything the IPVS client can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IpvsError {
    /// The service, destination or daemon already exists (`EEXIST`).
    #[error("{}: already exists {}", .0.request, .0.detail())]
    AlreadyExists(KernelError),
    /// The service does not exist (`ESRCH`).
    #[error("{}: no such service {}", .0.request, .0.detail())]
    NoSuchService(KernelError),
    /// The destination does not exist (`ENOENT` on `SET_DEST`/`DEL_DEST`).
    #[error("{}: no such destination {}", .0.request, .0.detail())]
    NoSuchDestination(KernelError),
    /// No sync daemon runs in that state (`ESRCH` on `DEL_DAEMON`).
    #[error("{}: no such sync daemon {}", .0.request, .0.detail())]
    NoSuchDaemon(KernelError),
    /// The scheduler or persistence engine is unknown: no `ip_vs_<name>` module (`ENOENT` on
    /// `NEW_SERVICE`/`SET_SERVICE`).
    #[error("{}: unknown scheduler or persistence engine (no ip_vs_<name> module) {}", .0.request, .0.detail())]
    UnknownSchedulerOrEngine(KernelError),
    /// The kernel refused an attribute (`EINVAL`): a bad netmask, a destination address that is not unicast, a
    /// mixed-family destination that is not tunnelled, a GUE tunnel without a port, ...
    #[error("{}: invalid argument {}", .0.request, .0.detail())]
    InvalidArgument(KernelError),
    /// A value out of range (`ERANGE`): weight >= 2^31, lower threshold above the upper one.
    #[error("{}: value out of range {}", .0.request, .0.detail())]
    OutOfRange(KernelError),
    /// No permission (`EPERM`): every IPVS command needs `CAP_NET_ADMIN` in the initial user namespace.
    #[error(
        "{}: permission denied: IPVS needs CAP_NET_ADMIN in the initial user namespace {}",
        .0.request,
        .0.detail()
    )]
    PermissionDenied(KernelError),
    /// The kernel does not support the request (`EOPNOTSUPP`, `EAFNOSUPPORT`).
    #[error("{}: not supported by this kernel {}", .0.request, .0.detail())]
    NotSupported(KernelError),
    /// The kernel is busy (`EBUSY`), e.g. a dump already runs on the socket.
    #[error("{}: busy {}", .0.request, .0.detail())]
    Busy(KernelError),
    /// Any other refusal.
    #[error("{}: refused by the kernel {}", .0.request, .0.detail())]
    Kernel(KernelError),
    /// IPVS is not there: the generic-netlink family "IPVS" is not registered (module `ip_vs` not loaded, or not
    /// built), or is being unloaded. Never reported as an empty table.
    #[error("IPVS is unavailable: {detail}")]
    Unavailable {
        /// What was found.
        detail: String,
    },
    /// The network namespace could not be entered.
    #[error("cannot enter network namespace {}: {source}", .path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A socket operation failed.
    #[error("netlink socket: {context}: {source}")]
    Transport {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The connection ended before the kernel's answer arrived; a write's outcome is unknown.
    #[error("{request}: netlink connection closed before the kernel answered (outcome unknown)")]
    ConnectionClosed {
        /// The request left unanswered.
        request: Request,
    },
    /// The answer was lost because the socket's receive buffer overflowed (`ENOBUFS`); a write's outcome is
    /// unknown.
    #[error("{request}: the kernel's answer was lost (receive buffer overrun; outcome unknown)")]
    ReplyLost {
        /// The request left unanswered.
        request: Request,
    },
    /// The kernel did not answer in time; a write's outcome is unknown.
    #[error("{request}: no answer from the kernel within {after:?} (outcome unknown)")]
    Timeout {
        /// The request left unanswered.
        request: Request,
        /// How long was waited since the last message.
        after: Duration,
    },
    /// A reply could not be decoded.
    #[error("{request}: cannot decode the kernel's reply: {source}")]
    Decode {
        /// The request answered.
        request: Request,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
    /// The kernel's answer does not fit the request (a reply where an acknowledgement was due, an unexpected
    /// sequence number, ...).
    #[error("{request}: unexpected answer from the kernel: {detail}")]
    Protocol {
        /// The request answered.
        request: Request,
        /// What was unexpected.
        detail: String,
    },
    /// The table kept changing while it was read: the dumps stayed inconsistent after every retry.
    #[error("the IPVS table changed during every one of {attempts} reads: {detail}")]
    InconsistentRead {
        /// How many reads were tried.
        attempts: u32,
        /// The last inconsistency seen.
        detail: String,
    },
}

impl IpvsError {
    /// The typed error for the kernel's `errno` answering `cmd`: the same errno means different things for
    /// different commands (`ENOENT` is a missing destination for `SET_DEST`, an unknown scheduler for
    /// `NEW_SERVICE`).
    pub fn from_errno(cmd: IpvsCmd, request: Request, errno: i32, message: Option<String>) -> Self {
        let e = KernelError { request, errno, message };
        match Errno::from_raw(errno) {
            Errno::EEXIST => IpvsError::AlreadyExists(e),
            Errno::ESRCH if cmd == IpvsCmd::DelDaemon => IpvsError::NoSuchDaemon(e),
            Errno::ESRCH => IpvsError::NoSuchService(e),
            Errno::ENOENT if matches!(cmd, IpvsCmd::SetDest | IpvsCmd::DelDest) => IpvsError::NoSuchDestination(e),
            Errno::ENOENT if matches!(cmd, IpvsCmd::NewService | IpvsCmd::SetService) => {
                IpvsError::UnknownSchedulerOrEngine(e)
            }
            Errno::EINVAL => IpvsError::InvalidArgument(e),
            Errno::ERANGE => IpvsError::OutOfRange(e),
            Errno::EPERM | Errno::EACCES => IpvsError::PermissionDenied(e),
            Errno::EOPNOTSUPP | Errno::EAFNOSUPPORT => IpvsError::NotSupported(e),
            Errno::EBUSY => IpvsError::Busy(e),
            Errno::ENOPROTOOPT => {
                IpvsError::Unavailable { detail: format!("{}: IPVS is being unloaded {}", e.request, e.detail()) }
            }
            _ => IpvsError::Kernel(e),
        }
    }

    /// The kernel's refusal, for the variants that are one.
    pub fn kernel_error(&self) -> Option<&KernelError> {
        match self {
            IpvsError::AlreadyExists(e)
            | IpvsError::NoSuchService(e)
            | IpvsError::NoSuchDestination(e)
            | IpvsError::NoSuchDaemon(e)
            | IpvsError::UnknownSchedulerOrEngine(e)
            | IpvsError::InvalidArgument(e)
            | IpvsError::OutOfRange(e)
            | IpvsError::PermissionDenied(e)
            | IpvsError::NotSupported(e)
            | IpvsError::Busy(e)
            | IpvsError::Kernel(e) => Some(e),
            _ => None,
        }
    }

    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        self.kernel_error().map(|e| e.errno)
    }

    /// Whether a write that failed this way may nevertheless have been applied: the answer never came.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, IpvsError::ConnectionClosed { .. } | IpvsError::ReplyLost { .. } | IpvsError::Timeout { .. })
    }

    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            IpvsError::AlreadyExists(_) => "already_exists",
            IpvsError::NoSuchService(_) => "no_such_service",
            IpvsError::NoSuchDestination(_) => "no_such_destination",
            IpvsError::NoSuchDaemon(_) => "no_such_daemon",
            IpvsError::UnknownSchedulerOrEngine(_) => "unknown_scheduler",
            IpvsError::InvalidArgument(_) => "invalid_argument",
            IpvsError::OutOfRange(_) => "out_of_range",
            IpvsError::PermissionDenied(_) => "permission_denied",
            IpvsError::NotSupported(_) => "not_supported",
            IpvsError::Busy(_) => "busy",
            IpvsError::Kernel(_) => "kernel",
            IpvsError::Unavailable { .. } => "unavailable",
            IpvsError::Netns { .. } => "netns",
            IpvsError::Transport { .. } => "transport",
            IpvsError::ConnectionClosed { .. } => "connection_closed",
            IpvsError::ReplyLost { .. } => "reply_lost",
            IpvsError::Timeout { .. } => "timeout",
            IpvsError::Decode { .. } => "decode",
            IpvsError::Protocol { .. } => "protocol",
            IpvsError::InconsistentRead { .. } => "inconsistent_read",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestConfig, Destination, Family, Service, ServiceConfig};

    fn svc() -> ServiceKey {
        ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80)
    }

    fn dest() -> DestKey {
        DestKey::new("10.0.0.1".parse().unwrap(), 8080)
    }

    fn map(cmd: IpvsCmd, errno: Errno) -> IpvsError {
        IpvsError::from_errno(cmd, Request::global("test"), errno as i32, None)
    }

    #[test]
    fn enoent_depends_on_the_command() {
        assert!(matches!(map(IpvsCmd::SetDest, Errno::ENOENT), IpvsError::NoSuchDestination(_)));
        assert!(matches!(map(IpvsCmd::DelDest, Errno::ENOENT), IpvsError::NoSuchDestination(_)));
        assert!(matches!(map(IpvsCmd::NewService, Errno::ENOENT), IpvsError::UnknownSchedulerOrEngine(_)));
        assert!(matches!(map(IpvsCmd::SetService, Errno::ENOENT), IpvsError::UnknownSchedulerOrEngine(_)));
        assert!(matches!(map(IpvsCmd::GetService, Errno::ENOENT), IpvsError::Kernel(_)));
    }

    #[test]
    fn esrch_is_a_missing_service_except_for_daemons() {
        for cmd in [IpvsCmd::SetService, IpvsCmd::DelService, IpvsCmd::NewDest, IpvsCmd::SetDest, IpvsCmd::Zero] {
            assert!(matches!(map(cmd, Errno::ESRCH), IpvsError::NoSuchService(_)), "{cmd}");
        }
        assert!(matches!(map(IpvsCmd::DelDaemon, Errno::ESRCH), IpvsError::NoSuchDaemon(_)));
    }

    #[test]
    fn errno_classes() {
        let cases = [
            (Errno::EEXIST, "already_exists"),
            (Errno::EINVAL, "invalid_argument"),
            (Errno::ERANGE, "out_of_range"),
            (Errno::EPERM, "permission_denied"),
            (Errno::EOPNOTSUPP, "not_supported"),
            (Errno::EAFNOSUPPORT, "not_supported"),
            (Errno::EBUSY, "busy"),
            (Errno::ENOPROTOOPT, "unavailable"),
            (Errno::ENOMEM, "kernel"),
        ];
        for (errno, label) in cases {
            assert_eq!(map(IpvsCmd::NewDest, errno).metric_label(), label, "{errno}");
        }
        assert_eq!(map(IpvsCmd::NewDest, Errno::EEXIST).errno(), Some(Errno::EEXIST as i32));
    }

    #[test]
    fn messages_name_the_operation_the_entry_and_the_errno() {
        let op = Op::AddDest(svc(), Destination::new(dest(), DestConfig::masquerade(1)));
        let e = IpvsError::from_errno(IpvsCmd::NewDest, Request::from_op(&op), Errno::EEXIST as i32, None);
        assert_eq!(
            e.to_string(),
            "add-destination TCP 192.0.2.1:80 -> 10.0.0.1:8080: already exists (EEXIST: File exists)"
        );
        let op = Op::AddService(Service::new(svc(), ServiceConfig::new(Family::V4, "nope")));
        let e = IpvsError::from_errno(
            IpvsCmd::NewService,
            Request::from_op(&op),
            Errno::ENOENT as i32,
            Some("scheduler not found".into()),
        );
        let text = e.to_string();
        assert!(text.starts_with("add-service TCP 192.0.2.1:80: unknown scheduler"), "{text}");
        assert!(text.ends_with("kernel says: scheduler not found)"), "{text}");
        let e = IpvsError::from_errno(IpvsCmd::GetService, Request::global("read-services"), 1, None);
        assert!(e.to_string().contains("CAP_NET_ADMIN in the initial user namespace"));
    }

    #[test]
    fn unanswered_writes_have_an_unknown_outcome() {
        let request = Request::global("flush");
        assert!(IpvsError::ReplyLost { request: request.clone() }.outcome_unknown());
        assert!(IpvsError::ConnectionClosed { request: request.clone() }.outcome_unknown());
        assert!(!map(IpvsCmd::Flush, Errno::EINVAL).outcome_unknown());
    }
}
