//! DNS over TCP split across segments, and UDP datagrams split across IP
//! fragments, put back together in capture order by the aggregator.
//!
//! Both are bounded whatever the traffic: at most [`MAX_STREAMS`] TCP
//! streams and [`MAX_DATAGRAMS`] datagrams in progress, each at most 64 KiB
//! plus a little; idle streams go after [`STREAM_IDLE`] and unfinished
//! datagrams after [`DATAGRAM_TIMEOUT`] of capture time. What is given up is
//! counted (`reassembly_dropped`), never silently kept.

use crate::intern::Map;

const SECOND: u64 = 1_000_000_000;
pub const MAX_STREAMS: usize = 256;
pub const MAX_DATAGRAMS: usize = 256;
pub const STREAM_IDLE: u64 = 60 * SECOND;
pub const DATAGRAM_TIMEOUT: u64 = 30 * SECOND;
/// A DNS message is at most 65535 bytes, behind its 2-byte length.
const MAX_STREAM_BUFFER: usize = 2 + 65_535;
/// An IP datagram's payload is at most 65535 bytes (IPv6 jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

struct Stream {
    /// The sequence number the next in-order byte will carry.
    next_seq: Option<u32>,
    buf: Vec<u8>,
    last: u64,
}

/// In-order reassembly of DNS-over-TCP streams, one per direction.
#[derive(Default)]
pub struct TcpStreams {
    streams: Map<u64, Stream>,
    next_sweep: u64,
}

