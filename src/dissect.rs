//! One capture record in, zero or more compact events out.
//!
//! Link layer -> IP -> UDP/TCP -> DNS, each through the checked views of
//! [`crate::wire`]. A packet cut by the snap length is dissected as far as
//! it goes and counted as truncated.

use crate::addr::Addr;
use crate::event::{
    DnsEvent, Event, EventBatch, Found, FragmentEvent, Record, RecordData, Section, Segment, Span, Srv,
    TcpDataEvent,
};
use crate::memo::{Asked, ResponseMemo};
use crate::table;
use crate::wire::dns::{self, DnsError, DnsMessage, NameArena};
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::ip::{self, IpPacket, PROTO_TCP, PROTO_UDP};
use crate::wire::{WireError, ipv4, ipv6, tcp, udp};

const DNS_PORT: u16 = 53;
/// At most this many CNAME links are followed from the asked name.
pub const MAX_CNAME_LINKS: usize = 16;

/// The link layer a record starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    Ethernet,
    /// illumos/Solaris `snoop -I`: a 24-byte `dl_ipnetinfo` header.
    Ipnet,
    /// Raw IP, version from the first nibble.
    Raw,
    Ipv4,
    Ipv6,
    /// Linux cooked capture v1 (16-byte header).
    Sll,
    /// Linux cooked capture v2 (20-byte header).
    Sll2,
    /// BSD null: a 4-byte address family in the writer's byte order.
    Null,
    /// OpenBSD loop: a 4-byte address family, big-endian.
    Loop,
}

/// Settings the workers need.
#[derive(Clone, Debug)]
pub struct Dissector {
    /// `-a`: every TCP segment becomes an event, not only connection SYNs.
    pub all_segments: bool,
    /// `-F`, lower case: queries for names that do not contain it are
    /// marked (the aggregator still follows an awaited SRV target).
    pub filter: Option<Vec<u8>>,
    /// A response that comes right after its own query in a batch is
    /// handed over with it as one event ([`EventBatch::push_response`]).
    /// Off for `--interval`, whose blocks may fall between the two.
    pub pair_lookups: bool,
    /// `-a`: the segments of a connection in a batch are grouped
    /// ([`crate::event::SegmentGroup`]). Off for `--interval`, as pairing
    /// is, and to test that it changes nothing.
    pub group_segments: bool,
    /// A response repeated but for its ID is digested from the worker's
    /// [`ResponseMemo`] (off only to test that it changes nothing).
    pub memoize: bool,
    /// This worker's memo (a clone of the dissector starts with an empty
    /// one).
    pub memo: ResponseMemo,
    /// The run's hash keys, fetched once.
    pub keys: table::Keys,
}

impl Default for Dissector {
    fn default() -> Self {
        Dissector {
            all_segments: false,
            filter: None,
            pair_lookups: true,
            group_segments: true,
            memoize: true,
            memo: ResponseMemo::default(),
            keys: table::keys(),
        }
    }
}

impl Dissector {
    pub fn record(&self, link: Link, ts: u64, data: &[u8], out: &mut EventBatch) {
        let ip_bytes = match link_payload(link, data) {
            Ok(Some(b)) => b,
            Ok(None) => {
                out.counters.not_ip += 1;
                return;
            }
            Err(e) => {
                self.note_error(e, out);
                return;
            }
        };
        // Each version is carried to the transport layer on its own path:
        // merged into one `IpPacket` first, the two were spilled to the
        // stack in pieces and read back whole (a store-forwarding stall of
        // a quarter of a SYN's dissection).
        let packet = match ip_bytes.first().map(|b| b >> 4) {
            Some(4) => ipv4::parse(ip_bytes).map(|p| self.ip(ts, &p.into(), out)),
            Some(6) => ipv6::parse(ip_bytes).map(|p| self.ip(ts, &p.into(), out)),
            // Another version, or no byte at all: the error `ip::parse` names.
            _ => ip::parse(ip_bytes).map(|_| ()),
        };
        if let Err(e) = packet {
            self.note_error(e, out);
        }
    }

