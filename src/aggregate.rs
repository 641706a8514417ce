//! The one owner of connbal's tables: applies events in capture order.
//!
//! DNS: queries wait in a bounded table of pending queries; a matched
//! response binds its client to each backend address under the name the
//! client asked for (SPEC §4). TCP: a SYN (or, with `-a`, any segment of a
//! connection) from a client to an address it is bound to counts one
//! connection to that backend and port (SPEC §5).
//!
//! Every key arrives hashed by the parser workers (see [`crate::table`]),
//! and the tables an event will probe are prefetched a few events ahead,
//! so that the one thread applying events waits on memory as little as it
//! can: on a busy node most of its time is cache misses.

use crate::addr::Addr;
use crate::dissect::Dns;
use crate::event::{
    DnsEvent, Event, EventBatch, Found, FragmentEvent, Segment, SegmentGroup, Srv, TcpDataEvent,
};
use crate::intern::{Interner, Map, NameId};
use crate::prefault;
use crate::reassembly::{Fragments, TcpStreams};
use crate::stats::{Counters, Tally};
use crate::table::{
    FpTable, Generations, SynCache, Vacant, backend_hash, fingerprint, prefetch, push_huge, reserve_huge,
    service_hash,
};
use crate::wire::dns::TYPE_SRV;
use crate::wire::tcp::{ACK, FIN, RST, SYN};

pub use crate::dissect::MAX_CNAME_LINKS;

const SECOND: u64 = 1_000_000_000;
/// A query waits this long (capture time) for its response.
pub const QUERY_TIMEOUT: u64 = 10 * SECOND;
/// A SYN with the same 4-tuple and ISN within this window is a retransmission.
pub const SYN_RETRANSMIT_WINDOW: u64 = 120 * SECOND;

#[derive(Clone, Debug)]
pub struct Options {
    /// `-a`: count every connection seen, not only new ones.
    pub all_segments: bool,
    /// `-F`: only names containing this (lower case) are tracked.
    pub filter: Option<Vec<u8>>,
    /// `--all-names`: report single-address names too.
    pub all_names: bool,
    /// `--idle-timeout`, in nanoseconds.
    pub idle_timeout: u64,
    pub max_pending: usize,
    pub max_connections: usize,
    /// SYNs remembered for retransmission checks: 900k rounds up to 2^20
    /// slots of 8 bytes (8 MiB).
    pub max_recent_syns: usize,
    pub max_srv_targets: usize,
    /// (client, name) pairs kept. The global caps are a backstop sized for
    /// 10000 clients x 200 services; the per-client quotas below are what
    /// stop a flooding client.
    pub max_services: usize,
    /// (client, name, address) backends kept.
    pub max_backends: usize,
    /// (backend, port) connection counters kept.
    pub max_conn_counts: usize,
    /// What one client may hold, so that a flooding client exhausts its
    /// own share and not everyone's: services, remembered SRV targets,
    /// followed connections (`-a`).
    pub max_services_per_client: u32,
    pub max_srv_targets_per_client: u32,
    pub max_connections_per_client: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            all_segments: false,
            filter: None,
            all_names: false,
            idle_timeout: 300 * SECOND,
            max_pending: 200_000,
            max_connections: 450_000,
            max_recent_syns: 900_000,
            max_srv_targets: 4_000_000,
            max_services: 4_000_000,
            max_backends: 16_000_000,
            max_conn_counts: 16_000_000,
            max_services_per_client: 50_000,
            max_srv_targets_per_client: 10_000,
            max_connections_per_client: 100_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Looked up as A or AAAA.
    Address,
    Srv,
}

/// One (client, asked name): one cache line, all of it touched by every
/// lookup of the name.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Service {
    /// Its [`service_hash`] of (client, name), the key of
    /// `Aggregator::service_index` (whose slots keep 31 bits of it).
    key: u64,
    /// [`crate::table::name_hash`] of the name: checked with the key.
    name_hash: u64,
    /// Matched responses.
    pub lookups: u32,
    /// Lookups made while the previous answer's TTL had not run out.
    pub early_relookups: u32,
    pub ttl_min: Option<u32>,
    /// When the TTL of the latest matched response runs out (0: none yet).
    answer_expires: u64,
    /// Its backends, linked through [`Backend::next`] in the order they
    /// were first seen: no allocation per service.
    first_backend: u32,
    last_backend: u32,
    pub backend_count: u32,
    /// The client's entry in `Aggregator::usage`.
    client_slot: u32,
    pub name: NameId,
    pub kind: Kind,
}

/// One (client, name, address): one cache line (its address, read only
/// for output, lives in `Aggregator::backend_addrs`).
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Backend {
    pub service: u32,
    /// The next backend of the same service, or [`NONE`].
    next: u32,
    /// Matched responses in which this address appeared.
    pub dns: u32,
    /// Connections on `port`, the first port connected to (0: none yet);
    /// other ports are counted in `Aggregator::more_conns`.
    conns: u32,
    /// When the TTL of the latest response containing it runs out.
    expires: u64,
    /// The response that last counted this backend (one count per response).
    last_response: u64,
    /// Connections made after the TTL of the latest answer containing
    /// this backend had run out.
    pub stale_conns: u32,
    port: u16,
    /// Whether its client's binding to its address names it (so that a
    /// new response for the same name needs no binding lookup).
    bound: bool,
    /// The latest SRV priority and weight given for this address.
    pub srv_priority: u16,
    pub srv_weight: u16,
    /// The first ports SRV records gave this address (more live in
    /// `Aggregator::more_srv_ports`).
    srv_ports: [u16; INLINE_SRV_PORTS],
    srv_port_count: u8,
    /// Its service's client's entry in `Aggregator::usage` (the service's
    /// own `client_slot`, copied: a new `-a` connection finds its client
    /// in the line of the backend it reached, not in a further line of
    /// the services, which no stage had loaded).
    client_slot: u32,
    /// Its [`crate::table::Keys::pair_hash`] of (client, address), the key
    /// of its client's binding: with its service, what its
    /// [`backend_hash`] (the key of `Aggregator::backend_index`) is made
    /// of, so that it checks a match under the short tags of either
    /// index, and a response that lists a service's backends in the
    /// order they were first seen finds each one by following the list.
    pair: u64,
}

impl Backend {
    /// A backend of `service` not yet seen in a response, bound or
    /// connected to.
    fn new(service: u32, client_slot: u32, pair: u64) -> Self {
        Backend {
            service,
            next: NONE,
            dns: 0,
            conns: 0,
            expires: 0,
            last_response: 0,
            stale_conns: 0,
            port: 0,
            bound: false,
            srv_priority: 0,
            srv_weight: 0,
            srv_ports: [0; INLINE_SRV_PORTS],
            srv_port_count: 0,
            client_slot,
            pair,
        }
    }

    /// Whether it is the backend of `service` at the client and address
    /// whose pair hash is `pair`: the backend hash is made of the
    /// service's hash and the pair's, so the same service and pair make
    /// the same backend.
    #[inline]
    fn is(&self, service: u32, pair: u64) -> bool {
        self.pair == pair && self.service == service
    }

    /// The first port connected to and its connections, if any.
    #[inline]
    pub fn first_port(&self) -> Option<(u16, u32)> {
        (self.conns > 0).then_some((self.port, self.conns))
    }

    /// Whether it holds SRV `port` inline.
    fn holds_srv_port(&self, port: u16) -> bool {
        let count = usize::from(self.srv_port_count);
        self.srv_ports.iter().take(count).any(|&p| p == port)
    }
}

/// At most this many SRV ports are kept per backend.
const MAX_SRV_PORTS: usize = 64;
const INLINE_SRV_PORTS: usize = 3;
/// The end of a list of backends, and the service of a full table.
const NONE: u32 = u32::MAX;

/// A query waiting for its response, under the fingerprint of
/// (client, server, client port, id).
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    name_hash: u64,
    ts: u64,
    qtype: u16,
}

/// A connection followed with `-a`, under the fingerprint of its 4-tuple
/// in either direction: its client and state in one word, and the second
/// of its latest segment, so that a slot of the table (with its key) is
/// 16 bytes. Whether a SYN on it repeats an earlier one is asked of the
/// recent SYNs, which note every SYN that counts or reopens a connection.
#[derive(Clone, Copy, Debug, Default)]
struct Connection {
    /// Whose quota this connection counts against (`Aggregator::usage`;
    /// [`CLIENT_NONE`] for none) in the low 30 bits, [`COUNTED`] and
    /// [`CLOSED`] above.
    state: u32,
    last_secs: u32,
}

impl Connection {
    /// `client_slot` at most [`CLIENT_NONE`] (its caller clamps it, and
    /// charges the quota by the clamped slot).
    fn new(client_slot: u32, last_secs: u32, flags: u32) -> Self {
        debug_assert!(client_slot <= CLIENT_NONE);
        Connection {
            state: client_slot | flags,
            last_secs,
        }
    }

    fn client_slot(self) -> u32 {
        self.state & CLIENT_NONE
    }
}

/// How long a closed connection is remembered (seconds of capture time).
const CLOSED_LINGER_SECS: u32 = 10;

const COUNTED: u32 = 1 << 30;
const CLOSED: u32 = 1 << 31;
/// The mask of a connection's client slot, and the slot of none: the
/// clients' entries are far fewer (one per client with a service, under
/// [`Options::max_services`]), and a slot past it counts against no quota.
const CLIENT_NONE: u32 = COUNTED - 1;