impl TcpStreams {
    /// Feeds one segment of the stream `key`; every DNS message it
    /// completes is appended to `messages` (without its length prefix).
    /// Returns how many streams or bytes were given up.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        key: u64,
        ts: u64,
        seq: u32,
        flags: u8,
        complete: bool,
        payload: &[u8],
        messages: &mut Vec<Vec<u8>>,
    ) -> u64 {
        let mut dropped = self.sweep(ts);
        if flags & RST != 0 {
            self.streams.remove(&key);
            return dropped;
        }
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Make room by dropping the stream idle longest.
            if let Some((&oldest, _)) = self.streams.iter().min_by_key(|(_, s)| s.last) {
                self.streams.remove(&oldest);
                dropped += 1;
            }
        }
        let stream = self.streams.entry(key).or_insert(Stream {
            next_seq: None,
            buf: Vec::new(),
            last: ts,
        });
        stream.last = ts;
        let data_seq = if flags & SYN != 0 {
            seq.wrapping_add(1)
        } else {
            seq
        };
        if flags & SYN != 0 {
            stream.buf.clear();
            stream.next_seq = Some(data_seq);
        }
        let mut data = payload;
        match stream.next_seq {
            Some(expected) if data_seq == expected => {}
            Some(expected) if (expected.wrapping_sub(data_seq) as i32) > 0 => {
                // Overlaps what we have (a retransmission): keep only the new part.
                let seen = expected.wrapping_sub(data_seq) as usize;
                data = data.get(seen..).unwrap_or(&[]);
            }
            Some(_) => {
                // A gap: the bytes in between were not captured. Start again,
                // taking this segment as the start of a message.
                if !stream.buf.is_empty() {
                    dropped += 1;
                }
                stream.buf.clear();
            }
            None => {}
        }
        let end_seq = if data.len() == payload.len() {
            data_seq.wrapping_add(payload.len() as u32)
        } else {
            stream
                .next_seq
                .unwrap_or(data_seq)
                .wrapping_add(data.len() as u32)
        };
        stream.next_seq = Some(end_seq);
        if stream.buf.len() + data.len() > MAX_STREAM_BUFFER {
            dropped += 1;
            stream.buf.clear();
        } else {
            stream.buf.extend_from_slice(data);
        }
        let mut taken = 0;
        while let Some(&[hi, lo]) = stream
            .buf
            .get(taken..taken + 2)
            .and_then(|b| b.first_chunk::<2>())
        {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(msg) = stream.buf.get(taken + 2..taken + 2 + len) else {
                break;
            };
            messages.push(msg.to_vec());
            taken += 2 + len;
        }
        stream.buf.drain(..taken);
        if !complete {
            // The snap length cut this segment: what follows cannot line up.
            stream.next_seq = None;
            if !stream.buf.is_empty() {
                dropped += 1;
            }
            stream.buf.clear();
        }
        if flags & FIN != 0 {
            self.streams.remove(&key);
        }
        dropped
    }

    fn sweep(&mut self, now: u64) -> u64 {
        if now < self.next_sweep {
            return 0;
        }
        self.next_sweep = now.saturating_add(SECOND);
        let before = self.streams.len();
        self.streams
            .retain(|_, s| now.saturating_sub(s.last) <= STREAM_IDLE);
        (before - self.streams.len()) as u64
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

struct Datagram {
    first_seen: u64,
    buf: Vec<u8>,
    /// Byte ranges received, merged and sorted.
    have: Vec<(usize, usize)>,
    total: Option<usize>,
}

/// Reassembly of fragmented UDP datagrams.
#[derive(Default)]
pub struct Fragments {
    datagrams: Map<u64, Datagram>,
    next_sweep: u64,
}

impl Fragments {
    /// Adds one fragment of datagram `key`; returns the whole datagram (the
    /// UDP header and payload) once every byte has arrived, and how many
    /// datagrams were given up.
    pub fn add(
        &mut self,
        key: u64,
        ts: u64,
        offset: u32,
        more: bool,
        bytes: &[u8],
    ) -> (Option<Vec<u8>>, u64) {
        let mut dropped = self.sweep(ts);
        let start = offset as usize;
        let end = start + bytes.len();
        if end > MAX_DATAGRAM {
            return (
                None,
                dropped + u64::from(self.datagrams.remove(&key).is_some()) + 1,
            );
        }
        if !self.datagrams.contains_key(&key)
            && self.datagrams.len() >= MAX_DATAGRAMS
            && let Some((&oldest, _)) = self.datagrams.iter().min_by_key(|(_, d)| d.first_seen)
        {
            self.datagrams.remove(&oldest);
            dropped += 1;
        }
        let d = self.datagrams.entry(key).or_insert(Datagram {
            first_seen: ts,
            buf: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        if d.buf.len() < end {
            d.buf.resize(end, 0);
        }
        if let Some(dst) = d.buf.get_mut(start..end) {
            dst.copy_from_slice(bytes);
        }
        insert_range(&mut d.have, (start, end));
        if !more {
            d.total = Some(end);
        }
        let done = d.total.is_some_and(|t| {
            d.have.first() == Some(&(0, t)) || d.have.first().is_some_and(|&(a, b)| a == 0 && b >= t)
        });
        if done {
            let total = d.total.unwrap_or(0);
            let mut d = self.datagrams.remove(&key).map(|d| d.buf).unwrap_or_default();
            d.truncate(total);
            return (Some(d), dropped);
        }
        (None, dropped)
    }

    fn sweep(&mut self, now: u64) -> u64 {
        if now < self.next_sweep {
            return 0;
        }
        self.next_sweep = now.saturating_add(SECOND);
        let before = self.datagrams.len();
        self.datagrams
            .retain(|_, d| now.saturating_sub(d.first_seen) <= DATAGRAM_TIMEOUT);
        (before - self.datagrams.len()) as u64
    }

    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

/// Adds [start, end) to a sorted list of disjoint ranges, merging.
fn insert_range(ranges: &mut Vec<(usize, usize)>, (mut start, mut end): (usize, usize)) {
    let mut merged = Vec::with_capacity(ranges.len() + 1);
    let mut placed = false;
    for &(a, b) in ranges.iter() {
        if b < start {
            merged.push((a, b));
        } else if end < a {
            if !placed {
                merged.push((start, end));
                placed = true;
            }
            merged.push((a, b));
        } else {
            start = start.min(a);
            end = end.max(b);
        }
    }
    if !placed {
        merged.push((start, end));
    }
    merged.sort_unstable();
    *ranges = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut v = (msg.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(msg);
        v
    }

    #[test]
    fn a_message_split_in_three_segments() {
        let mut s = TcpStreams::default();
        let wire = framed(b"hello dns");
        let mut out = Vec::new();
        s.segment(1, 0, 100, SYN, true, &[], &mut out);
        s.segment(1, 1, 101, 0x10, true, &wire[..1], &mut out);
        assert!(out.is_empty());
        s.segment(1, 2, 102, 0x10, true, &wire[1..5], &mut out);
        // A retransmission of what we have changes nothing.
        s.segment(1, 3, 101, 0x10, true, &wire[..5], &mut out);
        assert!(out.is_empty());
        s.segment(1, 4, 106, 0x10, true, &wire[5..], &mut out);
        assert_eq!(out, vec![b"hello dns".to_vec()]);
    }

    #[test]
    fn two_messages_in_one_segment_and_one_across_two() {
        let mut s = TcpStreams::default();
        let mut wire = framed(b"one");
        wire.extend(framed(b"two"));
        wire.extend(framed(b"three"));
        let mut out = Vec::new();
        // No SYN seen: the first segment is taken as a message boundary.
        s.segment(7, 0, 5000, 0x10, true, &wire[..12], &mut out);
        assert_eq!(out, vec![b"one".to_vec(), b"two".to_vec()]);
        s.segment(7, 1, 5012, 0x10 | FIN, true, &wire[12..], &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], b"three");
        assert!(s.is_empty(), "FIN ends the stream");
    }

    #[test]
    fn a_gap_starts_again_and_is_counted() {
        let mut s = TcpStreams::default();
        let wire = framed(b"0123456789");
        let mut out = Vec::new();
        s.segment(1, 0, 0, 0x10, true, &wire[..4], &mut out);
        let dropped = s.segment(1, 1, 9, 0x10, true, &framed(b"ok"), &mut out);
        assert_eq!(dropped, 1);
        assert_eq!(out, vec![b"ok".to_vec()]);
    }

    #[test]
    fn streams_are_bounded() {
        let mut s = TcpStreams::default();
        let mut out = Vec::new();
        let mut dropped = 0;
        for k in 0..(MAX_STREAMS as u64 + 50) {
            dropped += s.segment(k, k, 0, 0x10, true, &[0, 9, 1], &mut out);
        }
        assert_eq!(s.len(), MAX_STREAMS);
        assert_eq!(dropped, 50);
    }

    #[test]
    fn fragments_in_any_order() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut f = Fragments::default();
            let parts = [(0usize, 1480usize), (1480, 2960), (2960, 3000)];
            let mut result = None;
            for (n, &i) in order.iter().enumerate() {
                let (a, b) = parts[i];
                let (d, dropped) = f.add(9, n as u64, a as u32, i != 2, &data[a..b]);
                assert_eq!(dropped, 0);
                if n < 2 {
                    assert!(d.is_none());
                }
                result = d.or(result);
            }
            assert_eq!(result.as_deref(), Some(&data[..]));
            assert!(f.is_empty());
        }
    }

    #[test]
    fn unfinished_datagrams_time_out_and_are_bounded() {
        let mut f = Fragments::default();
        f.add(1, 0, 0, true, &[1, 2, 3, 4]);
        let (_, dropped) = f.add(2, DATAGRAM_TIMEOUT + 2 * SECOND, 0, true, &[1]);
        assert_eq!(dropped, 1);
        let mut dropped = 0;
        for k in 10..(10 + MAX_DATAGRAMS as u64 + 5) {
            dropped += f.add(k, DATAGRAM_TIMEOUT + 3 * SECOND, 0, true, &[0; 8]).1;
        }
        assert!(f.len() <= MAX_DATAGRAMS);
        assert!(dropped >= 5);
        let (d, dropped) = f.add(99, DATAGRAM_TIMEOUT + 3 * SECOND, 65_000, true, &[0; 1000]);
        assert!(d.is_none() && dropped >= 1, "over 64 KiB");
    }

    #[test]
    fn ranges_merge() {
        let mut r = Vec::new();
        insert_range(&mut r, (10, 20));
        insert_range(&mut r, (0, 5));
        insert_range(&mut r, (5, 10));
        assert_eq!(r, vec![(0, 20)]);
        insert_range(&mut r, (30, 40));
        insert_range(&mut r, (15, 35));
        assert_eq!(r, vec![(0, 40)]);
    }
}