    fn note_error(&self, e: WireError, out: &mut EventBatch) {
        match e {
            WireError::Truncated { .. } => out.counters.truncated += 1,
            WireError::Malformed { .. } => out.counters.bad_ip += 1,
        }
    }

    #[inline(always)]
    fn ip(&self, ts: u64, p: &IpPacket<'_>, out: &mut EventBatch) {
        let mut truncated = p.truncated;
        if let Some((offset, ident)) = p.fragment {
            out.counters.fragments += 1;
            if p.protocol == PROTO_UDP {
                // Reassembled, in capture order, by the aggregator.
                if truncated {
                    out.counters.truncated += 1;
                } else {
                    let payload = out.push_payload(p.payload);
                    out.push_fragment(FragmentEvent {
                        ts,
                        src: p.src,
                        dst: p.dst,
                        ident,
                        offset,
                        more: p.more_fragments,
                        payload,
                    });
                }
                return;
            }
            if offset != 0 {
                return;
            }
            // A first TCP fragment still carries the TCP header.
        }
        match p.protocol {
            PROTO_UDP => match udp::parse(p.payload) {
                Ok(u) if u.src_port == DNS_PORT || u.dst_port == DNS_PORT => {
                    truncated |= u.truncated;
                    let packet = DnsPacket {
                        ts,
                        src: p.src,
                        dst: p.dst,
                        sport: u.src_port,
                        dport: u.dst_port,
                        bytes: u.payload,
                    };
                    self.dns(&packet, out);
                }
                Ok(u) => truncated |= u.truncated,
                Err(WireError::Truncated { .. }) => truncated = true,
                Err(WireError::Malformed { .. }) => out.counters.bad_ip += 1,
            },
            PROTO_TCP => match tcp::parse(p.payload) {
                Ok(t) => {
                    truncated |= t.truncated;
                    out.counters.tcp_segments += 1;
                    let pure_syn = t.flags & (tcp::SYN | tcp::ACK | tcp::RST | tcp::FIN) == tcp::SYN;
                    let dns = (t.src_port == DNS_PORT || t.dst_port == DNS_PORT)
                        && (t.flags & (tcp::SYN | tcp::FIN | tcp::RST) != 0 || !t.payload.is_empty());
                    let k = self.keys;
                    if self.all_segments {
                        let h = out.tuples.hashes(k, &p.src, &p.dst, t.src_port, t.dst_port);
                        out.push_segment(
                            ts,
                            h.connection(),
                            t.flags,
                            pure_syn,
                            Segment {
                                forward: h.forward,
                                reverse: h.reverse,
                                syn_key: if pure_syn { k.syn_key(h.there, t.seq) } else { 0 },
                                src_port: t.src_port,
                                dst_port: t.dst_port,
                                run_start: 0,
                            },
                            self.group_segments,
                        );
                    } else if pure_syn {
                        let forward = k.pair_hash(&p.src, &p.dst);
                        let tuple = k.tuple_hash(forward, t.src_port, t.dst_port);
                        out.events.push(Event::Syn {
                            ts,
                            forward,
                            syn_key: k.syn_key(tuple, t.seq),
                            dst_port: t.dst_port,
                        });
                    }
                    if dns {
                        // DNS over TCP is reassembled by the aggregator.
                        let payload = out.push_payload(t.payload);
                        out.push_tcp_data(TcpDataEvent {
                            ts,
                            src: p.src,
                            dst: p.dst,
                            src_port: t.src_port,
                            dst_port: t.dst_port,
                            seq: t.seq,
                            flags: t.flags,
                            complete: !truncated,
                            payload,
                        });
                    }
                }
                Err(WireError::Truncated { .. }) => truncated = true,
                Err(WireError::Malformed { .. }) => out.counters.bad_ip += 1,
            },
            _ => {}
        }
        self.done(truncated, out);
    }

    fn done(&self, truncated: bool, out: &mut EventBatch) {
        if truncated {
            out.counters.truncated += 1;
        }
    }

    /// Responses digested from the memo so far (by this worker's copy).
    pub fn memo_hits(&self) -> u64 {
        self.memo.hits()
    }

