//! A deterministic workload generator with its own ground truth.
//!
//! Many clients use many services: A names, AAAA names (IPv6 clients), SRV
//! names with and without additional records (the targets then looked up
//! on their own), and names behind a CNAME. Responses use real name
//! compression and carry an EDNS OPT record; some frames are VLAN-tagged.
//! Each client looks a service up before every `lookup_every`-th
//! connection; unrelated lookups and SYNs are mixed in as noise. In
//! streams mode every connection is a whole small-packet stream (for
//! `-a`), otherwise only its SYN (and now and then a retransmitted SYN).
//!
//! The ground truth is computed from what was written, by a model that
//! knows which backend each connection went to; it shares no code with the
//! aggregator.
// Indexing here is into tables this module sized itself, never into
// capture data.
#![allow(clippy::indexing_slicing)]

use std::io::{self, Write};

use crate::addr::Addr;
use crate::output::Row;
use crate::synth::{Frame, PcapWriter, PcapngWriter, SnoopWriter, ethernet, tcp, udp};
use crate::wire::dns::{TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_SRV};
use crate::wire::tcp::{ACK, FIN, SYN};

/// A small, fast, seedable PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    pub fn percent(&mut self, p: u8) -> bool {
        self.below(100) < u64::from(p)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Snoop,
    Pcap,
    Pcapng,
}

/// Hostile traffic mixed into a workload, from [`FLOOD_CLIENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// Queries that are never answered, each with its own id and port.
    Queries,
    /// Answered lookups of names never seen before (one address each).
    Names,
    /// SRV answers whose targets come without addresses, all distinct.
    SrvTargets,
    /// After one lookup, segments on distinct 4-tuples to a bound backend
    /// (for `-a`).
    Tuples,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flood {
    pub kind: FloodKind,
    /// Flood events over the whole capture.
    pub count: u64,
}

/// Where floods come from; the ground truth leaves this client out.
pub const FLOOD_CLIENT: Addr = Addr::V4([10, 200, 0, 1]);

#[derive(Clone, Debug)]
pub struct Workload {
    pub seed: u64,
    pub clients: u32,
    pub services: u32,
    pub connections: u64,
    /// A lookup before every n-th connection of a (client, service).
    pub lookup_every: u32,
    /// Unrelated events (a single-address lookup or a stray SYN) per
    /// connection, in percent (100: one per connection).
    pub noise_percent: u32,
    pub vlan_percent: u8,
    /// Every tenth client is an IPv6 client.
    pub ipv6: bool,
    /// Whole small-packet streams (for `-a`) instead of SYNs only.
    pub streams: bool,
    pub format: Format,
    pub flood: Option<Flood>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            seed: 1,
            clients: 50,
            services: 40,
            connections: 10_000,
            lookup_every: 3,
            noise_percent: 100,
            vlan_percent: 10,
            ipv6: true,
            streams: false,
            format: Format::Snoop,
            flood: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Address,
    Srv,
    SrvNoAdditional,
    Cname,
}

struct Service {
    kind: Kind,
    name: String,
    cname_target: String,
    backends: u32,
    port: u16,
}

impl Service {
    fn new(s: u32, rng: &mut Rng) -> Self {
        let kind = match s % 4 {
            0 => Kind::Address,
            1 => Kind::Srv,
            2 => Kind::Cname,
            _ => Kind::SrvNoAdditional,
        };
        let name = match kind {
            Kind::Address => format!("svc{s}.acct.us-west-1.cns.example.com"),
            Kind::Srv | Kind::SrvNoAdditional => format!("_svc{s}._tcp.example.com"),
            Kind::Cname => format!("www{s}.example.com"),
        };
        Service {
            kind,
            name,
            cname_target: format!("web{s}.cdn.example.net"),
            backends: 2 + rng.below(3) as u32,
            port: [80, 443, 8080, 806][(s % 4) as usize],
        }
    }

    fn backend(&self, s: u32, k: u32, v6: bool) -> Addr {
        if v6 {
            let mut o = [0u8; 16];
            o[0] = 0xfd;
            o[11] = 1;
            o[12..14].copy_from_slice(&(s as u16).to_be_bytes());
            o[14..16].copy_from_slice(&(k as u16 + 10).to_be_bytes());
            Addr::V6(o)
        } else {
            Addr::V4([172, 16 + ((s >> 8) & 0x0F) as u8, (s & 0xFF) as u8, 10 + k as u8])
        }
    }

