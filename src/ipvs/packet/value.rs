//! Length-checked readers and writers for attribute values, written once for every nest.
//!
//! Every reader checks the exact size the kernel emits and names the attribute in its error, so a short or
//! garbled reply is a [`DecodeError`] that says where, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NlaBuffer, NlasIterator, Parseable,
};

use crate::model::Family;

/// Reads a value of exactly `N` bytes.
fn exact<const N: usize>(value: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(value)
        .map_err(|_| DecodeError::from(format!("{what}: expected {N} bytes, got {}", value.len())))
}

/// A `u8` attribute.
pub(crate) fn u8_of(value: &[u8], what: &str) -> Result<u8, DecodeError> {
    Ok(exact::<1>(value, what)?[0])
}

/// A `u16` attribute in host byte order.
pub(crate) fn u16_of(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(exact(value, what)?))
}

/// A `u16` attribute in network byte order (ports).
pub(crate) fn be16_of(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(exact(value, what)?))
}

/// A `u32` attribute in host byte order.
pub(crate) fn u32_of(value: &[u8], what: &str) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(exact(value, what)?))
}

/// A `u64` attribute in host byte order.
pub(crate) fn u64_of(value: &[u8], what: &str) -> Result<u64, DecodeError> {
    Ok(u64::from_ne_bytes(exact(value, what)?))
}

/// A 16-byte IPv6 address.
pub(crate) fn ipv6_of(value: &[u8], what: &str) -> Result<Ipv6Addr, DecodeError> {
    Ok(Ipv6Addr::from(exact::<16>(value, what)?))
}

/// An IPv4 address stored as 4 bytes in network order.
pub(crate) fn ipv4_of(value: &[u8], what: &str) -> Result<Ipv4Addr, DecodeError> {
    Ok(Ipv4Addr::from(exact::<4>(value, what)?))
}

/// A NUL-terminated string; the kernel copies up to the first NUL, and so does this.
pub(crate) fn string_of(value: &[u8], what: &str) -> Result<String, DecodeError> {
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8(value[..end].to_vec()).map_err(|e| DecodeError::from(format!("{what}: {e}")))
}

/// Length of a string attribute value: the bytes and the trailing NUL.
pub(crate) fn string_len(s: &str) -> usize {
    s.len() + 1
}

/// Writes a string and its trailing NUL into a buffer of [`string_len`] bytes.
pub(crate) fn emit_string(buffer: &mut [u8], s: &str) {
    let (text, nul) = buffer.split_at_mut(s.len());
    text.copy_from_slice(s.as_bytes());
    nul.fill(0);
}

/// Parses the attributes of a nest, failing on the first malformed one.
pub(crate) fn nested<T>(value: &[u8], what: &str) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(value)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DecodeError::from(format!("{what}: {e}")))
}

/// An attribute this codec does not know, kept to be emitted unchanged: its type, its value, and its nested flag
/// or else its byte-order flag. Not both: netlink-packet-core 0.9 emits an attribute with both as nested only (its
/// `emit` sets the nested flag on the type read back without flags, dropping the byte-order flag it has just set),
/// so one kept with both would not re-emit as it was read (found by the fuzz target `netlink_decoder`). Nothing
/// reads an unknown attribute's flags, and the byte-order flag means nothing on a nest.
pub(crate) fn unknown<T: AsRef<[u8]> + ?Sized>(buf: &NlaBuffer<&T>) -> DefaultNla {
    let flag = if buf.nested_flag() {
        NLA_F_NESTED
    } else if buf.network_byte_order_flag() {
        NLA_F_NET_BYTEORDER
    } else {
        0
    };
    DefaultNla::new(buf.kind() | flag, buf.value().to_vec())
}

/// `union nf_inet_addr` as IPVS carries it: 16 bytes, an IPv4 address in the first 4.
///
/// Which family the bytes hold is not in the attribute: it comes from the nest's address family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InetAddr(pub [u8; 16]);

impl InetAddr {
    /// Size on the wire; the kernel always emits all 16 bytes, as ipvsadm sends them.
    pub const LEN: usize = 16;

    /// The bytes of an address.
    pub fn from_ip(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 16];
        match ip {
            IpAddr::V4(a) => bytes[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => bytes = a.octets(),
        }
        InetAddr(bytes)
    }