/// An SRV target a client has still to look up: the SRV services and
/// ports waiting for its addresses. The name is checked by its hash, as a
/// service's is.
#[derive(Debug)]
struct Awaited {
    client: Addr,
    name_hash: u64,
    waiting: Waiting,
}

/// The (SRV service, SRV record) pairs waiting for a target: nearly
/// always one, held inline, so that a target awaited by one service
/// allocates nothing (the wide workload awaits 122 000 targets: their
/// allocations were 1.7 % of the aggregator's instructions, with
/// mimalloc).
#[derive(Debug, Default)]
struct Waiting {
    first: Option<(u32, Srv)>,
    more: Vec<(u32, Srv)>,
}

impl Waiting {
    fn get(&self, i: usize) -> Option<&(u32, Srv)> {
        match i {
            0 => self.first.as_ref(),
            _ => self.more.get(i - 1),
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn contains(&self, w: &(u32, Srv)) -> bool {
        self.first.as_ref() == Some(w) || self.more.contains(w)
    }

    fn push(&mut self, w: (u32, Srv)) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.more.push(w);
        }
    }
}

/// A client's entry in the clients table.
#[derive(Clone, Copy, Debug)]
struct ClientSlot {
    addr: Addr,
    slot: u32,
}

impl Default for ClientSlot {
    fn default() -> Self {
        ClientSlot {
            addr: Addr::V4([0; 4]),
            slot: NONE,
        }
    }
}

/// What one client holds of the shared tables.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    services: u32,
    srv_targets: u32,
    connections: u32,
}

/// The fewest capture bytes a matched response takes (record header,
/// link, IP, UDP and DNS headers, a question), and an address in it (an
/// A record with a compressed owner name): with the capture's length,
/// how many services and backends to make room for.
const MIN_RESPONSE_BYTES: u64 = 64;
const MIN_ANSWER_BYTES: u64 = 16;

/// How many events ahead the entries an event will touch are prefetched;
/// the index slots that lead to them are prefetched twice as far ahead.
/// (Responses, since `af7e7a7`, count along the batch's responses
/// instead: [`DNS_AHEAD`]; 3 and 6 were measured again then, and 4 kept.)
/// 4 rather than 8: the stages bench's aggregation of syn took 50.7
/// against 55.5 ns a record (8 runs each in turns, 18 of 20 such pairs
/// faster); whole runs 3.5-4.7 % less wall time on syn, streams and wide
/// (`benches/compare.sh`, 30 runs each), though 15 runs each just before
/// read -0.9 / +2.5 / -1.5 %: small beside the host's noise. 6 and 10
/// were within the noise.
const PREFETCH_AHEAD: usize = 4;

/// How many responses ahead, along the batch's DNS messages, a response's
/// entries are prefetched (its slots twice as far). Counted in events, a
/// response's lead shrank to little when the events between were cheap:
/// segments folded into their group's lead (`-a`), SYNs. The stages
/// bench's aggregation, in turns, ns a record, against the event-counted
/// prefetch: streams 25.0-27.4 (7 runs) against 26.1-35.5, syn
/// 42.5-46.6 against 46.2-56.3, wide 86.0-109.0 against 92.2-94.7 (4
/// runs each); 1 and 3 ahead were no better than before on streams.
const DNS_AHEAD: usize = 2;

pub struct Aggregator {
    opts: Options,
    pub names: Interner,
    pending: Generations<Pending>,
    pub services: Vec<Service>,
    /// Service hash -> service, under 32-bit tags: each match is checked
    /// against the service's own key.
    service_index: FpTable<u32, u32>,
    pub backends: Vec<Backend>,
    /// Each backend's address, by backend id.
    backend_addrs: Vec<Addr>,
    /// Backend hash of (service, address) -> backend, under 32-bit tags:
    /// each match is checked against the backend's service and pair,
    /// which its hash is made of.
    backend_index: FpTable<u32, u32>,
    more_srv_ports: Map<u32, Vec<u16>>,
    /// Connections per (backend, port) beyond each backend's first port.
    more_conns: Map<(u32, u16), u32>,
    /// [`crate::table::Keys::pair_hash`] of (client, address) -> the backend the
    /// client's latest response containing the address made it, under
    /// 32-bit tags: each match is checked against the backend's pair.
    bindings: FpTable<u32, u32>,
    /// SRV targets that came without an address, by the
    /// [`service_hash`] of (client, target name): the very key of the
    /// service a lookup of the target by that client will have, so that
    /// each A/AAAA response finds what waits for it with one probe.
    srv_targets: FpTable<u32>,
    /// What `srv_targets` points to.
    awaited: Vec<Awaited>,
    /// Fingerprint of (4-tuple, ISN) of SYNs to bound addresses -> the
    /// second it was seen.
    recent_syns: SynCache,
    connections: FpTable<Connection>,
    /// By segment group of the batch being applied: whether its followers
    /// were applied with its lead ([`SegmentGroup`]).
    folded: Vec<bool>,
    next_sweep: u64,
    next_full_sweep: u64,
    clients: FpTable<ClientSlot>,
    /// By client slot: the client's address, and what it holds.
    client_addrs: Vec<Addr>,
    usage: Vec<Usage>,
    response_serial: u64,
    pub counters: Counters,
    pub tally: Tally,
    tcp_streams: TcpStreams,
    fragments: Fragments,
    /// Scratch space for messages reassembled here.
    scratch: EventBatch,
    messages: Vec<Vec<u8>>,
    /// A mapped capture's length ([`Aggregator::expect_capture`]).
    capture_len: Option<u64>,
    /// Where in it the batches applied so far end.
    applied_to: u64,
}

impl Aggregator {
    pub fn new(opts: Options) -> Self {
        let pending = Generations::new(QUERY_TIMEOUT, opts.max_pending);
        let recent_syns = SynCache::new(opts.max_recent_syns, SYN_RETRANSMIT_WINDOW / SECOND);
        Aggregator {
            opts,
            names: Interner::default(),
            pending,
            services: Vec::new(),
            service_index: FpTable::default(),
            backends: Vec::new(),
            backend_addrs: Vec::new(),
            backend_index: FpTable::default(),
            more_srv_ports: Map::default(),
            more_conns: Map::default(),
            bindings: FpTable::default(),
            srv_targets: FpTable::default(),
            awaited: Vec::new(),
            recent_syns,
            connections: FpTable::default(),
            folded: Vec::new(),
            next_sweep: 0,
            next_full_sweep: 0,
            clients: FpTable::default(),
            client_addrs: Vec::new(),
            usage: Vec::new(),
            response_serial: 0,
            counters: Counters::default(),
            tally: Tally::default(),
            tcp_streams: TcpStreams::default(),
            fragments: Fragments::default(),
            scratch: EventBatch::default(),
            messages: Vec::new(),
            capture_len: None,
            applied_to: 0,
        }
    }

