//! The node's virtual addresses: the dummy interface that holds them (`ipvs0` by default, as kube-proxy's
//! `kube-ipvs0`) and its addresses, over rtnetlink (the rtnetlink crate; no `ip` subprocess). IPVS receives only
//! the packets the node takes as local, so a service's VIP must be an address of the node.
//!
//! This layer only lists, adds and removes; which addresses are wanted and which of them may be removed is the
//! pure `table::plan_vips`'s. It never touches another interface, and refuses to use an interface of the name that
//! is not a dummy (someone else's). Addresses are host prefixes (/32, /128); IPv6 ones skip duplicate address
//! detection (`nodad`), so that a VIP is usable at once, not after DAD's second.

mod error;
mod links;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy, LinkUnspec};

pub use error::NetifError;
pub use links::{KUBE_PROXY_INTERFACE, NodeLink, node_links};

use crate::ipvs::NetnsSpec;

/// The default name of the interface that holds the VIPs.
pub const DEFAULT_INTERFACE: &str = "ipvs0";

/// An rtnetlink connection to one network namespace, for one interface's addresses.
pub struct VipInterface {
    handle: Handle,
    name: String,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for VipInterface {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// One address as the kernel listed it on the interface.
#[derive(Debug, Clone)]
pub struct ListedAddress {
    /// Its prefix length: only a host prefix is ever removed (that is what this program adds).
    pub prefix_len: u8,
    message: AddressMessage,
}

/// An rtnetlink connection: a future to spawn, which carries the handle's requests.
type RtnetlinkConnection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// The connection of an rtnetlink socket made in `netns` (to be spawned), and its handle: the VIP interface and the
/// node's interface listing both make theirs here.
async fn connect(netns: &NetnsSpec) -> Result<(RtnetlinkConnection, Handle), NetifError> {
    let connect = || rtnetlink::new_connection().map_err(|source| NetifError::Socket { source });
    let (connection, handle, _) = match netns.path() {
        None => connect()?,
        Some(path) => {
            crate::ipvs::netns::run_in_netns_with(path, connect, |path, source| NetifError::Netns { path, source })
                .await?
        }
    };
    Ok((connection, handle))
}

impl VipInterface {
    /// Connects to `netns` (its rtnetlink socket is made there) for the interface `name`.
    pub async fn open(netns: &NetnsSpec, name: &str) -> Result<Self, NetifError> {
        let (connection, handle) = connect(netns).await?;
        Ok(VipInterface { handle, name: name.to_owned(), connection: tokio::spawn(connection) })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's index, creating it as a dummy (and setting it up) when missing. An existing interface of
    /// that name that is not a dummy is refused: it is someone else's, and its addresses are not ours to manage.
    pub async fn ensure(&self) -> Result<u32, NetifError> {
        Ok(self.ensure_made().await?.0)
    }

    /// As [`VipInterface::ensure`], saying whether this call made the interface (it was missing): the engine
    /// remembers an interface it made, so that `cleanup` removes that one and no other.
    pub async fn ensure_made(&self) -> Result<(u32, bool), NetifError> {
        let mut made = false;
        let link = match self.find_dummy().await? {
            Some(link) => link,
            None => {
                made = true;
                self.handle
                    .link()
                    .add(LinkDummy::new(&self.name).build())
                    .execute()
                    .await
                    .map_err(|source| self.netlink("create the dummy interface", source))?;
                self.find_dummy().await?.ok_or_else(|| NetifError::Vanished { name: self.name.clone() })?
            }
        };
        let index = link.header.index;
        if !link.header.flags.contains(LinkFlags::Up) {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(|source| self.netlink("set the interface up", source))?;
        }
        Ok((index, made))
    }

    /// Deletes the interface, when it is still the dummy of this name with index `index` (`Ok(false)` when it is
    /// not: gone, or another interface now has the name). Deciding *whether* to delete it (it is one this program
    /// made and holds no address but the kernel's link-local one) is the caller's.
    pub async fn delete(&self, index: u32) -> Result<bool, NetifError> {
        match self.find_dummy().await? {
            Some(link) if link.header.index == index => {}
            _ => return Ok(false),
        }
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            // Deleted by someone else since it was looked up.
            Err(rtnetlink::Error::NetlinkError(err)) if err.raw_code() == -libc::ENODEV => Ok(false),
            Err(source) => Err(self.netlink("delete the interface", source)),
        }
    }

    /// The interface's index, when it exists (nothing is made or changed: for reading, and for `plan`). An
    /// interface of the name that is not a dummy is refused, as [`VipInterface::ensure`] refuses it.
    pub async fn lookup(&self) -> Result<Option<u32>, NetifError> {
        Ok(self.find_dummy().await?.map(|link| link.header.index))
    }

    /// The interface when it exists and is a dummy; refused when it exists and is not.
    async fn find_dummy(&self) -> Result<Option<LinkMessage>, NetifError> {
        let Some(link) = self.find().await? else { return Ok(None) };
        let kind = link.attributes.iter().find_map(|attr| match attr {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.clone()),
                _ => None,
            }),
            _ => None,
        });
        if kind != Some(InfoKind::Dummy) {
            return Err(NetifError::NotDummy {
                name: self.name.clone(),
                kind: kind.map_or_else(|| "no kind".to_owned(), |kind| kind.to_string()),
            });
        }
        Ok(Some(link))
    }

    async fn find(&self) -> Result<Option<LinkMessage>, NetifError> {
        let mut links = self.handle.link().get().match_name(self.name.clone()).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            // The kernel answers a lookup of a missing name with ENODEV.
            Err(rtnetlink::Error::NetlinkError(err)) if err.raw_code() == -libc::ENODEV => Ok(None),
            Err(source) => Err(self.netlink("look the interface up", source)),
        }
    }

    /// Every address on the interface `index` (one listing; a failure lists nothing, so the caller removes
    /// nothing).
    pub async fn addresses(&self, index: u32) -> Result<BTreeMap<IpAddr, ListedAddress>, NetifError> {
        let mut listing = self.handle.address().get().set_link_index_filter(index).execute();
        let mut out = BTreeMap::new();
        while let Some(message) = listing.try_next().await.map_err(|source| self.netlink("list addresses", source))? {
            // The kernel may ignore the filter (no strict checking): keep the interface's own.
            if message.header.index != index {
                continue;
            }
            if let Some(addr) = address_of(&message) {
                out.insert(addr, ListedAddress { prefix_len: message.header.prefix_len, message });
            }
        }
        Ok(out)
    }

    /// The node's addresses on every interface but `index` (one listing of them all; `None`: every interface).
    pub async fn addresses_elsewhere(&self, index: Option<u32>) -> Result<BTreeSet<IpAddr>, NetifError> {
        let mut listing = self.handle.address().get().execute();
        let mut out = BTreeSet::new();
        while let Some(message) = listing.try_next().await.map_err(|source| self.netlink("list addresses", source))? {
            if Some(message.header.index) == index {
                continue;
            }
            if let Some(addr) = address_of(&message) {
                out.insert(addr);
            }
        }
        Ok(out)
    }

    /// Adds `addr` to the interface `index` as a host prefix (IPv6 without DAD).
    pub async fn add(&self, index: u32, addr: IpAddr) -> Result<(), NetifError> {
        let mut request = self.handle.address().add(index, addr, host_prefix(addr));
        if addr.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(|source| self.netlink_addr("add", addr, source))
    }

    /// Removes `addr`, as listed, from the interface. Refused for anything but a host prefix: this program
    /// never added it.
    pub async fn remove(&self, addr: IpAddr, listed: &ListedAddress) -> Result<(), NetifError> {
        if listed.prefix_len != host_prefix(addr) {
            return Err(NetifError::NotOurs { name: self.name.clone(), addr, prefix_len: listed.prefix_len });
        }
        self.handle
            .address()
            .del(listed.message.clone())
            .execute()
            .await
            .map_err(|source| self.netlink_addr("remove", addr, source))
    }

    /// Removes the host address `addr` (/32 or /128, as this program adds them) from the interface `index`.
    /// The request is the one `add` would make, so the kernel matches exactly the address this program adds; an
    /// address of another prefix length is not matched, and stays.
    pub async fn remove_host(&self, index: u32, addr: IpAddr) -> Result<(), NetifError> {
        let message = self.handle.address().add(index, addr, host_prefix(addr)).message_mut().clone();
        self.handle.address().del(message).execute().await.map_err(|source| self.netlink_addr("remove", addr, source))
    }

    fn netlink(&self, op: &'static str, source: rtnetlink::Error) -> NetifError {
        NetifError::Netlink { name: self.name.clone(), op, addr: None, source: Box::new(source) }
    }

    fn netlink_addr(&self, op: &'static str, addr: IpAddr, source: rtnetlink::Error) -> NetifError {
        NetifError::Netlink { name: self.name.clone(), op, addr: Some(addr), source: Box::new(source) }
    }
}

/// The local address an address message is about: IPv4 gives it in IFA_LOCAL (IFA_ADDRESS is the peer's on
/// point-to-point links), IPv6 in IFA_ADDRESS.
fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    let local = message.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(addr) => Some(*addr),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Address(addr) => Some(*addr),
        _ => None,
    });
    local.or(address)
}

/// Whether `addr` is an IPv6 link-local address (fe80::/10): the kernel gives one to every interface that is up
/// with IPv6 on, so it says nothing about who uses the interface.
pub fn is_ipv6_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// /32 for IPv4, /128 for IPv6.
pub fn host_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}