    /// [`dns_event`], a response from the memo where it can be.
    fn digest(&self, packet: &DnsPacket<'_>, out: &mut EventBatch) -> Result<Option<Dns>, DnsError> {
        // A response from any other port is no response of interest
        // (`message_event`); the memo only holds those that were.
        if !(self.memoize && packet.sport == DNS_PORT) {
            return dns_event(packet, out);
        }
        let asked = Asked {
            ts: packet.ts,
            client: packet.dst,
            server: packet.src,
            client_port: packet.dport,
        };
        let miss = match self.memo.recall(&asked, packet.bytes, out) {
            Ok(index) => return Ok(Some(Dns::Response(index))),
            Err(miss) => miss,
        };
        let digested = dns_event(packet, out);
        if let Ok(Some(Dns::Response(index))) = digested {
            self.memo.keep(miss, out, index);
        }
        digested
    }

    fn dns(&self, packet: &DnsPacket<'_>, out: &mut EventBatch) {
        let ts = packet.ts;
        out.counters.dns_messages += 1;
        // Most messages are plain queries; without -F nothing but their
        // name's hash is needed.
        if self.filter.is_none()
            && packet.dport == DNS_PORT
            && let Some(q) = plain_query(packet.bytes)
        {
            let key = self.keys.query_key(&packet.src, &packet.dst, packet.sport, q.id);
            out.push_query(ts, key, q.name_hash, q.qtype);
            return;
        }
        let names_mark = out.names.len();
        match self.digest(packet, out) {
            Ok(Some(Dns::Query(index))) => {
                let Some(q) = out.dns.get(index as usize).copied() else {
                    return;
                };
                if self
                    .filter
                    .as_deref()
                    .is_some_and(|f| !name_contains(out.name(q.qname), f))
                {
                    out.push_filtered_query(ts, index);
                } else {
                    // All the aggregator needs: the query's own record and
                    // its name can go.
                    out.dns.truncate(index as usize);
                    out.names.truncate(names_mark);
                    out.push_query(ts, q.key, q.qname_hash, q.qtype);
                }
            }
            Ok(Some(Dns::Response(index))) => out.push_response(ts, index, self.pair_lookups),
            Ok(None) => out.counters.dns_ignored += 1,
            Err(_) => out.counters.dns_malformed += 1,
        }
    }
}

/// Whether a name in folded wire form, in report form, contains `needle`
/// (lower case).
pub fn name_contains(name: &[u8], needle: &[u8]) -> bool {
    let mut text = Vec::with_capacity(name.len() + 1);
    dns::presentation(name, &mut text);
    needle.is_empty() || text.windows(needle.len()).any(|w| w == needle)
}

/// The bytes after the link-layer header, or `None` for a frame that does
/// not carry IPv4 or IPv6.
#[inline]
pub fn link_payload(link: Link, data: &[u8]) -> Result<Option<&[u8]>, WireError> {
    let short = |required| WireError::Truncated {
        layer: crate::wire::Layer::Link,
        required,
        len: data.len(),
    };
    let is_ip = |t: u16| t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6;
    match link {
        Link::Ethernet => {
            let (ethertype, rest) = ethernet::payload(data)?;
            Ok(is_ip(ethertype).then_some(rest))
        }
        Link::Ipnet => {
            let family = *data.get(1).ok_or(short(24))?;
            let rest = data.get(24..).ok_or(short(24))?;
            Ok((family == 2 || family == 26).then_some(rest))
        }
        Link::Raw | Link::Ipv4 | Link::Ipv6 => Ok(Some(data)),
        Link::Sll => {
            let t = data.get(14..).and_then(<[u8]>::first_chunk).ok_or(short(16))?;
            let rest = data.get(16..).ok_or(short(16))?;
            Ok(is_ip(u16::from_be_bytes(*t)).then_some(rest))
        }
        Link::Sll2 => {
            let t = data.first_chunk().ok_or(short(20))?;
            let rest = data.get(20..).ok_or(short(20))?;
            Ok(is_ip(u16::from_be_bytes(*t)).then_some(rest))
        }
        Link::Null | Link::Loop => {
            let family: [u8; 4] = *data.first_chunk().ok_or(short(4))?;
            let rest = data.get(4..).ok_or(short(4))?;
            let values = if link == Link::Loop {
                [u32::from_be_bytes(family), u32::from_be_bytes(family)]
            } else {
                [u32::from_le_bytes(family), u32::from_be_bytes(family)]
            };
            // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 by OS.
            Ok(values
                .iter()
                .any(|v| matches!(v, 2 | 24 | 28 | 30))
                .then_some(rest))
        }
    }
}

