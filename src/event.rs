//! The compact events that parser workers hand to the aggregator.
//!
//! The workers do all the work that needs no capture-order state: they
//! hash every key the aggregator will look up ([`crate::table`]), and they
//! digest a DNS response down to what it gives the client (the addresses
//! of the asked name's CNAME chain, or an SRV name's targets, and the TTL).
//! The aggregator is left with table lookups and counters.
//!
//! A batch owns a few recycled vectors: the events, the backends of its
//! DNS responses, one arena holding every name in folded wire form, and
//! the bytes still to be reassembled. Nothing in a batch allocates per
//! packet once the vectors have grown.

use crate::addr::Addr;
use crate::stats::Counters;
use crate::wire::dns::NameArena;

/// A name in the batch's arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

/// What the aggregator reads of a TCP segment, with `-a`, only for a SYN
/// or a connection that is new or not counted yet (its time, connection
/// key and flags travel in [`Event::Segment`]; default mode: only SYNs,
/// inline in [`Event::Syn`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Segment {
    /// [`crate::table::Keys::pair_hash`] of (src, dst): the source's binding to
    /// the destination.
    pub forward: u64,
    /// Of (dst, src): a segment from a backend to its client.
    pub reverse: u64,
    /// [`crate::table::Keys::syn_key`] (SYNs only; 0 otherwise).
    pub syn_key: u64,
    pub src_port: u16,
    pub dst_port: u16,
    /// Where the run of this segment's event begins in
    /// [`EventBatch::run_segments`] (its length is the event's `run`).
    pub run_start: u32,
}

impl Segment {
    /// Whether `other` is a segment of the same 4-tuple in this one's
    /// direction (`Some(false)`) or the other way (`Some(true)`), by all
    /// the aggregator reads of a segment that is not a SYN.
    #[inline(always)]
    fn direction_of(&self, other: &Segment) -> Option<bool> {
        if (other.forward, other.reverse, other.src_port, other.dst_port)
            == (self.forward, self.reverse, self.src_port, self.dst_port)
        {
            Some(false)
        } else if (other.forward, other.reverse, other.src_port, other.dst_port)
            == (self.reverse, self.forward, self.dst_port, self.src_port)
        {
            Some(true)
        } else {
            None
        }
    }

    /// A segment of the same 4-tuple that is not a SYN, in this one's
    /// direction or (`reversed`) the other way: a [`RunSegment`]'s.
    #[inline]
    pub fn follower(&self, reversed: bool) -> Segment {
        if reversed {
            Segment {
                forward: self.reverse,
                reverse: self.forward,
                syn_key: 0,
                src_port: self.dst_port,
                dst_port: self.src_port,
                run_start: 0,
            }
        } else {
            Segment {
                syn_key: 0,
                run_start: 0,
                ..*self
            }
        }
    }
}

/// A DNS query or a digested response.
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    pub ts: u64,
    pub client: Addr,
    pub qtype: u16,
    /// The question name, in folded wire form in the batch's arena.
    pub qname: Span,
    /// [`crate::table::name_hash`] of the question name.
    pub qname_hash: u64,
    /// [`crate::table::query_key`]: (client, server, client port, id).
    pub key: u64,
    /// [`crate::table::service_hash`] of (client, question name).
    pub service: u64,
    /// A response's backends, as a range of the batch's `backends`.
    pub backends: (u32, u32),
    /// A response's TTL: the smallest among the records it was read from.
    pub ttl: Option<u32>,
}

/// What an SRV record says of its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Srv {
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// One thing a response gives its client, in the order the records came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// An address: of the asked name (A/AAAA), or of an SRV target with
    /// that target's SRV record.
    Backend {
        addr: Addr,
        /// [`crate::table::Keys::pair_hash`] of (client, addr).
        pair: u64,
        /// [`crate::table::backend_hash`] of (the response's service, pair).
        key: u64,
        srv: Option<Srv>,
    },
    /// An SRV target the response gave no address for.
    Target { name: Span, hash: u64, srv: Srv },
}

