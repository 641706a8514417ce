//! IPv4: header length from IHL, payload bounded by the total length and by
//! what was captured.

use super::{Layer, WireError, header};
use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Ipv4Header {
    version_ihl: u8,
    tos: u8,
    total_len: U16,
    ident: U16,
    flags_fragment: U16,
    ttl: u8,
    protocol: u8,
    checksum: U16,
    src: [u8; 4],
    dst: [u8; 4],
}

const MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET: u16 = 0x1FFF;

/// A checked IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    /// Offset of this fragment in 8-byte units; non-zero means no transport
    /// header is here.
    pub fragment_offset: u16,
    pub more_fragments: bool,
    /// The identification field (fragments of one datagram share it).
    pub ident: u16,
    /// The payload as far as it was captured, never past the total length.
    pub payload: &'a [u8],
    /// The total length claims more than was captured.
    pub truncated: bool,
}

#[inline]
pub fn parse(bytes: &[u8]) -> Result<Ipv4Packet<'_>, WireError> {
    let (h, _) = header::<Ipv4Header>(bytes, Layer::Ipv4)?;
    if h.version_ihl >> 4 != 4 {
        return Err(WireError::Malformed { layer: Layer::Ipv4 });
    }
    let header_len = usize::from(h.version_ihl & 0x0F) * 4;
    let total_len = usize::from(h.total_len.get());
    if header_len < 20 || total_len < header_len {
        return Err(WireError::Malformed { layer: Layer::Ipv4 });
    }
    let end = total_len.min(bytes.len());
    let payload = bytes.get(header_len..end).ok_or(WireError::Truncated {
        layer: Layer::Ipv4,
        required: header_len,
        len: bytes.len(),
    })?;
    let frag = h.flags_fragment.get();
    Ok(Ipv4Packet {
        src: h.src,
        dst: h.dst,
        protocol: h.protocol,
        fragment_offset: frag & FRAGMENT_OFFSET,
        more_fragments: frag & MORE_FRAGMENTS != 0,
        ident: h.ident.get(),
        payload,
        truncated: total_len > bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn packet(options: usize, payload: &[u8]) -> Vec<u8> {
        let hl = 20 + options;
        let total = (hl + payload.len()) as u16;
        let mut p = vec![0x40 | (hl / 4) as u8, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend(std::iter::repeat_n(1u8, options)); // NOP options
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn options_and_padding_are_bounded_by_total_length() {
        let mut p = packet(8, b"abcd");
        p.extend_from_slice(&[0; 6]); // Ethernet padding after the packet
        let ip = parse(&p).unwrap();
        assert_eq!(ip.payload, b"abcd");
        assert_eq!(ip.src, [10, 0, 0, 1]);
        assert!(!ip.truncated);
    }

    #[test]
    fn snap_length_cut_is_truncated_not_an_error() {
        let p = packet(0, b"abcdefgh");
        let ip = parse(&p[..24]).unwrap();
        assert_eq!(ip.payload, b"abcd");
        assert!(ip.truncated);
    }

    #[test]
    fn bad_ihl_and_total_length_are_malformed() {
        let mut p = packet(0, b"abcd");
        p[0] = 0x44;
        assert_eq!(
            parse(&p).unwrap_err(),
            WireError::Malformed { layer: Layer::Ipv4 }
        );
        let mut p = packet(0, b"abcd");
        p[3] = 10; // total length below the header length
        assert!(parse(&p).is_err());
    }

    #[test]
    fn every_cut_is_safe() {
        let p = packet(4, b"abcdefgh");
        for cut in 0..p.len() {
            let _ = parse(&p[..cut]);
        }
        for cut in 0..24 {
            assert!(parse(&p[..cut]).is_err());
        }
    }
}