/// What a query sent to port 53 gives the aggregator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainQuery {
    pub id: u16,
    pub qtype: u16,
    /// [`table::name_hash`] of the question name, folded.
    pub name_hash: u64,
}

/// A query connbal follows whose question name has no compression pointer
/// (nearly all of them), read without copying the name: the same id, type
/// and name hash [`dns_event`] would give, or `None` for any other
/// message (which the general path then reads, ignores or rejects).
pub fn plain_query(msg: &[u8]) -> Option<PlainQuery> {
    let header: &[u8; HEADER_LEN] = msg.first_chunk()?;
    let [id_hi, id_lo, flags, _, qd_hi, qd_lo, ..] = *header;
    // QR clear, opcode QUERY (0), exactly one question.
    if flags & 0xF8 != 0 || u16::from_be_bytes([qd_hi, qd_lo]) != 1 {
        return None;
    }
    let end = dns::plain_name_end(msg, HEADER_LEN)?;
    let &[t_hi, t_lo, c_hi, c_lo] = msg.get(end..end + 4)?.first_chunk::<4>()?;
    let qtype = u16::from_be_bytes([t_hi, t_lo]);
    if u16::from_be_bytes([c_hi, c_lo]) != dns::CLASS_IN
        || !matches!(qtype, dns::TYPE_A | dns::TYPE_AAAA | dns::TYPE_SRV)
    {
        return None;
    }
    Some(PlainQuery {
        id: u16::from_be_bytes([id_hi, id_lo]),
        qtype,
        name_hash: table::name_hash_raw(msg, HEADER_LEN, end),
    })
}

/// A DNS message connbal follows, by its index in the batch's `dns`.
#[derive(Clone, Copy, Debug)]
pub enum Dns {
    Query(u32),
    Response(u32),
}

/// A DNS message and where it travelled.
#[derive(Clone, Copy, Debug)]
pub struct DnsPacket<'a> {
    pub ts: u64,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub bytes: &'a [u8],
}

/// One DNS message as a query or a digested response event (names and
/// backends written into `out`); `Ok(None)` for a message connbal does not
/// follow, and then nothing is left in `out`. After a response, the
/// scratch `out.records` holds its records as parsed (tests read them).
pub fn dns_event(p: &DnsPacket<'_>, out: &mut EventBatch) -> Result<Option<Dns>, DnsError> {
    digest_message(p, out, true)
}

/// [`dns_event`], where `plain: false` reads every response through the
/// general digest (which keeps every record in `out.records`): tests
/// compare the two.
pub fn digest_message(p: &DnsPacket<'_>, out: &mut EventBatch, plain: bool) -> Result<Option<Dns>, DnsError> {
    let names_mark = out.names.len();
    let backends_mark = out.backends.len();
    let result = message_event(p, out, plain);
    if !matches!(result, Ok(Some(_))) {
        out.names.truncate(names_mark);
        out.backends.truncate(backends_mark);
        out.records.clear();
    }
    result
}

