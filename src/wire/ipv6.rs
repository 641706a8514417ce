//! IPv6 with its extension headers skipped (hop-by-hop, routing, fragment,
//! destination options, AH; at most eight).

use super::{Layer, WireError, header};
use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Ipv6Header {
    version_class_flow: U32,
    payload_len: U16,
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ExtensionHeader {
    next_header: u8,
    len: u8,
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTS: u8 = 60;
const MAX_EXTENSION_HEADERS: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The protocol after the extension headers.
    pub protocol: u8,
    /// A non-first fragment: no transport header here.
    pub later_fragment: bool,
    /// A first fragment with more to come.
    pub more_fragments: bool,
    /// The fragment header's offset (bytes) and identification, when
    /// there is one.
    pub fragment: Option<(u32, u32)>,
    pub payload: &'a [u8],
    pub truncated: bool,
}

pub fn parse(bytes: &[u8]) -> Result<Ipv6Packet<'_>, WireError> {
    let (h, rest) = header::<Ipv6Header>(bytes, Layer::Ipv6)?;
    if h.version_class_flow.get() >> 28 != 6 {
        return Err(WireError::Malformed { layer: Layer::Ipv6 });
    }
    // A payload length of 0 is a jumbogram (or a lie): bounded by the capture.
    let claimed = usize::from(h.payload_len.get());
    let (mut payload, truncated) = match claimed {
        0 => (rest, false),
        n if n <= rest.len() => (rest.get(..n).unwrap_or(rest), false),
        _ => (rest, true),
    };
    let mut protocol = h.next_header;
    let mut later_fragment = false;
    let mut more_fragments = false;
    let mut fragment = None;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let len = match protocol {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let (ext, _) = header::<ExtensionHeader>(payload, Layer::Ipv6)?;
                (usize::from(ext.len) + 1) * 8
            }
            AUTH => {
                let (ext, _) = header::<ExtensionHeader>(payload, Layer::Ipv6)?;
                (usize::from(ext.len) + 2) * 4
            }
            FRAGMENT => {
                let frag = payload
                    .get(2..)
                    .and_then(<[u8]>::first_chunk)
                    .ok_or(WireError::Truncated {
                        layer: Layer::Ipv6,
                        required: 8,
                        len: payload.len(),
                    })?;
                let field = u16::from_be_bytes(*frag);
                later_fragment = field & 0xFFF8 != 0;
                more_fragments = field & 1 != 0;
                let ident = payload
                    .get(4..)
                    .and_then(<[u8]>::first_chunk::<4>)
                    .map_or(0, |b| u32::from_be_bytes(*b));
                fragment = Some((u32::from(field & 0xFFF8), ident));
                8
            }
            _ => break,
        };
        let next = *payload.first().ok_or(WireError::Truncated {
            layer: Layer::Ipv6,
            required: len,
            len: 0,
        })?;
        payload = payload.get(len..).ok_or(WireError::Truncated {
            layer: Layer::Ipv6,
            required: len,
            len: payload.len(),
        })?;
        protocol = next;
    }
    Ok(Ipv6Packet {
        src: h.src,
        dst: h.dst,
        protocol,
        later_fragment,
        more_fragments,
        fragment,
        payload,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn extension_headers_are_skipped() {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP
        let mut ext = vec![DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1]);
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(b"udp!");
        let p = packet(HOP_BY_HOP, &ext);
        let ip = parse(&p).unwrap();
        assert_eq!(ip.protocol, 17);
        assert_eq!(ip.payload, b"udp!");
    }

    #[test]
    fn later_fragments_carry_no_transport_header() {
        let p = packet(FRAGMENT, &[17, 0, 0x00, 0x08, 0, 0, 0, 1, 1, 2, 3]);
        let ip = parse(&p).unwrap();
        assert!(ip.later_fragment);
        let p = packet(FRAGMENT, &[17, 0, 0x00, 0x01, 0, 0, 0, 1, 1, 2, 3]);
        let ip = parse(&p).unwrap();
        assert!(!ip.later_fragment && ip.more_fragments);
        assert_eq!(ip.payload, &[1, 2, 3]);
    }

    #[test]
    fn a_chain_of_extension_headers_stops_after_eight() {
        let mut ext = Vec::new();
        for _ in 0..12 {
            ext.extend_from_slice(&[DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = packet(DEST_OPTS, &ext);
        let ip = parse(&p).unwrap();
        assert_eq!(ip.protocol, DEST_OPTS);
    }

    #[test]
    fn every_cut_is_safe() {
        let mut ext = vec![17, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(b"data");
        let p = packet(HOP_BY_HOP, &ext);
        for cut in 0..p.len() {
            let _ = parse(&p[..cut]);
        }
    }
}
