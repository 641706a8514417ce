//! pcap: a 24-byte file header in the writer's byte order (microsecond or
//! nanosecond magic), then 16-byte record headers.

use std::marker::PhantomData;

use super::{DetectError, Frame, MAX_RECORD, RecordMeta, link_from_linktype};
use crate::dissect::Link;
use zerocopy::byteorder::{BigEndian, ByteOrder, LittleEndian, U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const MAGIC_US: u32 = 0xA1B2_C3D4;
pub const MAGIC_NS: u32 = 0xA1B2_3C4D;

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FileHeader<O: ByteOrder> {
    magic: U32<O>,
    major: U16<O>,
    minor: U16<O>,
    thiszone: U32<O>,
    sigfigs: U32<O>,
    snaplen: U32<O>,
    linktype: U32<O>,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RecordHeader<O: ByteOrder> {
    ts_sec: U32<O>,
    ts_frac: U32<O>,
    incl_len: U32<O>,
    orig_len: U32<O>,
}

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

#[derive(Clone, Debug)]
pub struct PcapFramer {
    big_endian: bool,
    /// Nanoseconds per unit of the fraction field.
    frac_ns: u64,
    link: Link,
}

/// Whether `head` starts with a pcap magic number, in either byte order.
pub fn is_pcap(head: &[u8]) -> bool {
    head.first_chunk::<4>().is_some_and(|m| {
        [MAGIC_US, MAGIC_NS]
            .iter()
            .any(|&magic| *m == magic.to_be_bytes() || *m == magic.to_le_bytes())
    })
}

impl PcapFramer {
    pub fn from_header(head: &[u8]) -> Result<(Self, usize), DetectError> {
        let Some(m) = head.first_chunk::<4>() else {
            return Err(DetectError::NeedMore);
        };
        let big_endian = *m == MAGIC_US.to_be_bytes() || *m == MAGIC_NS.to_be_bytes();
        if big_endian {
            Self::parse::<BigEndian>(head, true)
        } else {
            Self::parse::<LittleEndian>(head, false)
        }
    }

    fn parse<O: ByteOrder>(head: &[u8], big_endian: bool) -> Result<(Self, usize), DetectError> {
        let Ok((h, _)) = FileHeader::<O>::ref_from_prefix(head) else {
            return Err(DetectError::NeedMore);
        };
        let frac_ns = if h.magic.get() == MAGIC_NS { 1 } else { 1_000 };
        let linktype = h.linktype.get() & 0xFFFF;
        let link = link_from_linktype(linktype).ok_or_else(|| {
            DetectError::Unsupported(format!(
                "pcap link type {linktype} is not supported (Ethernet 1, raw IP 101/12/14, \
                 Linux SLL 113, SLL2 276, null 0, loop 108)"
            ))
        })?;
        Ok((
            PcapFramer {
                big_endian,
                frac_ns,
                link,
            },
            FILE_HEADER_LEN,
        ))
    }

    pub fn next(&mut self, buf: &[u8]) -> Frame {
        if self.big_endian {
            self.record::<BigEndian>(buf, PhantomData)
        } else {
            self.record::<LittleEndian>(buf, PhantomData)
        }
    }

    /// The record at the front of `buf` if it is whole and sound (for
    /// `Framer::run`; anything else is for [`PcapFramer::next`] to name).
    #[inline(always)]
    pub(super) fn sound_record(&self, buf: &[u8]) -> Option<(RecordMeta, usize)> {
        if self.big_endian {
            self.sound::<BigEndian>(buf)
        } else {
            self.sound::<LittleEndian>(buf)
        }
    }

    #[inline(always)]
    fn sound<O: ByteOrder>(&self, buf: &[u8]) -> Option<(RecordMeta, usize)> {
        let (h, _) = RecordHeader::<O>::ref_from_prefix(buf).ok()?;
        let incl = h.incl_len.get() as usize;
        let len = RECORD_HEADER_LEN + incl;
        if incl > MAX_RECORD || len > buf.len() {
            return None;
        }
        let meta = RecordMeta {
            data_off: RECORD_HEADER_LEN as u32,
            caplen: incl as u32,
            link: self.link,
            ts: u64::from(h.ts_sec.get()) * 1_000_000_000 + u64::from(h.ts_frac.get()) * self.frac_ns,
        };
        Some((meta, len))
    }

    fn record<O: ByteOrder>(&self, buf: &[u8], _: PhantomData<O>) -> Frame {
        let Ok((h, _)) = RecordHeader::<O>::ref_from_prefix(buf) else {
            return Frame::Incomplete(RECORD_HEADER_LEN);
        };
        let incl = h.incl_len.get() as usize;
        if incl > MAX_RECORD {
            return Frame::Damaged(format!("record length {incl} is over 16 MiB"));
        }
        let len = RECORD_HEADER_LEN + incl;
        if buf.len() < len {
            return Frame::Incomplete(len);
        }
        let ts = u64::from(h.ts_sec.get()) * 1_000_000_000 + u64::from(h.ts_frac.get()) * self.frac_ns;
        Frame::Record(
            RecordMeta {
                data_off: RECORD_HEADER_LEN as u32,
                caplen: incl as u32,
                link: self.link,
                ts,
            },
            len,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, linktype: u32, big: bool) -> Vec<u8> {
        let mut h = Vec::new();
        let put32 = |h: &mut Vec<u8>, v: u32| {
            h.extend_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() })
        };
        put32(&mut h, magic);
        h.extend_from_slice(&if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        put32(&mut h, 0);
        put32(&mut h, 0);
        put32(&mut h, 65535);
        put32(&mut h, linktype);
        h
    }

    #[test]
    fn both_byte_orders_and_resolutions() {
        for big in [false, true] {
            for (magic, unit) in [(MAGIC_US, 1_000), (MAGIC_NS, 1)] {
                let mut cap = header(magic, 1, big);
                assert!(is_pcap(&cap));
                let (mut f, len) = PcapFramer::from_header(&cap).unwrap();
                assert_eq!(len, 24);
                for v in [10u32, 7, 3, 3] {
                    cap.extend_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
                }
                cap.extend_from_slice(b"abc");
                let Frame::Record(meta, n) = f.next(&cap[24..]) else {
                    panic!()
                };
                assert_eq!(n, 19);
                assert_eq!(meta.ts, 10_000_000_000 + 7 * unit);
                assert_eq!(meta.caplen, 3);
                assert!(matches!(f.next(&cap[24..42]), Frame::Incomplete(19)));
            }
        }
    }

    #[test]
    fn unknown_link_type_is_named() {
        let Err(DetectError::Unsupported(m)) = PcapFramer::from_header(&header(MAGIC_US, 147, false)) else {
            panic!()
        };
        assert!(m.starts_with("pcap link type 147 is not supported"), "{m}");
    }
}