fn message_event(p: &DnsPacket<'_>, out: &mut EventBatch, plain: bool) -> Result<Option<Dns>, DnsError> {
    let &DnsPacket {
        ts,
        src,
        dst,
        sport,
        dport,
        bytes,
    } = p;
    out.records.clear();
    let keys = table::keys();
    let msg = DnsMessage::parse(bytes)?;
    if msg.opcode() != dns::OPCODE_QUERY || msg.qdcount != 1 {
        return Ok(None);
    }
    let response = msg.is_response();
    if (response && sport != DNS_PORT) || (!response && dport != DNS_PORT) {
        return Ok(None);
    }
    let (qname, (q, qname_hash)) = span_of(out, |names| msg.question_hashed(names))?;
    if q.qclass != dns::CLASS_IN || !matches!(q.qtype, dns::TYPE_A | dns::TYPE_AAAA | dns::TYPE_SRV) {
        return Ok(None);
    }
    let (client, server, client_port) = if response {
        (dst, src, dport)
    } else {
        (src, dst, sport)
    };
    let mut ev = DnsEvent {
        ts,
        client,
        qtype: q.qtype,
        qname,
        qname_hash,
        key: keys.query_key(&client, &server, client_port, msg.id),
        service: 0,
        backends: (0, 0),
        ttl: None,
    };
    if !response {
        out.dns.push(ev);
        return Ok(Some(Dns::Query(out.dns.len() as u32 - 1)));
    }
    ev.service = keys.service_hash(&client, qname_hash);
    let first = out.backends.len();
    let mut digest = Digest {
        keys,
        pair_start: keys.pair_start(&client),
        service: ev.service,
        chain: [Span::default(); 1 + MAX_CNAME_LINKS],
        chain_len: 1,
        ttl: None,
    };
    digest.chain[0] = qname;
    let addresses = q.qtype != dns::TYPE_SRV;
    let names_mark = out.names.len();
    if !(plain && addresses && plain_addresses(&msg, q.end, &mut digest, out)?) {
        out.backends.truncate(first);
        out.names.truncate(names_mark);
        digest.ttl = None;
        let cnames = read_records(&msg, q.end, qname, out)?;
        if cnames > 0 {
            digest.build_chain(out);
        }
        if addresses {
            digest.addresses(out);
        } else {
            digest.srv(out);
        }
    }
    let first = first as u32;
    ev.backends = (first, out.backends.len() as u32);
    ev.ttl = digest.ttl;
    out.dns.push(ev);
    Ok(Some(Dns::Response(out.dns.len() as u32 - 1)))
}

/// The usual A/AAAA response, digested in one pass: no CNAME and no SRV
/// record anywhere, so the chain is the asked name alone and its addresses
/// are the backends. `Ok(false)` as soon as the response is not of that
/// kind (the general digest then reads it again); the records checked up
/// to there are checked as [`read_records`] checks them, so an error here
/// is the error it would meet.
fn plain_addresses(
    msg: &DnsMessage<'_>,
    question_end: usize,
    digest: &mut Digest,
    out: &mut EventBatch,
) -> Result<bool, DnsError> {
    let qname = digest.chain[0];
    let answers = usize::from(msg.ancount);
    let authority_end = answers + usize::from(msg.nscount);
    let total = authority_end + usize::from(msg.arcount);
    let buf = msg.bytes();
    // Made when an owner name is not the question's pointer (rarely).
    let mut memo: Option<NameMemo> = None;
    let mut pos = question_end;
    for i in 0..total {
        let question_owner = buf.get(pos..pos + 2) == Some(&[0xC0, HEADER_LEN as u8][..]);
        let (rec, next) = if question_owner {
            dns::record_after_owner(buf, pos, pos + 2)?
        } else {
            let memo = memo.get_or_insert_with(|| NameMemo::with_question(question_end, qname));
            match memo.pointed_to(buf, pos) {
                Some(_) => dns::record_after_owner(buf, pos, pos + 2)?,
                None => dns::record_at(buf, pos)?,
            }
        };
        pos = next;
        if (i >= answers && i < authority_end) || rec.class != dns::CLASS_IN {
            continue;
        }
        let rdata = buf.get(rec.rdata_start..rec.rdata_end).ok_or(DnsError::Short)?;
        let addr = match rec.rtype {
            dns::TYPE_A => Addr::V4(rdata.try_into().map_err(|_| DnsError::BadRdata)?),
            dns::TYPE_AAAA => Addr::V6(rdata.try_into().map_err(|_| DnsError::BadRdata)?),
            dns::TYPE_CNAME | dns::TYPE_SRV => return Ok(false),
            _ => continue,
        };
        if i >= answers {
            continue;
        }
        let in_chain = question_owner || {
            let memo = memo.get_or_insert_with(|| NameMemo::with_question(question_end, qname));
            let owner = memo.read(buf, rec.owner, out)?.0;
            same_name(out, owner, qname)
        };
        if in_chain {
            digest.lower(rec.ttl);
            out.backends.push(digest.backend(addr, None));
        }
    }
    Ok(true)
}

