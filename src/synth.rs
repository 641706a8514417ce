//! Builds packets and captures: for tests, benches, fuzz seeds and the
//! workload generator. Everything here writes well-formed bytes; hostile
//! bytes are made by cutting and flipping what it writes.
// Indexing here is into buffers this module built itself, never into
// capture data.
#![allow(clippy::indexing_slicing)]

use crate::addr::Addr;
use crate::wire::dns::{TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_SRV, encode_name};

/// A snoop version 2 capture being written.
pub struct SnoopWriter {
    pub bytes: Vec<u8>,
}

impl SnoopWriter {
    pub fn new(datalink: u32) -> Self {
        let mut bytes = b"snoop\0\0\0".to_vec();
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&datalink.to_be_bytes());
        SnoopWriter { bytes }
    }

    pub fn ethernet() -> Self {
        Self::new(4)
    }

    /// Appends one record; `ts` in nanoseconds.
    pub fn record(&mut self, ts: u64, data: &[u8], drops: u32) {
        let padded = data.len().div_ceil(4) * 4;
        let secs = (ts / 1_000_000_000) as u32;
        let usecs = ((ts % 1_000_000_000) / 1_000) as u32;
        for v in [
            data.len() as u32,
            data.len() as u32,
            (24 + padded) as u32,
            drops,
            secs,
            usecs,
        ] {
            self.bytes.extend_from_slice(&v.to_be_bytes());
        }
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len() + padded - data.len(), 0);
    }
}

/// A VLAN tag to put in front of the ethertype.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame {
    pub vlan: Option<u16>,
    /// Bytes of IPv4 options (a multiple of 4, at most 40).
    pub ip_options: usize,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// An Ethernet frame carrying `transport` in IPv4 or IPv6.
