//! `IPVS_STATS_ATTR_*`: the counters nested in services and destinations, in both widths.
//!
//! `IPVS_*_ATTR_STATS` is the old nest, whose packet and rate counters are 32-bit (byte counters are 64-bit);
//! `IPVS_*_ATTR_STATS64` (Linux 4.1+) holds every counter as 64-bit. Replies carry both; readers prefer the latter.

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};

use super::value::{u32_of, u64_of, unknown};
use crate::model::Stats;

const CONNS: u16 = 1;
const INPKTS: u16 = 2;
const OUTPKTS: u16 = 3;
const INBYTES: u16 = 4;
const OUTBYTES: u16 = 5;
const CPS: u16 = 6;
const INPPS: u16 = 7;
const OUTPPS: u16 = 8;
const INBPS: u16 = 9;
const OUTBPS: u16 = 10;

/// An attribute of the 32-bit `STATS` nest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsAttr {
    /// `IPVS_STATS_ATTR_CONNS`
    Conns(u32),
    /// `IPVS_STATS_ATTR_INPKTS`
    InPkts(u32),
    /// `IPVS_STATS_ATTR_OUTPKTS`
    OutPkts(u32),
    /// `IPVS_STATS_ATTR_INBYTES` (64-bit even here)
    InBytes(u64),
    /// `IPVS_STATS_ATTR_OUTBYTES` (64-bit even here)
    OutBytes(u64),
    /// `IPVS_STATS_ATTR_CPS`
    Cps(u32),
    /// `IPVS_STATS_ATTR_INPPS`
    InPps(u32),
    /// `IPVS_STATS_ATTR_OUTPPS`
    OutPps(u32),
    /// `IPVS_STATS_ATTR_INBPS`
    InBps(u32),
    /// `IPVS_STATS_ATTR_OUTBPS`
    OutBps(u32),
    /// Anything else, padding (`IPVS_STATS_ATTR_PAD`) included.
    Other(DefaultNla),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::InBytes(_) | Self::OutBytes(_) => 8,
            Self::Other(nla) => nla.value_len(),
            _ => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Conns(_) => CONNS,
            Self::InPkts(_) => INPKTS,
            Self::OutPkts(_) => OUTPKTS,
            Self::InBytes(_) => INBYTES,
            Self::OutBytes(_) => OUTBYTES,
            Self::Cps(_) => CPS,
            Self::InPps(_) => INPPS,
            Self::OutPps(_) => OUTPPS,
            Self::InBps(_) => INBPS,
            Self::OutBps(_) => OUTBPS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Conns(v)
            | Self::InPkts(v)
            | Self::OutPkts(v)
            | Self::Cps(v)
            | Self::InPps(v)
            | Self::OutPps(v)
            | Self::InBps(v)
            | Self::OutBps(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::InBytes(v) | Self::OutBytes(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            CONNS => Self::Conns(u32_of(v, "IPVS_STATS_ATTR_CONNS")?),
            INPKTS => Self::InPkts(u32_of(v, "IPVS_STATS_ATTR_INPKTS")?),
            OUTPKTS => Self::OutPkts(u32_of(v, "IPVS_STATS_ATTR_OUTPKTS")?),
            INBYTES => Self::InBytes(u64_of(v, "IPVS_STATS_ATTR_INBYTES")?),
            OUTBYTES => Self::OutBytes(u64_of(v, "IPVS_STATS_ATTR_OUTBYTES")?),
            CPS => Self::Cps(u32_of(v, "IPVS_STATS_ATTR_CPS")?),
            INPPS => Self::InPps(u32_of(v, "IPVS_STATS_ATTR_INPPS")?),
            OUTPPS => Self::OutPps(u32_of(v, "IPVS_STATS_ATTR_OUTPPS")?),
            INBPS => Self::InBps(u32_of(v, "IPVS_STATS_ATTR_INBPS")?),
            OUTBPS => Self::OutBps(u32_of(v, "IPVS_STATS_ATTR_OUTBPS")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// An attribute of the 64-bit `STATS64` nest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stats64Attr {
    /// `IPVS_STATS_ATTR_CONNS`
    Conns(u64),
    /// `IPVS_STATS_ATTR_INPKTS`
    InPkts(u64),
    /// `IPVS_STATS_ATTR_OUTPKTS`
    OutPkts(u64),
    /// `IPVS_STATS_ATTR_INBYTES`
    InBytes(u64),
    /// `IPVS_STATS_ATTR_OUTBYTES`
    OutBytes(u64),
    /// `IPVS_STATS_ATTR_CPS`
    Cps(u64),
    /// `IPVS_STATS_ATTR_INPPS`
    InPps(u64),
    /// `IPVS_STATS_ATTR_OUTPPS`
    OutPps(u64),
    /// `IPVS_STATS_ATTR_INBPS`
    InBps(u64),
    /// `IPVS_STATS_ATTR_OUTBPS`
    OutBps(u64),
    /// Anything else, padding (`IPVS_STATS_ATTR_PAD`) included.
    Other(DefaultNla),
}

impl Nla for Stats64Attr {
    fn value_len(&self) -> usize {
        match self {
            Self::Other(nla) => nla.value_len(),
            _ => 8,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Conns(_) => CONNS,
            Self::InPkts(_) => INPKTS,
            Self::OutPkts(_) => OUTPKTS,
            Self::InBytes(_) => INBYTES,
            Self::OutBytes(_) => OUTBYTES,
            Self::Cps(_) => CPS,
            Self::InPps(_) => INPPS,
            Self::OutPps(_) => OUTPPS,
            Self::InBps(_) => INBPS,
            Self::OutBps(_) => OUTBPS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Conns(v)
            | Self::InPkts(v)
            | Self::OutPkts(v)
            | Self::InBytes(v)
            | Self::OutBytes(v)
            | Self::Cps(v)
            | Self::InPps(v)
            | Self::OutPps(v)
            | Self::InBps(v)
            | Self::OutBps(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for Stats64Attr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            CONNS => Self::Conns(u64_of(v, "IPVS_STATS_ATTR_CONNS (64-bit)")?),
            INPKTS => Self::InPkts(u64_of(v, "IPVS_STATS_ATTR_INPKTS (64-bit)")?),
            OUTPKTS => Self::OutPkts(u64_of(v, "IPVS_STATS_ATTR_OUTPKTS (64-bit)")?),
            INBYTES => Self::InBytes(u64_of(v, "IPVS_STATS_ATTR_INBYTES (64-bit)")?),
            OUTBYTES => Self::OutBytes(u64_of(v, "IPVS_STATS_ATTR_OUTBYTES (64-bit)")?),
            CPS => Self::Cps(u64_of(v, "IPVS_STATS_ATTR_CPS (64-bit)")?),
            INPPS => Self::InPps(u64_of(v, "IPVS_STATS_ATTR_INPPS (64-bit)")?),
            OUTPPS => Self::OutPps(u64_of(v, "IPVS_STATS_ATTR_OUTPPS (64-bit)")?),
            INBPS => Self::InBps(u64_of(v, "IPVS_STATS_ATTR_INBPS (64-bit)")?),
            OUTBPS => Self::OutBps(u64_of(v, "IPVS_STATS_ATTR_OUTBPS (64-bit)")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// Counters from the 32-bit nest. Absent counters read as 0: the kernel always sends them all.
pub fn decode_stats(attrs: &[StatsAttr]) -> Stats {
    let mut s = Stats::default();
    for attr in attrs {
        match *attr {
            StatsAttr::Conns(v) => s.conns = v.into(),
            StatsAttr::InPkts(v) => s.in_packets = v.into(),
            StatsAttr::OutPkts(v) => s.out_packets = v.into(),
            StatsAttr::InBytes(v) => s.in_bytes = v,
            StatsAttr::OutBytes(v) => s.out_bytes = v,
            StatsAttr::Cps(v) => s.cps = v.into(),
            StatsAttr::InPps(v) => s.in_pps = v.into(),
            StatsAttr::OutPps(v) => s.out_pps = v.into(),
            StatsAttr::InBps(v) => s.in_bps = v.into(),
            StatsAttr::OutBps(v) => s.out_bps = v.into(),
            StatsAttr::Other(_) => {}
        }
    }
    s
}

/// Counters from the 64-bit nest. Absent counters read as 0: the kernel always sends them all.
pub fn decode_stats64(attrs: &[Stats64Attr]) -> Stats {
    let mut s = Stats::default();
    for attr in attrs {
        match *attr {
            Stats64Attr::Conns(v) => s.conns = v,
            Stats64Attr::InPkts(v) => s.in_packets = v,
            Stats64Attr::OutPkts(v) => s.out_packets = v,
            Stats64Attr::InBytes(v) => s.in_bytes = v,
            Stats64Attr::OutBytes(v) => s.out_bytes = v,
            Stats64Attr::Cps(v) => s.cps = v,
            Stats64Attr::InPps(v) => s.in_pps = v,
            Stats64Attr::OutPps(v) => s.out_pps = v,
            Stats64Attr::InBps(v) => s.in_bps = v,
            Stats64Attr::OutBps(v) => s.out_bps = v,
            Stats64Attr::Other(_) => {}
        }
    }
    s
}

/// The 64-bit nest of `stats`, as the kernel emits it (without padding attributes).
pub fn encode_stats64(s: &Stats) -> Vec<Stats64Attr> {
    vec![
        Stats64Attr::Conns(s.conns),
        Stats64Attr::InPkts(s.in_packets),
        Stats64Attr::OutPkts(s.out_packets),
        Stats64Attr::InBytes(s.in_bytes),
        Stats64Attr::OutBytes(s.out_bytes),
        Stats64Attr::Cps(s.cps),
        Stats64Attr::InPps(s.in_pps),
        Stats64Attr::OutPps(s.out_pps),
        Stats64Attr::InBps(s.in_bps),
        Stats64Attr::OutBps(s.out_bps),
    ]
}

/// The 32-bit nest of `stats`, truncating as the kernel does.
pub fn encode_stats(s: &Stats) -> Vec<StatsAttr> {
    // The kernel fills this nest by truncating its 64-bit counters; do the same.
    let t = |v: u64| v as u32;
    vec![
        StatsAttr::Conns(t(s.conns)),
        StatsAttr::InPkts(t(s.in_packets)),
        StatsAttr::OutPkts(t(s.out_packets)),
        StatsAttr::InBytes(s.in_bytes),
        StatsAttr::OutBytes(s.out_bytes),
        StatsAttr::Cps(t(s.cps)),
        StatsAttr::InPps(t(s.in_pps)),
        StatsAttr::OutPps(t(s.out_pps)),
        StatsAttr::InBps(t(s.in_bps)),
        StatsAttr::OutBps(t(s.out_bps)),
    ]
}
