//! The one owner of connbal's tables: applies events in capture order.
//!
//! DNS: queries wait in a bounded table of pending queries; a matched
//! response binds its client to each backend address under the name the
//! client asked for (SPEC §4). TCP: a SYN (or, with `-a`, any segment of a
//! connection) from a client to an address it is bound to counts one
//! connection to that backend and port (SPEC §5).

use crate::addr::Addr;
use crate::event::{
    DnsEvent, Event, EventBatch, FragmentEvent, Record, RecordData, Section, Span, TcpDataEvent, TcpEvent,
};
use crate::intern::{Interner, Map, NameId};
use crate::reassembly::{Fragments, TcpStreams};
use crate::stats::{Counters, Tally};
use crate::table::{FingerprintMap, Generations, fingerprint};
use crate::wire::dns::{TYPE_SRV, presentation};
use crate::wire::tcp::{ACK, FIN, RST, SYN};

const SECOND: u64 = 1_000_000_000;
/// A query waits this long (capture time) for its response.
pub const QUERY_TIMEOUT: u64 = 10 * SECOND;
/// A SYN with the same 4-tuple and ISN within this window is a retransmission.
pub const SYN_RETRANSMIT_WINDOW: u64 = 120 * SECOND;
/// At most this many CNAME links are followed from the asked name.
pub const MAX_CNAME_LINKS: usize = 16;

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
    /// SYNs remembered for retransmission checks. Each generation holds
    /// half; 900k keeps a generation just under hashbrown's 512k-bucket
    /// boundary (about 9 MiB each).
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

/// One (client, asked name).
#[derive(Debug)]
pub struct Service {
    pub client: Addr,
    pub name: NameId,
    pub kind: Kind,
    /// Its backends, linked through [`Backend::next`] in the order they
    /// were first seen: no allocation per service.
    first_backend: u32,
    last_backend: u32,
    pub backend_count: u32,
    /// Matched responses.
    pub lookups: u32,
    pub ttl_min: Option<u32>,
    /// The latest matched response: (time, TTL in seconds).
    pub last_answer: Option<(u64, u32)>,
    /// Lookups made while the previous answer's TTL had not run out.
    pub early_relookups: u32,
    /// Connections counted for this name.
    pub conns: u64,
    /// Connections made after the TTL of the latest answer containing
    /// their backend had run out.
    pub stale_conns: u64,
}

/// One (client, name, address).
#[derive(Debug)]
pub struct Backend {
    pub service: u32,
    pub addr: Addr,
    /// Matched responses in which this address appeared.
    pub dns: u32,
    /// The next backend of the same service, or [`NONE`].
    next: u32,
    /// The first ports SRV records gave this address (more live in
    /// `Aggregator::more_srv_ports`).
    srv_ports: [u16; INLINE_SRV_PORTS],
    srv_port_count: u8,
    /// The latest SRV priority and weight given for this address.
    pub srv_priority: u16,
    pub srv_weight: u16,
    /// The response that last counted this backend (one count per response).
    last_response: u64,
    /// When the latest response containing it came, and its TTL.
    pub latest_ts: u64,
    pub latest_ttl: u32,
}

/// What an SRV record says of its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Srv {
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// At most this many SRV ports are kept per backend.
const MAX_SRV_PORTS: usize = 64;
const INLINE_SRV_PORTS: usize = 3;
/// The end of a list of backends.
const NONE: u32 = u32::MAX;

/// A query waiting for its response, under the fingerprint of
/// (client, server, client port, id).
#[derive(Clone, Copy, Debug)]
struct Pending {
    name_hash: u64,
    qtype: u16,
    ts: u64,
}

/// A directed (SYN table) or canonical (`-a` table) TCP 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FourTuple {
    a: Addr,
    b: Addr,
    a_port: u16,
    b_port: u16,
}

impl FourTuple {
    fn directed(ev: &TcpEvent) -> Self {
        FourTuple {
            a: ev.src,
            b: ev.dst,
            a_port: ev.src_port,
            b_port: ev.dst_port,
        }
    }

    fn canonical(ev: &TcpEvent) -> Self {
        if (ev.src, ev.src_port) <= (ev.dst, ev.dst_port) {
            Self::directed(ev)
        } else {
            FourTuple {
                a: ev.dst,
                b: ev.src,
                a_port: ev.dst_port,
                b_port: ev.src_port,
            }
        }
    }
}

