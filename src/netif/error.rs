//! Why an operation on the VIP interface failed, naming the interface, the operation and the address.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// An rtnetlink operation on the VIP interface that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    /// The namespace could not be entered.
    #[error("cannot enter network namespace {}: {source}", .path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The rtnetlink socket could not be opened.
    #[error("cannot open an rtnetlink socket: {source}")]
    Socket {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused or failed a request.
    #[error("interface {name}: cannot {op}{}: {source}", .addr.map(|a| format!(" {a}")).unwrap_or_default())]
    Netlink {
        /// The interface.
        name: String,
        /// What was asked.
        op: &'static str,
        /// The address concerned, if any.
        addr: Option<IpAddr>,
        /// The kernel's answer (boxed: netlink errors carry whole messages).
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// An interface of the name exists and is not a dummy: someone else's.
    #[error("interface {name} exists and is not a dummy ({kind}); choose another name for the VIP interface")]
    NotDummy {
        /// The interface.
        name: String,
        /// Its kind.
        kind: String,
    },
    /// The interface was created and then not found (removed at once by someone else).
    #[error("interface {name} vanished right after it was created")]
    Vanished {
        /// The interface.
        name: String,
    },
    /// An address to remove is not a host prefix, so this program did not add it.
    #[error("interface {name}: {addr}/{prefix_len} is not a host prefix: not added by ipvs-reconciler, left alone")]
    NotOurs {
        /// The interface.
        name: String,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
}

impl NetifError {
    /// The errno of a kernel refusal, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetifError::Netlink { source, .. } => match source.as_ref() {
                rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the kernel answered with a refusal: the request was not carried out. Any other failure (the
    /// socket, a lost answer) leaves its outcome unknown.
    pub fn is_refusal(&self) -> bool {
        self.errno().is_some()
    }

    /// Whether an add failed because the address is already there (someone else put it there since the listing).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// Whether a removal failed because the address is already gone.
    pub fn is_gone(&self) -> bool {
        matches!(self.errno(), Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ESRCH))
    }

    /// A short stable label for metrics and status reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            NetifError::Netns { .. } => "netns",
            NetifError::Socket { .. } => "socket",
            NetifError::Netlink { .. } if self.is_exists() => "address_exists",
            NetifError::Netlink { .. } if self.errno().is_some() => "address_refused",
            NetifError::Netlink { .. } => "netlink",
            NetifError::NotDummy { .. } => "interface_not_dummy",
            NetifError::Vanished { .. } => "interface_vanished",
            NetifError::NotOurs { .. } => "address_not_ours",
        }
    }
}