/// A TCP segment to or from port 53: DNS over TCP, reassembled in order.
#[derive(Clone, Copy, Debug)]
pub struct TcpDataEvent {
    pub ts: u64,
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
    /// False when the snap length cut the segment.
    pub complete: bool,
    /// The segment's payload, in the batch's `payload` arena.
    pub payload: Span,
}

/// A fragment of a UDP datagram (IPv4, or IPv6 with a fragment header).
#[derive(Clone, Copy, Debug)]
pub struct FragmentEvent {
    pub ts: u64,
    pub src: Addr,
    pub dst: Addr,
    pub ident: u32,
    /// Where this fragment's bytes go in the datagram.
    pub offset: u32,
    pub more: bool,
    pub payload: Span,
}

/// One event, 32 bytes: a SYN (the bulk of a busy capture in default
/// mode) inline, anything larger by its index in one of the batch's
/// vectors, so that the aggregator reads as few cache lines as it can.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Default mode: a SYN with ACK, RST and FIN clear.
    Syn {
        ts: u64,
        /// [`crate::table::Keys::pair_hash`] of (src, dst).
        forward: u64,
        /// [`crate::table::Keys::syn_key`].
        syn_key: u64,
        dst_port: u16,
    },
    /// `-a`: a TCP segment (any but a run's: `run`), `segments[index]`;
    /// its connection key and flags inline, so that a segment of a
    /// connection already counted (most of them) is applied without
    /// reading its record.
    Segment {
        ts: u64,
        /// [`crate::table::connection_key`] of its 4-tuple.
        connection: u64,
        index: u32,
        /// Its connection's [`SegmentGroup`] in this batch
        /// ([`GroupIndex::group`]; [`NO_GROUP`]: none).
        group: u32,
        flags: u8,
        /// A later segment of the group, not the one that leads it.
        follower: bool,
        /// Followers of the same group that came right after it, with no
        /// other event between: the next `run` of the batch's
        /// [`EventBatch::run_segments`], in order.
        run: u16,
    },
    /// A query the aggregator will wait for the response of: its
    /// [`crate::table::query_key`], the name's hash and the type.
    Query {
        ts: u64,
        key: u64,
        name_hash: u64,
        qtype: u16,
    },
    /// `dns[index]`: a query whose name does not contain the `-F` filter
    /// (followed only when it is an SRV target its client awaits).
    FilteredQuery { ts: u64, index: u32 },
    /// `dns[index]`.
    Response { ts: u64, index: u32 },
    /// A response, as [`Event::Response`], that came right after its own
    /// query (sent at `query_ts`) in the batch, with only SYNs and `-a`
    /// segments between them: the query's event is left out and the
    /// aggregator applies it here, without a round trip through its table
    /// of pending queries (see [`EventBatch::push_response`]).
    Lookup { ts: u64, query_ts: u64, index: u32 },
    /// `tcp_data[index]`.
    TcpData { ts: u64, index: u32 },
    /// `fragments[index]`.
    Fragment { ts: u64, index: u32 },
}

const _: () = assert!(size_of::<Event>() == 32);
const _: () = assert!(size_of::<Segment>() == 32);