    fn srv_port(&self, k: u32) -> u16 {
        5222 + k as u16
    }

    fn target(&self, s: u32, k: u32) -> String {
        format!("t{k}.svc{s}.example.com")
    }

    fn port_of(&self, k: u32) -> u16 {
        match self.kind {
            Kind::Srv | Kind::SrvNoAdditional => self.srv_port(k),
            _ => self.port,
        }
    }
}

fn client_addr(c: u32, v6: bool) -> Addr {
    if v6 {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[12..16].copy_from_slice(&c.to_be_bytes());
        Addr::V6(o)
    } else {
        Addr::V4([10, 128 + ((c >> 16) & 0x3F) as u8, (c >> 8) as u8, c as u8])
    }
}

fn resolver(v6: bool) -> Addr {
    if v6 {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[15] = 0x53;
        Addr::V6(o)
    } else {
        Addr::V4([10, 0, 0, 53])
    }
}

/// A DNS message writer with real name compression.
struct DnsWriter {
    msg: Vec<u8>,
    /// (name suffix, offset) already written.
    names: Vec<(String, u16)>,
}

impl DnsWriter {
    fn new(id: u16, response: bool, counts: [u16; 4]) -> Self {
        let mut msg = Vec::with_capacity(512);
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(if response { &[0x81, 0x80] } else { &[0x01, 0x00] });
        for c in counts {
            msg.extend_from_slice(&c.to_be_bytes());
        }
        DnsWriter {
            msg,
            names: Vec::new(),
        }
    }

    fn name(&mut self, name: &str) {
        let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".");
            if let Some(&(_, off)) = self.names.iter().find(|(n, _)| n.eq_ignore_ascii_case(&suffix)) {
                self.msg.extend_from_slice(&(0xC000 | off).to_be_bytes());
                return;
            }
            if self.msg.len() < 0x3FFF {
                self.names.push((suffix, self.msg.len() as u16));
            }
            self.msg.push(labels[i].len() as u8);
            self.msg.extend_from_slice(labels[i].as_bytes());
        }
        self.msg.push(0);
    }

    fn question(&mut self, name: &str, qtype: u16) {
        self.name(name);
        self.msg.extend_from_slice(&qtype.to_be_bytes());
        self.msg.extend_from_slice(&1u16.to_be_bytes());
    }

    fn record_head(&mut self, name: &str, rtype: u16, ttl: u32) -> usize {
        self.name(name);
        self.msg.extend_from_slice(&rtype.to_be_bytes());
        self.msg.extend_from_slice(&1u16.to_be_bytes());
        self.msg.extend_from_slice(&ttl.to_be_bytes());
        self.msg.extend_from_slice(&[0, 0]);
        self.msg.len()
    }

    fn finish_rdata(&mut self, start: usize) {
        let len = (self.msg.len() - start) as u16;
        if let Some(slot) = self.msg.get_mut(start - 2..start) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }

    fn addr(&mut self, name: &str, addr: Addr, ttl: u32) {
        let start = match addr {
            Addr::V4(o) => {
                let s = self.record_head(name, TYPE_A, ttl);
                self.msg.extend_from_slice(&o);
                s
            }
            Addr::V6(o) => {
                let s = self.record_head(name, TYPE_AAAA, ttl);
                self.msg.extend_from_slice(&o);
                s
            }
        };
        self.finish_rdata(start);
    }

    fn cname(&mut self, name: &str, target: &str, ttl: u32) {
        let s = self.record_head(name, TYPE_CNAME, ttl);
        self.name(target);
        self.finish_rdata(s);
    }

    fn srv(&mut self, name: &str, port: u16, target: &str, ttl: u32) {
        let s = self.record_head(name, TYPE_SRV, ttl);
        self.msg.extend_from_slice(&[0, 10, 0, 5]);
        self.msg.extend_from_slice(&port.to_be_bytes());
        self.name(target);
        self.finish_rdata(s);
    }

    /// EDNS OPT pseudo-record (root owner, UDP size 1232).
    fn opt(&mut self) {
        self.msg
            .extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
}

enum Sink<W: Write> {
    Snoop(W),
    Pcap(W),
    Pcapng(W),
}