/// The answer and additional records of a response into `out.records`
/// (authority records are skipped; so are types connbal does not use);
/// returns how many CNAME records the answer section holds.
fn read_records(
    msg: &DnsMessage<'_>,
    question_end: usize,
    qname: Span,
    out: &mut EventBatch,
) -> Result<usize, DnsError> {
    let answers = usize::from(msg.ancount);
    let mut cnames = 0;
    let authority_end = answers + usize::from(msg.nscount);
    let total = authority_end + usize::from(msg.arcount);
    let buf = msg.bytes();
    let mut memo = NameMemo::with_question(question_end, qname);
    let mut pos = question_end;
    for i in 0..total {
        // Most owner names point at a name this message has decoded
        // already: the question (`C0 0C`, which lies before any record),
        // an SRV target. No need to walk those again.
        let known = if buf.get(pos..pos + 2) == Some(&[0xC0, HEADER_LEN as u8][..]) {
            Some(qname)
        } else {
            memo.pointed_to(buf, pos)
        };
        let (rec, next) = match known {
            Some(_) => dns::record_after_owner(buf, pos, pos + 2)?,
            None => dns::record_at(buf, pos)?,
        };
        pos = next;
        let section = if i < answers {
            Section::Answer
        } else if i >= authority_end {
            Section::Additional
        } else {
            continue;
        };
        if rec.class != dns::CLASS_IN {
            continue;
        }
        let rdata = buf.get(rec.rdata_start..rec.rdata_end).ok_or(DnsError::Short)?;
        let data = match rec.rtype {
            dns::TYPE_A => RecordData::Addr(Addr::V4(rdata.try_into().map_err(|_| DnsError::BadRdata)?)),
            dns::TYPE_AAAA => RecordData::Addr(Addr::V6(rdata.try_into().map_err(|_| DnsError::BadRdata)?)),
            dns::TYPE_CNAME => {
                let target = memo.read_rdata_name(buf, rec.rdata_start, rec.rdata_end, out)?;
                cnames += usize::from(section == Section::Answer);
                RecordData::Cname(target)
            }
            dns::TYPE_SRV => {
                let (priority, weight, port, at) = dns::srv_fixed(buf, &rec)?;
                let target = memo.read_rdata_name(buf, at, rec.rdata_end, out)?;
                RecordData::Srv {
                    target,
                    srv: Srv {
                        port,
                        priority,
                        weight,
                    },
                }
            }
            _ => continue,
        };
        let owner = match known {
            Some(span) => span,
            None => memo.read(buf, rec.owner, out)?.0,
        };
        out.records.push(Record {
            owner,
            ttl: rec.ttl,
            section,
            data,
            in_chain: false,
            resolved: false,
        });
    }
    Ok(cnames)
}

/// A response reduced to what it gives the client (SPEC §4).
struct Digest {
    keys: table::Keys,
    /// The client's [`table::Keys::pair_start`].
    pair_start: u64,
    /// The response's [`table::service_hash`].
    service: u64,
    /// The asked name and the CNAME targets reached from it.
    chain: [Span; 1 + MAX_CNAME_LINKS],
    chain_len: usize,
    ttl: Option<u32>,
}

impl Digest {
    /// (Inlined: returned through the stack, the `Found` was written in
    /// pieces and read back whole, a store-forwarding stall per address.)
    #[inline(always)]
    fn backend(&self, addr: Addr, srv: Option<Srv>) -> Found {
        let pair = self.keys.pair_hash_of(self.pair_start, &addr);
        Found::Backend {
            addr,
            pair,
            key: self.keys.backend_hash(self.service, pair),
            srv,
        }
    }

