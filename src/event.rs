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

#[derive(Clone, Copy, Debug)]
pub enum Event {
    Tcp(TcpEvent),
    Query(DnsEvent),
    Response(DnsEvent),
}

impl Event {
    /// Capture time, nanoseconds since the epoch.
    pub fn ts(&self) -> u64 {
        match self {
            Event::Tcp(t) => t.ts,
            Event::Query(d) | Event::Response(d) => d.ts,
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
    pub events: Vec<Event>,
    pub records: Vec<Record>,
    pub names: Vec<u8>,
    pub counters: Counters,
}

impl EventBatch {
    pub fn clear(&mut self) {
        self.events.clear();
        self.records.clear();
        self.names.clear();
        self.counters = Counters::default();
    }

    pub fn name(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.names.get(start..start + span.len as usize).unwrap_or(&[])
    }

    pub fn records_of(&self, ev: &DnsEvent) -> &[Record] {
        self.records
            .get(ev.records.0 as usize..ev.records.1 as usize)
            .unwrap_or(&[])
    }
}
