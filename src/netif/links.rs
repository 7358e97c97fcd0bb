//! Every interface of the node with its IPv4 addresses, read (never changed) for the checks of what shares the node
//! with this program: kube-proxy's `kube-ipvs0` (IPVS mode), and the subnets on which the node answers ARP for the
//! VIPs on `ipvs0`.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo};

use super::NetifError;
use crate::ipvs::NetnsSpec;

/// The dummy interface kube-proxy makes in IPVS mode and binds every Service address to.
pub const KUBE_PROXY_INTERFACE: &str = "kube-ipvs0";

/// One interface of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLink {
    /// Its name.
    pub name: String,
    /// Whether it is up (a down interface answers nothing).
    pub up: bool,
    /// Its kind (`dummy`, `veth`, `bridge`), when it has one (a physical NIC has none).
    pub kind: Option<String>,
    /// Its IPv4 addresses, each with its prefix length.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Its own `net.ipv4.conf.<name>.arp_ignore`, when read (the kernel uses the higher of it and `all`'s).
    pub arp_ignore: Option<u32>,
}

/// Every interface of `netns` with its IPv4 addresses (`arp_ignore` is left unread: it is a file under
/// `/proc/sys`, read by the caller from inside the namespace).
pub async fn node_links(netns: &NetnsSpec) -> Result<Vec<NodeLink>, NetifError> {
    let (connection, handle) = super::connect(netns).await?;
    let connection = tokio::spawn(connection);
    let listed = list(&handle).await;
    connection.abort();
    listed
}

async fn list(handle: &rtnetlink::Handle) -> Result<Vec<NodeLink>, NetifError> {
    let failed = |op: &'static str| {
        move |source| NetifError::Netlink { name: "*".to_owned(), op, addr: None, source: Box::new(source) }
    };
    let mut links = Vec::new();
    let mut indexes = Vec::new();
    let mut listing = handle.link().get().execute();
    while let Some(message) = listing.try_next().await.map_err(failed("list interfaces"))? {
        let mut name = None;
        let mut kind = None;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    kind = infos.iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        let Some(name) = name else { continue };
        indexes.push(message.header.index);
        let up = message.header.flags.contains(LinkFlags::Up);
        links.push(NodeLink { name, up, kind, ipv4: Vec::new(), arp_ignore: None });
    }
    let mut addresses = handle.address().get().execute();
    while let Some(message) = addresses.try_next().await.map_err(failed("list addresses"))? {
        if message.header.family != AddressFamily::Inet {
            continue;
        }
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point links).
        let local = message.attributes.iter().find_map(|attribute| match attribute {
            AddressAttribute::Local(std::net::IpAddr::V4(addr)) => Some(*addr),
            _ => None,
        });
        let Some(addr) = local else { continue };
        if let Some(position) = indexes.iter().position(|index| *index == message.header.index) {
            links[position].ipv4.push((addr, message.header.prefix_len));
        }
    }
    Ok(links)
}
