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