/// Writes records in the chosen format, counting them.
struct Out<W: Write> {
    sink: Sink<W>,
    scratch_snoop: SnoopWriter,
    scratch_pcap: PcapWriter,
    scratch_pcapng: PcapngWriter,
    records: u64,
    bytes: u64,
}

impl<W: Write> Out<W> {
    fn new(format: Format, mut w: W) -> io::Result<Self> {
        let snoop = SnoopWriter::ethernet();
        let pcap = PcapWriter::new(1, false, false);
        let mut pcapng = PcapngWriter::new(false);
        pcapng.interface(1, 6);
        let header = match format {
            Format::Snoop => &snoop.bytes,
            Format::Pcap => &pcap.bytes,
            Format::Pcapng => &pcapng.bytes,
        };
        w.write_all(header)?;
        let bytes = header.len() as u64;
        let sink = match format {
            Format::Snoop => Sink::Snoop(w),
            Format::Pcap => Sink::Pcap(w),
            Format::Pcapng => Sink::Pcapng(w),
        };
        Ok(Out {
            sink,
            scratch_snoop: snoop,
            scratch_pcap: pcap,
            scratch_pcapng: pcapng,
            records: 0,
            bytes,
        })
    }

    fn record(&mut self, ts: u64, frame: &[u8]) -> io::Result<()> {
        self.records += 1;
        let (w, buf) = match &mut self.sink {
            Sink::Snoop(w) => {
                self.scratch_snoop.bytes.clear();
                self.scratch_snoop.record(ts, frame, 0);
                (w, &self.scratch_snoop.bytes)
            }
            Sink::Pcap(w) => {
                self.scratch_pcap.bytes.clear();
                self.scratch_pcap.record(ts, frame);
                (w, &self.scratch_pcap.bytes)
            }
            Sink::Pcapng(w) => {
                self.scratch_pcapng.bytes.clear();
                self.scratch_pcapng.packet(0, ts, frame);
                (w, &self.scratch_pcapng.bytes)
            }
        };
        self.bytes += buf.len() as u64;
        w.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Snoop(w) | Sink::Pcap(w) | Sink::Pcapng(w) => w.flush(),
        }
    }
}

/// What was written, and the rows connbal must print for it.
#[derive(Debug)]
pub struct Generated {
    pub records: u64,
    pub bytes: u64,
    pub connections: u64,
    /// The default TSV connbal must print (`-a` too, in streams mode).
    pub truth: String,
}

struct Emitter<'a, W: Write> {
    out: Out<W>,
    rng: &'a mut Rng,
    ts: u64,
    next_id: u16,
    vlan_percent: u8,
}

