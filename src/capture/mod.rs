//! Capture formats, recognised from their first bytes (never from a file
//! name), and framed into records by one API.
//!
//! A framer is handed a byte slice that starts at a record boundary and says
//! what lies there: a whole record, a block to skip, not enough bytes yet,
//! or damage. The same framer serves a mapped file (one slice, all of it)
//! and a pipe (a rolling buffer), so both read a capture the same way.

pub mod pcap;
pub mod pcapng;
pub mod snoop;

use crate::dissect::Link;

/// Records over this size are damage, not data (SPEC §2).
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

/// Where a record's packet bytes are, and what they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Offset of the packet bytes from the start of the slice framed.
    pub data_off: u32,
    pub caplen: u32,
    pub link: Link,
    /// Capture time, nanoseconds since the epoch.
    pub ts: u64,
}

impl RecordMeta {
    /// Where its packet bytes end, from the start of the slice framed.
    pub fn end(&self) -> u64 {
        u64::from(self.data_off) + u64::from(self.caplen)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A record, and the bytes it spans.
    Record(RecordMeta, usize),
    /// A block with no packet in it (pcapng), and its length.
    Skip(usize),
    /// The slice ends inside the next record; at least this many bytes
    /// (from the slice's start) are needed.
    Incomplete(usize),
    /// The bytes here cannot be a record: what is wrong with them.
    Damaged(String),
    /// A well-formed record of a kind connbal does not read (a pcapng
    /// interface with an unsupported link type).
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectError {
    /// Not enough bytes to tell yet.
    NeedMore,
    /// A one-line description of what the input is instead.
    Unsupported(String),
}

/// The framer of one capture, chosen from its first bytes.
#[derive(Clone, Debug)]
pub enum Framer {
    Snoop(snoop::SnoopFramer),
    Pcap(pcap::PcapFramer),
    Pcapng(pcapng::PcapngFramer),
}

/// Where a run of framing stops: when `records` holds `max_records`, or
/// past `max_bytes` of the slice.
#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    pub max_bytes: usize,
    pub max_records: usize,
}

/// How far ahead of the record being framed its bytes are loaded.
const FRAME_PREFETCH_AHEAD: usize = 2048;

/// Frames records one after another from `pos` with `sound`, which reads
/// the record at the front of a slice (its data offset relative to that
/// record, and its length) or says `None` for anything but a whole, sound
/// record; returns where it stopped.
#[inline(always)]
fn run_records(
    bytes: &[u8],
    mut pos: usize,
    limits: RunLimits,
    records: &mut Vec<RecordMeta>,
    mut sound: impl FnMut(&[u8]) -> Option<(RecordMeta, usize)>,
) -> usize {
    // Each record's length says where the next starts: a chain of
    // dependent loads. Loading the lines ahead of it overlaps the misses.
    let mut fetched = pos;
    while records.len() < limits.max_records && pos < limits.max_bytes {
        let ahead = (pos + FRAME_PREFETCH_AHEAD).min(bytes.len());
        while fetched < ahead {
            if let Some(line) = bytes.get(fetched) {
                crate::table::prefetch(line);
            }
            fetched += 64;
        }
        let Some((mut meta, len)) = bytes.get(pos..).and_then(&mut sound) else {
            break;
        };
        meta.data_off += pos as u32;
        records.push(meta);
        pos += len;
    }
    pos
}

/// The link types of pcap and pcapng that connbal dissects.
pub fn link_from_linktype(linktype: u32) -> Option<Link> {
    Some(match linktype {
        0 => Link::Null,
        1 => Link::Ethernet,
        12 | 14 | 101 => Link::Raw,
        108 => Link::Loop,
        113 => Link::Sll,
        228 => Link::Ipv4,
        229 => Link::Ipv6,
        276 => Link::Sll2,
        _ => return None,
    })
}

impl Framer {
    /// Recognises the format; returns the framer and the length of the file
    /// header that precedes the first record.
    pub fn detect(head: &[u8]) -> Result<(Framer, usize), DetectError> {
        if head.starts_with(snoop::MAGIC) || snoop::MAGIC.starts_with(head) {
            let (f, len) = snoop::SnoopFramer::from_header(head)?;
            return Ok((Framer::Snoop(f), len));
        }
        if pcap::is_pcap(head) {
            let (f, len) = pcap::PcapFramer::from_header(head)?;
            return Ok((Framer::Pcap(f), len));
        }
        if pcapng::is_pcapng(head) {
            let (f, len) = pcapng::PcapngFramer::from_header(head)?;
            return Ok((Framer::Pcapng(f), len));
        }
        // Decide "not a capture" on the same bytes whether they came from a
        // file or in small pieces from a pipe (found by fuzzing).
        if head.len() < 8 {
            return Err(DetectError::NeedMore);
        }
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(DetectError::Unsupported(format!(
            "not a snoop, pcap or pcapng capture (it starts with {})",
            shown.join(" ")
        )))
    }