    fn lower(&mut self, ttl: u32) {
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }

    fn chain(&self) -> &[Span] {
        self.chain.get(..self.chain_len).unwrap_or(&[])
    }

    fn has(&self, out: &EventBatch, name: Span) -> bool {
        in_chain(self.chain(), &out.names, name)
    }

    /// The chain: the asked name (already in it) plus every CNAME target
    /// reached from a chain name by the answer's CNAME records, in any
    /// order, at most [`MAX_CNAME_LINKS`] links.
    fn build_chain(&mut self, out: &EventBatch) {
        let mut grew = true;
        while grew && self.chain_len <= MAX_CNAME_LINKS {
            grew = false;
            for rec in &out.records {
                let (Section::Answer, RecordData::Cname(target)) = (rec.section, rec.data) else {
                    continue;
                };
                if self.chain_len > MAX_CNAME_LINKS {
                    break;
                }
                if self.has(out, rec.owner)
                    && !self.has(out, target)
                    && let Some(slot) = self.chain.get_mut(self.chain_len)
                {
                    *slot = target;
                    self.chain_len += 1;
                    grew = true;
                }
            }
        }
    }

    /// An A/AAAA response: the chain's addresses; the TTL is the smallest
    /// of the chain's answer records.
    fn addresses(&mut self, out: &mut EventBatch) {
        let EventBatch {
            records,
            backends,
            names,
            ..
        } = out;
        for rec in records.iter() {
            if rec.section != Section::Answer || !in_chain(self.chain(), names, rec.owner) {
                continue;
            }
            self.lower(rec.ttl);
            if let RecordData::Addr(addr) = rec.data {
                backends.push(self.backend(addr, None));
            }
        }
    }

    /// An SRV response: the chain's SRV records give targets; each address
    /// record of a target (answer or additional) is a backend with that
    /// target's port; the targets with none follow, to be remembered. The
    /// TTL is the smallest of the chain's SRV and CNAME records and the
    /// targets' address records.
    fn srv(&mut self, out: &mut EventBatch) {
        let mut targets = 0;
        for i in 0..out.records.len() {
            let Some(&rec) = out.records.get(i) else { break };
            let wanted = rec.section == Section::Answer
                && !matches!(rec.data, RecordData::Addr(_))
                && self.has(out, rec.owner);
            if let Some(r) = out.records.get_mut(i) {
                r.in_chain = wanted;
            }
            if wanted {
                self.lower(rec.ttl);
                targets += usize::from(matches!(rec.data, RecordData::Srv { .. }));
            }
        }
        if targets == 0 {
            return;
        }
        // First every target's addresses, in target order; then the
        // targets that had none.
        for i in 0..out.records.len() {
            let Some(&rec) = out.records.get(i) else { break };
            let (true, RecordData::Srv { target, srv }) = (rec.in_chain, rec.data) else {
                continue;
            };
            let mut any = false;
            for j in 0..out.records.len() {
                let Some(&a) = out.records.get(j) else { break };
                if let RecordData::Addr(addr) = a.data
                    && same_name(out, a.owner, target)
                {
                    any = true;
                    self.lower(a.ttl);
                    out.backends.push(self.backend(addr, Some(srv)));
                }
            }
            if let Some(r) = out.records.get_mut(i) {
                r.resolved = any;
            }
        }
        for i in 0..out.records.len() {
            let Some(&rec) = out.records.get(i) else { break };
            if let (true, false, RecordData::Srv { target, srv }) = (rec.in_chain, rec.resolved, rec.data) {
                let hash = table::name_hash(out.name(target));
                out.backends.push(Found::Target {
                    name: target,
                    hash,
                    srv,
                });
            }
        }
    }
}

/// Whether `name` is one of `chain`: by span first (owner names that
/// were compression pointers share the span of the name they point to),
/// then by bytes.
#[inline(always)]
fn in_chain(chain: &[Span], names: &NameArena, name: Span) -> bool {
    chain.contains(&name) || chain.iter().any(|&s| same_bytes(names, s, name))
}