impl<W: Write> Emitter<'_, W> {
    fn frame(&mut self) -> Frame {
        let vlan = self.rng.percent(self.vlan_percent).then_some(100);
        Frame { vlan, ip_options: 0 }
    }

    fn emit(&mut self, src: Addr, dst: Addr, protocol: u8, transport: &[u8]) -> io::Result<()> {
        self.ts += 10_000;
        let f = self.frame();
        let bytes = ethernet(f, src, dst, protocol, transport);
        self.out.record(self.ts, &bytes)
    }

    fn exchange(&mut self, client: Addr, cport: u16, query: &[u8], response: &[u8]) -> io::Result<()> {
        let server = resolver(matches!(client, Addr::V6(_)));
        self.emit(client, server, 17, &udp(cport, 53, query))?;
        self.emit(server, client, 17, &udp(53, cport, response))
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

/// One hostile event; the `n`th of its flood.
fn emit_flood<W: Write>(em: &mut Emitter<'_, W>, kind: FloodKind, n: u64) -> io::Result<()> {
    let client = FLOOD_CLIENT;
    // Distinct (port, id) keys for every query of the flood.
    let cport = 1024 + (n % 64_000) as u16;
    let id = (n / 64_000) as u16 ^ (n as u16).rotate_left(7);
    let ttl = 300;
    match kind {
        FloodKind::Queries => {
            let mut q = DnsWriter::new(id, false, [1, 0, 0, 0]);
            q.question(&format!("q{n}.flood.example"), TYPE_A);
            em.emit(client, resolver(false), 17, &udp(cport, 53, &q.msg))
        }
        FloodKind::Names => {
            let name = format!("n{n}.flood.example");
            let mut q = DnsWriter::new(id, false, [1, 0, 0, 0]);
            q.question(&name, TYPE_A);
            let mut r = DnsWriter::new(id, true, [1, 1, 0, 0]);
            r.question(&name, TYPE_A);
            r.addr(&name, Addr::V4([192, 0, 2, (n % 250) as u8]), ttl);
            em.exchange(client, cport, &q.msg, &r.msg)
        }
        FloodKind::SrvTargets => {
            let name = format!("_f{n}._tcp.flood.example");
            let mut q = DnsWriter::new(id, false, [1, 0, 0, 0]);
            q.question(&name, TYPE_SRV);
            let mut r = DnsWriter::new(id, true, [1, 1, 0, 0]);
            r.question(&name, TYPE_SRV);
            r.srv(&name, 443, &format!("t{n}.flood.example"), ttl);
            em.exchange(client, cport, &q.msg, &r.msg)
        }
        FloodKind::Tuples => {
            let backend = Addr::V4([192, 0, 2, 10]);
            if n == 0 {
                let name = "bound.flood.example";
                let mut q = DnsWriter::new(1, false, [1, 0, 0, 0]);
                q.question(name, TYPE_A);
                let mut r = DnsWriter::new(1, true, [1, 2, 0, 0]);
                r.question(name, TYPE_A);
                r.addr(name, backend, ttl);
                r.addr(name, Addr::V4([192, 0, 2, 11]), ttl);
                em.exchange(client, 1000, &q.msg, &r.msg)?;
            }
            // A different 4-tuple every time: source port and backend port.
            let sport = 1024 + (n % 64_000) as u16;
            let dport = 10_000 + (n / 64_000) as u16;
            em.emit(client, backend, 6, &tcp(sport, dport, n as u32, ACK, &[]))
        }
    }
}

/// One frame of each kind a workload holds, as the generator writes them
/// (real name compression, EDNS), for benchmarks of single messages:
/// (what it is, the Ethernet frame).
pub fn sample_frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(1);
    let services: Vec<Service> = (0..4).map(|s| Service::new(s, &mut rng)).collect();
    let client = client_addr(3, false);
    let server = resolver(false);
    let ttl = 300;
    let query_frame = |msg: &[u8]| ethernet(Frame::default(), client, server, 17, &udp(40000, 53, msg));
    let response_frame = |msg: &[u8]| ethernet(Frame::default(), server, client, 17, &udp(53, 40000, msg));
    let mut out = vec![(
        "syn",
        ethernet(
            Frame::default(),
            client,
            services[0].backend(0, 0, false),
            6,
            &tcp(40001, 80, 12345, SYN, &[]),
        ),
    )];
    out.push((
        "segment_ack",
        ethernet(
            Frame::default(),
            client,
            services[0].backend(0, 0, false),
            6,
            &tcp(40001, 80, 12346, ACK, &[]),
        ),
    ));
    let a = &services[0];
    let mut q = DnsWriter::new(7, false, [1, 0, 0, 1]);
    q.question(&a.name, TYPE_A);
    q.opt();
    out.push(("query", query_frame(&q.msg)));
    let mut r = DnsWriter::new(7, true, [1, 4, 0, 1]);
    r.question(&a.name, TYPE_A);
    for k in 0..4 {
        r.addr(&a.name, a.backend(0, k, false), ttl);
    }
    r.opt();
    out.push(("a_response_4", response_frame(&r.msg)));
    let c = &services[2];
    let mut r = DnsWriter::new(7, true, [1, 4, 0, 1]);
    r.question(&c.name, TYPE_A);
    r.cname(&c.name, &c.cname_target, ttl);
    for k in 0..3 {
        r.addr(&c.cname_target, c.backend(2, k, false), ttl);
    }
    r.opt();
    out.push(("cname_response_3", response_frame(&r.msg)));
    let s = &services[1];
    let mut r = DnsWriter::new(7, true, [1, 3, 0, 4]);
    r.question(&s.name, TYPE_SRV);
    for k in 0..3 {
        r.srv(&s.name, s.srv_port(k), &s.target(1, k), ttl);
    }
    for k in 0..3 {
        r.addr(&s.target(1, k), s.backend(1, k, false), ttl);
    }
    r.opt();
    out.push(("srv_response_3", response_frame(&r.msg)));
    out
}