    pub fn next(&mut self, buf: &[u8]) -> Frame {
        match self {
            Framer::Snoop(f) => f.next(buf),
            Framer::Pcap(f) => f.next(buf),
            Framer::Pcapng(f) => f.next(buf),
        }
    }

    /// Frames the whole, sound records from `pos` on into `records` (data
    /// offsets relative to `bytes`) until `max_records` are held or
    /// `max_bytes` is reached, and returns where it stopped: the same
    /// records [`Framer::next`] would give, without a `Frame` each (snoop
    /// and pcap; pcapng's blocks always go through `next`). Whatever it
    /// stops at is for `next` to name.
    pub fn run(
        &mut self,
        bytes: &[u8],
        pos: usize,
        limits: RunLimits,
        records: &mut Vec<RecordMeta>,
    ) -> usize {
        match self {
            Framer::Snoop(f) => run_records(bytes, pos, limits, records, |rest| f.sound_record(rest)),
            Framer::Pcap(f) => run_records(bytes, pos, limits, records, |rest| f.sound_record(rest)),
            Framer::Pcapng(_) => pos,
        }
    }

    /// snoop's cumulative kernel drop count, as of the last record framed.
    pub fn drops(&self) -> Option<u32> {
        match self {
            Framer::Snoop(f) => f.drops,
            Framer::Pcap(_) | Framer::Pcapng(_) => None,
        }
    }

    pub fn format_name(&self) -> &'static str {
        match self {
            Framer::Snoop(_) => "snoop",
            Framer::Pcap(_) => "pcap",
            Framer::Pcapng(_) => "pcapng",
        }
    }
}

/// Every record of a capture held in memory, framed as the reader frames
/// them (runs without a `Frame` per record, [`Framer::next`] for the
/// rest), into `metas` with data offsets from the start of `bytes`, up to
/// the first damage, the end or 4 GiB (for tests and benches). False when
/// the bytes are not a capture.
pub fn frame_all(bytes: &[u8], metas: &mut Vec<RecordMeta>) -> bool {
    let Ok((mut framer, mut pos)) = Framer::detect(bytes) else {
        return false;
    };
    metas.clear();
    let limits = RunLimits {
        max_bytes: usize::MAX,
        max_records: usize::MAX,
    };
    loop {
        pos = framer.run(bytes, pos, limits, metas);
        match framer.next(bytes.get(pos..).unwrap_or(&[])) {
            Frame::Record(mut meta, len) => {
                // Offsets are 32 bits: a capture framed this way ends at 4 GiB.
                let Some(off) = u32::try_from(pos).ok().and_then(|p| meta.data_off.checked_add(p)) else {
                    return true;
                };
                meta.data_off = off;
                metas.push(meta);
                pos += len;
            }
            Frame::Skip(len) => pos += len,
            _ => return true,
        }
    }
}
