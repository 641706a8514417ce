//! DNS messages, read in place.
//!
//! Names are decoded straight into a caller's buffer in *folded wire form*:
//! the uncompressed labels, each behind its length byte, lower-cased, ending
//! with the root's zero byte. Two names compare equal as bytes exactly when
//! DNS says they are equal, and decoding is a bulk copy per label.
//! [`presentation`] turns that form into connbal's report form: lower case,
//! a trailing dot, and every label byte outside `[a-z0-9_-]` written as
//! `\DDD`, so that no name can forge a tab, a newline or a row.
//!
//! Compression pointers must point strictly backward, and every jump narrows
//! the readable window to the bytes before the pointer, so a pointer loop is
//! impossible by construction (the window shrinks at every jump). Names are
//! limited to 255 bytes on the wire.

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const CLASS_IN: u16 = 1;
pub const OPCODE_QUERY: u8 = 0;

const MAX_NAME_WIRE_LEN: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends inside a header, name or record.
    Short,
    /// A compression pointer that does not point strictly backward.
    BadPointer,
    /// A label type other than a plain label or a pointer (0x40, 0x80).
    BadLabel,
    /// A name longer than 255 bytes on the wire.
    NameTooLong,
    /// Record data that does not fit its type (an A record of 5 bytes).
    BadRdata,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    id: U16,
    flags: U16,
    qdcount: U16,
    ancount: U16,
    nscount: U16,
    arcount: U16,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct QuestionTail {
    qtype: U16,
    qclass: U16,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RecordTail {
    rtype: U16,
    class: U16,
    ttl: U32,
    rdlength: U16,
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SrvFixed {
    priority: U16,
    weight: U16,
    port: U16,
}

/// A message whose 12-byte header has been checked.
#[derive(Clone, Copy, Debug)]
pub struct DnsMessage<'a> {
    buf: &'a [u8],
    pub id: u16,
    flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl<'a> DnsMessage<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, DnsError> {
        let (h, _) = Header::ref_from_prefix(buf).map_err(|_| DnsError::Short)?;
        Ok(DnsMessage {
            buf,
            id: h.id.get(),
            flags: h.flags.get(),
            qdcount: h.qdcount.get(),
            ancount: h.ancount.get(),
            nscount: h.nscount.get(),
            arcount: h.arcount.get(),
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0F) as u8
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The first question, its name written into `name_out` in folded wire
    /// form; returns (qtype, qclass, offset of the answer section when
    /// qdcount is 1).
    pub fn question(&self, name_out: &mut NameArena) -> Result<Question, DnsError> {
        let end = read_name(self.buf, 12, name_out)?;
        self.question_tail(end)
    }

    /// As [`DnsMessage::question`], and the name's
    /// [`crate::table::name_hash`]: an uncompressed name (nearly every
    /// question) is folded, stored and hashed in one pass.
    pub fn question_hashed(&self, name_out: &mut NameArena) -> Result<(Question, u64), DnsError> {
        let start = name_out.len();
        let (end, hash) = match plain_name_end(self.buf, 12) {
            Some(end) => (end, name_out.push_plain(self.buf, 12, end).1),
            None => {
                let end = read_name(self.buf, 12, name_out)?;
                (
                    end,
                    crate::table::name_hash(name_out.get(start, name_out.len() - start)),
                )
            }
        };
        Ok((self.question_tail(end)?, hash))
    }

    fn question_tail(&self, end: usize) -> Result<Question, DnsError> {
        let tail = self.buf.get(end..).ok_or(DnsError::Short)?;
        let (q, _) = QuestionTail::ref_from_prefix(tail).map_err(|_| DnsError::Short)?;
        Ok(Question {
            qtype: q.qtype.get(),
            qclass: q.qclass.get(),
            end: end + 4,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question.
    pub end: usize,
}

/// One resource record's fixed fields; the owner name is at `owner`, the
/// data at `rdata`, both offsets into the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub owner: usize,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata_start: usize,
    pub rdata_end: usize,
}

/// Reads the record at `pos` without decoding its owner name; returns it and
/// the offset of the next record.
pub fn record_at(msg: &[u8], pos: usize) -> Result<(RecordHeader, usize), DnsError> {
    record_after_owner(msg, pos, skip_name(msg, pos)?)
}

/// The record at `pos` whose owner name (already checked) ends in place at
/// `after_name`; returns it and the offset of the next record.
pub fn record_after_owner(
    msg: &[u8],
    pos: usize,
    after_name: usize,
) -> Result<(RecordHeader, usize), DnsError> {
    let tail = msg.get(after_name..).ok_or(DnsError::Short)?;
    let (r, _) = RecordTail::ref_from_prefix(tail).map_err(|_| DnsError::Short)?;
    let rdata_start = after_name + 10;
    let rdata_end = rdata_start + usize::from(r.rdlength.get());
    if rdata_end > msg.len() {
        return Err(DnsError::Short);
    }
    Ok((
        RecordHeader {
            owner: pos,
            rtype: r.rtype.get(),
            class: r.class.get(),
            ttl: r.ttl.get(),
            rdata_start,
            rdata_end,
        },
        rdata_end,
    ))
}

/// SRV record data: (priority, weight, port, offset of the target name).
pub fn srv_fixed(msg: &[u8], rec: &RecordHeader) -> Result<(u16, u16, u16, usize), DnsError> {
    let rdata = msg.get(rec.rdata_start..rec.rdata_end).ok_or(DnsError::Short)?;
    let (s, _) = SrvFixed::ref_from_prefix(rdata).map_err(|_| DnsError::BadRdata)?;
    Ok((
        s.priority.get(),
        s.weight.get(),
        s.port.get(),
        rec.rdata_start + 6,
    ))
}

/// Walks the name at `start` without writing it; returns the offset just
/// past it in place.
pub fn skip_name(msg: &[u8], start: usize) -> Result<usize, DnsError> {
    walk_name(msg, start, |_, _| {})
}

/// Names in folded wire form, one after another. The buffer always has
/// room for one more whole name plus a word past its end, so that decoding
/// can store eight bytes at a time.
#[derive(Debug, Default)]
pub struct NameArena {
    buf: Vec<u8>,
    len: usize,
}

/// What [`read_name`] may write past the arena's end: the longest name and
/// its terminator, and a word's overshoot.
const NAME_SLACK: usize = MAX_NAME_WIRE_LEN + 1 + 16;

impl NameArena {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets everything from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Every name so far.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The `len` bytes from `start` (empty when out of range).
    pub fn get(&self, start: usize, len: usize) -> &[u8] {
        self.as_slice().get(start..start + len).unwrap_or(&[])
    }

    /// The first bytes (up to eight) of the `len` bytes from `start`, as a
    /// word: a quick first comparison of two names. (The arena's slack
    /// makes eight bytes readable from any `start` inside it.)
    pub fn prefix_word(&self, start: usize, len: usize) -> u64 {
        let word = self
            .buf
            .get(start..start + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        if len >= 8 {
            word
        } else {
            word & ((1u64 << (8 * len)) - 1)
        }
    }

    /// Appends bytes as they are (a name already in folded wire form).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.len);
        self.buf.extend_from_slice(bytes);
        self.len = self.buf.len();
    }

    /// Appends a name in folded wire form with its terminator, as
    /// [`read_name`] writes one (a name kept from an earlier message), the
    /// slack kept after it; where it starts.
    pub fn push_name(&mut self, name: &[u8]) -> usize {
        let start = self.len;
        self.len = start + name.len();
        self.make_room();
        if let Some(to) = self.buf.get_mut(start..self.len) {
            to.copy_from_slice(name);
        }
        start
    }

    fn make_room(&mut self) {
        if self.buf.len() < self.len + NAME_SLACK {
            let size = (self.len + NAME_SLACK).max(self.buf.len() * 2).max(4096);
            self.buf.resize(size, 0);
        }
    }
}

/// Walks an uncompressed name at `start` (labels only, as a question
/// usually is) and returns the offset just past it; `None` for anything
/// else, which [`read_name`] then reads or rejects.
#[inline]
pub fn plain_name_end(msg: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            break;
        }
        if len >= 64 {
            return None;
        }
        pos += 1 + len;
    }
    let end = pos + 1;
    (end - start <= MAX_NAME_WIRE_LEN && end <= msg.len()).then_some(end)
}

impl NameArena {
    /// Appends the folded form of `msg[start..end]`, a name
    /// [`plain_name_end`] has walked, and returns (start in the arena,
    /// [`crate::table::name_hash`]): each 16 bytes are folded, stored and
    /// hashed in one go.
    pub fn push_plain(&mut self, msg: &[u8], start: usize, end: usize) -> (usize, u64) {
        use crate::table::{NameHash, chunk_at, lower8};
        self.make_room();
        let len = end.saturating_sub(start);
        let at = self.len;
        let raw = msg.get(start..).unwrap_or(&[]);
        let mut hash = NameHash::new(len);
        let mut i = 0;
        while i < len {
            let (a, b) = chunk_at(raw, i);
            let (a, b) = (lower8(a), lower8(b));
            if let Some(dst) = self.buf.get_mut(at + i..at + i + 16) {
                let (x, y) = dst.split_at_mut(8);
                x.copy_from_slice(&a.to_le_bytes());
                y.copy_from_slice(&b.to_le_bytes());
            }
            if len - i >= 16 {
                hash.chunk(a, b);
            } else {
                hash.last_chunk(a, b, len - i);
            }
            i += 16;
        }
        self.len = at + len;
        (at, hash.finish())
    }
}

/// Copies `msg[from..to]` into `buf` at `at`, lower-cased, a word at a
/// time; may write up to seven bytes past the copy. Returns where the copy
/// ends in `buf`.
#[inline]
fn copy_folded(msg: &[u8], from: usize, to: usize, buf: &mut [u8], mut at: usize) -> usize {
    let mut i = from;
    while i < to {
        let word = match msg.get(i..i + 8).and_then(|b| b.try_into().ok()) {
            Some(b) => u64::from_le_bytes(b),
            // The message's last bytes: a word from what there is.
            None => msg
                .get(i..)
                .unwrap_or(&[])
                .iter()
                .take(8)
                .rev()
                .fold(0, |w, &b| (w << 8) | u64::from(b)),
        };
        if let Some(dst) = buf.get_mut(at..at + 8) {
            dst.copy_from_slice(&crate::table::lower8(word).to_le_bytes());
        }
        let n = (to - i).min(8);
        at += n;
        i += n;
    }
    at
}

/// Decodes the name at `start` into `out` in folded wire form; returns the
/// offset just past the name in place. On error `out` is left as it was.
pub fn read_name(msg: &[u8], start: usize, out: &mut NameArena) -> Result<usize, DnsError> {
    out.make_room();
    // Labels in wire form are already (length, bytes): each stretch of
    // them between compression pointers is copied whole, folded to lower
    // case on the way (length bytes are below 64, which folding leaves
    // alone). The walk checks the name is at most 255 bytes, which the
    // arena's slack holds.
    let mut at = out.len;
    let end = walk_name(msg, start, |from, to| {
        at = copy_folded(msg, from, to, &mut out.buf, at);
    })?;
    if let Some(b) = out.buf.get_mut(at) {
        *b = 0;
        out.len = at + 1;
    }
    Ok(end)
}

/// Appends the report form of a folded wire name (`www.example.com.`,
/// `.` for the root), escaping every byte outside `[a-z0-9_-]` as `\DDD`.
pub fn presentation(wire: &[u8], out: &mut Vec<u8>) {
    let mark = out.len();
    let mut rest = wire;
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len);
        if len == 0 {
            break;
        }
        let label = tail.get(..len).unwrap_or(tail);
        for &b in label {
            if plain(b) {
                out.push(b.to_ascii_lowercase());
            } else {
                out.extend_from_slice(&[b'\\', b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10]);
            }
        }
        out.push(b'.');
        rest = tail.get(len..).unwrap_or(&[]);
    }
    if out.len() == mark {
        out.push(b'.');
    }
}