/// Whether two names in the batch's arena are the same name: the same
/// span (a compression pointer reused the decoded name), else the same
/// length and bytes, the first eight compared as one word.
#[inline(always)]
fn same_name(out: &EventBatch, a: Span, b: Span) -> bool {
    a == b || same_bytes(&out.names, a, b)
}

#[inline(always)]
fn same_bytes(names: &NameArena, a: Span, b: Span) -> bool {
    a.len == b.len
        && names.prefix_word(a.start as usize, a.len as usize)
            == names.prefix_word(b.start as usize, b.len as usize)
        && names.get(a.start as usize, a.len as usize) == names.get(b.start as usize, b.len as usize)
}

const HEADER_LEN: usize = 12;

/// Names already decoded in this message, by offset: a name that is just a
/// compression pointer to one of them reuses its span instead of being
/// decoded again (most owner names are `C0 0C`, the question).
#[derive(Default)]
struct NameMemo {
    /// (offset, end in place, span)
    entries: [(usize, usize, Span); 8],
    len: usize,
}

impl NameMemo {
    /// A memo that knows the question's name (at offset 12, ending just
    /// before its type and class at `question_end`).
    fn with_question(question_end: usize, qname: Span) -> Self {
        let mut memo = NameMemo::default();
        memo.note(HEADER_LEN, question_end - 4, qname);
        memo
    }

    fn note(&mut self, offset: usize, end: usize, span: Span) {
        if let Some(slot) = self.entries.get_mut(self.len) {
            *slot = (offset, end, span);
            self.len += 1;
        }
    }

    /// A name that must fill the record data up to `rdata_end` exactly: it
    /// may not run past the record (found by the differential test against
    /// `domain`), nor leave bytes after it.
    fn read_rdata_name(
        &mut self,
        msg: &[u8],
        pos: usize,
        rdata_end: usize,
        out: &mut EventBatch,
    ) -> Result<Span, DnsError> {
        let bounded = msg.get(..rdata_end).ok_or(DnsError::Short)?;
        let (span, end) = self.read(bounded, pos, out)?;
        if end != rdata_end {
            return Err(DnsError::BadRdata);
        }
        Ok(span)
    }

    /// The span of the decoded name that the name at `pos` is a pointer
    /// to, if any. Only a name lying wholly before the pointer counts:
    /// exactly the bytes a fresh decode would be allowed to read, so the
    /// name at `pos` is as valid as the one it points to, and ends in place
    /// after the pointer's two bytes.
    fn pointed_to(&self, msg: &[u8], pos: usize) -> Option<Span> {
        let &[hi, lo] = msg.get(pos..pos + 2)?.first_chunk::<2>()?;
        if hi & 0xC0 != 0xC0 {
            return None;
        }
        let target = (usize::from(hi & 0x3F) << 8) | usize::from(lo);
        self.entries
            .iter()
            .take(self.len)
            .find(|(offset, end, _)| *offset == target && *end <= pos)
            .map(|&(_, _, span)| span)
    }

    /// Decodes the name at `pos`, or reuses a decoded one it points to.
    fn read(&mut self, msg: &[u8], pos: usize, out: &mut EventBatch) -> Result<(Span, usize), DnsError> {
        if let Some(span) = self.pointed_to(msg, pos) {
            return Ok((span, pos + 2));
        }
        let (span, end) = span_of(out, |names| dns::read_name(msg, pos, names))?;
        self.note(pos, end, span);
        Ok((span, end))
    }
}

/// Runs a name decoder that appends to the batch's arena and returns the
/// span it wrote, plus the decoder's own result.
fn span_of<T>(
    out: &mut EventBatch,
    decode: impl FnOnce(&mut NameArena) -> Result<T, DnsError>,
) -> Result<(Span, T), DnsError> {
    let start = out.names.len();
    let value = decode(&mut out.names)?;
    Ok((
        Span {
            start: start as u32,
            len: (out.names.len() - start) as u32,
        },
        value,
    ))
}
