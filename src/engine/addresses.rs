//! The node's addresses as the engine sees them: the VIP interface's listing, and host addresses added and removed
//! on it. A trait, as [`super::Kernel`] is, so that the engine's address rules (ownership, order around the IPVS
//! changes, a failed listing removing nothing) are tested in memory; `NodeVips` is the real one over rtnetlink and
//! the VM tests hold it to the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::future::BoxFuture;

use crate::netif::{NetifError, VipInterface};

/// The interface's addresses: each with its prefix length.
pub type Listing = BTreeMap<IpAddr, u8>;

/// One listing of the interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceListing {
    /// The interface's index; `None` when it does not exist (a listing that may not make it).
    pub index: Option<u32>,
    /// Whether this listing made the interface (it was missing): the engine remembers it as its own.
    pub made: bool,
    /// Its addresses.
    pub addresses: Listing,
    /// The node's addresses on its other interfaces: a VIP among them is used as it is (see `table::plan_vips`).
    pub elsewhere: BTreeSet<IpAddr>,
}

/// What the engine needs of the interface that holds the VIPs. Boxed futures: this is a trait object (the engine
/// holds one or none), and an address change costs a netlink round trip, beside which the box is nothing.
pub trait NodeAddresses: Send + Sync {
    /// The interface's name, for messages and the state file.
    fn interface(&self) -> &str;

    /// Every address on the interface, in one listing. With `create` the interface is made (and set up) when
    /// missing; without (for `plan`, which changes nothing) a missing interface lists nothing. A failure lists
    /// nothing: the engine then changes nothing.
    fn list(&self, create: bool) -> BoxFuture<'_, Result<InterfaceListing, NetifError>>;

    /// Adds `addr` as a host address (/32, /128; IPv6 without DAD).
    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>>;

    /// Removes the host address `addr`.
    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>>;

    /// Deletes the interface if it still has index `index`; `Ok(false)` when it does not (gone, or replaced).
    /// Only `cleanup` asks, for an interface this program made and that holds none but link-local addresses.
    fn delete_interface(&self, index: u32) -> BoxFuture<'_, Result<bool, NetifError>>;
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

    fn list(&self, create: bool) -> BoxFuture<'_, Result<InterfaceListing, NetifError>> {
        Box::pin(async move {
            // Every listing looks the interface up again: someone may have deleted it (it is then made again,
            // empty, and every wanted address is added back).
            let (index, made) = if create {
                self.interface.ensure_made().await?
            } else {
                match self.interface.lookup().await? {
                    Some(index) => (index, false),
                    None => {
                        let elsewhere = self.interface.addresses_elsewhere(None).await?;
                        return Ok(InterfaceListing { elsewhere, ..InterfaceListing::default() });
                    }
                }
            };
            self.index.store(index, Ordering::Relaxed);
            let listed = self.interface.addresses(index).await?;
            let addresses = listed.into_iter().map(|(addr, listed)| (addr, listed.prefix_len)).collect();
            let elsewhere = self.interface.addresses_elsewhere(Some(index)).await?;
            Ok(InterfaceListing { index: Some(index), made, addresses, elsewhere })
        })
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(async move { self.interface.add(self.index().await?, addr).await })
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(async move { self.interface.remove_host(self.index().await?, addr).await })
    }

    fn delete_interface(&self, index: u32) -> BoxFuture<'_, Result<bool, NetifError>> {
        Box::pin(async move {
            let deleted = self.interface.delete(index).await?;
            // The index is stale either way: a later add would otherwise go to a deleted interface.
            self.index.store(0, Ordering::Relaxed);
            Ok(deleted)
        })
    }
}

/// A shared fake (tests keep a handle while the engine holds it).
impl<A: NodeAddresses> NodeAddresses for Arc<A> {
    fn interface(&self) -> &str {
        A::interface(self)
    }

    fn list(&self, create: bool) -> BoxFuture<'_, Result<InterfaceListing, NetifError>> {
        A::list(self, create)
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        A::add(self, addr)
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        A::remove(self, addr)
    }

    fn delete_interface(&self, index: u32) -> BoxFuture<'_, Result<bool, NetifError>> {
        A::delete_interface(self, index)
    }
}
