//! UDP: payload bounded by the UDP length and by the captured bytes.

use super::{Layer, WireError, header};
use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct UdpHeader {
    src_port: U16,
    dst_port: U16,
    len: U16,
    checksum: U16,
}

#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
    /// The UDP length claims more than was captured.
    pub truncated: bool,
}

#[inline]
pub fn parse(bytes: &[u8]) -> Result<UdpDatagram<'_>, WireError> {
    let (h, rest) = header::<UdpHeader>(bytes, Layer::Udp)?;
    let len = usize::from(h.len.get());
    if len < 8 {
        return Err(WireError::Malformed { layer: Layer::Udp });
    }
    let want = len - 8;
    let payload = rest.get(..want).unwrap_or(rest);
    Ok(UdpDatagram {
        src_port: h.src_port.get(),
        dst_port: h.dst_port.get(),
        payload,
        truncated: want > rest.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds_the_payload() {
        let d = [0, 53, 0x30, 0x39, 0, 10, 0, 0, b'h', b'i', 0, 0];
        let u = parse(&d).unwrap();
        assert_eq!((u.src_port, u.dst_port, u.payload), (53, 12345, &b"hi"[..]));
        assert!(!u.truncated);
        let u = parse(&d[..9]).unwrap();
        assert!(u.truncated);
        assert_eq!(u.payload, b"h");
        for cut in 0..8 {
            assert!(parse(&d[..cut]).is_err());
        }
        let bad = [0, 53, 0, 53, 0, 4, 0, 0];
        assert!(parse(&bad).is_err());
    }
}