    /// Told that the capture is `bytes` long and read whole (a mapped
    /// file): reserves address space for the services, backends and SRV
    /// targets it could make, and for their indexes, within the caps, so
    /// that these tables are not copied as they grow (and the helper of
    /// [`crate::prefault`] can populate their next pages). Each grown
    /// table is written once more in fresh memory, which costs more than
    /// the copy itself on machines that zero new pages slowly (on wide,
    /// 19 k page faults became 14 k). The estimates are generous, not
    /// bounds: a table that outgrows its room grows as it would have.
    /// Nothing is reserved where memory is charged as it is allocated
    /// rather than as it is written ([`crate::table::reserving_is_free`]),
    /// or that the allocator refuses.
    pub fn expect_capture(&mut self, bytes: u64) {
        self.capture_len = Some(bytes);
        let most = |per: u64, cap: usize| usize::try_from(bytes / per).map_or(cap, |n| n.min(cap));
        let services = most(MIN_RESPONSE_BYTES, self.opts.max_services);
        let backends = most(MIN_ANSWER_BYTES, self.opts.max_backends);
        reserve_huge(&mut self.services, services);
        reserve_huge(&mut self.backends, backends);
        reserve_huge(&mut self.backend_addrs, backends);
        self.service_index.reserve(services);
        self.backend_index.reserve(backends);
        self.bindings.reserve(backends);
        let targets = most(MIN_ANSWER_BYTES, self.opts.max_srv_targets);
        self.srv_targets.reserve(targets);
        reserve_huge(&mut self.awaited, targets);
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Applies one batch; batches must come in capture order.
    pub fn apply(&mut self, batch: &EventBatch) {
        self.apply_until(batch, 0, None);
    }

    /// Applies the batch's events from index `from` up to the first whose
    /// capture time is `stop_at` or later (all of them with `None`: no
    /// time, not even the largest, stops it); returns that event's index
    /// (the number of events when all were applied). The batch's record
    /// counters are added when `from` is 0. A segment's run
    /// ([`crate::event::RunSegment`]) is applied with it, whatever its
    /// times: a batch cut by time (`--interval`) has its segments left
    /// ungrouped, and no runs.
    pub fn apply_until(&mut self, batch: &EventBatch, from: usize, stop_at: Option<u64>) -> usize {
        debug_assert!(stop_at.is_none() || batch.run_segments.is_empty());
        if from == 0 {
            if let Some(total) = self.capture_len {
                self.plan_growth(self.applied_to, total);
                self.applied_to = batch.end_offset;
            }
            self.counters.add(&batch.counters);
            self.folded.clear();
            self.folded.resize(batch.groups.len(), false);
        }
        let fold = self.may_fold(batch);
        let events = batch.events.get(from..).unwrap_or(&[]);
        for ev in events.iter().take(2 * PREFETCH_AHEAD) {
            self.prefetch_slots(ev, batch);
        }
        for ev in events.iter().take(PREFETCH_AHEAD) {
            self.prefetch_entries(ev, batch);
        }
        if from == 0 {
            for r in batch.dns.iter().take(2 * DNS_AHEAD) {
                self.prefetch_response_slots(r, batch);
            }
            for r in batch.dns.iter().take(DNS_AHEAD) {
                self.prefetch_response_entries(r, batch);
            }
        }
        for (i, ev) in events.iter().enumerate() {
            if stop_at.is_some_and(|stop| ev.ts() >= stop) {
                return from + i;
            }
            // The index slots an event will probe are loaded first, then
            // the entries those lead to. What it points to in the batch
            // (written in order on another core) is left to the hardware's
            // stream prefetcher: a third stage for it cost 5.6 % of the
            // aggregator's instructions and saved no time.
            if let Some(ahead) = events.get(i + 2 * PREFETCH_AHEAD) {
                self.prefetch_slots(ahead, batch);
            }
            if let Some(ahead) = events.get(i + PREFETCH_AHEAD) {
                self.prefetch_entries(ahead, batch);
            }
            match *ev {
                Event::Syn {
                    ts,
                    forward,
                    syn_key,
                    dst_port,
                } => self.syn(ts, forward, syn_key, dst_port),
                Event::Segment {
                    ts,
                    connection,
                    index,
                    group,
                    flags,
                    follower,
                    run,
                } => {
                    let g = group as usize;
                    if follower && self.folded.get(g).is_some_and(|&f| f) {
                        // Applied with its group's lead, and its run too.
                        continue;
                    }
                    let lead = if fold && !follower {
                        batch.groups.group(group)
                    } else {
                        None
                    };
                    let t = batch.segments.get(index as usize);
                    if self.segment(ts, connection, flags, t, lead.as_ref()) {
                        if let Some(f) = self.folded.get_mut(g) {
                            *f = true;
                        }
                        continue;
                    }
                    // Followers (of this connection, no pure SYN among
                    // them) applied one by one, as their own events would be.
                    if run > 0
                        && let Some(&head) = t
                    {
                        let at = head.run_start as usize;
                        for r in batch.run_segments.get(at..at + usize::from(run)).unwrap_or(&[]) {
                            let t = head.follower(r.reversed);
                            self.segment(r.ts, connection, r.flags, Some(&t), None);
                        }
                    }
                }
                Event::Query {
                    ts,
                    key,
                    name_hash,
                    qtype,
                } => self.pending_query(ts, key, name_hash, qtype),
                Event::FilteredQuery { index, .. } => {
                    if let Some(q) = batch.dns.get(index as usize) {
                        if self.awaited_target(q.client, q.qname_hash) {
                            self.pending_query(q.ts, q.key, q.qname_hash, q.qtype);
                        } else {
                            self.tally.queries_filtered += 1;
                        }
                    }
                }
                Event::Response { index, .. } => {
                    self.prefetch_responses(index as usize, batch);
                    if let Some(r) = batch.dns.get(index as usize) {
                        self.response(r, batch);
                    }
                }
                Event::Lookup { query_ts, index, .. } => {
                    self.prefetch_responses(index as usize, batch);
                    if let Some(r) = batch.dns.get(index as usize) {
                        self.lookup(query_ts, r, batch);
                    }
                }
                Event::TcpData { index, .. } => {
                    if let Some(t) = batch.tcp_data.get(index as usize) {
                        self.tcp_dns(t, batch);
                    }
                }
                Event::Fragment { index, .. } => {
                    if let Some(f) = batch.fragments.get(index as usize) {
                        self.fragment(f, batch);
                    }
                }
            }
        }
        batch.events.len()
    }

    /// Tells the indexes of services, backends and bindings how many
    /// entries they will hold at the end of a mapped capture if they keep
    /// growing as they have (in proportion to the bytes applied, `offset`
    /// of `total`), once an eighth of it is applied: on a capture whose clients
    /// keep looking up new names, such as wide, an index then grows once
    /// to its final size instead of doubling three times, and each entry
    /// is moved once rather than three times (each growth moves every
    /// entry). Through a pipe the length is not known, and tables double.
    fn plan_growth(&mut self, offset: u64, total: u64) {
        if offset == 0 || offset < total / 8 {
            return;
        }
        let at_end = |len: usize, cap: usize| {
            let n = len as u128 * u128::from(total) / u128::from(offset);
            usize::try_from(n).map_or(cap, |n| n.min(cap))
        };
        let services = at_end(self.service_index.len(), self.opts.max_services);
        let backends = at_end(self.backend_index.len(), self.opts.max_backends);
        let bindings = at_end(self.bindings.len(), self.opts.max_backends);
        self.service_index.expect(services);
        self.backend_index.expect(backends);
        self.bindings.expect(bindings);
    }

    /// First stage: starts loading the index slots `ev` will probe.
    #[inline(always)]
    fn prefetch_slots(&self, ev: &Event, batch: &EventBatch) {
        match *ev {
            Event::Syn { forward, syn_key, .. } => {
                self.bindings.prefetch(forward);
                self.recent_syns.prefetch(syn_key);
            }
            Event::Segment {
                connection,
                index,
                flags,
                follower,
                ..
            } => {
                // A follower's connection was just looked up, by its lead
                // (if it was not applied with it).
                if follower {
                    return;
                }
                self.connections.prefetch_run(connection);
                // Bindings are looked up for new connections: most
                // start with a SYN, which is also checked against the
                // recent ones.
                if is_pure_syn(flags)
                    && let Some(t) = batch.segments.get(index as usize)
                {
                    self.bindings.prefetch(t.forward);
                    self.bindings.prefetch(t.reverse);
                    self.recent_syns.prefetch(t.syn_key);
                }
            }
            // Pending queries are few (each waits for one response) and
            // a response's bindings are only touched when a name takes an
            // address over: both tables stay in cache in normal traffic.
            // Services and backends are many and visited at random.
            Event::Query { .. } | Event::FilteredQuery { .. } => {}
            // Responses are prefetched along the batch's responses
            // instead ([`Aggregator::prefetch_responses`]).
            Event::Response { .. } | Event::Lookup { .. } => {}
            Event::TcpData { .. } | Event::Fragment { .. } => {}
        }
    }

    /// A response's first stage: the index slots of its service and of
    /// the backends it names.
    #[inline(always)]
    fn prefetch_response_slots(&self, r: &DnsEvent, batch: &EventBatch) {
        self.service_index.prefetch(r.service);
        // An A/AAAA response may be for an SRV target its client
        // awaits: the same key.
        if r.qtype != TYPE_SRV && !self.srv_targets.is_empty() {
            self.srv_targets.prefetch(r.service);
        }
        for found in batch.backends_of(r) {
            if let Found::Backend { key, .. } = found {
                self.backend_index.prefetch(*key);
            }
        }
    }

    /// A response's second stage: the service and backends its slots
    /// name (or, for a backend not made yet, its client's binding).
    #[inline(always)]
    fn prefetch_response_entries(&self, r: &DnsEvent, batch: &EventBatch) {
        if let Some(s) = self
            .service_index
            .peek(r.service)
            .and_then(|&id| self.services.get(id as usize))
        {
            prefetch(s);
        }
        if r.qtype != TYPE_SRV
            && let Some(a) = self
                .srv_targets
                .peek(r.service)
                .and_then(|&i| self.awaited.get(i as usize))
        {
            prefetch(a);
        }
        for found in batch.backends_of(r) {
            if let Found::Backend { key, pair, .. } = found {
                match self.backend_index.peek(*key) {
                    Some(id) => self.prefetch_named_backend(Some(id)),
                    // A backend seen for the first time: its
                    // client's binding will be written.
                    None => self.bindings.prefetch(*pair),
                }
            }
        }
    }

    /// Starts loading backend `id`, if any (what an index slot or a
    /// binding names); its line only, not its address as
    /// [`Aggregator::prefetch_backend`] loads for the output.
    #[inline(always)]
    fn prefetch_named_backend(&self, id: Option<&u32>) {
        if let Some(b) = id.and_then(|&id| self.backends.get(id as usize)) {
            prefetch(b);
        }
    }

    /// The prefetches of the responses [`DNS_AHEAD`] and twice that after
    /// the `k`-th of the batch's DNS messages.
    #[inline(always)]
    fn prefetch_responses(&self, k: usize, batch: &EventBatch) {
        if let Some(r) = batch.dns.get(k + 2 * DNS_AHEAD) {
            self.prefetch_response_slots(r, batch);
        }
        if let Some(r) = batch.dns.get(k + DNS_AHEAD) {
            self.prefetch_response_entries(r, batch);
        }
    }

    /// Second stage: the slots have arrived; starts loading the services
    /// and backends they point to.
    #[inline(always)]
    fn prefetch_entries(&self, ev: &Event, batch: &EventBatch) {
        match *ev {
            Event::Syn { forward, .. } => self.prefetch_named_backend(self.bindings.peek(forward)),
            Event::Segment { index, flags, .. } => {
                if is_pure_syn(flags)
                    && let Some(t) = batch.segments.get(index as usize)
                {
                    self.prefetch_named_backend(self.bindings.peek(t.forward));
                    self.prefetch_named_backend(self.bindings.peek(t.reverse));
                }
            }
            Event::Response { .. }
            | Event::Lookup { .. }
            | Event::Query { .. }
            | Event::FilteredQuery { .. }
            | Event::TcpData { .. }
            | Event::Fragment { .. } => {}
        }
    }

    /// DNS over TCP: reassembled in order, then parsed like any message.
    fn tcp_dns(&mut self, data: &TcpDataEvent, batch: &EventBatch) {
        let t = data;
        let key = fingerprint(&(t.src, t.dst, t.src_port, t.dst_port));
        let mut messages = std::mem::take(&mut self.messages);
        messages.clear();
        let payload = batch.payload_of(data.payload);
        self.tally.reassembly_dropped +=
            self.tcp_streams
                .segment(key, t.ts, t.seq, t.flags, data.complete, payload, &mut messages);
        for m in &messages {
            self.dns_message(t.ts, t.src, t.dst, t.src_port, t.dst_port, m);
        }
        self.messages = messages;
    }

    /// A UDP fragment: once the datagram is whole, its DNS message.
    fn fragment(&mut self, f: &FragmentEvent, batch: &EventBatch) {
        let key = fingerprint(&(f.src, f.dst, f.ident));
        let (datagram, dropped) =
            self.fragments
                .add(key, f.ts, f.offset, f.more, batch.payload_of(f.payload));
        self.tally.reassembly_dropped += dropped;
        let Some(datagram) = datagram else { return };
        match crate::wire::udp::parse(&datagram) {
            Ok(u) if u.src_port == 53 || u.dst_port == 53 => {
                self.dns_message(f.ts, f.src, f.dst, u.src_port, u.dst_port, u.payload);
            }
            Ok(_) => {}
            Err(_) => self.counters.bad_ip += 1,
        }
    }

    /// A DNS message put back together here rather than in a worker.
    fn dns_message(&mut self, ts: u64, src: Addr, dst: Addr, sport: u16, dport: u16, bytes: &[u8]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.counters.dns_messages += 1;
        let packet = crate::dissect::DnsPacket {
            ts,
            src,
            dst,
            sport,
            dport,
            bytes,
        };
        match crate::dissect::dns_event(&packet, &mut scratch) {
            Ok(Some(Dns::Query(i))) => {
                if let Some(q) = scratch.dns.get(i as usize) {
                    self.query(q, &scratch);
                }
            }
            Ok(Some(Dns::Response(i))) => {
                if let Some(r) = scratch.dns.get(i as usize) {
                    self.response(r, &scratch);
                }
            }
            Ok(None) => self.counters.dns_ignored += 1,
            Err(_) => self.counters.dns_malformed += 1,
        }
        self.scratch = scratch;
    }

    /// A query put back together here (DNS over TCP, fragments): the
    /// filter is checked here rather than by a worker.
    fn query(&mut self, q: &DnsEvent, batch: &EventBatch) {
        let name = batch.name(q.qname);
        let wanted = self.opts.filter.as_deref().is_none_or(|f| {
            crate::dissect::name_contains(name, f) || self.awaited_target(q.client, q.qname_hash)
        });
        if wanted {
            self.pending_query(q.ts, q.key, q.qname_hash, q.qtype);
        } else {
            self.tally.queries_filtered += 1;
        }
    }

    fn pending_query(&mut self, ts: u64, key: u64, name_hash: u64, qtype: u16) {
        self.tally.queries += 1;
        self.tally.pending_expired += self.pending.advance(ts);
        let pending = Pending { name_hash, qtype, ts };
        self.tally.pending_evicted += self.pending.insert(key, pending);
    }

    /// `-F` lets through an SRV target this client still has to resolve
    /// for a tracked SRV name.
    fn awaited_target(&self, client: Addr, name_hash: u64) -> bool {
        self.awaited_index(service_hash(&client, name_hash), client, name_hash)
            .is_some()
    }

    /// The entry of `awaited` for (client, target name), by its
    /// [`service_hash`] `key`.
    fn awaited_index(&self, key: u64, client: Addr, name_hash: u64) -> Option<usize> {
        let awaited = &self.awaited;
        self.srv_targets
            .get(key, |&i| {
                awaited
                    .get(i as usize)
                    .is_some_and(|a| a.name_hash == name_hash && a.client == client)
            })
            .map(|&i| i as usize)
    }

    fn response(&mut self, r: &DnsEvent, batch: &EventBatch) {
        let Some(pending) = self
            .pending
            .take_if(r.key, |p| p.qtype == r.qtype && p.name_hash == r.qname_hash)
        else {
            self.tally.responses_unmatched += 1;
            return;
        };
        self.matched_response(pending.ts, r, batch);
    }

    /// A response paired with its query by a worker ([`Event::Lookup`]):
    /// the query is applied first, as [`Aggregator::pending_query`] would
    /// have applied it, and taken back at once, as the response would
    /// have taken it.
    fn lookup(&mut self, query_ts: u64, r: &DnsEvent, batch: &EventBatch) {
        self.tally.queries += 1;
        self.tally.pending_expired += self.pending.advance(query_ts);
        self.tally.pending_evicted += self.pending.insert_taken(r.key);
        self.matched_response(query_ts, r, batch);
    }

    /// A response that took its pending query, sent at `query_ts`.
    fn matched_response(&mut self, query_ts: u64, r: &DnsEvent, batch: &EventBatch) {
        if r.ts.saturating_sub(query_ts) > QUERY_TIMEOUT {
            self.tally.responses_late += 1;
            return;
        }
        self.tally.responses_matched += 1;
        self.response_serial += 1;
        let kind = if r.qtype == TYPE_SRV {
            Kind::Srv
        } else {
            Kind::Address
        };
        let service = match self.find_service(r) {
            Ok(id) => {
                if kind == Kind::Srv
                    && let Some(s) = self.services.get_mut(id as usize)
                {
                    s.kind = Kind::Srv;
                }
                id
            }
            Err(vacant) => self.new_service(r, batch.name(r.qname), kind, vacant),
        };
        self.note_lookup(service, r.ttl, r.ts);
        let found = batch.backends_of(r);
        if kind == Kind::Srv {
            self.srv_response(r, service, found);
        } else {
            self.address_response(r, service, found);
        }
    }

    /// The existing service of the response's (client, name), or where
    /// in the index a new one goes.
    fn find_service(&self, r: &DnsEvent) -> Result<u32, Vacant> {
        self.service_index
            .get_or_vacant(r.service, |&id| {
                // The index keeps 31 bits of the service hash, which
                // covers the client: the entry has all of it, and the
                // name is checked by its hash too (a second, independent
                // 64 bits).
                self.services
                    .get(id as usize)
                    .is_some_and(|s| s.key == r.service && s.name_hash == r.qname_hash)
            })
            .copied()
    }

    /// A service for a (client, name) seen for the first time, within the
    /// caps, indexed at `vacant`; [`NONE`] when the table or the client's
    /// quota is full (the response still feeds SRV services waiting for
    /// the name).
    fn new_service(&mut self, r: &DnsEvent, qname: &[u8], kind: Kind, vacant: Vacant) -> u32 {
        let slot = self.client_slot(r.client);
        let used = self.usage.get(slot as usize).map_or(0, |u| u.services);
        if self.services.len() >= self.opts.max_services || used >= self.opts.max_services_per_client {
            self.tally.tables_full += 1;
            return NONE;
        }
        let name = self.names.intern_hashed(qname, r.qname_hash);
        if let Some(u) = self.usage.get_mut(slot as usize) {
            u.services += 1;
        }
        let id = self.services.len() as u32;
        push_huge(
            &mut self.services,
            Service {
                key: r.service,
                name_hash: r.qname_hash,
                lookups: 0,
                early_relookups: 0,
                ttl_min: None,
                answer_expires: 0,
                first_backend: NONE,
                last_backend: NONE,
                backend_count: 0,
                client_slot: slot,
                name,
                kind,
            },
        );
        self.service_index.insert_vacant(vacant, r.service, id);
        id
    }

    /// The client's entry in `usage`, created if new.
    fn client_slot(&mut self, client: Addr) -> u32 {
        let hash = fingerprint(&client);
        let vacant = match self.clients.get_or_vacant(hash, |c| c.addr == client) {
            Ok(c) => return c.slot,
            Err(vacant) => vacant,
        };
        let slot = self.usage.len() as u32;
        self.usage.push(Usage::default());
        self.client_addrs.push(client);
        self.clients
            .insert_vacant(vacant, hash, ClientSlot { addr: client, slot });
        slot
    }

    fn address_response(&mut self, r: &DnsEvent, service: u32, found: &[Found]) {
        let expires = expiry(r.ts, r.ttl);
        let mut next = self.first_backend_of(service);
        for f in found {
            if let &Found::Backend { addr, pair, key, .. } = f {
                self.add_backend(&mut next, service, key, addr, pair, None, expires);
            }
        }
        // SRV services waiting for this target's addresses: they become
        // backends of the SRV name, with the SRV ports.
        if self.srv_targets.is_empty() {
            return;
        }
        // The response's service hash is that of (client, target name).
        let Some(index) = self.awaited_index(r.service, r.client, r.qname_hash) else {
            return;
        };
        for w in 0.. {
            let Some(&(srv_service, srv)) = self.awaited.get(index).and_then(|a| a.waiting.get(w)) else {
                break;
            };
            // The SRV service is this client's own (targets are awaited
            // per client).
            let Some(hash) = self
                .services
                .get(srv_service as usize)
                .map(|s| service_hash(&r.client, s.name_hash))
            else {
                continue;
            };
            let mut next = self.first_backend_of(srv_service);
            for f in found {
                if let &Found::Backend { addr, pair, .. } = f {
                    let key = backend_hash(hash, pair);
                    self.add_backend(&mut next, srv_service, key, addr, pair, Some(srv), expires);
                }
            }
        }
    }

    fn srv_response(&mut self, r: &DnsEvent, service: u32, found: &[Found]) {
        let expires = expiry(r.ts, r.ttl);
        let mut next = self.first_backend_of(service);
        for f in found {
            match *f {
                Found::Backend { addr, pair, key, srv } => {
                    self.add_backend(&mut next, service, key, addr, pair, srv, expires);
                }
                Found::Target { hash, srv, .. } if service != NONE => {
                    self.remember_target(r.client, service, hash, srv);
                }
                Found::Target { .. } => {}
            }
        }
    }

    /// An SRV target that came without an address: a later lookup of it by
    /// the same client gives the SRV service its backends.
    fn remember_target(&mut self, client: Addr, service: u32, name_hash: u64, srv: Srv) {
        let slot = self
            .services
            .get(service as usize)
            .map_or(NONE, |s| s.client_slot);
        let used = self.usage.get(slot as usize).map_or(0, |u| u.srv_targets);
        let quota = self.opts.max_srv_targets_per_client;
        if self.srv_targets.len() >= self.opts.max_srv_targets || used >= quota {
            self.tally.srv_targets_evicted += 1;
            return;
        }
        let key = service_hash(&client, name_hash);
        let index = match self.awaited_index(key, client, name_hash) {
            Some(index) => index,
            None => {
                if let Some(u) = self.usage.get_mut(slot as usize) {
                    u.srv_targets += 1;
                }
                self.srv_targets.insert_new(key, self.awaited.len() as u32);
                self.awaited.push(Awaited {
                    client,
                    name_hash,
                    waiting: Waiting::default(),
                });
                prefault::after_push(&mut self.awaited);
                self.awaited.len() - 1
            }
        };
        if let Some(a) = self.awaited.get_mut(index)
            && !a.waiting.contains(&(service, srv))
            && a.waiting.len() < MAX_SRV_PORTS
        {
            a.waiting.push((service, srv));
        }
    }

    fn note_lookup(&mut self, service: u32, ttl: Option<u32>, ts: u64) {
        if let Some(s) = self.services.get_mut(service as usize) {
            s.lookups += 1;
            if let Some(t) = ttl {
                s.ttl_min = Some(s.ttl_min.map_or(t, |m| m.min(t)));
            }
            if ts < s.answer_expires {
                s.early_relookups += 1;
            }
            s.answer_expires = expiry(ts, ttl);
        }
    }

    /// One connection to `backend` on `port` at `ts`.
    fn count_connection(&mut self, backend: u32, port: u16, ts: u64) {
        let Some(b) = self.backends.get_mut(backend as usize) else {
            return;
        };
        if b.conns == 0 || b.port == port {
            b.port = port;
            b.conns += 1;
        } else if let Some(n) = self.more_conns.get_mut(&(backend, port)) {
            *n += 1;
        } else if self.more_conns.len() >= self.opts.max_conn_counts {
            self.tally.tables_full += 1;
            return;
        } else {
            self.more_conns.insert((backend, port), 1);
        }
        b.stale_conns += u32::from(ts > b.expires);
    }

    /// (backend, port, connections) on the ports other than each
    /// backend's first ([`Backend::first_port`]), in no particular order.
    pub fn more_connection_counts(&self) -> impl Iterator<Item = (u32, u16, u32)> + '_ {
        self.more_conns.iter().map(|(&(b, p), &n)| (b, p, n))
    }