    /// The address, read as `family`.
    pub fn to_ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(self.0[0], self.0[1], self.0[2], self.0[3])),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// Parses up to 16 bytes, zero-filling the rest as the kernel's `nla_memcpy` does.
    pub fn parse(value: &[u8], what: &str) -> Result<Self, DecodeError> {
        if value.len() > Self::LEN {
            return Err(DecodeError::from(format!("{what}: expected at most 16 bytes, got {}", value.len())));
        }
        let mut bytes = [0u8; 16];
        bytes[..value.len()].copy_from_slice(value);
        Ok(InetAddr(bytes))
    }
}

/// `struct ip_vs_flags`: the new flag bits and which bits to change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlagsMask {
    /// Flag values.
    pub flags: u32,
    /// Bits of `flags` the kernel applies; the kernel replies with all ones.
    pub mask: u32,
}

impl FlagsMask {
    /// Size on the wire.
    pub const LEN: usize = 8;

    /// Parses the 8-byte structure (two native-endian `u32`).
    pub fn parse(value: &[u8], what: &str) -> Result<Self, DecodeError> {
        let bytes = exact::<8>(value, what)?;
        let (flags, mask) = bytes.split_at(4);
        Ok(FlagsMask { flags: u32_of(flags, what)?, mask: u32_of(mask, what)? })
    }

    /// Writes the structure into 8 bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let (flags, mask) = buffer.split_at_mut(4);
        flags.copy_from_slice(&self.flags.to_ne_bytes());
        mask.copy_from_slice(&self.mask.to_ne_bytes());
    }
}

/// Reads a required attribute out of a nest, or says which one is missing.
pub(crate) fn required<T>(value: Option<T>, nest: &str, attr: &str) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::from(format!("{nest}: missing attribute {attr}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_refuse_wrong_sizes_and_name_the_attribute() {
        let err = u32_of(&[1, 2, 3], "IPVS_SVC_ATTR_TIMEOUT").unwrap_err().to_string();
        assert!(err.contains("IPVS_SVC_ATTR_TIMEOUT") && err.contains("expected 4 bytes, got 3"), "{err}");
        assert!(u16_of(&[1, 2, 3], "x").is_err());
        assert!(u64_of(&[0; 4], "x").is_err());
        assert!(u8_of(&[], "x").is_err());
    }

    #[test]
    fn ports_are_network_order() {
        assert_eq!(be16_of(&[0x1f, 0x90], "port").unwrap(), 8080);
    }

    #[test]
    fn strings_stop_at_the_first_nul() {
        assert_eq!(string_of(b"wlc\0\0\0", "s").unwrap(), "wlc");
        assert_eq!(string_of(b"rr", "s").unwrap(), "rr");
        assert!(string_of(&[0xff, 0xfe, 0], "s").is_err());
        let mut buf = vec![0xaa; string_len("sip")];
        emit_string(&mut buf, "sip");
        assert_eq!(buf, b"sip\0");
    }

    #[test]
    fn addresses_are_zero_filled_and_read_by_family() {
        let a = InetAddr::parse(&[192, 0, 2, 1], "addr").unwrap();
        assert_eq!(a.to_ip(Family::V4), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(a, InetAddr::from_ip("192.0.2.1".parse().unwrap()));
        assert!(InetAddr::parse(&[0; 17], "addr").is_err());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(InetAddr::from_ip(v6).to_ip(Family::V6), v6);
    }

    #[test]
    fn unknown_attributes_with_both_flags_re_emit_as_read() {
        use netlink_packet_core::Emitable;
        // Found by the fuzz target netlink_decoder: type 0x3804 with NLA_F_NESTED and NLA_F_NET_BYTEORDER.
        let bytes = [12u8, 0, 0x04, 0xf8, 59, 0, 0, 0, 0, 0, 0, 0];
        let nla = unknown(&NlaBuffer::new_checked(&bytes[..]).unwrap());
        let mut out = vec![0; nla.buffer_len()];
        nla.emit(&mut out);
        assert_eq!(unknown(&NlaBuffer::new_checked(&out[..]).unwrap()), nla);
        // One flag alone is kept as it was.
        for kind in [0xb804u16, 0x7804, 0x3804] {
            let [lo, hi] = kind.to_le_bytes();
            let bytes = [8u8, 0, lo, hi, 1, 2, 3, 4];
            let nla = unknown(&NlaBuffer::new_checked(&bytes[..]).unwrap());
            let mut out = vec![0; nla.buffer_len()];
            nla.emit(&mut out);
            assert_eq!(out, bytes, "{kind:#x}");
        }
    }

    #[test]
    fn missing_attribute_is_named() {
        let err = required::<u32>(None, "service", "IPVS_SVC_ATTR_SCHED_NAME").unwrap_err().to_string();
        assert_eq!(err, "service: missing attribute IPVS_SVC_ATTR_SCHED_NAME");
    }
}