impl Event {
    /// Capture time, nanoseconds since the epoch.
    pub fn ts(&self) -> u64 {
        match *self {
            Event::Syn { ts, .. }
            | Event::Segment { ts, .. }
            | Event::Query { ts, .. }
            | Event::FilteredQuery { ts, .. }
            | Event::Response { ts, .. }
            | Event::Lookup { ts, .. }
            | Event::TcpData { ts, .. }
            | Event::Fragment { ts, .. } => ts,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    Additional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordData {
    Addr(Addr),
    Cname(Span),
    Srv { target: Span, srv: Srv },
}

/// One resource record of a response, as parsed (before the digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub owner: Span,
    pub ttl: u32,
    pub section: Section,
    pub data: RecordData,
    /// Digest notes: an answer owned by a name of the CNAME chain; an SRV
    /// target that had an address in the response.
    pub in_chain: bool,
    pub resolved: bool,
}

/// `-a`: a follower that came right after a segment of its own group,
/// kept beside that segment's [`Event::Segment`] (its `run`) instead of
/// as an event of its own, and without a [`Segment`]: it is that
/// segment's 4-tuple, one way or the other ([`Segment::follower`]). On
/// `-a` streams, four segments in five. The aggregator passes
/// over a run together with its event when the group's followers were
/// applied with the lead, and applies each one in turn when they were
/// not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSegment {
    pub ts: u64,
    pub flags: u8,
    /// From the event's destination to its source.
    pub reversed: bool,
}

/// `-a`: the segments of one connection in one batch, from the first (the
/// group's lead) on. Most segments of a busy capture belong to a
/// connection already counted or closed, and all they do to it is note
/// their time and a FIN or RST. When nothing in the batch can look at
/// that in between (no sweep of idle connections falls in the batch, and
/// the connection table cannot fill up: `Aggregator::may_fold`), the
/// aggregator applies what the followers would do together with the lead,
/// and passes over the followers' events without a lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentGroup {
    /// The time of the group's last segment (in the batch's order, which
    /// may step back in time: the connection's time is the last segment's).
    pub last_ts: u64,
    /// Segments after the lead.
    pub followers: u32,
    /// Whether a follower carries FIN or RST.
    pub closing: bool,
}

/// No group: a segment on its own ([`Event::Segment`]).
pub const NO_GROUP: u32 = u32::MAX;

/// A batch's segment groups, numbered in the order their leads came,
/// and where each connection's is (open addressing over the connection
/// keys into the groups; emptied for each batch by a new stamp rather
/// than by clearing its slots). Filled by the worker, read by the
/// aggregator. 32 KiB of slots and 24 bytes a group: a batch's groups
/// are read in order; its slots are the worker's own while it fills the
/// batch ([`EventBatch::refill_with`]), so that they stay in that
/// worker's cache.
#[derive(Clone, Debug, Default)]
pub struct GroupIndex {
    slots: GroupSlots,
    groups: Vec<GroupEntry>,
    /// The group the batch's latest segment joined or led ([`NO_GROUP`]
    /// for none): a connection's segments often come one after another.
    last: u32,
}

/// The slots of a [`GroupIndex`] and the stamp of the batch that fills
/// them, which travel together: a worker keeps one set for every batch
/// it fills. Recycled batches go to either worker, and eight are in
/// flight: the slots of the batch itself were cold at its first touch
/// of each line (27 % of a worker's samples on `-a` streams, perf).
#[derive(Clone, Debug, Default)]
pub struct GroupSlots {
    /// The stamp of the batch that filled it (high 16 bits; 0: never) and
    /// a group (low 16).
    slots: Vec<u32>,
    stamp: u16,
}

#[derive(Clone, Copy, Debug)]
struct GroupEntry {
    key: u64,
    last_ts: u64,
    followers: u32,
    /// The followers' TCP flags, or'ed.
    flags: u8,
    /// False once a second SYN of the connection came: a SYN may start a
    /// new connection on the 4-tuple, so it and what follows it in the
    /// batch stay on their own.
    open: bool,
}

impl GroupEntry {
    /// One more follower, at `ts` with TCP `flags`.
    #[inline(always)]
    fn follow(&mut self, ts: u64, flags: u8) {
        self.last_ts = ts;
        self.followers = self.followers.saturating_add(1);
        self.flags |= flags;
    }
}

/// Slots of a [`GroupIndex`]: twice a full batch's records.
const GROUP_SLOTS: usize = 2 * crate::source::BATCH_RECORDS;

/// Groups a batch may have (the slots keep 16 bits of one).
const MAX_GROUPS: usize = 1 << 16;

impl GroupIndex {
    /// Forgets every group (the next batch).
    fn clear(&mut self) {
        self.groups.clear();
        self.last = NO_GROUP;
        let t = &mut self.slots;
        t.stamp = t.stamp.wrapping_add(1);
        if t.stamp == 0 {
            // After 65 536 batches: old stamps would come back to life.
            t.slots.fill(0);
            t.stamp = 1;
        }
    }