    /// The first of a service's backends, in the order they were first
    /// seen ([`NONE`] for none): where [`Aggregator::add_backend`] looks
    /// for a response's first one.
    fn first_backend_of(&self, service: u32) -> u32 {
        self.services
            .get(service as usize)
            .map_or(NONE, |s| self.first_backend(s))
    }

    /// Counts `addr` as seen in this response under `service` (once per
    /// response), notes an SRV port, and binds the client to it. `key` is
    /// the backend's [`backend_hash`], `pair` the binding's hash.
    ///
    /// `next` walks the service's list beside the response: a response
    /// that gives the backends in the order they were first seen (the
    /// usual repeat) finds each as the one after the one before, without
    /// the index. The listed backend with the very key (and service) is
    /// the one the index would give, since the index never holds two
    /// backends of one service under one key; any other order probes the
    /// index, and the walk goes on after what it found.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn add_backend(
        &mut self,
        next: &mut u32,
        service: u32,
        key: u64,
        addr: Addr,
        pair: u64,
        srv: Option<Srv>,
        expires: u64,
    ) {
        let at = std::mem::replace(next, NONE);
        if service == NONE {
            return;
        }
        let backends = &self.backends;
        let listed = backends.get(at as usize).is_some_and(|b| b.is(service, pair));
        let found = if listed {
            Ok(at)
        } else {
            // The backend hash covers the service and the address; the
            // index keeps 31 bits of it, the entry what it is made of.
            self.backend_index
                .get_or_vacant(key, |&id| {
                    backends.get(id as usize).is_some_and(|b| b.is(service, pair))
                })
                .copied()
        };
        let id = match found {
            Ok(id) => id,
            Err(vacant) => {
                let id = self.new_backend(service, addr, pair);
                if id == NONE {
                    self.tally.tables_full += 1;
                    return;
                }
                self.backend_index.insert_vacant(vacant, key, id);
                id
            }
        };
        let serial = self.response_serial;
        let Some(b) = self.backends.get_mut(id as usize) else {
            return;
        };
        *next = b.next;
        let was_bound = std::mem::replace(&mut b.bound, true);
        if b.last_response != serial {
            b.last_response = serial;
            b.dns += 1;
        }
        b.expires = expires;
        let mut new_port = None;
        if let Some(srv) = srv {
            b.srv_priority = srv.priority;
            b.srv_weight = srv.weight;
            // A port the backend holds inline already (a repeat, the
            // usual case) needs no call to add it.
            if !b.holds_srv_port(srv.port) {
                new_port = Some(srv.port);
            }
        }
        // The client's binding to the address now names this backend.
        if !was_bound {
            let backends = &self.backends;
            let previous = match self
                .bindings
                .get_mut_or_vacant(pair, |&id| bound_at(backends, id, pair))
            {
                Ok(b) => std::mem::replace(b, id),
                Err(vacant) => {
                    self.bindings.insert_vacant(vacant, pair, id);
                    NONE
                }
            };
            if previous != id
                && let Some(b) = self.backends.get_mut(previous as usize)
            {
                b.bound = false;
            }
        }
        if let Some(port) = new_port {
            self.add_srv_port(id, port);
        }
    }

    /// A new backend of `service` at `addr`, linked at the end of the
    /// service's list; [`NONE`] when the table is full.
    fn new_backend(&mut self, service: u32, addr: Addr, pair: u64) -> u32 {
        if self.backends.len() >= self.opts.max_backends {
            return NONE;
        }
        let Some(s) = self.services.get_mut(service as usize) else {
            return NONE;
        };
        let id = self.backends.len() as u32;
        let client_slot = s.client_slot;
        let previous = s.last_backend;
        s.last_backend = id;
        if s.first_backend == NONE {
            s.first_backend = id;
        }
        s.backend_count += 1;
        if let Some(b) = self.backends.get_mut(previous as usize) {
            b.next = id;
        }
        push_huge(&mut self.backends, Backend::new(service, client_slot, pair));
        self.backend_addrs.push(addr);
        prefault::after_push(&mut self.backend_addrs);
        id
    }

    /// Notes an SRV `port` of backend `id`: inline while there is room,
    /// beside it after that.
    fn add_srv_port(&mut self, id: u32, port: u16) {
        let Some(b) = self.backends.get_mut(id as usize) else {
            return;
        };
        if b.holds_srv_port(port) {
            return;
        }
        let count = usize::from(b.srv_port_count);
        if let Some(slot) = b.srv_ports.get_mut(count) {
            *slot = port;
            b.srv_port_count += 1;
            return;
        }
        let more = self.more_srv_ports.entry(id).or_default();
        if !more.contains(&port) && more.len() + INLINE_SRV_PORTS < MAX_SRV_PORTS {
            more.push(port);
        }
    }

    /// The ports SRV records gave backend `id`.
    pub fn srv_ports(&self, id: u32) -> impl Iterator<Item = u16> + '_ {
        let inline = self
            .backends
            .get(id as usize)
            .map(|b| b.srv_ports.get(..usize::from(b.srv_port_count)).unwrap_or(&[]))
            .unwrap_or(&[]);
        inline
            .iter()
            .copied()
            .chain(self.more_srv_ports.get(&id).into_iter().flatten().copied())
    }

    /// The address of backend `id`.
    pub fn backend_addr(&self, id: u32) -> Addr {
        self.backend_addrs
            .get(id as usize)
            .copied()
            .unwrap_or(Addr::V4([0; 4]))
    }

    /// Every client's address, by client slot.
    pub fn client_addrs(&self) -> &[Addr] {
        &self.client_addrs
    }

    /// The slot of a service's client (an index of [`Aggregator::client_addrs`]).
    pub fn client_slot_of(&self, service: &Service) -> u32 {
        service.client_slot
    }

    /// The client of a service.
    pub fn client_of(&self, service: &Service) -> Addr {
        self.client_addrs
            .get(service.client_slot as usize)
            .copied()
            .unwrap_or(Addr::V4([0; 4]))
    }

    /// A service's first backend, [`NONE`] if it has none.
    pub fn first_backend(&self, service: &Service) -> u32 {
        service.first_backend
    }

    /// Starts loading a backend and its address (output walks many).
    pub fn prefetch_backend(&self, id: u32) {
        if let Some(b) = self.backends.get(id as usize) {
            prefetch(b);
        }
        if let Some(a) = self.backend_addrs.get(id as usize) {
            prefetch(a);
        }
    }

    /// A service's backends (id and backend), in the order first seen.
    pub fn backends_of(&self, service: &Service) -> BackendsOf<'_> {
        BackendsOf {
            backends: &self.backends,
            next: service.first_backend,
        }
    }

    /// Default mode: a SYN (ACK, RST, FIN clear) to a bound address. Only
    /// SYNs to bound addresses are remembered for retransmission checks: a
    /// retransmitted SYN nobody could attribute is simply unattributed again.
    fn syn(&mut self, ts: u64, forward: u64, syn_key: u64, dst_port: u16) {
        let Some(backend) = binding(&self.bindings, &self.backends, forward) else {
            self.tally.syns_unattributed += 1;
            return;
        };
        if Self::retransmitted(&mut self.recent_syns, &mut self.tally, ts, syn_key) {
            return;
        }
        self.count_connection(backend, dst_port, ts);
        self.tally.syns_counted += 1;
    }

    /// Whether this SYN repeats one (same 4-tuple and ISN) seen within the
    /// retransmission window, counted as a retransmission; if not, it is
    /// remembered. Over the two fields it touches, so that it can be
    /// asked while a connection of the table is held.
    fn retransmitted(recent_syns: &mut SynCache, tally: &mut Tally, ts: u64, syn_key: u64) -> bool {
        let (seen, evicted) = recent_syns.check_and_note(syn_key, ts / SECOND);
        tally.syn_table_evicted += evicted;
        tally.syns_retransmitted += u64::from(seen);
        seen
    }

    /// Whether the followers of the batch's segment groups may be applied
    /// with their leads (see [`SegmentGroup`]). A follower of a
    /// connection counted or closed does only two things to it: it sets
    /// the connection's time, and a FIN or RST closes it. Those are read
    /// by nothing but the sweeps of idle and closed connections (and by
    /// the connection's own later segments: its followers, up to a second
    /// SYN, which stays on its own with all that comes after it in the
    /// batch). So the followers can be
    /// applied early when no sweep can fall in the batch: the periodic
    /// one runs at the first segment at or past `next_sweep`, and the one
    /// of a full table only when the table is full, which the batch's
    /// segments (those in runs too), one new connection each at most,
    /// cannot make it.
    fn may_fold(&self, batch: &EventBatch) -> bool {
        !batch.groups.is_empty()
            && batch.segment_max_ts < self.next_sweep
            && self
                .connections
                .len()
                .saturating_add(batch.segments.len() + batch.run_segments.len())
                < self.opts.max_connections
    }

    /// What a group's followers do to a connection counted or closed.
    fn fold_followers(c: &mut Connection, g: &SegmentGroup) -> bool {
        if c.state & (COUNTED | CLOSED) == 0 {
            return false;
        }
        if g.followers > 0 {
            c.last_secs = (g.last_ts / SECOND) as u32;
            if g.closing {
                c.state |= CLOSED;
            }
        }
        true
    }

    /// `-a`: the first segment of a connection seen while its client is
    /// bound to its backend counts it, once. `key` and `flags` come inline
    /// in the event; the segment's record `t` is read only for a SYN, and
    /// for a connection that is new or not counted yet. With `lead`
    /// (the segment leads that group, and [`Aggregator::may_fold`]
    /// allows it), the group's followers are applied here too if the
    /// connection is then counted or closed; whether they were.
    fn segment(
        &mut self,
        ts: u64,
        key: u64,
        flags: u8,
        t: Option<&Segment>,
        lead: Option<&SegmentGroup>,
    ) -> bool {
        self.sweep_connections(ts);
        let is_syn = is_pure_syn(flags);
        let closing = flags & (FIN | RST) != 0;
        let secs = (ts / SECOND) as u32;
        // Which backend (and port) the segment is for: looked up only when
        // the connection is new or not counted yet, not for every segment.
        let (bindings, backends) = (&self.bindings, &self.backends);
        if let Some(c) = self.connections.get_mut(key, |_| true) {
            c.last_secs = secs;
            let mut counts = None;
            'applied: {
                if is_syn {
                    let Some(t) = t else { break 'applied };
                    if Self::retransmitted(&mut self.recent_syns, &mut self.tally, ts, t.syn_key) {
                        break 'applied;
                    }
                    if c.state & CLOSED != 0 {
                        // A new connection on the 4-tuple of a closed one.
                        *c = Connection::new(c.client_slot(), secs, 0);
                    }
                }
                if c.state & CLOSED != 0 {
                    break 'applied;
                }
                if closing {
                    c.state |= CLOSED;
                }
                if c.state & COUNTED != 0 {
                    break 'applied;
                }
                counts = t.and_then(|t| attribute(bindings, backends, t));
                if counts.is_some() {
                    c.state |= COUNTED;
                }
            }
            let folded = lead.is_some_and(|g| Self::fold_followers(c, g));
            if let Some((backend, port)) = counts {
                self.count_connection(backend, port, ts);
                self.tally.conns_counted += 1;
            }
            return folded;
        }
        let Some(t) = t else { return false };
        let Some((backend, port)) = attribute(&self.bindings, &self.backends, t) else {
            return false;
        };
        // A slot past what a connection holds counts against no quota,
        // here as when the connection is forgotten.
        let client_slot = self
            .backends
            .get(backend as usize)
            .map_or(CLIENT_NONE, |b| b.client_slot.min(CLIENT_NONE));
        // Untracked SYNs are remembered here, so that a retransmission is
        // not a new connection even when the table is full.
        if is_syn && Self::retransmitted(&mut self.recent_syns, &mut self.tally, ts, t.syn_key) {
            return false;
        }
        let tracked = self.room_for_connection(client_slot, ts);
        if !tracked && !is_syn {
            // With no room to follow it, a first-seen mid-stream segment
            // cannot be told from a later segment of a connection already
            // counted: not counting it is the smaller error.
            self.tally.conns_evicted += 1;
            return false;
        }
        self.count_connection(backend, port, ts);
        self.tally.conns_counted += 1;
        if !tracked {
            self.tally.conns_evicted += 1;
            return false;
        }
        if let Some(u) = self.usage.get_mut(client_slot as usize) {
            u.connections += 1;
        }
        let mut c = Connection::new(client_slot, secs, COUNTED | if closing { CLOSED } else { 0 });
        let folded = lead.is_some_and(|g| Self::fold_followers(&mut c, g));
        self.connections.insert_new(key, c);
        folded
    }

    /// Whether one more connection of the client may be followed: within
    /// the global table (swept at most once a second of capture time when
    /// full, so that a flood cannot make every segment scan it) and the
    /// client's quota.
    fn room_for_connection(&mut self, client_slot: u32, ts: u64) -> bool {
        if self.connections.len() >= self.opts.max_connections && ts >= self.next_full_sweep {
            self.next_full_sweep = ts.saturating_add(SECOND);
            let now = (ts / SECOND) as u32;
            let idle = (self.opts.idle_timeout / SECOND) as u32;
            self.expire_connections(|c| (c.state & CLOSED != 0) | (now.saturating_sub(c.last_secs) > idle));
        }
        let used = self.usage.get(client_slot as usize).map_or(0, |u| u.connections);
        self.connections.len() < self.opts.max_connections && used < self.opts.max_connections_per_client
    }

    fn sweep_connections(&mut self, now: u64) {
        if now < self.next_sweep {
            return;
        }
        let idle = (self.opts.idle_timeout / SECOND) as u32;
        let linger = idle.min(CLOSED_LINGER_SECS);
        let secs = (now / SECOND) as u32;
        // A closed connection is kept only long enough to recognise its
        // last ACK or a retransmitted FIN.
        self.expire_connections(|c| {
            let limit = if c.state & CLOSED != 0 { linger } else { idle };
            secs.saturating_sub(c.last_secs) > limit
        });
        self.next_sweep = now.saturating_add((self.opts.idle_timeout / 4).clamp(SECOND, 5 * SECOND));
    }

    /// Forgets the followed connections `expired` says yes to (a test
    /// of the connection alone: [`FpTable::remove_where`]), giving each
    /// back to its client's quota.
    fn expire_connections(&mut self, expired: impl Fn(&Connection) -> bool) {
        let before = self.connections.len();
        let usage = &mut self.usage;
        self.connections.remove_where(expired, |c| {
            if let Some(u) = usage.get_mut(c.client_slot() as usize) {
                u.connections = u.connections.saturating_sub(1);
            }
        });
        self.tally.conns_expired += (before - self.connections.len()) as u64;
    }

    /// Whether a (client, name) is reported (SPEC §4).
    pub fn reported(&self, s: &Service) -> bool {
        s.kind == Kind::Srv || s.backend_count >= 2 || self.opts.all_names
    }
}