/// A connection followed with `-a`, under the fingerprint of its
/// canonical 4-tuple: 32 bytes, times in whole seconds.
#[derive(Clone, Copy, Debug)]
struct Connection {
    /// Whose quota this connection counts against.
    client: Addr,
    isn: u32,
    syn_secs: u32,
    last_secs: u32,
    flags: u8,
}

/// How long a closed connection is remembered (seconds of capture time).
const CLOSED_LINGER_SECS: u32 = 10;

const HAS_ISN: u8 = 1;
const COUNTED: u8 = 2;
const CLOSED: u8 = 4;

/// What one client holds of the shared tables.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    services: u32,
    srv_targets: u32,
    connections: u32,
}

pub struct Aggregator {
    opts: Options,
    pub names: Interner,
    pending: Generations<Pending>,
    pub services: Vec<Service>,
    service_index: Map<(Addr, NameId), u32>,
    pub backends: Vec<Backend>,
    more_srv_ports: Map<u32, Vec<u16>>,
    backend_index: Map<(u32, Addr), u32>,
    /// Connections per (backend, port).
    pub conns: Map<(u32, u16), u32>,
    /// (client, address) -> the backend its latest response made it.
    bindings: Map<(Addr, Addr), u32>,
    /// SRV targets that came without an address: (client, target) -> the
    /// SRV services and ports waiting for the target's own lookup.
    srv_targets: Map<(Addr, NameId), Vec<(u32, Srv)>>,
    /// By name id: whether the name is an SRV target some client waits
    /// for, so that other A/AAAA responses skip the lookup.
    is_srv_target: Vec<bool>,
    /// SYNs to bound addresses: fingerprint of the 4-tuple -> (ISN, time
    /// in whole seconds): 16 bytes an entry.
    recent_syns: Generations<(u32, u32)>,
    connections: FingerprintMap<Connection>,
    next_sweep: u64,
    next_full_sweep: u64,
    usage: Map<Addr, Usage>,
    response_serial: u64,
    pub counters: Counters,
    pub tally: Tally,
    chain: Vec<Span>,
    found: Vec<(Addr, u32)>,
    tcp_streams: TcpStreams,
    fragments: Fragments,
    /// Scratch space for messages reassembled here.
    scratch: EventBatch,
    messages: Vec<Vec<u8>>,
}