    /// Groups in this batch.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Group `group` of this batch.
    pub fn group(&self, group: u32) -> Option<SegmentGroup> {
        let g = self.groups.get(group as usize)?;
        Some(SegmentGroup {
            last_ts: g.last_ts,
            followers: g.followers,
            closing: g.flags & (crate::wire::tcp::FIN | crate::wire::tcp::RST) != 0,
        })
    }

    /// The group a segment of connection `key` joins, and whether it
    /// follows (rather than leads) it. A connection's first segment
    /// leads; a second SYN, and what comes after it, stays on its own, as
    /// do the segments of a connection whose slot another one holds.
    #[inline(always)]
    fn join(&mut self, key: u64, ts: u64, flags: u8, syn: bool) -> (u32, bool) {
        if let Some(e) = self.groups.get_mut(self.last as usize)
            && e.key == key
            && e.open
            && !syn
        {
            e.follow(ts, flags);
            return (self.last, true);
        }
        let (group, follower) = self.join_by_slot(key, ts, flags, syn);
        self.last = group;
        (group, follower)
    }

    /// [`GroupIndex::join`] through the connection's slot.
    #[inline(always)]
    fn join_by_slot(&mut self, key: u64, ts: u64, flags: u8, syn: bool) -> (u32, bool) {
        let stamp = u32::from(self.slots.stamp) << 16;
        let i = key as usize & GROUP_SLOTS.wrapping_sub(1);
        let Some(slot) = self.slots.slots.get_mut(i) else {
            self.allocate();
            return (NO_GROUP, false);
        };
        let g = *slot & 0xFFFF;
        if *slot & 0xFFFF_0000 == stamp {
            // One probe: a key whose slot another took stays on its own.
            if let Some(e) = self.groups.get_mut(g as usize)
                && e.key == key
            {
                if syn || !e.open {
                    e.open = false;
                    return (NO_GROUP, false);
                }
                e.follow(ts, flags);
                return (g, true);
            }
            return (NO_GROUP, false);
        }
        let g = self.groups.len();
        if g >= MAX_GROUPS {
            return (NO_GROUP, false);
        }
        *slot = stamp | g as u32;
        self.groups.push(GroupEntry {
            key,
            last_ts: ts,
            followers: 0,
            flags: 0,
            open: true,
        });
        (g as u32, false)
    }

    /// The slots, at the first segment (that one stays on its own).
    #[cold]
    fn allocate(&mut self) {
        let t = &mut self.slots;
        t.slots = vec![0; GROUP_SLOTS];
        t.stamp = t.stamp.max(1);
    }
}

/// What one parser worker made of one batch of capture records.
#[derive(Default, Debug)]
pub struct EventBatch {
    pub seq: u64,
    /// Byte offset in the input just past this batch's records.
    pub end_offset: u64,
    pub events: Vec<Event>,
    pub segments: Vec<Segment>,
    /// Followers in runs ([`RunSegment`]), in the order of their events'.
    pub run_segments: Vec<RunSegment>,
    /// The latest time of any segment of the batch, those in runs too (0
    /// with none).
    pub segment_max_ts: u64,
    /// `-a`: the connections' segment groups ([`SegmentGroup`]).
    pub groups: GroupIndex,
    pub dns: Vec<DnsEvent>,
    pub tcp_data: Vec<TcpDataEvent>,
    pub fragments: Vec<FragmentEvent>,
    pub backends: Vec<Found>,
    pub names: NameArena,
    /// Bytes to reassemble (DNS over TCP, UDP fragments).
    pub payload: Vec<u8>,
    pub counters: Counters,
    /// The records of the message being digested (worker scratch).
    pub records: Vec<Record>,
    /// The place in `events` of the latest query, while only SYNs and `-a`
    /// segments have followed it (nothing that touches the aggregator's
    /// pending queries): the response that answers it can be paired with it.
    pub open_query: Option<usize>,
    /// `-a`: the last segment's 4-tuple and its hashes (worker scratch).
    pub tuples: crate::table::TupleMemo,
}