/// Iterates over one service's backends.
pub struct BackendsOf<'a> {
    backends: &'a [Backend],
    next: u32,
}

impl<'a> Iterator for BackendsOf<'a> {
    type Item = (u32, &'a Backend);

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.next;
        let b = self.backends.get(id as usize)?;
        self.next = b.next;
        Some((id, b))
    }
}

/// A SYN with ACK, RST and FIN clear: a connection's first segment.
#[inline(always)]
fn is_pure_syn(flags: u8) -> bool {
    flags & (SYN | ACK | RST | FIN) == SYN
}

/// The backend and port of a segment in either direction: its source bound
/// to its destination, or the other way round.
fn attribute(bindings: &FpTable<u32, u32>, backends: &[Backend], t: &Segment) -> Option<(u32, u16)> {
    if let Some(b) = binding(bindings, backends, t.forward) {
        return Some((b, t.dst_port));
    }
    binding(bindings, backends, t.reverse).map(|b| (b, t.src_port))
}

/// The backend bound at `pair` (the hash of a client and an address).
#[inline]
fn binding(bindings: &FpTable<u32, u32>, backends: &[Backend], pair: u64) -> Option<u32> {
    bindings.get(pair, |&id| bound_at(backends, id, pair)).copied()
}

/// Whether backend `id` is of the client and address whose pair hash is
/// `pair`: the check of a match under the bindings' short tags (the
/// backend's line is the one a binding leads to anyway).
#[inline]
fn bound_at(backends: &[Backend], id: u32, pair: u64) -> bool {
    backends.get(id as usize).is_some_and(|b| b.pair == pair)
}

