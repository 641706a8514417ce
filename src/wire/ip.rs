//! What the IP layer hands to the transport layer, for either version.

use crate::addr::Addr;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

#[derive(Clone, Copy, Debug)]
pub struct IpPacket<'a> {
    pub src: Addr,
    pub dst: Addr,
    pub protocol: u8,
    /// No transport header in this packet (a non-first fragment).
    pub later_fragment: bool,
    /// A first fragment: the transport payload continues elsewhere.
    pub more_fragments: bool,
    /// For a fragment: (offset of its payload in bytes, identification).
    pub fragment: Option<(u32, u32)>,
    pub payload: &'a [u8],
    pub truncated: bool,
}

impl<'a> From<super::ipv4::Ipv4Packet<'a>> for IpPacket<'a> {
    fn from(p: super::ipv4::Ipv4Packet<'a>) -> Self {
        IpPacket {
            src: Addr::V4(p.src),
            dst: Addr::V4(p.dst),
            protocol: p.protocol,
            later_fragment: p.fragment_offset != 0,
            more_fragments: p.more_fragments,
            fragment: (p.fragment_offset != 0 || p.more_fragments)
                .then_some((u32::from(p.fragment_offset) * 8, u32::from(p.ident))),
            payload: p.payload,
            truncated: p.truncated,
        }
    }
}

impl<'a> From<super::ipv6::Ipv6Packet<'a>> for IpPacket<'a> {
    fn from(p: super::ipv6::Ipv6Packet<'a>) -> Self {
        IpPacket {
            src: Addr::V6(p.src),
            dst: Addr::V6(p.dst),
            protocol: p.protocol,
            later_fragment: p.later_fragment,
            more_fragments: p.more_fragments,
            fragment: p.fragment,
            payload: p.payload,
            truncated: p.truncated,
        }
    }
}

/// Parses an IP packet of either version, by its version nibble.
#[inline]
pub fn parse(bytes: &[u8]) -> Result<IpPacket<'_>, super::WireError> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => super::ipv4::parse(bytes).map(Into::into),
        Some(6) => super::ipv6::parse(bytes).map(Into::into),
        Some(_) => Err(super::WireError::Malformed {
            layer: super::Layer::Link,
        }),
        None => Err(super::WireError::Truncated {
            layer: super::Layer::Link,
            required: 1,
            len: 0,
        }),
    }
}