impl EventBatch {
    /// Clears the batch and has `fill` fill it with `slots`, a worker's
    /// own segment-group slots, lent to it: stamped for this batch by the
    /// clear (so nothing of the batch they were lent to before is found
    /// in them), and handed back once it is filled. The aggregator reads
    /// the groups, never the slots.
    pub fn refill_with(&mut self, slots: &mut GroupSlots, fill: impl FnOnce(&mut Self)) {
        std::mem::swap(&mut self.groups.slots, slots);
        self.clear();
        fill(self);
        std::mem::swap(&mut self.groups.slots, slots);
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.segments.clear();
        self.run_segments.clear();
        self.segment_max_ts = 0;
        self.groups.clear();
        self.dns.clear();
        self.tcp_data.clear();
        self.fragments.clear();
        self.backends.clear();
        self.names.clear();
        self.payload.clear();
        self.records.clear();
        self.counters = Counters::default();
        self.open_query = None;
        self.tuples.clear();
    }

    /// A query the aggregator will wait for the response of.
    pub fn push_query(&mut self, ts: u64, key: u64, name_hash: u64, qtype: u16) {
        self.open_query = Some(self.events.len());
        self.events.push(Event::Query {
            ts,
            key,
            name_hash,
            qtype,
        });
    }

    /// `dns[index]`, a query whose name the `-F` filter left out.
    pub fn push_filtered_query(&mut self, ts: u64, index: u32) {
        // The aggregator may still follow it (an awaited SRV target).
        self.open_query = None;
        self.events.push(Event::FilteredQuery { ts, index });
    }

    /// A segment at `ts` of the connection with key `connection`. With
    /// `grouped`, it joins its connection's [`SegmentGroup`] in this
    /// batch, or leads it (`syn`: a SYN with ACK, RST and FIN clear); a
    /// follower right after a segment of its group joins that one's run.
    #[inline(always)]
    pub fn push_segment(
        &mut self,
        ts: u64,
        connection: u64,
        flags: u8,
        syn: bool,
        segment: Segment,
        grouped: bool,
    ) {
        self.segment_max_ts = self.segment_max_ts.max(ts);
        let (group, follower) = if grouped {
            self.groups.join(connection, ts, flags, syn)
        } else {
            (NO_GROUP, false)
        };
        if follower
            && let Some(Event::Segment {
                group: g, run, index, ..
            }) = self.events.last_mut()
            && *g == group
            && *run < u16::MAX
            && let Some(head) = self.segments.get_mut(*index as usize)
            && let Some(reversed) = head.direction_of(&segment)
        {
            if *run == 0 {
                head.run_start = self.run_segments.len() as u32;
            }
            *run += 1;
            self.run_segments.push(RunSegment { ts, flags, reversed });
            return;
        }
        let index = self.segments.len() as u32;
        self.segments.push(segment);
        self.events.push(Event::Segment {
            ts,
            connection,
            index,
            group,
            flags,
            follower,
            run: 0,
        });
    }

    pub fn push_tcp_data(&mut self, data: TcpDataEvent) {
        // Reassembled, it may hold queries and responses.
        self.open_query = None;
        let (ts, index) = (data.ts, self.tcp_data.len() as u32);
        self.tcp_data.push(data);
        self.events.push(Event::TcpData { ts, index });
    }

    /// `dns[index]`, a digested response. With `pair`, a response that
    /// answers the open query (the same key, type and name hash: the
    /// aggregator's own match) takes that query's event out of the batch
    /// and becomes an [`Event::Lookup`]. Nothing between the two touched
    /// the pending queries (generations advance only at queries), so
    /// applying the query at the response, as the aggregator does, leaves
    /// every table and counter as the two events would have.
    pub fn push_response(&mut self, ts: u64, index: u32, pair: bool) {
        let Some(d) = self.dns.get(index as usize) else {
            return;
        };
        let open = self
            .open_query
            .take()
            .filter(|_| pair)
            .and_then(|at| match *self.events.get(at)? {
                Event::Query {
                    ts,
                    key,
                    name_hash,
                    qtype,
                } if key == d.key && qtype == d.qtype && name_hash == d.qname_hash => Some((at, ts)),
                _ => None,
            });
        match open {
            Some((at, query_ts)) => {
                // Only SYNs and segments follow it: a short move.
                self.events.remove(at);
                self.events.push(Event::Lookup { ts, query_ts, index });
            }
            None => self.events.push(Event::Response { ts, index }),
        }
    }