/// When a TTL that starts at `ts` runs out (0 seconds without one).
fn expiry(ts: u64, ttl: Option<u32>) -> u64 {
    ts.saturating_add(u64::from(ttl.unwrap_or(0)) * SECOND)
}

#[cfg(test)]
mod layout {
    #[test]
    fn hot_structs_fill_one_cache_line() {
        assert_eq!(size_of::<super::Service>(), 64);
        assert_eq!(size_of::<super::Backend>(), 64);
    }

    /// A followed `-a` connection is 8 bytes: with its 8-byte key, four
    /// slots of the connection table to a cache line.
    #[test]
    fn a_connection_is_eight_bytes() {
        assert_eq!(size_of::<super::Connection>(), 8);
    }
}

#[cfg(test)]
mod bindings {
    use super::{Backend, FpTable, Segment, attribute, binding};

    /// A binding found under the bindings' short tags is the backend of
    /// its own pair: two pairs whose stored bits agree each find their
    /// own backend, and a pair not bound finds none, where the tags alone
    /// would have answered with the other's.
    #[test]
    fn bindings_that_share_a_tag_are_told_apart_by_their_backends() {
        let backend = |pair: u64| Backend::new(0, 0, pair);
        // The same upper 32 bits: the same tag and the same home slot.
        let (a, b) = (0x5A5A_1234_0000_0001u64, 0x5A5A_1234_FFFF_0002u64);
        let backends = [backend(a), backend(b)];
        let mut bindings: FpTable<u32, u32> = FpTable::default();
        bindings.insert_new(a, 0);
        assert_eq!(binding(&bindings, &backends, a), Some(0));
        assert_eq!(binding(&bindings, &backends, b), None, "a's tag, not a's pair");
        bindings.insert_new(b, 1);
        assert_eq!(binding(&bindings, &backends, a), Some(0));
        assert_eq!(binding(&bindings, &backends, b), Some(1));
        let segment = Segment {
            forward: 0x0BAD,
            reverse: b,
            syn_key: 0,
            src_port: 443,
            dst_port: 50_000,
            run_start: 0,
        };
        assert_eq!(attribute(&bindings, &backends, &segment), Some((1, 443)));
    }
}