pub fn ethernet(frame: Frame, src: Addr, dst: Addr, protocol: u8, transport: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if let Some(tci) = frame.vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    match (src, dst) {
        (Addr::V4(s), Addr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&ipv4(s, d, protocol, frame.ip_options, transport));
        }
        (s, d) => {
            f.extend_from_slice(&[0x86, 0xDD]);
            f.extend_from_slice(&ipv6(v6(s), v6(d), protocol, transport));
        }
    }
    // Ethernet pads short frames to 60 bytes: dissection must ignore it.
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn v6(a: Addr) -> [u8; 16] {
    match a {
        Addr::V6(o) => o,
        Addr::V4([a, b, c, d]) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
    }
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, options: usize, payload: &[u8]) -> Vec<u8> {
    let options = options.min(40) / 4 * 4;
    let header_len = 20 + options;
    let total = (header_len + payload.len()) as u16;
    let mut p = vec![0x40 | (header_len / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, protocol, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend(std::iter::repeat_n(1u8, options)); // NOP options
    p.extend_from_slice(payload);
    p
}

pub fn ipv6(src: [u8; 16], dst: [u8; 16], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[protocol, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

pub fn tcp(src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&src_port.to_be_bytes());
    t.extend_from_slice(&dst_port.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

pub fn udp_frame(frame: Frame, src: Addr, dst: Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(frame, src, dst, PROTO_UDP, &udp(sport, dport, payload))
}

pub fn tcp_frame(frame: Frame, src: Addr, dst: Addr, sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
    ethernet(frame, src, dst, PROTO_TCP, &tcp(sport, dport, seq, flags, &[]))
}

/// A resource record for [`dns_response`].
#[derive(Clone, Debug)]
pub enum Rr {
    A(String, [u8; 4], u32),
    Aaaa(String, [u8; 16], u32),
    Cname(String, String, u32),
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
        ttl: u32,
    },
}

impl Rr {
    fn write(&self, out: &mut Vec<u8>) {
        let (name, rtype, ttl) = match self {
            Rr::A(n, _, t) => (n, TYPE_A, t),
            Rr::Aaaa(n, _, t) => (n, TYPE_AAAA, t),
            Rr::Cname(n, _, t) => (n, TYPE_CNAME, t),
            Rr::Srv { name, ttl, .. } => (name, TYPE_SRV, ttl),
        };
        encode_name(name, out);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        let mut rdata = Vec::new();
        match self {
            Rr::A(_, a, _) => rdata.extend_from_slice(a),
            Rr::Aaaa(_, a, _) => rdata.extend_from_slice(a),
            Rr::Cname(_, target, _) => encode_name(target, &mut rdata),
            Rr::Srv {
                priority,
                weight,
                port,
                target,
                ..
            } => {
                rdata.extend_from_slice(&priority.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                encode_name(target, &mut rdata);
            }
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
}

pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut m);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

pub fn dns_response(id: u16, name: &str, qtype: u16, answers: &[Rr], additional: &[Rr]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(additional.len() as u16).to_be_bytes());
    encode_name(name, &mut m);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for rr in answers.iter().chain(additional) {
        rr.write(&mut m);
    }
    m
}

/// A conversation written as a snoop capture, one call per packet.
pub struct Script {
    pub writer: SnoopWriter,
    pub frame: Frame,
    pub ts: u64,
    next_id: u16,
    next_port: u16,
}

pub const DNS_SERVER: Addr = Addr::V4([10, 0, 0, 53]);

impl Default for Script {
    fn default() -> Self {
        Script {
            writer: SnoopWriter::ethernet(),
            frame: Frame::default(),
            ts: 1_700_000_000_000_000_000,
            next_id: 1,
            next_port: 20_000,
        }
    }
}

impl Script {
    /// Advances capture time by `ms` milliseconds.
    pub fn wait_ms(&mut self, ms: u64) -> &mut Self {
        self.ts += ms * 1_000_000;
        self
    }

    pub fn packet(&mut self, data: &[u8]) -> &mut Self {
        self.ts += 1_000;
        let ts = self.ts;
        self.writer.record(ts, data, 0);
        self
    }

    /// A query and its response (answer and additional records).
    pub fn lookup(
        &mut self,
        client: Addr,
        name: &str,
        qtype: u16,
        answers: &[Rr],
        additional: &[Rr],
    ) -> &mut Self {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        let q = udp_frame(
            self.frame,
            client,
            DNS_SERVER,
            port,
            53,
            &dns_query(id, name, qtype),
        );
        let r = udp_frame(
            self.frame,
            DNS_SERVER,
            client,
            53,
            port,
            &dns_response(id, name, qtype, answers, additional),
        );
        self.packet(&q).packet(&r)
    }

    pub fn segment(
        &mut self,
        src: Addr,
        dst: Addr,
        sport: u16,
        dport: u16,
        seq: u32,
        flags: u8,
    ) -> &mut Self {
        let f = tcp_frame(self.frame, src, dst, sport, dport, seq, flags);
        self.packet(&f)
    }

    /// A connection's SYN from `client:sport` to `backend:port`.
    pub fn syn(&mut self, client: Addr, sport: u16, backend: Addr, port: u16) -> &mut Self {
        self.segment(
            client,
            backend,
            sport,
            port,
            u32::from(sport) * 7919,
            crate::wire::tcp::SYN,
        )
    }

    pub fn bytes(&self) -> &[u8] {
        &self.writer.bytes
    }
}

fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
    out.extend_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn put16(out: &mut Vec<u8>, big: bool, v: u16) {
    out.extend_from_slice(&if big { v.to_be_bytes() } else { v.to_le_bytes() });
}

/// A pcap capture being written, in either byte order and resolution.
pub struct PcapWriter {
    pub bytes: Vec<u8>,
    big: bool,
    nanos: bool,
}

impl PcapWriter {
    pub fn new(linktype: u32, big: bool, nanos: bool) -> Self {
        let mut bytes = Vec::new();
        put32(&mut bytes, big, if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 });
        put16(&mut bytes, big, 2);
        put16(&mut bytes, big, 4);
        put32(&mut bytes, big, 0);
        put32(&mut bytes, big, 0);
        put32(&mut bytes, big, 262_144);
        put32(&mut bytes, big, linktype);
        PcapWriter { bytes, big, nanos }
    }

    pub fn record(&mut self, ts: u64, data: &[u8]) {
        let (big, b) = (self.big, &mut self.bytes);
        put32(b, big, (ts / 1_000_000_000) as u32);
        let frac = ts % 1_000_000_000;
        put32(
            b,
            big,
            if self.nanos {
                frac as u32
            } else {
                (frac / 1_000) as u32
            },
        );
        put32(b, big, data.len() as u32);
        put32(b, big, data.len() as u32);
        b.extend_from_slice(data);
    }
}

/// A pcapng capture being written: sections, interfaces, packets.
pub struct PcapngWriter {
    pub bytes: Vec<u8>,
    big: bool,
    /// `if_tsresol` of each interface of the current section.
    resolutions: Vec<u8>,
}

impl PcapngWriter {
    pub fn new(big: bool) -> Self {
        let mut w = PcapngWriter {
            bytes: Vec::new(),
            big,
            resolutions: Vec::new(),
        };
        w.section(big);
        w
    }

    fn block(&mut self, block_type: u32, body: &[u8]) {
        let len = 12 + body.len().div_ceil(4) * 4;
        let big = self.big;
        put32(&mut self.bytes, big, block_type);
        put32(&mut self.bytes, big, len as u32);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + len - 12 - body.len(), 0);
        put32(&mut self.bytes, big, len as u32);
    }

    /// Starts a new section (which forgets the interfaces).
    pub fn section(&mut self, big: bool) {
        self.big = big;
        self.resolutions.clear();
        let mut body = Vec::new();
        put32(&mut body, big, 0x1A2B_3C4D);
        put16(&mut body, big, 1);
        put16(&mut body, big, 0);
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body);
    }

    /// Adds an interface; `tsresol` as in `if_tsresol` (6: microseconds).
    pub fn interface(&mut self, linktype: u16, tsresol: u8) -> u32 {
        let big = self.big;
        let mut body = Vec::new();
        put16(&mut body, big, linktype);
        put16(&mut body, big, 0);
        put32(&mut body, big, 0);
        put16(&mut body, big, 9);
        put16(&mut body, big, 1);
        body.extend_from_slice(&[tsresol, 0, 0, 0]);
        put16(&mut body, big, 0);
        put16(&mut body, big, 0);
        self.block(1, &body);
        self.resolutions.push(tsresol);
        (self.resolutions.len() - 1) as u32
    }

    pub fn packet(&mut self, interface: u32, ts: u64, data: &[u8]) {
        let big = self.big;
        let res = self.resolutions.get(interface as usize).copied().unwrap_or(6);
        let units = if res & 0x80 == 0 {
            let exp = u32::from(res);
            if exp <= 9 {
                ts / 10u64.pow(9 - exp)
            } else {
                ts * 10u64.pow(exp - 9)
            }
        } else {
            ((u128::from(ts) << (res & 0x7F)) / 1_000_000_000) as u64
        };
        let mut body = Vec::new();
        put32(&mut body, big, interface);
        put32(&mut body, big, (units >> 32) as u32);
        put32(&mut body, big, units as u32);
        put32(&mut body, big, data.len() as u32);
        put32(&mut body, big, data.len() as u32);
        body.extend_from_slice(data);
        self.block(6, &body);
    }

    /// A block pcapng readers must skip (a name resolution block).
    pub fn other_block(&mut self) {
        self.block(4, &[0, 0, 0, 0]);
    }
}

/// The frames of an Ethernet snoop capture: (timestamp, frame).
pub fn snoop_frames(capture: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 16;
    let word = |at: usize| {
        capture
            .get(at..)
            .and_then(<[u8]>::first_chunk::<4>)
            .map(|b| u32::from_be_bytes(*b))
    };
    while let (Some(incl), Some(len), Some(secs), Some(usecs)) =
        (word(pos + 4), word(pos + 8), word(pos + 16), word(pos + 20))
    {
        let start = pos + 24;
        let Some(frame) = capture.get(start..start + incl as usize) else {
            break;
        };
        out.push((
            u64::from(secs) * 1_000_000_000 + u64::from(usecs) * 1_000,
            frame.to_vec(),
        ));
        if len < 24 {
            break;
        }
        pos += len as usize;
    }
    out
}

/// Rewrites an untagged Ethernet frame for another link type.
pub fn relink(frame: &[u8], linktype: u32, big_null: bool) -> Vec<u8> {
    let (ethertype, ip) = match frame {
        [_, _, _, _, _, _, _, _, _, _, _, _, hi, lo, ip @ ..] => (u16::from_be_bytes([*hi, *lo]), ip),
        _ => return Vec::new(),
    };
    let v6 = ethertype == 0x86DD;
    let mut out = Vec::new();
    match linktype {
        12 | 14 | 101 => {}
        113 => {
            out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            out.extend_from_slice(&ethertype.to_be_bytes());
        }
        276 => {
            out.extend_from_slice(&ethertype.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        0 => put32(&mut out, big_null, if v6 { 30 } else { 2 }),
        108 => put32(&mut out, true, if v6 { 24 } else { 2 }),
        _ => return frame.to_vec(),
    }
    out.extend_from_slice(ip);
    out
}

/// An Ethernet frame around an already built IP packet.
pub fn ethernet_ip(frame: Frame, ip_packet: &[u8], v6: bool) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if let Some(tci) = frame.vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(if v6 { &[0x86, 0xDD] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip_packet);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// `transport` (a UDP header and payload) split into IP fragments of at
/// most `chunk` bytes (a multiple of 8), as whole IP packets.
pub fn ip_fragments(
    src: Addr,
    dst: Addr,
    ident: u32,
    protocol: u8,
    transport: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let chunk = (chunk.max(8) / 8) * 8;
    let pieces: Vec<&[u8]> = transport.chunks(chunk).collect();
    let last = pieces.len().saturating_sub(1);
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * chunk;
            let more = i < last;
            match (src, dst) {
                (Addr::V4(s), Addr::V4(d)) => {
                    let mut p = ipv4(s, d, protocol, 0, piece);
                    p[4..6].copy_from_slice(&(ident as u16).to_be_bytes());
                    let field = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
                    p[6..8].copy_from_slice(&field.to_be_bytes());
                    p
                }
                (s, d) => {
                    let mut ext = vec![protocol, 0];
                    let field = (offset as u16) | u16::from(more);
                    ext.extend_from_slice(&field.to_be_bytes());
                    ext.extend_from_slice(&ident.to_be_bytes());
                    ext.extend_from_slice(piece);
                    ipv6(v6(s), v6(d), 44, &ext)
                }
            }
        })
        .collect()
}
