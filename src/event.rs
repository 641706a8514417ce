//! The compact events that parser workers hand to the aggregator.
//!
//! A batch owns three recycled vectors: the events, the DNS records they
//! refer to, and one arena holding every name of the batch in report form.
//! Nothing in a batch allocates per packet once the vectors have grown.

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
}

#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    pub ts: u64,
    pub client: Addr,
    pub server: Addr,
    pub client_port: u16,
    pub id: u16,
    pub qtype: u16,
    pub qname: Span,
    /// [`crate::table::name_hash`] of the question name.
    pub qname_hash: u64,
    /// The records of a response, as a range of the batch's `records`.
    pub records: (u32, u32),
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
    Srv {
        target: Span,
        port: u16,
        priority: u16,
        weight: u16,
    },
}

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
    pub records: Vec<Record>,
    pub names: Vec<u8>,
    /// Bytes to reassemble (DNS over TCP, UDP fragments).
    pub payload: Vec<u8>,
    pub counters: Counters,
}

impl EventBatch {
    pub fn clear(&mut self) {
        self.events.clear();
        self.records.clear();
        self.names.clear();
        self.payload.clear();
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

    pub fn records_of(&self, ev: &DnsEvent) -> &[Record] {
        self.records
            .get(ev.records.0 as usize..ev.records.1 as usize)
            .unwrap_or(&[])
    }
}