/// `-a` segment groups ([`SegmentGroup`]): applying a group's followers
/// with its lead leaves every table and counter as applying each
/// follower in its place does.
#[cfg(test)]
mod grouping {
    use super::*;
    use crate::capture::RecordMeta;
    use crate::dissect::Dissector;
    use crate::event::{NO_GROUP, RunSegment};
    use crate::generate::Rng;
    use crate::synth::{Rr, Script};
    use crate::wire::tcp::{ACK, FIN, RST, SYN};

    const PSH: u8 = 0x08;

    fn frame_all(bytes: &[u8]) -> Vec<RecordMeta> {
        let mut metas = Vec::new();
        assert!(crate::capture::frame_all(bytes, &mut metas), "a capture");
        metas
    }

    /// A `-a` worker's dissector, segments grouped.
    fn segments_dissector() -> Dissector {
        Dissector {
            all_segments: true,
            ..Dissector::default()
        }
    }

    const CLIENT_OCTETS: [[u8; 4]; 2] = [[10, 1, 0, 1], [10, 1, 0, 2]];
    const CLIENTS: [Addr; 2] = [Addr::V4(CLIENT_OCTETS[0]), Addr::V4(CLIENT_OCTETS[1])];
    const BACKENDS: [[u8; 4]; 3] = [[10, 2, 0, 1], [10, 2, 0, 2], [10, 2, 0, 3]];

    /// A random `-a` capture: lookups binding the clients to the
    /// backends (and some backends to the clients, so that which way a
    /// segment goes decides which binding counts it), and the segments of
    /// a few 4-tuples in either direction, with SYNs (some repeated),
    /// FINs, RSTs and waits long enough for connections to go idle.
    fn capture(rng: &mut Rng) -> Script {
        let mut s = Script::default();
        // Some captures busy (batches of a fraction of a second), some slow.
        let (idle_waits, pause_ms) = [(5, 200), (40, 3000)][rng.below(2) as usize];
        for _ in 0..600 {
            let client = CLIENTS[rng.below(2) as usize];
            let roll = rng.below(100);
            if roll < 8 {
                let name = if rng.percent(50) { "a.test" } else { "b.test" };
                let first = rng.below(3) as usize;
                let answers: Vec<Rr> = (0..=rng.below(3) as usize)
                    .map(|k| Rr::A(name.into(), BACKENDS[(first + k) % 3], rng.below(120) as u32))
                    .collect();
                s.lookup(client, name, crate::wire::dns::TYPE_A, &answers, &[]);
                continue;
            }
            if roll < 10 {
                let backend = Addr::V4(BACKENDS[rng.below(3) as usize]);
                let answers = [Rr::A("c.test".into(), CLIENT_OCTETS[rng.below(2) as usize], 60)];
                s.lookup(backend, "c.test", crate::wire::dns::TYPE_A, &answers, &[]);
                continue;
            }
            if roll < 11 {
                if rng.percent(idle_waits) {
                    s.wait_ms(1000 * rng.below(400));
                }
                continue;
            }
            let backend = Addr::V4(BACKENDS[rng.below(3) as usize]);
            let sport = 40_000 + rng.below(3) as u16;
            let port = if rng.percent(70) { 80 } else { 443 };
            // Now and then a burst of the connection's segments one after
            // another, as a stream's come (followers in runs).
            let burst = if rng.percent(30) { 2 + rng.below(6) } else { 1 };
            for _ in 0..burst {
                let flags = match rng.below(12) {
                    0 | 1 => SYN,
                    2 => SYN | ACK,
                    3 => FIN | ACK,
                    4 => RST,
                    5 => ACK | PSH,
                    _ => ACK,
                };
                let seq = rng.below(2) as u32;
                if rng.percent(60) {
                    s.segment(client, backend, sport, port, seq, flags);
                } else {
                    s.segment(backend, client, port, sport, seq, flags);
                }
                if rng.percent(5) {
                    s.wait_ms(rng.below(pause_ms));
                }
            }
        }
        s
    }

    /// The connection table as (key, state), in key order.
    fn connections(agg: &Aggregator) -> Vec<(u64, u32, u32, u32)> {
        let mut v: Vec<_> = agg
            .connections
            .iter()
            .map(|(k, c)| (k, c.client_slot(), c.state & !CLIENT_NONE, c.last_secs))
            .collect();
        v.sort_unstable();
        v
    }

    fn summary(agg: &Aggregator) -> String {
        let mut out = Vec::new();
        crate::output::write_summary_tsv(agg, &mut out).expect("into memory");
        String::from_utf8(out).expect("text")
    }