/// The report form as a `String` (escaping keeps it ASCII).
pub fn presentation_string(wire: &[u8]) -> String {
    let mut out = Vec::with_capacity(wire.len() + 1);
    presentation(wire, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The one name walker: calls `on_run(from, to)` for each stretch of
/// labels that lie one after another in the message (a name's labels up to
/// a compression pointer, then those it points to...), without the final
/// zero label. A stretch is only reported once all its labels are checked.
fn walk_name(msg: &[u8], start: usize, mut on_run: impl FnMut(usize, usize)) -> Result<usize, DnsError> {
    let mut pos = start;
    let mut run_start = start;
    // Reads must stay below `limit`; each jump lowers it to the pointer's
    // own offset, and the target must lie below that.
    let mut limit = msg.len();
    let mut end_in_place = None;
    let mut wire_len = 0usize;
    loop {
        if pos >= limit {
            return Err(if end_in_place.is_some() {
                DnsError::BadPointer
            } else {
                DnsError::Short
            });
        }
        let len = *msg.get(pos).ok_or(DnsError::Short)?;
        match len & 0xC0 {
            0x00 => {
                wire_len += 1 + usize::from(len);
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(DnsError::NameTooLong);
                }
                if len == 0 {
                    if pos > run_start {
                        on_run(run_start, pos);
                    }
                    return Ok(end_in_place.unwrap_or(pos + 1));
                }
                let label_end = pos + 1 + usize::from(len);
                if label_end > limit {
                    return Err(if end_in_place.is_some() {
                        DnsError::BadPointer
                    } else {
                        DnsError::Short
                    });
                }
                pos = label_end;
            }
            0xC0 => {
                let low = *msg
                    .get(pos + 1)
                    .filter(|_| pos + 1 < limit)
                    .ok_or(DnsError::Short)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= pos {
                    return Err(DnsError::BadPointer);
                }
                if pos > run_start {
                    on_run(run_start, pos);
                }
                run_start = target;
                end_in_place.get_or_insert(pos + 2);
                limit = pos;
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Encodes a dotted name as uncompressed wire labels (for tests, the
/// generator and benches).
pub fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let label = label.as_bytes().get(..63).unwrap_or(label.as_bytes());
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_at(msg: &[u8], pos: usize) -> Result<(String, usize), DnsError> {
        let mut out = NameArena::default();
        let end = read_name(msg, pos, &mut out)?;
        Ok((presentation_string(out.as_slice()), end))
    }

    #[test]
    fn names_decode_the_same_wherever_they_sit() {
        // Every length of label and every position relative to the end of
        // the message, so that each word path (whole, or the last bytes)
        // is taken.
        for len in 1..=40usize {
            for extra in 0..10 {
                let mut m = vec![0u8; 12];
                let label: Vec<u8> = (0..len).map(|i| b"AbCxYz09-_"[i % 10]).collect();
                m.push(len as u8);
                m.extend_from_slice(&label);
                m.push(0);
                let end = m.len();
                m.extend(std::iter::repeat_n(b'Q', extra));
                let mut out = NameArena::default();
                out.push_bytes(b"before");
                assert_eq!(read_name(&m, 12, &mut out), Ok(end));
                let mut want = b"before".to_vec();
                want.push(len as u8);
                want.extend(label.iter().map(u8::to_ascii_lowercase));
                want.push(0);
                assert_eq!(out.as_slice(), &want[..], "len {len} extra {extra}");
            }
        }
    }

    #[test]
    fn a_plain_name_folds_and_hashes_as_the_general_reader_does() {
        for labels in 1..=12usize {
            for tail in [0usize, 2, 30] {
                let mut m = vec![0u8; 12];
                for l in 0..labels {
                    let label: Vec<u8> = (0..(l * 7) % 20 + 1)
                        .map(|i| b"AbZz09-_Q\xC5"[(i + l) % 10])
                        .collect();
                    m.push(label.len() as u8);
                    m.extend_from_slice(&label);
                }
                m.push(0);
                let end = m.len();
                m.extend(std::iter::repeat_n(0xEE, tail));
                assert_eq!(plain_name_end(&m, 12), Some(end));
                let mut general = NameArena::default();
                general.push_bytes(b"x");
                assert_eq!(read_name(&m, 12, &mut general), Ok(end));
                let mut plain = NameArena::default();
                plain.push_bytes(b"x");
                let (start, hash) = plain.push_plain(&m, 12, end);
                assert_eq!(start, 1);
                assert_eq!(plain.as_slice(), general.as_slice());
                assert_eq!(hash, crate::table::name_hash(&general.as_slice()[1..]));
            }
        }
        // Pointers, extended labels and over-long names are not plain.
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[1, b'a', 0xC0, 12]);
        assert_eq!(plain_name_end(&m, 12), None);
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0x41, 0]);
        assert_eq!(plain_name_end(&m, 12), None);
        let mut m = vec![0u8; 12];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.push(0);
        assert_eq!(plain_name_end(&m, 12), None);
        assert_eq!(plain_name_end(&m[..40], 12), None);
    }

    #[test]
    fn folded_wire_form_compares_case_insensitively() {
        let mut a = vec![0u8; 12];
        encode_name("WWW.Example.COM", &mut a);
        let mut b = vec![0u8; 12];
        encode_name("www.example.com", &mut b);
        let (mut x, mut y) = (NameArena::default(), NameArena::default());
        read_name(&a, 12, &mut x).unwrap();
        read_name(&b, 12, &mut y).unwrap();
        assert_eq!(x.as_slice(), y.as_slice());
        assert_eq!(x.as_slice(), b"\x03www\x07example\x03com\x00");
    }

    #[test]
    fn plain_name_is_lower_cased_with_a_trailing_dot() {
        let mut m = vec![0u8; 12];
        encode_name("WWW.Example.COM", &mut m);
        assert_eq!(
            name_at(&m, 12).unwrap(),
            ("www.example.com.".to_string(), m.len())
        );
    }

    #[test]
    fn root_name_is_a_dot() {
        let m = [0u8; 13];
        assert_eq!(name_at(&m, 12).unwrap(), (".".to_string(), 13));
    }

    #[test]
    fn backward_pointer_is_followed() {
        let mut m = vec![0u8; 12];
        encode_name("example.com", &mut m); // at 12
        let at = m.len();
        m.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12]);
        assert_eq!(
            name_at(&m, at).unwrap(),
            ("www.example.com.".to_string(), m.len())
        );
    }

    #[test]
    fn pointer_to_itself_is_rejected() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xC0, 12]);
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::BadPointer);
    }

    #[test]
    fn forward_pointer_is_rejected() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xC0, 14, 1, b'a', 0]);
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::BadPointer);
    }

    #[test]
    fn pointer_loop_is_rejected() {
        // 12: "a" then pointer to 16; 16: "b" then pointer back to 12.
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[1, b'a', 0xC0, 16, 1, b'b', 0xC0, 12]);
        assert_eq!(name_at(&m, 16).unwrap_err(), DnsError::BadPointer);
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::BadPointer);
    }

    #[test]
    fn pointer_into_a_later_part_of_the_window_is_rejected() {
        // 12: "a" + pointer back to 12 itself via the label: target 12 < 14
        // but reading from 12 reaches the pointer at 14 again: outside the
        // narrowed window.
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[1, b'a', 0xC0, 12]);
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::BadPointer);
    }

    #[test]
    fn names_over_255_bytes_are_rejected() {
        let mut m = vec![0u8; 12];
        for _ in 0..4 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.push(0); // 4 * 64 + 1 = 257 bytes
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::NameTooLong);
        let mut m = vec![0u8; 12];
        for _ in 0..3 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.push(61);
        m.extend_from_slice(&[b'y'; 61]);
        m.push(0); // 3 * 64 + 62 + 1 = 255 bytes: the limit itself
        assert!(name_at(&m, 12).is_ok());
    }

    #[test]
    fn hostile_label_bytes_are_escaped() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[
            7, b'a', b'\t', b'\n', b'\\', b'.', b' ', 200, 3, b'C', b'_', b'-', 0,
        ]);
        let (n, _) = name_at(&m, 12).unwrap();
        assert_eq!(n, "a\\009\\010\\092\\046\\032\\200.c_-.");
        assert!(!n.contains('\t') && !n.contains('\n'));
    }

    #[test]
    fn extended_label_types_are_rejected() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0x41, 0]);
        assert_eq!(name_at(&m, 12).unwrap_err(), DnsError::BadLabel);
    }

    #[test]
    fn every_cut_of_a_compressed_name_is_an_error() {
        let mut m = vec![0u8; 12];
        encode_name("example.com", &mut m);
        let at = m.len();
        m.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12]);
        for cut in 0..m.len() {
            let mut out = NameArena::default();
            out.push_bytes(b"keep");
            // (every cut shorter than the whole fails, and leaves `out` alone)
            assert!(read_name(&m[..cut], at.min(cut), &mut out).is_err(), "cut {cut}");
            assert_eq!(out.as_slice(), b"keep");
        }
    }

    #[test]
    fn records_are_bounded_by_rdlength() {
        let mut m = vec![0u8; 12];
        encode_name("a.b", &mut m);
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        let (r, next) = record_at(&m, 12).unwrap();
        assert_eq!((r.rtype, r.class, r.ttl), (TYPE_A, CLASS_IN, 60));
        assert_eq!(&m[r.rdata_start..r.rdata_end], &[10, 0, 0, 1]);
        assert_eq!(next, m.len());
        for cut in 0..m.len() {
            assert!(record_at(&m[..cut], 12).is_err());
        }
    }
}
