//! One capture record in, zero or more compact events out.
//!
//! Link layer -> IP -> UDP/TCP -> DNS, each through the checked views of
//! [`crate::wire`]. A packet cut by the snap length is dissected as far as
//! it goes and counted as truncated.

use crate::addr::Addr;
use crate::event::{
    DnsEvent, Event, EventBatch, FragmentEvent, Record, RecordData, Section, Span, TcpDataEvent, TcpEvent,
};
use crate::wire::dns::{self, DnsError, DnsMessage};
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::ip::{self, IpPacket, PROTO_TCP, PROTO_UDP};
use crate::wire::{WireError, tcp, udp};

const DNS_PORT: u16 = 53;

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

/// Settings the workers need; cheap to copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dissector {
    /// `-a`: every TCP segment becomes an event, not only connection SYNs.
    pub all_segments: bool,
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
        let packet = match ip::parse(ip_bytes) {
            Ok(p) => p,
            Err(e) => {
                self.note_error(e, out);
                return;
            }
        };
        self.ip(ts, &packet, out);
    }

    fn note_error(&self, e: WireError, out: &mut EventBatch) {
        match e {
            WireError::Truncated { .. } => out.counters.truncated += 1,
            WireError::Malformed { .. } => out.counters.bad_ip += 1,
        }
    }

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
                    out.events.push(Event::Fragment(FragmentEvent {
                        ts,
                        src: p.src,
                        dst: p.dst,
                        ident,
                        offset,
                        more: p.more_fragments,
                        payload,
                    }));
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
                    self.dns(ts, p.src, p.dst, u.src_port, u.dst_port, u.payload, out);
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
                    let segment = TcpEvent {
                        ts,
                        src: p.src,
                        dst: p.dst,
                        src_port: t.src_port,
                        dst_port: t.dst_port,
                        seq: t.seq,
                        flags: t.flags,
                    };
                    if self.all_segments || pure_syn {
                        out.events.push(Event::Tcp(segment));
                    }
                    let control = t.flags & (tcp::SYN | tcp::FIN | tcp::RST) != 0;
                    if (t.src_port == DNS_PORT || t.dst_port == DNS_PORT)
                        && (control || !t.payload.is_empty())
                    {
                        // DNS over TCP is reassembled by the aggregator.
                        let payload = out.push_payload(t.payload);
                        out.events.push(Event::TcpData(TcpDataEvent {
                            segment,
                            complete: !truncated,
                            payload,
                        }));
                    }
                }
                Err(WireError::Truncated { .. }) => truncated = true,
                Err(WireError::Malformed { .. }) => out.counters.bad_ip += 1,
            },
            _ => {}
        }
        if truncated {
            out.counters.truncated += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dns(&self, ts: u64, src: Addr, dst: Addr, sport: u16, dport: u16, bytes: &[u8], out: &mut EventBatch) {
        out.counters.dns_messages += 1;
        let names_mark = out.names.len();
        let records_mark = out.records.len();
        match dns_event(ts, src, dst, sport, dport, bytes, out) {
            Ok(Some(ev)) => out.events.push(ev),
            Ok(None) => {
                out.names.truncate(names_mark);
                out.counters.dns_ignored += 1;
            }
            Err(_) => {
                out.names.truncate(names_mark);
                out.records.truncate(records_mark);
                out.counters.dns_malformed += 1;
            }
        }
    }
}

/// The bytes after the link-layer header, or `None` for a frame that does
/// not carry IPv4 or IPv6.
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

/// One DNS message as a query or response event (names and records
/// written into `out`); `Ok(None)` for a message connbal does not follow.
pub fn dns_event(
    ts: u64,
    src: Addr,
    dst: Addr,
    sport: u16,
    dport: u16,
    bytes: &[u8],
    out: &mut EventBatch,
) -> Result<Option<Event>, DnsError> {
    let msg = DnsMessage::parse(bytes)?;
    if msg.opcode() != dns::OPCODE_QUERY || msg.qdcount != 1 {
        return Ok(None);
    }
    let response = msg.is_response();
    if (response && sport != DNS_PORT) || (!response && dport != DNS_PORT) {
        return Ok(None);
    }
    let (qname, q) = span_of(out, |names| msg.question(names))?;
    if q.qclass != dns::CLASS_IN || !matches!(q.qtype, dns::TYPE_A | dns::TYPE_AAAA | dns::TYPE_SRV) {
        return Ok(None);
    }
    let (client, server, client_port) = if response {
        (dst, src, dport)
    } else {
        (src, dst, sport)
    };
    let qname_hash = crate::table::name_hash(out.name(qname));
    let mut ev = DnsEvent {
        qname_hash,
        ts,
        client,
        server,
        client_port,
        id: msg.id,
        qtype: q.qtype,
        qname,
        records: (0, 0),
    };
    if !response {
        return Ok(Some(Event::Query(ev)));
    }
    let first = out.records.len();
    let answers = usize::from(msg.ancount);
    let authority_end = answers + usize::from(msg.nscount);
    let total = authority_end + usize::from(msg.arcount);
    let buf = msg.bytes();
    let mut memo = NameMemo::default();
    memo.note(HEADER_LEN, q.end - 4, qname);
    let mut pos = q.end;
    for i in 0..total {
        let (rec, next) = dns::record_at(buf, pos)?;
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
                RecordData::Cname(target)
            }
            dns::TYPE_SRV => {
                let (priority, weight, port, at) = dns::srv_fixed(buf, &rec)?;
                let target = memo.read_rdata_name(buf, at, rec.rdata_end, out)?;
                RecordData::Srv {
                    target,
                    port,
                    priority,
                    weight,
                }
            }
            _ => continue,
        };
        let (owner, _) = memo.read(buf, rec.owner, out)?;
        out.records.push(Record {
            owner,
            ttl: rec.ttl,
            section,
            data,
        });
    }
    ev.records = (first as u32, out.records.len() as u32);
    Ok(Some(Event::Response(ev)))
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

    /// Decodes the name at `pos`, or reuses a decoded one it points to.
    /// Reuse is only taken when the earlier name lies wholly before the
    /// pointer: exactly the bytes a fresh decode would be allowed to read.
    fn read(&mut self, msg: &[u8], pos: usize, out: &mut EventBatch) -> Result<(Span, usize), DnsError> {
        if let Some(&[hi, lo]) = msg.get(pos..pos + 2).and_then(|b| b.first_chunk::<2>())
            && hi & 0xC0 == 0xC0
        {
            let target = (usize::from(hi & 0x3F) << 8) | usize::from(lo);
            let known = self
                .entries
                .iter()
                .take(self.len)
                .find(|(offset, end, _)| *offset == target && *end <= pos);
            if let Some(&(_, _, span)) = known {
                return Ok((span, pos + 2));
            }
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
    decode: impl FnOnce(&mut Vec<u8>) -> Result<T, DnsError>,
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