    /// A mapped run's tables grow to the size their growth so far points
    /// to (`plan_growth`), a pipe's double: the same capture, wide (every
    /// lookup a new service), gives the same summary and counts either
    /// way, in batches of any size, and the plan was made.
    #[test]
    fn planned_growth_changes_nothing_but_the_tables_sizes() {
        let work = crate::generate::Workload {
            clients: 60,
            services: 50,
            connections: 12_000,
            lookup_every: 1_000_000,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        crate::generate::generate(&work, &mut bytes).expect("into memory");
        let metas = frame_all(&bytes);
        let dissector = Dissector::default();
        for chunk in [64usize, 4096] {
            let mut planned = Aggregator::new(Options::default());
            planned.expect_capture(bytes.len() as u64);
            let mut doubled = Aggregator::new(Options::default());
            for part in metas.chunks(chunk) {
                let mut batch = EventBatch::default();
                crate::pipeline::dissect_records(&dissector, &bytes, part, &mut batch);
                batch.end_offset = part.last().map_or(0, RecordMeta::end);
                planned.apply(&batch);
                doubled.apply(&batch);
            }
            assert!(
                planned.services.len() > 2000,
                "{} services",
                planned.services.len()
            );
            assert_eq!(summary(&planned), summary(&doubled));
            assert_eq!(planned.counters, doubled.counters);
            assert_eq!(planned.tally, doubled.tally);
            // The services came at an even pace: the plan foresaw them.
            let expected = planned.service_index.expected();
            let held = planned.service_index.len();
            assert!(
                expected >= held && expected < held + held / 4,
                "{expected} for {held}"
            );
            assert_eq!(doubled.service_index.expected(), 0);
            // Not freed: the planned tables' room, populated, would go back
            // to the allocator, which could hand it to the test that checks
            // fresh room is not populated early (tests share a process).
            std::mem::forget(planned);
        }
    }

    #[test]
    fn followers_applied_with_their_lead_change_nothing() {
        let (mut followers, mut folded, mut in_runs, mut runs_one_by_one) = (0, 0, 0, 0);
        for seed in 0..120u64 {
            let mut rng = Rng::new(seed);
            let s = capture(&mut rng);
            let bytes = s.bytes();
            let metas = frame_all(bytes);
            let options = Options {
                all_segments: true,
                idle_timeout: [5, 30, 300][rng.below(3) as usize] * SECOND,
                max_connections: [3, 450_000, 450_000][rng.below(3) as usize],
                max_connections_per_client: [1, 100_000][rng.below(2) as usize],
                ..Options::default()
            };
            let dissector = |group_segments| Dissector {
                all_segments: true,
                group_segments,
                ..Dissector::default()
            };
            let (grouped, alone) = (dissector(true), dissector(false));
            let mut a = Aggregator::new(options.clone());
            let mut b = Aggregator::new(options.clone());
            let mut at = 0;
            let (mut x, mut y) = (EventBatch::default(), EventBatch::default());
            while at < metas.len() {
                let n = (1 + rng.below(200) as usize).min(metas.len() - at);
                let part = &metas[at..at + n];
                at += n;
                x.clear();
                y.clear();
                crate::pipeline::dissect_records(&grouped, bytes, part, &mut x);
                crate::pipeline::dissect_records(&alone, bytes, part, &mut y);
                assert!(
                    y.events
                        .iter()
                        .all(|e| !matches!(e, Event::Segment { group, .. } if *group != NO_GROUP))
                );
                assert!(y.run_segments.is_empty());
                followers += x
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Segment { follower: true, .. }))
                    .count();
                in_runs += x.run_segments.len();
                if !a.may_fold(&x) {
                    runs_one_by_one += x.run_segments.len();
                }
                a.apply(&x);
                folded += (a.folded.iter().enumerate())
                    .filter(|(_, f)| **f)
                    .filter_map(|(g, _)| x.groups.group(g as u32))
                    .map(|g| g.followers as usize)
                    .sum::<usize>();
                b.apply(&y);
                assert_eq!(a.tally, b.tally, "seed {seed}, {at} records");
                assert_eq!(connections(&a), connections(&b), "seed {seed}, {at} records");
                assert_eq!(summary(&a), summary(&b), "seed {seed}, {at} records");
            }
        }
        // The test means something only if groups were applied together,
        // and followers came both in runs and as events of their own.
        assert!(followers > 10_000, "{followers} followers as events");
        assert!(in_runs > 20_000, "{in_runs} followers in runs");
        assert!(
            runs_one_by_one > 2_000,
            "{runs_one_by_one} of {in_runs} in runs of batches that applied them one by one"
        );
        assert!(
            folded > 3_000,
            "{folded} of {followers} followers applied with their lead"
        );
    }

    /// A new `-a` connection is charged to the client of the backend it
    /// reached (each backend keeps its service's client): the quota and
    /// the count of followed connections are that client's, whichever
    /// clients came first.
    #[test]
    fn a_new_connection_counts_against_its_own_clients_quota() {
        let (a, b) = (CLIENTS[0], CLIENTS[1]);
        let mut s = Script::default();
        // The second client is seen first, so that its slot is 0.
        let rr = |last: usize| [Rr::A("a.test".into(), BACKENDS[last], 60)];
        s.lookup(b, "a.test", crate::wire::dns::TYPE_A, &rr(1), &[]);
        s.lookup(a, "a.test", crate::wire::dns::TYPE_A, &rr(0), &[]);
        for sport in 40_000..40_003 {
            s.segment(a, Addr::V4(BACKENDS[0]), sport, 80, 1, SYN);
        }
        s.segment(b, Addr::V4(BACKENDS[1]), 41_000, 80, 1, SYN);
        let bytes = s.bytes();
        let mut batch = EventBatch::default();
        crate::pipeline::dissect_records(&segments_dissector(), bytes, &frame_all(bytes), &mut batch);
        let mut agg = Aggregator::new(Options {
            all_segments: true,
            max_connections_per_client: 2,
            ..Options::default()
        });
        agg.apply(&batch);
        let slot = |c: Addr| {
            agg.clients
                .get(fingerprint(&c), |s| s.addr == c)
                .map(|s| s.slot)
                .expect("a client")
        };
        let used = |c: Addr| agg.usage[slot(c) as usize].connections;
        assert_eq!((slot(b), slot(a)), (0, 1));
        // All four counted; the first client's third is past its quota of
        // two and not followed, the second client's one is.
        assert_eq!(agg.tally.conns_counted, 4);
        assert_eq!(agg.tally.conns_evicted, 1);
        assert_eq!((used(a), used(b)), (2, 1));
        let mut followed: Vec<u32> = connections(&agg).iter().map(|c| c.1).collect();
        followed.sort_unstable();
        assert_eq!(followed, [0, 1, 1]);
    }

    /// A connection's segments in one batch: one group, led by the first;
    /// a second SYN and what follows it stay on their own. What the
    /// followers leave is in the group; those that came right after a
    /// segment of their group are in its run.
    #[test]
    fn a_batch_groups_a_connection_up_to_a_second_syn() {
        let (c, b) = (CLIENTS[0], Addr::V4(BACKENDS[0]));
        let mut s = Script::default();
        s.segment(c, b, 40_000, 80, 1, SYN)
            .segment(b, c, 80, 40_000, 9, SYN | ACK)
            .segment(c, b, 40_000, 80, 2, ACK)
            .segment(c, b, 40_001, 80, 5, ACK)
            .segment(b, c, 80, 40_000, 10, FIN | ACK)
            .segment(c, b, 40_000, 80, 3, SYN)
            .segment(c, b, 40_000, 80, 4, ACK);
        let bytes = s.bytes();
        let metas = frame_all(bytes);
        let d = segments_dissector();
        let mut batch = EventBatch::default();
        // A new batch allocates its index at its first segment, which
        // stays on its own.
        crate::pipeline::dissect_records(&d, bytes, &metas[..1], &mut batch);
        assert!(matches!(
            batch.events[..],
            [Event::Segment { group: NO_GROUP, .. }]
        ));
        batch.clear();
        crate::pipeline::dissect_records(&d, bytes, &metas, &mut batch);
        let roles: Vec<(u32, bool, u16)> = batch
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Segment {
                    group, follower, run, ..
                } => Some((group, follower, run)),
                _ => None,
            })
            .collect();
        let (g, h) = (roles[0].0, roles[1].0);
        assert!(g != h && g != NO_GROUP && h != NO_GROUP);
        assert_eq!(
            roles,
            [
                (g, false, 2),
                (h, false, 0),
                (g, true, 0),
                (NO_GROUP, false, 0),
                (NO_GROUP, false, 0)
            ]
        );
        // The records' times.
        let ts: Vec<u64> = metas.iter().map(|m| m.ts).collect();
        assert_eq!(
            batch.run_segments,
            [
                RunSegment {
                    ts: ts[1],
                    flags: SYN | ACK,
                    reversed: true
                },
                RunSegment {
                    ts: ts[2],
                    flags: ACK,
                    reversed: false
                }
            ]
        );
        // Five segments of the seven: the runs have none of their own;
        // the run's head says where it starts.
        assert_eq!(batch.segments.len(), 5);
        assert_eq!(batch.segments[0].run_start, 0);
        let group = |last_ts, followers, closing| {
            Some(SegmentGroup {
                last_ts,
                followers,
                closing,
            })
        };
        assert_eq!(batch.groups.group(g), group(ts[4], 3, true));
        assert_eq!(batch.groups.group(h), group(ts[3], 0, false));
        assert_eq!(batch.segment_max_ts, ts[6]);
        // The next batch has none of them.
        batch.clear();
        assert_eq!(batch.groups.group(g), None);
        crate::pipeline::dissect_records(&d, bytes, &metas[2..3], &mut batch);
        assert!(matches!(
            batch.events[..],
            [Event::Segment { follower: false, .. }]
        ));
    }
}
