//! The node's addresses as the engine sees them: the VIP interface's listing, and host addresses added and removed
//! on it. A trait, as [`super::Kernel`] is, so that the engine's address rules (ownership, order around the IPVS
//! changes, a failed listing removing nothing) are tested in memory; `NodeVips` is the real one over rtnetlink and
//! the VM tests hold it to the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::FakeKernel;
use crate::model::ServiceKey;
use crate::netif::{NetifError, VipInterface, host_prefix};

/// The interface's addresses: each with its prefix length.
pub type Listing = BTreeMap<IpAddr, u8>;

/// What the engine needs of the interface that holds the VIPs. Boxed futures: this is a trait object (the engine
/// holds one or none), and an address change costs a netlink round trip, beside which the box is nothing.
pub trait NodeAddresses: Send + Sync {
    /// The interface's name, for messages and the state file.
    fn interface(&self) -> &str;

    /// Every address on the interface, in one listing. With `create` the interface is made (and set up) when
    /// missing; without (for `plan`, which changes nothing) a missing interface lists nothing. A failure lists
    /// nothing: the engine then changes nothing.
    fn list(&self, create: bool) -> BoxFuture<'_, Result<Listing, NetifError>>;

    /// Adds `addr` as a host address (/32, /128; IPv6 without DAD).
    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>>;

    /// Removes the host address `addr`.
    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>>;
}

/// The real interface, over rtnetlink.
pub struct NodeVips {
    interface: VipInterface,
    /// The interface's index as of the last listing (0 before the first one).
    index: AtomicU32,
}

impl NodeVips {
    /// The addresses of `interface`.
    pub fn new(interface: VipInterface) -> Self {
        NodeVips { interface, index: AtomicU32::new(0) }
    }

    async fn index(&self) -> Result<u32, NetifError> {
        match self.index.load(Ordering::Relaxed) {
            0 => {
                let index = self.interface.ensure().await?;
                self.index.store(index, Ordering::Relaxed);
                Ok(index)
            }
            index => Ok(index),
        }
    }
}

impl NodeAddresses for NodeVips {
    fn interface(&self) -> &str {
        self.interface.name()
    }

    fn list(&self, create: bool) -> BoxFuture<'_, Result<Listing, NetifError>> {
        Box::pin(async move {
            // Every listing looks the interface up again: someone may have deleted it (it is then made again,
            // empty, and every wanted address is added back).
            let index = if create {
                self.interface.ensure().await?
            } else {
                match self.interface.lookup().await? {
                    Some(index) => index,
                    None => return Ok(Listing::new()),
                }
            };
            self.index.store(index, Ordering::Relaxed);
            let listed = self.interface.addresses(index).await?;
            Ok(listed.into_iter().map(|(addr, listed)| (addr, listed.prefix_len)).collect())
        })
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(async move { self.interface.add(self.index().await?, addr).await })
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(async move { self.interface.remove_host(self.index().await?, addr).await })
    }
}

/// One change to the fake interface, with the IPVS services that existed when it was made (to check the order
/// of address and service changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEvent {
    /// Added (`true`) or removed.
    pub added: bool,
    /// The address.
    pub addr: IpAddr,
    /// The kernel's services at that moment.
    pub services: BTreeSet<ServiceKey>,
}

/// An in-memory interface for engine and agent tests.
#[derive(Default)]
pub struct FakeAddresses {
    /// The interface's addresses and their prefix lengths.
    pub listing: Mutex<Listing>,
    /// When set, listings fail.
    pub fail_list: AtomicBool,
    /// Adds and removals of these addresses are refused (EINVAL).
    pub refuse: Mutex<BTreeSet<IpAddr>>,
    /// Every change made, in order.
    pub events: Mutex<Vec<AddressEvent>>,
    /// Listings made.
    pub listings: std::sync::atomic::AtomicUsize,
    /// The kernel whose services each event records, when set.
    pub kernel: Option<Arc<FakeKernel>>,
}

impl FakeAddresses {
    /// A fake interface whose events record the services of `kernel`.
    pub fn watching(kernel: Arc<FakeKernel>) -> Self {
        FakeAddresses { kernel: Some(kernel), ..Default::default() }
    }

    /// The addresses now on the interface.
    pub fn addrs(&self) -> BTreeSet<IpAddr> {
        self.listing.lock().map(|l| l.keys().copied().collect()).unwrap_or_default()
    }

    /// Takes the events so far.
    pub fn take_events(&self) -> Vec<AddressEvent> {
        self.events.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }

    fn change(&self, addr: IpAddr, added: bool) -> Result<(), NetifError> {
        let op = if added { "add" } else { "remove" };
        if self.refuse.lock().is_ok_and(|r| r.contains(&addr)) {
            return Err(refusal(op, Some(addr), libc::EINVAL));
        }
        let Ok(mut listing) = self.listing.lock() else { return Err(refusal(op, Some(addr), libc::EIO)) };
        if added {
            if listing.contains_key(&addr) {
                return Err(refusal(op, Some(addr), libc::EEXIST));
            }
            listing.insert(addr, host_prefix(addr));
        } else if listing.get(&addr) == Some(&host_prefix(addr)) {
            listing.remove(&addr);
        } else {
            return Err(refusal(op, Some(addr), libc::EADDRNOTAVAIL));
        }
        let services = self.kernel.as_ref().map(|k| k.snapshot().services.into_keys().collect()).unwrap_or_default();
        if let Ok(mut events) = self.events.lock() {
            events.push(AddressEvent { added, addr, services });
        }
        Ok(())
    }
}

/// A kernel refusal with errno `errno`, as rtnetlink reports one.
fn refusal(op: &'static str, addr: Option<IpAddr>, errno: i32) -> NetifError {
    let mut message = netlink_packet_core::ErrorMessage::default();
    message.code = std::num::NonZeroI32::new(-errno);
    NetifError::Netlink { name: "ipvs0".into(), op, addr, source: Box::new(rtnetlink::Error::NetlinkError(message)) }
}

impl NodeAddresses for FakeAddresses {
    fn interface(&self) -> &str {
        "ipvs0"
    }

    fn list(&self, _create: bool) -> BoxFuture<'_, Result<Listing, NetifError>> {
        let result = if self.fail_list.load(Ordering::SeqCst) {
            Err(NetifError::Netlink {
                name: "ipvs0".into(),
                op: "list addresses",
                addr: None,
                source: Box::new(rtnetlink::Error::RequestFailed),
            })
        } else {
            self.listings.fetch_add(1, Ordering::SeqCst);
            Ok(self.listing.lock().map(|l| l.clone()).unwrap_or_default())
        };
        Box::pin(std::future::ready(result))
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(std::future::ready(self.change(addr, true)))
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(std::future::ready(self.change(addr, false)))
    }
}

/// A shared fake (tests keep a handle while the engine holds it).
impl<A: NodeAddresses> NodeAddresses for Arc<A> {
    fn interface(&self) -> &str {
        A::interface(self)
    }

    fn list(&self, create: bool) -> BoxFuture<'_, Result<Listing, NetifError>> {
        A::list(self, create)
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        A::add(self, addr)
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        A::remove(self, addr)
    }
}
