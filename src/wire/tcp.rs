//! TCP: ports, sequence number, flags and (when present) the payload.

use super::{Layer, WireError, header};
use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// The part of the header connbal needs to count connections: a segment
/// cut by the snap length after its flags is still counted.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TcpPrefix {
    src_port: U16,
    dst_port: U16,
    seq: U32,
    ack: U32,
    data_offset: u8,
    flags: u8,
}

#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR (NS is not needed).
    pub flags: u8,
    /// The payload, empty when the header itself was cut short.
    pub payload: &'a [u8],
    /// The header or its options were cut by the snap length.
    pub truncated: bool,
}

#[inline]
pub fn parse(bytes: &[u8]) -> Result<TcpSegment<'_>, WireError> {
    let (h, _) = header::<TcpPrefix>(bytes, Layer::Tcp)?;
    let header_len = usize::from(h.data_offset >> 4) * 4;
    if header_len < 20 {
        return Err(WireError::Malformed { layer: Layer::Tcp });
    }
    let (payload, truncated) = match bytes.get(header_len..) {
        Some(p) => (p, false),
        None => (&[][..], true),
    };
    Ok(TcpSegment {
        src_port: h.src_port.get(),
        dst_port: h.dst_port.get(),
        seq: h.seq.get(),
        flags: h.flags,
        payload,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0x9d, 0xfe, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, flags];
        s.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn fields_and_payload() {
        let s = segment(SYN, b"xy");
        let t = parse(&s).unwrap();
        assert_eq!((t.src_port, t.dst_port, t.seq, t.flags), (40446, 80, 7, SYN));
        assert_eq!(t.payload, b"xy");
    }

    #[test]
    fn a_cut_after_the_flags_still_gives_the_flags() {
        let s = segment(SYN | ACK, b"");
        let t = parse(&s[..14]).unwrap();
        assert_eq!(t.flags, SYN | ACK);
        assert!(t.truncated && t.payload.is_empty());
        for cut in 0..14 {
            assert!(parse(&s[..cut]).is_err());
        }
    }

    #[test]
    fn data_offset_below_five_is_malformed() {
        let mut s = segment(SYN, b"");
        s[12] = 0x40;
        assert!(parse(&s).is_err());
    }
}
