//! pcapng: blocks of a length that is a multiple of four, in sections that
//! each set their own byte order and interfaces (link type, `if_tsresol`,
//! `if_tsoffset`).

use super::{DetectError, Frame, MAX_RECORD, RecordMeta, link_from_linktype};
use crate::dissect::Link;
use zerocopy::byteorder::{BigEndian, ByteOrder, I64, LittleEndian, U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const INTERFACE_DESCRIPTION: u32 = 1;
const OBSOLETE_PACKET: u32 = 2;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;
const OPT_END: u16 = 0;
const OPT_TSRESOL: u16 = 9;
const OPT_TSOFFSET: u16 = 14;
/// Interfaces a section may describe: bounds the table, whatever the input.
const MAX_INTERFACES: usize = 4096;

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct BlockHeader<O: ByteOrder> {
    block_type: U32<O>,
    total_len: U32<O>,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct InterfaceBody<O: ByteOrder> {
    linktype: U16<O>,
    reserved: U16<O>,
    snaplen: U32<O>,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EnhancedBody<O: ByteOrder> {
    interface: U32<O>,
    ts_high: U32<O>,
    ts_low: U32<O>,
    caplen: U32<O>,
    origlen: U32<O>,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ObsoleteBody<O: ByteOrder> {
    interface: U16<O>,
    drops: U16<O>,
    ts_high: U32<O>,
    ts_low: U32<O>,
    caplen: U32<O>,
    origlen: U32<O>,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct OptionHeader<O: ByteOrder> {
    code: U16<O>,
    len: U16<O>,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Result<Link, u16>,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n seconds; set, 2^-n seconds.
    tsresol: u8,
    tsoffset_ns: i128,
}

#[derive(Clone, Debug, Default)]
pub struct PcapngFramer {
    big_endian: bool,
    interfaces: Vec<Interface>,
    last_ts: u64,
}

pub fn is_pcapng(head: &[u8]) -> bool {
    head.first_chunk::<4>()
        .is_some_and(|m| *m == SECTION_HEADER.to_be_bytes())
}

impl PcapngFramer {
    /// Checks the first section header's byte-order magic; the header
    /// itself is framed by `next`, like every later section header.
    pub fn from_header(head: &[u8]) -> Result<(Self, usize), DetectError> {
        let Some(bom) = head.get(8..).and_then(<[u8]>::first_chunk::<4>) else {
            return Err(DetectError::NeedMore);
        };
        if *bom != BYTE_ORDER_MAGIC.to_be_bytes() && *bom != BYTE_ORDER_MAGIC.to_le_bytes() {
            return Err(DetectError::Unsupported(
                "starts like pcapng but its byte-order magic is wrong: not a capture".into(),
            ));
        }
        Ok((PcapngFramer::default(), 0))
    }

    pub fn next(&mut self, buf: &[u8]) -> Frame {
        // A section header sets the byte order for itself and what follows.
        if buf
            .first_chunk::<4>()
            .is_some_and(|t| *t == SECTION_HEADER.to_be_bytes())
        {
            let Some(bom) = buf.get(8..).and_then(<[u8]>::first_chunk::<4>) else {
                return Frame::Incomplete(12);
            };
            if *bom == BYTE_ORDER_MAGIC.to_be_bytes() {
                self.big_endian = true;
            } else if *bom == BYTE_ORDER_MAGIC.to_le_bytes() {
                self.big_endian = false;
            } else {
                return Frame::Damaged("section header block with a bad byte-order magic".into());
            }
        }
        if self.big_endian {
            self.block::<BigEndian>(buf)
        } else {
            self.block::<LittleEndian>(buf)
        }
    }

    fn block<O: ByteOrder>(&mut self, buf: &[u8]) -> Frame {
        let Ok((h, _)) = BlockHeader::<O>::ref_from_prefix(buf) else {
            return Frame::Incomplete(12);
        };
        let block_type = h.block_type.get();
        let len = h.total_len.get() as usize;
        if !len.is_multiple_of(4) {
            return Frame::Damaged(format!("block length {len} is not a multiple of 4"));
        }
        if len < 12 {
            return Frame::Damaged(format!("block length {len} is shorter than a 12-byte block"));
        }
        if len > MAX_RECORD {
            return Frame::Damaged(format!("block length {len} is over 16 MiB"));
        }
        let Some(block) = buf.get(..len) else {
            return Frame::Incomplete(len);
        };
        let trailing = block
            .get(len - 4..)
            .and_then(|t| U32::<O>::ref_from_bytes(t).ok())
            .map(|v| v.get());
        if trailing != Some(len as u32) {
            return Frame::Damaged(format!(
                "block's trailing length {} differs from its leading length {len}",
                trailing.unwrap_or(0)
            ));
        }
        let body = block.get(8..len - 4).unwrap_or(&[]);
        match block_type {
            SECTION_HEADER => {
                self.interfaces.clear();
                Frame::Skip(len)
            }
            INTERFACE_DESCRIPTION => self.interface::<O>(body, len),
            ENHANCED_PACKET => {
                let Ok((p, _)) = EnhancedBody::<O>::ref_from_prefix(body) else {
                    return Frame::Damaged("enhanced packet block too short for its header".into());
                };
                let ts = (u64::from(p.ts_high.get()) << 32) | u64::from(p.ts_low.get());
                self.packet(
                    p.interface.get() as usize,
                    ts,
                    p.caplen.get() as usize,
                    body.len() - 20,
                    28,
                    len,
                )
            }
            OBSOLETE_PACKET => {
                let Ok((p, _)) = ObsoleteBody::<O>::ref_from_prefix(body) else {
                    return Frame::Damaged("packet block too short for its header".into());
                };
                let ts = (u64::from(p.ts_high.get()) << 32) | u64::from(p.ts_low.get());
                self.packet(
                    usize::from(p.interface.get()),
                    ts,
                    p.caplen.get() as usize,
                    body.len() - 20,
                    28,
                    len,
                )
            }
            SIMPLE_PACKET => {
                let Some(origlen) = body.first_chunk::<4>().map(|b| U32::<O>::from_bytes(*b).get()) else {
                    return Frame::Damaged("simple packet block too short for its header".into());
                };
                let room = body.len() - 4;
                let snap = self.interfaces.first().map_or(0, |i| i.snaplen as usize);
                let mut caplen = (origlen as usize).min(room);
                if snap > 0 {
                    caplen = caplen.min(snap);
                }
                let Some(iface) = self.interfaces.first().copied() else {
                    return Frame::Damaged("simple packet block before any interface description".into());
                };
                self.emit(iface, None, caplen, 12, len)
                    .unwrap_or_else(|| unsupported(0, iface))
            }
            _ => Frame::Skip(len),
        }
    }

    fn interface<O: ByteOrder>(&mut self, body: &[u8], len: usize) -> Frame {
        let Ok((i, mut options)) = InterfaceBody::<O>::ref_from_prefix(body) else {
            return Frame::Damaged("interface description block too short".into());
        };
        let linktype = i.linktype.get();
        let mut iface = Interface {
            link: link_from_linktype(u32::from(linktype)).ok_or(linktype),
            snaplen: i.snaplen.get(),
            tsresol: 6,
            tsoffset_ns: 0,
        };
        while let Ok((opt, rest)) = OptionHeader::<O>::ref_from_prefix(options) {
            let code = opt.code.get();
            let olen = usize::from(opt.len.get());
            let Some(value) = rest.get(..olen) else { break };
            match (code, value) {
                (OPT_END, _) => break,
                (OPT_TSRESOL, [r, ..]) => iface.tsresol = *r,
                (OPT_TSOFFSET, v) => {
                    if let Some(b) = v.first_chunk::<8>() {
                        iface.tsoffset_ns = i128::from(I64::<O>::from_bytes(*b).get()) * 1_000_000_000;
                    }
                }
                _ => {}
            }
            options = rest.get(olen.div_ceil(4) * 4..).unwrap_or(&[]);
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Frame::Damaged(format!("more than {MAX_INTERFACES} interfaces in one section"));
        }
        self.interfaces.push(iface);
        Frame::Skip(len)
    }

    fn packet(
        &mut self,
        interface: usize,
        ts: u64,
        caplen: usize,
        room: usize,
        data_off: u32,
        len: usize,
    ) -> Frame {
        if caplen > room {
            return Frame::Damaged(format!(
                "captured length {caplen} is larger than the block ({room} bytes of packet data)"
            ));
        }
        let Some(iface) = self.interfaces.get(interface).copied() else {
            return Frame::Damaged(format!(
                "packet block names interface {interface}, but the section describes {}",
                self.interfaces.len()
            ));
        };
        self.emit(iface, Some(ts), caplen, data_off, len)
            .unwrap_or_else(|| {
                let linktype = iface.link.err().unwrap_or(0);
                Frame::Unsupported(format!(
                    "pcapng interface {interface} has link type {linktype}, which is not supported \
                 (Ethernet 1, raw IP 101/12/14, Linux SLL 113, SLL2 276, null 0, loop 108)"
                ))
            })
    }

    fn emit(
        &mut self,
        iface: Interface,
        ts: Option<u64>,
        caplen: usize,
        data_off: u32,
        len: usize,
    ) -> Option<Frame> {
        let link = iface.link.ok()?;
        let ts = match ts {
            Some(raw) => {
                let ns = to_nanos(raw, iface.tsresol) + iface.tsoffset_ns;
                let ns = u64::try_from(ns.max(0)).unwrap_or(u64::MAX);
                self.last_ts = ns;
                ns
            }
            None => self.last_ts,
        };
        Some(Frame::Record(
            RecordMeta {
                data_off,
                caplen: caplen as u32,
                link,
                ts,
            },
            len,
        ))
    }
}

fn unsupported(interface: usize, iface: Interface) -> Frame {
    let linktype = iface.link.err().unwrap_or(0);
    Frame::Unsupported(format!(
        "pcapng interface {interface} has link type {linktype}, which is not supported \
         (Ethernet 1, raw IP 101/12/14, Linux SLL 113, SLL2 276, null 0, loop 108)"
    ))
}

/// A timestamp in units of `if_tsresol`, in nanoseconds.
fn to_nanos(raw: u64, tsresol: u8) -> i128 {
    let raw = i128::from(raw);
    let exp = u32::from(tsresol & 0x7F);
    if tsresol & 0x80 == 0 {
        if exp <= 9 {
            raw * 10i128.pow(9 - exp)
        } else {
            raw / 10i128.checked_pow(exp - 9).unwrap_or(i128::MAX)
        }
    } else if exp < 64 {
        (raw * 1_000_000_000) >> exp
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions() {
        assert_eq!(to_nanos(5, 6), 5_000);
        assert_eq!(to_nanos(5, 9), 5);
        assert_eq!(to_nanos(5_000, 12), 5);
        assert_eq!(to_nanos(1 << 20, 0x80 | 20), 1_000_000_000);
        assert_eq!(to_nanos(7, 0), 7_000_000_000);
    }

    fn block(big: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
        let put = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut b = Vec::new();
        b.extend_from_slice(&put(block_type));
        b.extend_from_slice(&put(len as u32));
        b.extend_from_slice(body);
        b.resize(len - 4, 0);
        b.extend_from_slice(&put(len as u32));
        b
    }

    #[test]
    fn sections_change_byte_order_and_reset_interfaces() {
        let mut f = PcapngFramer::default();
        for big in [false, true] {
            let put16 = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
            let put32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
            let mut shb = put32(BYTE_ORDER_MAGIC).to_vec();
            shb.extend_from_slice(&[0; 12]);
            let shb = block(big, SECTION_HEADER, &shb);
            assert!(matches!(f.next(&shb), Frame::Skip(n) if n == shb.len()));
            let mut idb = put16(101).to_vec();
            idb.extend_from_slice(&[0, 0]);
            idb.extend_from_slice(&put32(0));
            idb.extend_from_slice(&put16(OPT_TSRESOL));
            idb.extend_from_slice(&put16(1));
            idb.extend_from_slice(&[9, 0, 0, 0]);
            let idb = block(big, INTERFACE_DESCRIPTION, &idb);
            assert!(matches!(f.next(&idb), Frame::Skip(_)));
            let mut epb = Vec::new();
            for v in [0u32, 0, 1234, 3, 3] {
                epb.extend_from_slice(&put32(v));
            }
            epb.extend_from_slice(b"xyz");
            let epb = block(big, ENHANCED_PACKET, &epb);
            let Frame::Record(meta, n) = f.next(&epb) else {
                panic!("{big}")
            };
            assert_eq!(
                (meta.ts, meta.caplen, meta.link, n),
                (1234, 3, Link::Raw, epb.len())
            );
            for cut in 0..epb.len() {
                assert!(matches!(f.next(&epb[..cut]), Frame::Incomplete(_)), "cut {cut}");
            }
            let mut bad = epb.clone();
            bad[4] ^= 0; // leading length intact; now break the trailing one
            let last = bad.len() - 1;
            bad[last - if big { 0 } else { 3 }] ^= 4;
            assert!(matches!(f.next(&bad), Frame::Damaged(m) if m.contains("trailing")));
        }
    }

    #[test]
    fn block_length_not_a_multiple_of_four_is_damage() {
        let mut f = PcapngFramer::default();
        let mut b = block(false, 99, b"abcd");
        b[4] = 15;
        assert!(matches!(f.next(&b), Frame::Damaged(m) if m.contains("not a multiple of 4")));
    }
}