/// Writes the workload to `w` and returns its ground truth.
pub fn generate<W: Write>(work: &Workload, w: W) -> io::Result<Generated> {
    let mut rng = Rng::new(work.seed);
    let services: Vec<Service> = (0..work.services.max(1))
        .map(|s| Service::new(s, &mut rng))
        .collect();
    let clients = work.clients.max(1);
    let pairs = clients as usize * services.len();
    // Per (client, service): lookups made, and connections per backend.
    let mut lookups = vec![0u32; pairs];
    let mut conns_made = vec![0u32; pairs];
    let mut per_pair_conns: Vec<Vec<u32>> = Vec::with_capacity(pairs);
    for _ in 0..clients {
        for s in &services {
            per_pair_conns.push(vec![0; s.backends as usize]);
        }
    }
    let mut client_ports = vec![32768u16; clients as usize];
    let mut em = Emitter {
        out: Out::new(work.format, w)?,
        rng: &mut rng,
        ts: 1_700_000_000_000_000_000,
        next_id: 0,
        vlan_percent: work.vlan_percent,
    };
    let ttl = 300;
    let mut noise_budget = 0u64;
    let mut flood_budget = 0u64;
    let mut flood_sent = 0u64;

    for n in 0..work.connections {
        let c = em.rng.below(u64::from(clients)) as u32;
        let si = em.rng.below(services.len() as u64) as u32;
        let s = &services[si as usize];
        let v6 = work.ipv6 && c % 10 == 9;
        let client = client_addr(c, v6);
        let pair = c as usize * services.len() + si as usize;
        let next_port = |ports: &mut Vec<u16>| {
            let p = &mut ports[c as usize];
            *p = if *p >= 60999 { 32768 } else { *p + 1 };
            *p
        };

        if conns_made[pair].is_multiple_of(work.lookup_every.max(1)) {
            lookups[pair] += 1;
            let addr_type = if v6 { TYPE_AAAA } else { TYPE_A };
            let id = em.id();
            let cport = next_port(&mut client_ports);
            match s.kind {
                Kind::Address | Kind::Cname => {
                    let mut q = DnsWriter::new(id, false, [1, 0, 0, 1]);
                    q.question(&s.name, addr_type);
                    q.opt();
                    let extra = u16::from(s.kind == Kind::Cname);
                    let mut r = DnsWriter::new(id, true, [1, s.backends as u16 + extra, 0, 1]);
                    r.question(&s.name, addr_type);
                    let owner = if s.kind == Kind::Cname {
                        r.cname(&s.name, &s.cname_target, ttl);
                        s.cname_target.clone()
                    } else {
                        s.name.clone()
                    };
                    for k in 0..s.backends {
                        r.addr(&owner, s.backend(si, k, v6), ttl);
                    }
                    r.opt();
                    em.exchange(client, cport, &q.msg, &r.msg)?;
                }
                Kind::Srv | Kind::SrvNoAdditional => {
                    let additional = s.kind == Kind::Srv;
                    let mut q = DnsWriter::new(id, false, [1, 0, 0, 1]);
                    q.question(&s.name, TYPE_SRV);
                    q.opt();
                    let extra = if additional { s.backends as u16 } else { 0 };
                    let mut r = DnsWriter::new(id, true, [1, s.backends as u16, 0, extra + 1]);
                    r.question(&s.name, TYPE_SRV);
                    for k in 0..s.backends {
                        r.srv(&s.name, s.srv_port(k), &s.target(si, k), ttl);
                    }
                    if additional {
                        for k in 0..s.backends {
                            r.addr(&s.target(si, k), s.backend(si, k, v6), ttl);
                        }
                    }
                    r.opt();
                    em.exchange(client, cport, &q.msg, &r.msg)?;
                    if !additional {
                        for k in 0..s.backends {
                            let id = em.id();
                            let cport = next_port(&mut client_ports);
                            let target = s.target(si, k);
                            let mut q = DnsWriter::new(id, false, [1, 0, 0, 0]);
                            q.question(&target, addr_type);
                            let mut r = DnsWriter::new(id, true, [1, 1, 0, 0]);
                            r.question(&target, addr_type);
                            r.addr(&target, s.backend(si, k, v6), ttl);
                            em.exchange(client, cport, &q.msg, &r.msg)?;
                        }
                    }
                }
            }
        }

        // The connection: backend k with probability (k + 1) / sum.
        let total: u64 = (1..=u64::from(s.backends)).sum();
        let mut pick = em.rng.below(total);
        let mut k = 0;
        while pick > k as u64 {
            pick -= k as u64 + 1;
            k += 1;
        }
        let k = k.min(s.backends - 1);
        let backend = s.backend(si, k, v6);
        let port = s.port_of(k);
        let sport = next_port(&mut client_ports);
        let isn = em.rng.next_u64() as u32;
        conns_made[pair] += 1;
        per_pair_conns[pair][k as usize] += 1;
        if work.streams {
            let segs: [(bool, u32, u8); 8] = [
                (true, isn, SYN),
                (false, 7, SYN | ACK),
                (true, isn + 1, ACK),
                (true, isn + 1, ACK | 0x08),
                (false, 8, ACK),
                (true, isn + 40, FIN | ACK),
                (false, 8, FIN | ACK),
                (true, isn + 41, ACK),
            ];
            for (out, seq, flags) in segs {
                let (src, dst, sp, dp) = if out {
                    (client, backend, sport, port)
                } else {
                    (backend, client, port, sport)
                };
                em.emit(src, dst, 6, &tcp(sp, dp, seq, flags, &[]))?;
            }
        } else {
            em.emit(client, backend, 6, &tcp(sport, port, isn, SYN, &[]))?;
            if em.rng.percent(1) {
                em.emit(client, backend, 6, &tcp(sport, port, isn, SYN, &[]))?;
            }
        }

        noise_budget += u64::from(work.noise_percent);
        while noise_budget >= 100 {
            noise_budget -= 100;
            if n % 2 == 0 {
                let id = em.id();
                let cport = next_port(&mut client_ports);
                let name = format!("n{}.noise.example.org", em.rng.below(1000));
                let addr_type = if v6 { TYPE_AAAA } else { TYPE_A };
                let mut q = DnsWriter::new(id, false, [1, 0, 0, 0]);
                q.question(&name, addr_type);
                let mut r = DnsWriter::new(id, true, [1, 1, 0, 0]);
                r.question(&name, addr_type);
                let stray = if v6 {
                    client_addr(0xFFFF, true)
                } else {
                    Addr::V4([192, 0, 2, 7])
                };
                r.addr(&name, stray, ttl);
                em.exchange(client, cport, &q.msg, &r.msg)?;
            } else {
                let stray = if v6 {
                    client_addr(0xFFFE, true)
                } else {
                    Addr::V4([198, 51, 100, 9])
                };
                let sport = next_port(&mut client_ports);
                let isn = em.rng.next_u64() as u32;
                em.emit(client, stray, 6, &tcp(sport, 443, isn, SYN, &[]))?;
            }
        }

        if let Some(flood) = work.flood {
            flood_budget += flood.count;
            let per = work.connections.max(1);
            while flood_budget >= per {
                flood_budget -= per;
                emit_flood(&mut em, flood.kind, flood_sent)?;
                flood_sent += 1;
            }
        }
    }
    em.out.flush()?;

    // Ground truth (the flood client left out).
    let mut rows: Vec<(Addr, String, Addr, Option<u16>, u64, u64)> = Vec::new();
    for c in 0..clients {
        let v6 = work.ipv6 && c % 10 == 9;
        let client = client_addr(c, v6);
        for (si, s) in services.iter().enumerate() {
            let pair = c as usize * services.len() + si;
            if lookups[pair] == 0 {
                continue;
            }
            let name = format!("{}.", s.name);
            let used = conns_made[pair] > 0;
            for k in 0..s.backends {
                let backend = s.backend(si as u32, k, v6);
                let n = u64::from(per_pair_conns[pair][k as usize]);
                let port = match s.kind {
                    Kind::Srv | Kind::SrvNoAdditional => Some(s.srv_port(k)),
                    _ if used => Some(s.port),
                    _ => None,
                };
                rows.push((client, name.clone(), backend, port, n, u64::from(lookups[pair])));
            }
        }
    }
    rows.sort_by(|a, b| (a.0, a.1.as_bytes(), a.2, a.3).cmp(&(b.0, b.1.as_bytes(), b.2, b.3)));
    let mut truth = Vec::new();
    for r in &rows {
        let row = Row {
            client: r.0,
            backend: r.2,
            port: r.3,
            conns: r.4,
            dns: r.5,
        };
        crate::output::push_row(&mut truth, &row, &r.1);
    }
    Ok(Generated {
        records: em.out.records,
        bytes: em.out.bytes,
        connections: work.connections,
        truth: String::from_utf8_lossy(&truth).into_owned(),
    })
}