    pub fn push_fragment(&mut self, fragment: FragmentEvent) {
        // Reassembled, it may be a query or a response.
        self.open_query = None;
        let (ts, index) = (fragment.ts, self.fragments.len() as u32);
        self.fragments.push(fragment);
        self.events.push(Event::Fragment { ts, index });
    }

    pub fn name(&self, span: Span) -> &[u8] {
        self.names.get(span.start as usize, span.len as usize)
    }

    pub fn push_payload(&mut self, bytes: &[u8]) -> Span {
        let start = self.payload.len() as u32;
        self.payload.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len() as u32,
        }
    }

    pub fn payload_of(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.payload.get(start..start + span.len as usize).unwrap_or(&[])
    }

    pub fn backends_of(&self, ev: &DnsEvent) -> &[Found] {
        self.backends
            .get(ev.backends.0 as usize..ev.backends.1 as usize)
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: u64 = 7;
    const NAME: u64 = 11;
    const A: u16 = 1;

    /// A digested message (no backends) in `dns`, and its index.
    fn digested(b: &mut EventBatch, key: u64, name_hash: u64, qtype: u16) -> u32 {
        b.dns.push(DnsEvent {
            ts: 2,
            client: Addr::V4([10, 0, 0, 1]),
            qtype,
            qname: Span::default(),
            qname_hash: name_hash,
            key,
            service: 3,
            backends: (0, 0),
            ttl: None,
        });
        b.dns.len() as u32 - 1
    }

    fn syn(b: &mut EventBatch) {
        b.events.push(Event::Syn {
            ts: 1,
            forward: 1,
            syn_key: 1,
            dst_port: 80,
        });
    }

    /// The kinds of the batch's events, in order.
    fn kinds(b: &EventBatch) -> Vec<&'static str> {
        b.events
            .iter()
            .map(|e| match e {
                Event::Syn { .. } => "syn",
                Event::Segment { .. } => "segment",
                Event::Query { .. } => "query",
                Event::FilteredQuery { .. } => "filtered",
                Event::Response { .. } => "response",
                Event::Lookup { .. } => "lookup",
                Event::TcpData { .. } => "tcp",
                Event::Fragment { .. } => "fragment",
            })
            .collect()
    }

    /// (group, follower) of each segment event of `b`.
    fn groups_of(b: &EventBatch) -> Vec<(u32, bool)> {
        b.events
            .iter()
            .filter_map(|e| match *e {
                Event::Segment { group, follower, .. } => Some((group, follower)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lent_group_slots_start_empty_in_every_batch() {
        use crate::wire::tcp::ACK;
        let seg = |forward| Segment {
            forward,
            reverse: forward + 1,
            syn_key: 0,
            src_port: 40000,
            dst_port: 443,
            run_start: 0,
        };
        // Connection 7, then 9 (so that 7's second segment is found
        // through its slot, not as the latest group), then 7 again.
        let fill = |b: &mut EventBatch| {
            b.push_segment(1, 7, ACK, false, seg(10), true);
            b.push_segment(2, 9, ACK, false, seg(20), true);
            b.push_segment(3, 7, ACK, false, seg(10), true);
        };
        // As a worker fills them, with its own slots lent to each; two
        // batches going round.
        let mut slots = GroupSlots::default();
        let mut batches = [EventBatch::default(), EventBatch::default()];
        let mut seen = Vec::new();
        for round in 0..4 {
            let b = &mut batches[round % 2];
            b.refill_with(&mut slots, fill);
            seen.push(groups_of(b));
        }
        // The very first segment allocates the slots and stays on its own;
        // after that each batch groups alike: nothing of the batch before
        // is found in the slots.
        assert_eq!(seen[0], [(NO_GROUP, false), (0, false), (1, false)]);
        for s in &seen[1..] {
            assert_eq!(s, &[(0, false), (1, false), (0, true)]);
        }
        // The batch's own slots were never touched.
        assert!(batches.iter().all(|b| b.groups.slots.slots.is_empty()));
    }

    /// A query, what `between` pushes, then a response: the kinds left.
    fn after(
        between: impl Fn(&mut EventBatch),
        key: u64,
        name: u64,
        qtype: u16,
        pair: bool,
    ) -> Vec<&'static str> {
        let mut b = EventBatch::default();
        b.push_query(1, KEY, NAME, A);
        between(&mut b);
        let r = digested(&mut b, key, name, qtype);
        b.push_response(2, r, pair);
        kinds(&b)
    }

    #[test]
    fn a_response_right_after_its_query_is_paired_with_it() {
        assert_eq!(after(|_| {}, KEY, NAME, A, true), ["lookup"]);
        // SYNs between them stay, in their order, before the pair.
        assert_eq!(
            after(
                |b| {
                    syn(b);
                    syn(b)
                },
                KEY,
                NAME,
                A,
                true
            ),
            ["syn", "syn", "lookup"]
        );
        let mut b = EventBatch::default();
        b.push_query(5, KEY, NAME, A);
        let r = digested(&mut b, KEY, NAME, A);
        b.push_response(9, r, true);
        assert!(matches!(
            b.events.as_slice(),
            [Event::Lookup {
                ts: 9,
                query_ts: 5,
                index: 0,
                ..
            }]
        ));
    }

    #[test]
    fn only_the_response_the_aggregator_would_match_is_paired() {
        // Another key, another name, another type, or pairing off.
        for (key, name, qtype, pair) in [
            (KEY + 1, NAME, A, true),
            (KEY, NAME + 1, A, true),
            (KEY, NAME, 28, true),
            (KEY, NAME, A, false),
        ] {
            assert_eq!(after(|_| {}, key, name, qtype, pair), ["query", "response"]);
        }
    }

    #[test]
    fn nothing_that_touches_pending_queries_may_come_between() {
        let other_response = |b: &mut EventBatch| {
            let r = digested(b, KEY + 1, NAME, A);
            b.push_response(2, r, true);
        };
        assert_eq!(
            after(other_response, KEY, NAME, A, true),
            ["query", "response", "response"]
        );
        let filtered = |b: &mut EventBatch| {
            let q = digested(b, KEY + 2, NAME, A);
            b.push_filtered_query(1, q);
        };
        assert_eq!(
            after(filtered, KEY, NAME, A, true),
            ["query", "filtered", "response"]
        );
        let tcp = |b: &mut EventBatch| {
            b.push_tcp_data(TcpDataEvent {
                ts: 1,
                src: Addr::V4([10, 0, 0, 1]),
                dst: Addr::V4([10, 0, 0, 53]),
                src_port: 4000,
                dst_port: 53,
                seq: 1,
                flags: 0,
                complete: true,
                payload: Span::default(),
            })
        };
        assert_eq!(after(tcp, KEY, NAME, A, true), ["query", "tcp", "response"]);
        let fragment = |b: &mut EventBatch| {
            b.push_fragment(FragmentEvent {
                ts: 1,
                src: Addr::V4([10, 0, 0, 53]),
                dst: Addr::V4([10, 0, 0, 1]),
                ident: 1,
                offset: 0,
                more: true,
                payload: Span::default(),
            })
        };
        assert_eq!(
            after(fragment, KEY, NAME, A, true),
            ["query", "fragment", "response"]
        );
        // A second query takes the pairing over; a batch starts afresh.
        let second = |b: &mut EventBatch| b.push_query(1, KEY + 3, NAME, A);
        assert_eq!(after(second, KEY, NAME, A, true), ["query", "query", "response"]);
        let mut b = EventBatch::default();
        b.push_query(1, KEY, NAME, A);
        b.clear();
        let r = digested(&mut b, KEY, NAME, A);
        b.push_response(2, r, true);
        assert_eq!(kinds(&b), ["response"]);
    }
}
