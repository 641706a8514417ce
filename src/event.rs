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

/// A name in the batch's arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct TcpEvent {
    pub ts: u64,
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
    /// [`crate::table::pair_hash`] of (src, dst): the source's binding to
    /// the destination.
    pub forward: u64,
    /// Of (dst, src), for a segment from a backend to its client (`-a`
    /// only; 0 otherwise).
    pub reverse: u64,
    /// [`crate::table::syn_key`] of this segment (SYNs only; 0 otherwise).
    pub syn_key: u64,
    /// [`crate::table::connection_key`] (`-a` only; 0 otherwise).
    pub connection: u64,
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
        /// [`crate::table::pair_hash`] of (client, addr).
        pair: u64,
        /// [`crate::table::backend_hash`] of (the response's service, addr).
        key: u64,
        srv: Option<Srv>,
    },
    /// An SRV target the response gave no address for.
    Target { name: Span, hash: u64, srv: Srv },
}

/// A TCP segment to or from port 53: DNS over TCP, reassembled in order.
#[derive(Clone, Copy, Debug)]
pub struct TcpDataEvent {
    pub segment: TcpEvent,
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

#[derive(Clone, Copy, Debug)]
pub enum Event {
    Tcp(TcpEvent),
    Query(DnsEvent),
    Response(DnsEvent),
    TcpData(TcpDataEvent),
    Fragment(FragmentEvent),
}

impl Event {
    /// Capture time, nanoseconds since the epoch.
    pub fn ts(&self) -> u64 {
        match self {
            Event::Tcp(t) => t.ts,
            Event::Query(d) | Event::Response(d) => d.ts,
            Event::TcpData(t) => t.segment.ts,
            Event::Fragment(f) => f.ts,
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
}

/// What one parser worker made of one batch of capture records.
#[derive(Default, Debug)]
pub struct EventBatch {
    pub seq: u64,
    /// Byte offset in the input just past this batch's records.
    pub end_offset: u64,
    pub events: Vec<Event>,
    pub backends: Vec<Found>,
    pub names: Vec<u8>,
    /// Bytes to reassemble (DNS over TCP, UDP fragments).
    pub payload: Vec<u8>,
    pub counters: Counters,
    /// The records of the message being digested (worker scratch).
    pub records: Vec<Record>,
}

impl EventBatch {
    pub fn clear(&mut self) {
        self.events.clear();
        self.backends.clear();
        self.names.clear();
        self.payload.clear();
        self.records.clear();
        self.counters = Counters::default();
    }

    pub fn name(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.names.get(start..start + span.len as usize).unwrap_or(&[])
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