impl Aggregator {
    pub fn new(opts: Options) -> Self {
        let pending = Generations::new(QUERY_TIMEOUT, opts.max_pending);
        let recent_syns = Generations::new(SYN_RETRANSMIT_WINDOW, opts.max_recent_syns);
        Aggregator {
            opts,
            names: Interner::default(),
            pending,
            services: Vec::new(),
            service_index: Map::default(),
            backends: Vec::new(),
            more_srv_ports: Map::default(),
            backend_index: Map::default(),
            conns: Map::default(),
            bindings: Map::default(),
            srv_targets: Map::default(),
            is_srv_target: Vec::new(),
            recent_syns,
            connections: FingerprintMap::default(),
            next_sweep: 0,
            next_full_sweep: 0,
            usage: Map::default(),
            response_serial: 0,
            counters: Counters::default(),
            tally: Tally::default(),
            chain: Vec::new(),
            found: Vec::new(),
            tcp_streams: TcpStreams::default(),
            fragments: Fragments::default(),
            scratch: EventBatch::default(),
            messages: Vec::new(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Applies one batch; batches must come in capture order.
    pub fn apply(&mut self, batch: &EventBatch) {
        self.apply_until(batch, 0, u64::MAX);
    }

    /// Applies the batch's events from index `from` up to the first whose
    /// capture time is `stop_at` or later; returns that event's index (the
    /// number of events when all were applied). The batch's record
    /// counters are added when `from` is 0.
    pub fn apply_until(&mut self, batch: &EventBatch, from: usize, stop_at: u64) -> usize {
        if from == 0 {
            self.counters.add(&batch.counters);
        }
        let events = batch.events.get(from..).unwrap_or(&[]);
        for (i, ev) in events.iter().enumerate() {
            if ev.ts() >= stop_at {
                return from + i;
            }
            match ev {
                Event::Tcp(t) if self.opts.all_segments => self.segment(t),
                Event::Tcp(t) => self.syn(t),
                Event::Query(q) => self.query(q, batch),
                Event::Response(r) => self.response(r, batch),
                Event::TcpData(t) => self.tcp_dns(t, batch),
                Event::Fragment(f) => self.fragment(f, batch),
            }
        }
        batch.events.len()
    }

    /// DNS over TCP: reassembled in order, then parsed like any message.
    fn tcp_dns(&mut self, data: &TcpDataEvent, batch: &EventBatch) {
        let t = &data.segment;
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
        match crate::dissect::dns_event(ts, src, dst, sport, dport, bytes, &mut scratch) {
            Ok(Some(Event::Query(q))) => self.query(&q, &scratch),
            Ok(Some(Event::Response(r))) => self.response(&r, &scratch),
            Ok(_) => self.counters.dns_ignored += 1,
            Err(_) => self.counters.dns_malformed += 1,
        }
        self.scratch = scratch;
    }

    fn query(&mut self, q: &DnsEvent, batch: &EventBatch) {
        let name = batch.name(q.qname);
        if !self.wanted(q.client, name) {
            self.tally.queries_filtered += 1;
            return;
        }
        self.tally.queries += 1;
        self.tally.pending_expired += self.pending.advance(q.ts);
        let key = fingerprint(&(q.client, q.server, q.client_port, q.id));
        let pending = Pending {
            name_hash: q.qname_hash,
            qtype: q.qtype,
            ts: q.ts,
        };
        self.tally.pending_evicted += self.pending.insert(key, pending);
    }

    /// `-F`: a name containing the filter, or an SRV target this client
    /// still has to resolve for a tracked SRV name.
    fn wanted(&self, client: Addr, name: &[u8]) -> bool {
        let Some(filter) = &self.opts.filter else {
            return true;
        };
        let mut text = Vec::with_capacity(name.len() + 1);
        presentation(name, &mut text);
        contains(&text, filter)
            || self
                .names
                .get(name)
                .is_some_and(|id| self.srv_targets.contains_key(&(client, id)))
    }

    fn response(&mut self, r: &DnsEvent, batch: &EventBatch) {
        let key = fingerprint(&(r.client, r.server, r.client_port, r.id));
        let matched = self
            .pending
            .get(key)
            .is_some_and(|p| p.qtype == r.qtype && p.name_hash == r.qname_hash);
        if !matched {
            self.tally.responses_unmatched += 1;
            return;
        }
        let Some(pending) = self.pending.remove(key) else {
            return;
        };
        if r.ts.saturating_sub(pending.ts) > QUERY_TIMEOUT {
            self.tally.responses_late += 1;
            return;
        }
        self.tally.responses_matched += 1;
        self.response_serial += 1;
        let records = batch.records_of(r);
        let qname = batch.name(r.qname);
        let client_full = self
            .usage
            .get(&r.client)
            .is_some_and(|u| u.services >= self.opts.max_services_per_client);
        let name = if self.services.len() < self.opts.max_services && !client_full {
            self.names.intern_hashed(qname, r.qname_hash)
        } else if let Some(id) = self.names.get_hashed(qname, r.qname_hash) {
            id
        } else {
            // Tables full: a name never seen cannot become a service.
            self.tally.tables_full += 1;
            return;
        };
        self.build_chain(r.qname, records, batch);

        if r.qtype == TYPE_SRV {
            self.srv_response(r, name, records, batch);
        } else {
            self.address_response(r, name, records, batch);
        }
    }

    /// The asked name plus every CNAME target reached from it.
    fn build_chain(&mut self, qname: Span, records: &[Record], batch: &EventBatch) {
        self.chain.clear();
        self.chain.push(qname);
        let mut links = 0;
        let mut grew = true;
        while grew && links < MAX_CNAME_LINKS {
            grew = false;
            for rec in records {
                let (Section::Answer, RecordData::Cname(target)) = (rec.section, rec.data) else {
                    continue;
                };
                if links >= MAX_CNAME_LINKS {
                    break;
                }
                let owner = batch.name(rec.owner);
                let target_name = batch.name(target);
                let has = |chain: &[Span], n: &[u8]| chain.iter().any(|s| batch.name(*s) == n);
                if has(&self.chain, owner) && !has(&self.chain, target_name) {
                    self.chain.push(target);
                    links += 1;
                    grew = true;
                }
            }
        }
    }

    fn in_chain(&self, owner: Span, batch: &EventBatch) -> bool {
        // Owner names that were compression pointers share the question's
        // span: equal without comparing bytes.
        self.chain.contains(&owner)
            || self
                .chain
                .iter()
                .any(|&s| s.len == owner.len && batch.name(s) == batch.name(owner))
    }

    fn address_response(&mut self, r: &DnsEvent, name: NameId, records: &[Record], batch: &EventBatch) {
        self.found.clear();
        for rec in records {
            if let (Section::Answer, RecordData::Addr(a)) = (rec.section, rec.data)
                && self.in_chain(rec.owner, batch)
            {
                self.found.push((a, rec.ttl));
            }
        }
        let ttl = self.chain_ttl(records, batch);
        let service = self.service(r.client, name, Kind::Address);
        self.note_lookup(service, ttl, r.ts);
        let found = std::mem::take(&mut self.found);
        for &(addr, _) in &found {
            self.add_backend(service, addr, None, r.ts, ttl);
        }
        // SRV services waiting for this target's addresses: they become
        // backends of the SRV name, with the SRV ports.
        let maybe_target = self.is_srv_target.get(name.0 as usize).copied().unwrap_or(false);
        if let Some(waiting) = maybe_target
            .then(|| self.srv_targets.get(&(r.client, name)).cloned())
            .flatten()
        {
            for (srv_service, srv) in waiting {
                for &(addr, _) in &found {
                    self.add_backend(srv_service, addr, Some(srv), r.ts, ttl);
                }
            }
        }
        self.found = found;
    }

    /// The smallest TTL among the records the response was read from.
    fn chain_ttl(&self, records: &[Record], batch: &EventBatch) -> Option<u32> {
        records
            .iter()
            .filter(|rec| rec.section == Section::Answer && self.in_chain(rec.owner, batch))
            .map(|rec| rec.ttl)
            .min()
    }

    fn srv_response(&mut self, r: &DnsEvent, name: NameId, records: &[Record], batch: &EventBatch) {
        let service = self.service(r.client, name, Kind::Srv);
        let mut ttl: Option<u32> = None;
        let mut lower = |t: u32| ttl = Some(ttl.map_or(t, |x| x.min(t)));
        // Every SRV record owned by a chain name.
        let mut targets: Vec<(Span, Srv)> = Vec::new();
        for rec in records {
            if let (
                Section::Answer,
                RecordData::Srv {
                    target,
                    port,
                    priority,
                    weight,
                },
            ) = (rec.section, rec.data)
                && self.in_chain(rec.owner, batch)
            {
                targets.push((
                    target,
                    Srv {
                        port,
                        priority,
                        weight,
                    },
                ));
                lower(rec.ttl);
            }
        }
        for rec in records {
            if let (Section::Answer, RecordData::Cname(_)) = (rec.section, rec.data)
                && self.in_chain(rec.owner, batch)
            {
                lower(rec.ttl);
            }
        }
        let mut backends: Vec<(Addr, Srv)> = Vec::new();
        let mut unresolved: Vec<(Span, Srv)> = Vec::new();
        for &(target, port) in &targets {
            let target_name = batch.name(target);
            let mut any = false;
            for rec in records {
                if let RecordData::Addr(a) = rec.data
                    && batch.name(rec.owner) == target_name
                {
                    backends.push((a, port));
                    lower(rec.ttl);
                    any = true;
                }
            }
            if !any {
                unresolved.push((target, port));
            }
        }
        self.note_lookup(service, ttl, r.ts);
        for (addr, srv) in backends {
            self.add_backend(service, addr, Some(srv), r.ts, ttl);
        }
        for (target, srv) in unresolved {
            let quota = self.opts.max_srv_targets_per_client;
            let used = self.usage.get(&r.client).map_or(0, |u| u.srv_targets);
            if self.srv_targets.len() >= self.opts.max_srv_targets || used >= quota {
                self.tally.srv_targets_evicted += 1;
                continue;
            }
            let target = self.names.intern(batch.name(target));
            if self.is_srv_target.len() <= target.0 as usize {
                self.is_srv_target.resize(target.0 as usize + 1, false);
            }
            if let Some(flag) = self.is_srv_target.get_mut(target.0 as usize) {
                *flag = true;
            }
            let waiting = match self.srv_targets.entry((r.client, target)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    self.usage.entry(r.client).or_default().srv_targets += 1;
                    e.insert(Vec::new())
                }
            };
            if !waiting.contains(&(service, srv)) && waiting.len() < MAX_SRV_PORTS {
                waiting.push((service, srv));
            }
        }
    }

    /// The (client, name) service, created if new; [`NONE`] when the table
    /// is full (every use of `NONE` is then a no-op).
    fn service(&mut self, client: Addr, name: NameId, kind: Kind) -> u32 {
        let next = self.services.len() as u32;
        if !self.service_index.contains_key(&(client, name)) {
            let usage = self.usage.entry(client).or_default();
            if self.services.len() >= self.opts.max_services
                || usage.services >= self.opts.max_services_per_client
            {
                self.tally.tables_full += 1;
                return NONE;
            }
            usage.services += 1;
        }
        let id = *self.service_index.entry((client, name)).or_insert(next);
        if id == next {
            self.services.push(Service {
                client,
                name,
                kind,
                first_backend: NONE,
                last_backend: NONE,
                backend_count: 0,
                lookups: 0,
                ttl_min: None,
                last_answer: None,
                early_relookups: 0,
                conns: 0,
                stale_conns: 0,
            });
        } else if kind == Kind::Srv
            && let Some(s) = self.services.get_mut(id as usize)
        {
            s.kind = Kind::Srv;
        }
        id
    }

    fn note_lookup(&mut self, service: u32, ttl: Option<u32>, ts: u64) {
        if let Some(s) = self.services.get_mut(service as usize) {
            s.lookups += 1;
            if let Some(t) = ttl {
                s.ttl_min = Some(s.ttl_min.map_or(t, |m| m.min(t)));
            }
            if let Some((then, ttl)) = s.last_answer
                && ts < then.saturating_add(u64::from(ttl) * SECOND)
            {
                s.early_relookups += 1;
            }
            s.last_answer = Some((ts, ttl.unwrap_or(0)));
        }
    }

    /// One connection to `backend` on `port` at `ts`.
    fn count_connection(&mut self, backend: u32, port: u16, ts: u64) {
        if self.conns.len() >= self.opts.max_conn_counts && !self.conns.contains_key(&(backend, port)) {
            self.tally.tables_full += 1;
            return;
        }
        *self.conns.entry((backend, port)).or_insert(0) += 1;
        let Some(b) = self.backends.get(backend as usize) else {
            return;
        };
        let stale = ts > b.latest_ts.saturating_add(u64::from(b.latest_ttl) * SECOND);
        if let Some(s) = self.services.get_mut(b.service as usize) {
            s.conns += 1;
            s.stale_conns += u64::from(stale);
        }
    }

    /// Counts `addr` as seen in this response under `service` (once per
    /// response), notes an SRV port, and binds the client to it.
    fn add_backend(&mut self, service: u32, addr: Addr, srv: Option<Srv>, ts: u64, ttl: Option<u32>) {
        let Some(client) = self.services.get(service as usize).map(|s| s.client) else {
            return;
        };
        let max = self.opts.max_backends;
        // The client's binding for this address usually already names the
        // backend: one lookup, which the binding needs anyway.
        let bound = self.bindings.get(&(client, addr)).copied();
        let id = match bound.filter(|&b| {
            self.backends
                .get(b as usize)
                .is_some_and(|b| b.service == service)
        }) {
            Some(id) => id,
            None => {
                let id = backend_of(
                    &mut self.backends,
                    &mut self.services,
                    &mut self.backend_index,
                    service,
                    addr,
                    max,
                );
                if id == NONE {
                    self.tally.tables_full += 1;
                    return;
                }
                self.bindings.insert((client, addr), id);
                id
            }
        };
        let serial = self.response_serial;
        let Some(b) = self.backends.get_mut(id as usize) else {
            return;
        };
        if b.last_response != serial {
            b.last_response = serial;
            b.dns += 1;
        }
        b.latest_ts = ts;
        b.latest_ttl = ttl.unwrap_or(0);
        if let Some(srv) = srv {
            b.srv_priority = srv.priority;
            b.srv_weight = srv.weight;
            self.add_srv_port(id, srv.port);
        }
    }

    fn add_srv_port(&mut self, id: u32, port: u16) {
        let Some(b) = self.backends.get_mut(id as usize) else {
            return;
        };
        let count = usize::from(b.srv_port_count);
        if b.srv_ports.iter().take(count).any(|&p| p == port) {
            return;
        }
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
    fn syn(&mut self, t: &TcpEvent) {
        if t.flags & (SYN | ACK | RST | FIN) != SYN {
            return;
        }
        let Some(&backend) = self.bindings.get(&(t.src, t.dst)) else {
            self.tally.syns_unattributed += 1;
            return;
        };
        self.recent_syns.advance(t.ts);
        let key = fingerprint(&FourTuple::directed(t));
        let secs = (t.ts / SECOND) as u32;
        if let Some(&(isn, seen)) = self.recent_syns.get(key)
            && isn == t.seq
            && u64::from(secs.saturating_sub(seen)) <= SYN_RETRANSMIT_WINDOW / SECOND
        {
            self.tally.syns_retransmitted += 1;
            return;
        }
        self.tally.syn_table_evicted += self.recent_syns.insert(key, (t.seq, secs));
        self.count_connection(backend, t.dst_port, t.ts);
        self.tally.syns_counted += 1;
    }

    /// `-a`: the first segment of a connection seen while its client is
    /// bound to its backend counts it, once.
    fn segment(&mut self, t: &TcpEvent) {
        self.sweep_connections(t.ts);
        let is_syn = t.flags & (SYN | ACK | RST | FIN) == SYN;
        let closing = t.flags & (FIN | RST) != 0;
        let key = fingerprint(&FourTuple::canonical(t));
        let secs = (t.ts / SECOND) as u32;
        let window = (SYN_RETRANSMIT_WINDOW / SECOND) as u32;
        let attribution = self.attribute(t);
        if let Some(c) = self.connections.get_mut(&key) {
            c.last_secs = secs;
            if is_syn {
                if c.flags & HAS_ISN != 0 && c.isn == t.seq && secs.saturating_sub(c.syn_secs) <= window {
                    self.tally.syns_retransmitted += 1;
                    return;
                }
                if c.flags & CLOSED != 0 {
                    // A new connection on the 4-tuple of a closed one.
                    *c = Connection {
                        client: c.client,
                        isn: t.seq,
                        syn_secs: secs,
                        last_secs: secs,
                        flags: HAS_ISN,
                    };
                }
            }
            if c.flags & CLOSED != 0 {
                return;
            }
            if closing {
                c.flags |= CLOSED;
            }
            if c.flags & COUNTED != 0 {
                return;
            }
            if let Some((backend, port)) = attribution {
                c.flags |= COUNTED;
                self.count_connection(backend, port, t.ts);
                self.tally.conns_counted += 1;
            }
            return;
        }
        let Some((backend, port)) = attribution else {
            return;
        };
        let client = self
            .backends
            .get(backend as usize)
            .and_then(|b| self.services.get(b.service as usize))
            .map_or(t.src, |s| s.client);
        if is_syn {
            // Untracked SYNs are remembered here, so that a retransmission
            // is not a new connection even when the table is full.
            let syn_key = fingerprint(&FourTuple::directed(t));
            self.recent_syns.advance(t.ts);
            if let Some(&(isn, seen)) = self.recent_syns.get(syn_key)
                && isn == t.seq
                && secs.saturating_sub(seen) <= window
            {
                self.tally.syns_retransmitted += 1;
                return;
            }
            self.tally.syn_table_evicted += self.recent_syns.insert(syn_key, (t.seq, secs));
        }
        let tracked = self.room_for_connection(client, t.ts);
        if !tracked && !is_syn {
            // With no room to follow it, a first-seen mid-stream segment
            // cannot be told from a later segment of a connection already
            // counted: not counting it is the smaller error.
            self.tally.conns_evicted += 1;
            return;
        }
        self.count_connection(backend, port, t.ts);
        self.tally.conns_counted += 1;
        if !tracked {
            self.tally.conns_evicted += 1;
            return;
        }
        if let Some(u) = self.usage.get_mut(&client) {
            u.connections += 1;
        }
        let flags = COUNTED | if is_syn { HAS_ISN } else { 0 } | if closing { CLOSED } else { 0 };
        self.connections.insert(
            key,
            Connection {
                client,
                isn: t.seq,
                syn_secs: secs,
                last_secs: secs,
                flags,
            },
        );
    }

    /// Whether one more connection of `client` may be followed: within the
    /// global table (swept at most once a second of capture time when full,
    /// so that a flood cannot make every segment scan it) and the client's
    /// quota.
    fn room_for_connection(&mut self, client: Addr, ts: u64) -> bool {
        if self.connections.len() >= self.opts.max_connections && ts >= self.next_full_sweep {
            self.next_full_sweep = ts.saturating_add(SECOND);
            let now = (ts / SECOND) as u32;
            let idle = (self.opts.idle_timeout / SECOND) as u32;
            let before = self.connections.len();
            let usage = &mut self.usage;
            self.connections.retain(|_, c| {
                let keep = c.flags & CLOSED == 0 && now.saturating_sub(c.last_secs) <= idle;
                if !keep && let Some(u) = usage.get_mut(&c.client) {
                    u.connections = u.connections.saturating_sub(1);
                }
                keep
            });
            self.tally.conns_expired += (before - self.connections.len()) as u64;
        }
        let used = self.usage.entry(client).or_default().connections;
        self.connections.len() < self.opts.max_connections && used < self.opts.max_connections_per_client
    }

    /// The backend and port of a segment in either direction.
    fn attribute(&self, t: &TcpEvent) -> Option<(u32, u16)> {
        if let Some(&b) = self.bindings.get(&(t.src, t.dst)) {
            return Some((b, t.dst_port));
        }
        self.bindings.get(&(t.dst, t.src)).map(|&b| (b, t.src_port))
    }

    fn sweep_connections(&mut self, now: u64) {
        if now < self.next_sweep {
            return;
        }
        let idle = (self.opts.idle_timeout / SECOND) as u32;
        let linger = idle.min(CLOSED_LINGER_SECS);
        let secs = (now / SECOND) as u32;
        let before = self.connections.len();
        let usage = &mut self.usage;
        self.connections.retain(|_, c| {
            // A closed connection is kept only long enough to recognise its
            // last ACK or a retransmitted FIN.
            let limit = if c.flags & CLOSED != 0 { linger } else { idle };
            let keep = secs.saturating_sub(c.last_secs) <= limit;
            if !keep && let Some(u) = usage.get_mut(&c.client) {
                u.connections = u.connections.saturating_sub(1);
            }
            keep
        });
        self.tally.conns_expired += (before - self.connections.len()) as u64;
        self.next_sweep = now.saturating_add((self.opts.idle_timeout / 4).clamp(SECOND, 5 * SECOND));
    }

    /// Whether a (client, name) is reported (SPEC §4).
    pub fn reported(&self, s: &Service) -> bool {
        s.kind == Kind::Srv || s.backend_count >= 2 || self.opts.all_names
    }
}

/// Services with more backends than this get a hash index of them; smaller
/// ones are scanned (their backends are usually adjacent in memory).
const SCAN_BACKENDS: u32 = 8;

/// The backend of `service` at `addr`, created if new.
fn backend_of(
    backends: &mut Vec<Backend>,
    services: &mut [Service],
    index: &mut Map<(u32, Addr), u32>,
    service: u32,
    addr: Addr,
    max: usize,
) -> u32 {
    let Some(s) = services.get_mut(service as usize) else {
        return NONE;
    };
    if s.backend_count <= SCAN_BACKENDS {
        let found = BackendsOf {
            backends,
            next: s.first_backend,
        }
        .find(|(_, b)| b.addr == addr);
        if let Some((id, _)) = found {
            return id;
        }
    } else if let Some(&id) = index.get(&(service, addr)) {
        return id;
    }
    if backends.len() >= max {
        return NONE;
    }
    let id = backends.len() as u32;
    backends.push(Backend {
        service,
        addr,
        dns: 0,
        next: NONE,
        srv_ports: [0; INLINE_SRV_PORTS],
        srv_port_count: 0,
        srv_priority: 0,
        srv_weight: 0,
        last_response: 0,
        latest_ts: 0,
        latest_ttl: 0,
    });
    let previous = s.last_backend;
    s.last_backend = id;
    if s.first_backend == NONE {
        s.first_backend = id;
    }
    s.backend_count += 1;
    if let Some(b) = backends.get_mut(previous as usize) {
        b.next = id;
    }
    if s.backend_count > SCAN_BACKENDS {
        if s.backend_count == SCAN_BACKENDS + 1 {
            // Crossing the threshold: index the ones scanned so far.
            let mut next = s.first_backend;
            while let Some(b) = backends.get(next as usize) {
                index.insert((service, b.addr), next);
                next = b.next;
            }
        } else {
            index.insert((service, addr), id);
        }
    }
    id
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
