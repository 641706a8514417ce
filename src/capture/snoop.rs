//! snoop version 2 (RFC 1761): a 16-byte file header, then records with a
//! 24-byte big-endian header each, padded to a multiple of four.

use super::{DetectError, Frame, MAX_RECORD, RecordMeta};
use crate::dissect::Link;
use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const MAGIC: &[u8] = b"snoop\0\0\0";
const FILE_HEADER_LEN: usize = 16;
const RECORD_HEADER_LEN: usize = 24;

/// `dl_ipnetinfo` captures (`snoop -I` on illumos/Solaris).
pub const DATALINK_IPNET: u32 = 0x8000_0005;

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FileHeader {
    magic: [u8; 8],
    version: U32,
    datalink: U32,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RecordHeader {
    original_len: U32,
    included_len: U32,
    record_len: U32,
    cumulative_drops: U32,
    ts_sec: U32,
    ts_usec: U32,
}

#[derive(Clone, Debug)]
pub struct SnoopFramer {
    link: Link,
    /// The cumulative kernel drop count of the last record framed.
    pub drops: Option<u32>,
}

impl SnoopFramer {
    pub fn from_header(head: &[u8]) -> Result<(Self, usize), DetectError> {
        let Ok((h, _)) = FileHeader::ref_from_prefix(head) else {
            return Err(DetectError::NeedMore);
        };
        let version = h.version.get();
        if version != 2 {
            return Err(DetectError::Unsupported(format!(
                "snoop version {version} is not supported (only version 2)"
            )));
        }
        let link = match h.datalink.get() {
            0 | 4 => Link::Ethernet,
            DATALINK_IPNET => Link::Ipnet,
            other => {
                return Err(DetectError::Unsupported(format!(
                    "snoop datalink type {other} (0x{other:x}) is not supported (Ethernet 0 and 4, ipnet 0x80000005)"
                )));
            }
        };
        Ok((SnoopFramer { link, drops: None }, FILE_HEADER_LEN))
    }

    pub fn next(&mut self, buf: &[u8]) -> Frame {
        let Ok((h, _)) = RecordHeader::ref_from_prefix(buf) else {
            return Frame::Incomplete(RECORD_HEADER_LEN);
        };
        let record_len = h.record_len.get() as usize;
        let included = h.included_len.get() as usize;
        if record_len < RECORD_HEADER_LEN {
            return Frame::Damaged(format!(
                "record length {record_len} is shorter than the 24-byte record header"
            ));
        }
        if record_len > MAX_RECORD {
            return Frame::Damaged(format!("record length {record_len} is over 16 MiB"));
        }
        if included > record_len - RECORD_HEADER_LEN {
            return Frame::Damaged(format!(
                "captured length {included} is larger than the record ({} bytes after its header)",
                record_len - RECORD_HEADER_LEN
            ));
        }
        if buf.len() < record_len {
            return Frame::Incomplete(record_len);
        }
        self.drops = Some(h.cumulative_drops.get());
        Frame::Record(
            RecordMeta {
                data_off: RECORD_HEADER_LEN as u32,
                caplen: included as u32,
                link: self.link,
                ts: timestamp(h),
            },
            record_len,
        )
    }

    /// The record at the front of `buf` if it is whole and sound (for
    /// `Framer::run`; anything else is for [`SnoopFramer::next`] to name).
    #[inline(always)]
    pub(super) fn sound_record(&mut self, buf: &[u8]) -> Option<(RecordMeta, usize)> {
        let (h, _) = RecordHeader::ref_from_prefix(buf).ok()?;
        let record_len = h.record_len.get() as usize;
        let included = h.included_len.get() as usize;
        if !(RECORD_HEADER_LEN..=MAX_RECORD).contains(&record_len)
            || included > record_len - RECORD_HEADER_LEN
            || record_len > buf.len()
        {
            return None;
        }
        self.drops = Some(h.cumulative_drops.get());
        let meta = RecordMeta {
            data_off: RECORD_HEADER_LEN as u32,
            caplen: included as u32,
            link: self.link,
            ts: timestamp(h),
        };
        Some((meta, record_len))
    }
}

fn timestamp(h: &RecordHeader) -> u64 {
    u64::from(h.ts_sec.get()) * 1_000_000_000 + u64::from(h.ts_usec.get()) * 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn header(datalink: u32) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&2u32.to_be_bytes());
        h.extend_from_slice(&datalink.to_be_bytes());
        h
    }

    pub fn record(data: &[u8], drops: u32) -> Vec<u8> {
        let padded = data.len().div_ceil(4) * 4;
        let mut r = Vec::new();
        for v in [
            data.len() as u32,
            data.len() as u32,
            (24 + padded) as u32,
            drops,
            1_700_000_000,
            250_000,
        ] {
            r.extend_from_slice(&v.to_be_bytes());
        }
        r.extend_from_slice(data);
        r.resize(24 + padded, 0);
        r
    }

    #[test]
    fn datalinks() {
        assert!(matches!(
            SnoopFramer::from_header(&header(4)),
            Ok((
                SnoopFramer {
                    link: Link::Ethernet,
                    ..
                },
                16
            ))
        ));
        assert!(matches!(
            SnoopFramer::from_header(&header(0)),
            Ok((
                SnoopFramer {
                    link: Link::Ethernet,
                    ..
                },
                16
            ))
        ));
        assert!(matches!(
            SnoopFramer::from_header(&header(DATALINK_IPNET)),
            Ok((
                SnoopFramer {
                    link: Link::Ipnet,
                    ..
                },
                16
            ))
        ));
        let Err(DetectError::Unsupported(msg)) = SnoopFramer::from_header(&header(8)) else {
            panic!()
        };
        assert!(msg.contains("datalink type 8"), "{msg}");
        assert_eq!(
            SnoopFramer::from_header(&header(4)[..15]).unwrap_err(),
            DetectError::NeedMore
        );
    }

    #[test]
    fn frames_a_record() {
        let (mut f, _) = SnoopFramer::from_header(&header(4)).unwrap();
        let r = record(b"hello", 7);
        let Frame::Record(meta, len) = f.next(&r) else {
            panic!()
        };
        assert_eq!(len, 32);
        assert_eq!((meta.data_off, meta.caplen, f.drops), (24, 5, Some(7)));
        assert_eq!(meta.ts, 1_700_000_000_250_000_000);
        for cut in 0..r.len() {
            assert!(matches!(f.next(&r[..cut]), Frame::Incomplete(_)), "cut {cut}");
        }
    }

    #[test]
    fn damage_is_named() {
        let (mut f, _) = SnoopFramer::from_header(&header(4)).unwrap();
        let mut r = record(b"hello", 0);
        r[8..12].copy_from_slice(&20u32.to_be_bytes());
        assert!(matches!(f.next(&r), Frame::Damaged(m) if m.contains("shorter")));
        let mut r = record(b"hello", 0);
        r[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(f.next(&r), Frame::Damaged(m) if m.contains("larger")));
        let mut r = record(b"hello", 0);
        r[8..12].copy_from_slice(&(17u32 << 20).to_be_bytes());
        assert!(matches!(f.next(&r), Frame::Damaged(m) if m.contains("16 MiB")));
    }
}
