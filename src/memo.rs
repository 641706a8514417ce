//! A worker's memory of the DNS responses it digested last.
//!
//! A busy client asks for the same few names over and over, and its
//! resolver answers with the same bytes each time but for the message ID
//! (until a TTL counts down, or a round-robin set turns). Digesting a
//! response walks every name and record in it: 1,500 instructions for four
//! A records, 4,000 for three SRV records with their addresses. A response
//! whose bytes after the ID equal those of one digested before gives the
//! same digest, which depends on nothing else but the packet's addresses,
//! ports and ID: the question, the TTL, the addresses with their SRV data,
//! the targets left without one. So the memo keeps those under the
//! message's fingerprint, and a repeat costs the fingerprint, a look at
//! one set and the hashes of its (client, address) pairs.
//!
//! A message is known by its fingerprint alone: the keyed 64-bit hash of
//! every byte after its ID (per-run secret keys, as every table of connbal
//! finds its keys), so that an entry need not hold the message, and a
//! recall reads a few cache lines of a table that stays in L2. A false
//! recall needs two messages to share 63 secret-keyed bits. The memo is
//! bounded: 2,048 entries of 960 bytes, each with at most [`MAX_FOUND`]
//! backends and [`MAX_NAMES`] bytes of names (2 MB a worker, whatever the
//! capture); a digest it cannot hold is walked each time, as before. A
//! response is kept the second time it is seen in a short while (each set
//! remembers the fingerprints of the last four it did not keep), so that
//! one seen once costs the memo its fingerprint and a look at the set, not
//! a copy; a flood of distinct responses only replaces entries.

use std::cell::RefCell;

use crate::addr::Addr;
use crate::event::{DnsEvent, EventBatch, Found, Span, Srv};
use crate::table;
use crate::wire::dns::NameArena;

/// Ways of a set: entries whose fingerprints share their low bits.
const WAYS: usize = 4;
/// Sets (a power of two).
const SETS: usize = 512;
/// The most backends (and SRV targets without an address) a kept digest has.
pub const MAX_FOUND: usize = 16;
/// The most bytes of names (the question and those targets) a kept digest has.
pub const MAX_NAMES: usize = 512;

// An entry is one block of bytes, so that a recall follows no pointer:
// once the set has told the way, every line it reads lies at a known
// place and next to the one before. The header (`HEAD` bytes), then
// `FOUND` bytes for each backend or target, then the names (the
// question's, then the targets').
//
//   header: 0 backends and targets (u8), 1 whether there is a TTL, 2
//   question name length (u16), 4 names length (u16), 6 query type (u16),
//   8 TTL (u32), 16 question name hash (u64)
//   backend: 0 its family (4 or 6), 1 whether SRV data follows, 2 port,
//   4 priority, 6 weight (u16 each), 8 the address (4 or 16 bytes)
//   target: 0 `TARGET`, 2 port, 4 priority, 6 weight, 8 its name's hash
//   (u64), 16 where its name starts among the names, 18 its length (u16)
const HEAD: usize = 24;
const FOUND: usize = 24;
const ENTRY: usize = (HEAD + MAX_FOUND * FOUND + MAX_NAMES).next_multiple_of(64);
const TARGET: u8 = 1;

/// The fingerprints of a set's entries (0: empty) and when each was last
/// used (one cache line, all a hit reads of it), then those of the last
/// messages that missed it and were not kept.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Set {
    hash: [u64; WAYS],
    used: [u64; WAYS],
    seen: [u64; WAYS],
    next_seen: usize,
}

/// A response the memo did not hold: its fingerprint, and whether it is to
/// be kept once digested (the second time in a short while it is seen: a
/// response seen once costs the memo no copy).
#[derive(Clone, Copy, Debug)]
pub struct Miss {
    hash: u64,
    keep: bool,
}

#[derive(Debug, Default)]
struct Table {
    sets: Vec<Set>,
    /// `SETS * WAYS` entries of `ENTRY` bytes, allocated zeroed at the
    /// first keep (pages are touched as entries are written).
    entries: Vec<u8>,
    clock: u64,
    hits: u64,
}

/// A worker's memo (see the module's text). A clone starts empty: each
/// worker keeps its own.
#[derive(Debug, Default)]
pub struct ResponseMemo {
    table: RefCell<Table>,
}

impl Clone for ResponseMemo {
    fn clone(&self) -> Self {
        ResponseMemo::default()
    }
}

/// What a response's packet adds to its digest: when it came, who asked,
/// whom, and from which port.
#[derive(Clone, Copy, Debug)]
pub struct Asked {
    pub ts: u64,
    pub client: Addr,
    pub server: Addr,
    pub client_port: u16,
}

/// The fingerprint of a message: its bytes from offset 2, every one of
/// them (never 0; its low bits pick the set), through
/// [`table::bytes_hash`]. Answers that differ in a single byte (a TTL
/// counted down) have different fingerprints, so that a recall gives
/// back that very message's digest (nothing else is compared: see the
/// module's notes), and a message is only kept when that very message
/// was seen.
fn fingerprint(message: &[u8]) -> u64 {
    table::bytes_hash(message) | 1 << 63
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(to) = b.get_mut(at..at + bytes.len()) {
        to.copy_from_slice(bytes);
    }
}

fn srv_at(f: &[u8]) -> Srv {
    Srv {
        port: get_u16(f, 2),
        priority: get_u16(f, 4),
        weight: get_u16(f, 6),
    }
}

/// Writes SRV data into the backend or target record at `rec`.
fn put_srv(e: &mut [u8], rec: usize, srv: &Srv) {
    put(e, rec + 2, &srv.port.to_le_bytes());
    put(e, rec + 4, &srv.priority.to_le_bytes());
    put(e, rec + 6, &srv.weight.to_le_bytes());
}

impl ResponseMemo {
    /// Responses digested from the memo so far.
    pub fn hits(&self) -> u64 {
        self.table.borrow().hits
    }

    /// The digest of `bytes` (a whole DNS response) if it was kept: its
    /// event pushed to `out.dns`, its names and backends to `out`; the
    /// event's index. A miss leaves `out` as it was, and tells
    /// [`ResponseMemo::keep`] what it needs.
    pub fn recall(&self, asked: &Asked, bytes: &[u8], out: &mut EventBatch) -> Result<u32, Miss> {
        let mut miss = Miss { hash: 0, keep: false };
        let (id, message) = split_id(bytes).ok_or(miss)?;
        let mut table = self.table.borrow_mut();
        let t = &mut *table;
        if t.sets.is_empty() {
            t.sets = vec![Set::default(); SETS];
        }
        miss.hash = fingerprint(message);
        let set_index = miss.hash as usize & (SETS - 1);
        // The entries are loaded with their set, not after it: the first
        // two lines of each way (a header, its backends, the start of its
        // names), which the packets streaming past have likely evicted.
        for w in 0..WAYS {
            if let Some(e) = t.entries.get((set_index * WAYS + w) * ENTRY..) {
                table::prefetch_lines::<2, _>(e);
            }
        }
        let set = t.sets.get_mut(set_index).ok_or(miss)?;
        let Some(way) = set.hash.iter().position(|&h| h == miss.hash) else {
            miss.keep = set.seen.contains(&miss.hash);
            if !miss.keep {
                if let Some(slot) = set.seen.get_mut(set.next_seen % WAYS) {
                    *slot = miss.hash;
                }
                set.next_seen = set.next_seen.wrapping_add(1);
            }
            return Err(miss);
        };
        t.clock += 1;
        if let Some(u) = set.used.get_mut(way) {
            *u = t.clock;
        }
        t.hits += 1;
        let at = (set_index * WAYS + way) * ENTRY;
        let e = t.entries.get(at..at + ENTRY).unwrap_or(&[]);
        let found_len = usize::from(e.first().copied().unwrap_or(0));
        let names_at = HEAD + found_len * FOUND;
        let names = e
            .get(names_at..names_at + usize::from(get_u16(e, 4)))
            .unwrap_or(&[]);
        let client = asked.client;
        let qname = push_name(
            &mut out.names,
            names.get(..usize::from(get_u16(e, 2))).unwrap_or(&[]),
        );
        let qname_hash = get_u64(e, 16);
        let keys = table::keys();
        let service = keys.service_hash(&client, qname_hash);
        let pair_start = keys.pair_start(&client);
        let first = out.backends.len() as u32;
        let found = e.get(HEAD..names_at).unwrap_or(&[]);
        let arena = &mut out.names;
        // One `extend` over an iterator of known length: room is made
        // once, not checked at every push.
        out.backends.extend(found.chunks_exact(FOUND).map(|f| {
            let kind = f.first().copied().unwrap_or(0);
            if kind == TARGET {
                let start = usize::from(get_u16(f, 16));
                let len = usize::from(get_u16(f, 18));
                Found::Target {
                    name: push_name(arena, names.get(start..start + len).unwrap_or(&[])),
                    hash: get_u64(f, 8),
                    srv: srv_at(f),
                }
            } else {
                // Each family's `Found` is built in its own arm: an address
                // chosen in a shared one was put together on the stack (a
                // byte of tag, then the four bytes) and read back four
                // bytes at a time, a load no single store could be
                // forwarded to (28 % of a recall's time). Every kept
                // record has its address.
                let srv = (f.get(1) == Some(&1)).then(|| srv_at(f));
                let backend = |addr: Addr| {
                    let pair = keys.pair_hash_of(pair_start, &addr);
                    Found::Backend {
                        addr,
                        pair,
                        key: keys.backend_hash(service, pair),
                        srv,
                    }
                };
                if kind == 6 {
                    backend(Addr::V6(
                        f.get(8..24).and_then(|a| a.try_into().ok()).unwrap_or_default(),
                    ))
                } else {
                    backend(Addr::V4(
                        f.get(8..12).and_then(|a| a.try_into().ok()).unwrap_or_default(),
                    ))
                }
            }
        }));
        out.dns.push(DnsEvent {
            ts: asked.ts,
            client,
            qtype: get_u16(e, 6),
            qname,
            qname_hash,
            key: keys.query_key(&client, &asked.server, asked.client_port, id),
            service,
            backends: (first, out.backends.len() as u32),
            ttl: (e.get(1) == Some(&1)).then(|| get_u32(e, 8)),
        });
        Ok(out.dns.len() as u32 - 1)
    }

    /// Keeps the digest of `bytes` just made (event `index` of `out`) after
    /// `miss`, if it said so, in place of the least recently used entry of
    /// its set; a digest too big to keep is not.
    pub fn keep(&self, miss: Miss, out: &EventBatch, index: u32) {
        if !miss.keep {
            return;
        }
        let Some(ev) = out.dns.get(index as usize) else {
            return;
        };
        let (first, end) = ev.backends;
        let Some(found) = out.backends.get(first as usize..end as usize) else {
            return;
        };
        if found.len() > MAX_FOUND {
            return;
        }
        let qname = out.name(ev.qname);
        let target_bytes: usize = found
            .iter()
            .map(|f| match f {
                Found::Target { name, .. } => name.len as usize,
                Found::Backend { .. } => 0,
            })
            .sum();
        if qname.len() + target_bytes > MAX_NAMES {
            return;
        }
        let mut table = self.table.borrow_mut();
        let t = &mut *table;
        if t.entries.is_empty() {
            t.entries = vec![0; SETS * WAYS * ENTRY];
        }
        let set_index = miss.hash as usize & (SETS - 1);
        let Some(set) = t.sets.get_mut(set_index) else {
            return;
        };
        // An empty way has `used` 0, the oldest of all.
        let way = (0..WAYS)
            .min_by_key(|&w| set.used.get(w).copied().unwrap_or(0))
            .unwrap_or(0);
        t.clock += 1;
        if let (Some(h), Some(u)) = (set.hash.get_mut(way), set.used.get_mut(way)) {
            *h = miss.hash;
            *u = t.clock;
        }
        let at = (set_index * WAYS + way) * ENTRY;
        let Some(e) = t.entries.get_mut(at..at + ENTRY) else {
            return;
        };
        put(e, 0, &[found.len() as u8, u8::from(ev.ttl.is_some())]);
        put(e, 2, &(qname.len() as u16).to_le_bytes());
        put(e, 6, &ev.qtype.to_le_bytes());
        put(e, 8, &ev.ttl.unwrap_or(0).to_le_bytes());
        put(e, 16, &ev.qname_hash.to_le_bytes());
        let names_at = HEAD + found.len() * FOUND;
        put(e, names_at, qname);
        let mut names_len = qname.len();
        for (i, f) in found.iter().enumerate() {
            let rec = HEAD + i * FOUND;
            match *f {
                Found::Backend { addr, srv, .. } => {
                    let (family, octets): (u8, &[u8]) = match &addr {
                        Addr::V4(a) => (4, a),
                        Addr::V6(a) => (6, a),
                    };
                    put(e, rec, &[family, u8::from(srv.is_some())]);
                    put_srv(e, rec, &srv.unwrap_or_default());
                    put(e, rec + 8, octets);
                }
                Found::Target { name, hash, srv } => {
                    put(e, rec, &[TARGET]);
                    put_srv(e, rec, &srv);
                    put(e, rec + 8, &hash.to_le_bytes());
                    put(e, rec + 16, &(names_len as u16).to_le_bytes());
                    put(e, rec + 18, &(name.len as u16).to_le_bytes());
                    let target = out.name(name);
                    put(e, names_at + names_len, target);
                    names_len += target.len();
                }
            }
        }
        put(e, 4, &(names_len as u16).to_le_bytes());
    }
}

/// A message's ID and the bytes after it.
fn split_id(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (id, message) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_be_bytes(*id), message))
}

/// Appends a kept name to the batch's arena; its span.
fn push_name(arena: &mut NameArena, name: &[u8]) -> Span {
    Span {
        start: arena.push_name(name) as u32,
        len: name.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::{Dissector, Link};
    use crate::fuzzing::digests;
    use crate::synth::{Frame, Rr, dns_response, udp_frame};
    use crate::wire::dns::{TYPE_A, TYPE_AAAA, TYPE_SRV};

    const SERVER: Addr = Addr::V4([10, 0, 0, 53]);

    fn a(name: &str, last: u8, ttl: u32) -> Rr {
        Rr::A(name.into(), [192, 0, 2, last], ttl)
    }

    fn srv(name: &str, port: u16, target: &str) -> Rr {
        Rr::Srv {
            name: name.into(),
            priority: 1,
            weight: port,
            port,
            target: target.into(),
            ttl: 60,
        }
    }

    /// Responses of every shape the digest knows.
    fn responses(id: u16) -> Vec<Vec<u8>> {
        let web = "www.example.com";
        let svc = "_web._tcp.example.com";
        vec![
            dns_response(
                id,
                web,
                TYPE_A,
                &[a(web, 1, 300), a(web, 2, 300), a(web, 3, 200)],
                &[],
            ),
            dns_response(
                id,
                "v6.example.com",
                TYPE_AAAA,
                &[Rr::Aaaa("v6.example.com".into(), [0x20; 16], 30)],
                &[],
            ),
            dns_response(
                id,
                "alias.example.com",
                TYPE_A,
                &[
                    Rr::Cname("alias.example.com".into(), web.into(), 50),
                    a(web, 9, 400),
                ],
                &[],
            ),
            // With the targets' addresses, and with one left to look up.
            dns_response(
                id,
                svc,
                TYPE_SRV,
                &[srv(svc, 8080, "b1.example.com"), srv(svc, 8081, "b2.example.com")],
                &[a("b1.example.com", 7, 100)],
            ),
        ]
    }

    /// Every response of [`responses`] to each client in turn, each client
    /// with its own IDs and port, through one dissector; the batch.
    fn dissected(d: &Dissector, clients: &[Addr]) -> EventBatch {
        let mut batch = EventBatch::default();
        for (c, &client) in clients.iter().enumerate() {
            for (k, msg) in responses(100 + c as u16).iter().enumerate() {
                let frame = udp_frame(Frame::default(), SERVER, client, 53, 40000 + c as u16, msg);
                d.record(Link::Ethernet, (c * 10 + k) as u64, &frame, &mut batch);
            }
        }
        batch
    }

    fn walker() -> Dissector {
        Dissector {
            memoize: false,
            ..Dissector::default()
        }
    }

    #[test]
    fn a_recalled_response_digests_as_its_walk_for_its_own_client_port_and_id() {
        let clients = [
            Addr::V4([10, 1, 0, 1]),
            Addr::V4([10, 1, 0, 1]),
            Addr::V4([10, 1, 0, 2]),
            Addr::V6([0xfd; 16]),
        ];
        let memo = Dissector::default();
        let recalled = dissected(&memo, &clients);
        let walked = dissected(&walker(), &clients);
        // The first two clients' are walked (the second's kept); the
        // others are recalled.
        let n = responses(0).len() as u64;
        assert_eq!(memo.memo_hits(), n * (clients.len() as u64 - 2));
        assert_eq!(walker().memo_hits(), 0);
        assert_eq!(recalled.dns.len(), walked.dns.len());
        assert_eq!(digests(&recalled), digests(&walked));
        assert_eq!(recalled.counters, walked.counters);
        // The SRV target without an address came back as a target.
        assert!(
            digests(&recalled)
                .iter()
                .filter(|d| d.contains("target b2.example.com."))
                .count()
                == clients.len()
        );
    }

    #[test]
    fn a_response_that_differs_after_its_id_is_walked_again() {
        let client = Addr::V4([10, 1, 0, 1]);
        let web = "www.example.com";
        let memo = Dissector::default();
        let mut batch = EventBatch::default();
        for ttl in [300, 300, 299, 300] {
            let msg = dns_response(7, web, TYPE_A, &[a(web, 1, ttl), a(web, 2, 300)], &[]);
            let frame = udp_frame(Frame::default(), SERVER, client, 53, 40000, &msg);
            memo.record(Link::Ethernet, 1, &frame, &mut batch);
        }
        // Kept the second time; only the fourth equals one kept.
        assert_eq!(memo.memo_hits(), 1);
        let ttls: Vec<_> = batch.dns.iter().map(|d| d.ttl).collect();
        assert_eq!(ttls, [Some(300), Some(300), Some(299), Some(300)]);
    }

    #[test]
    fn a_response_from_another_port_or_too_big_to_keep_is_never_recalled() {
        let client = Addr::V4([10, 1, 0, 1]);
        let web = "w.io";
        let memo = Dissector::default();
        let small = dns_response(7, web, TYPE_A, &[a(web, 1, 300)], &[]);
        let many: Vec<Rr> = (0..=MAX_FOUND as u8).map(|k| a(web, k, 300)).collect();
        let wide = dns_response(7, web, TYPE_A, &many, &[]);
        // Four SRV targets left to look up, with names of 160 bytes.
        let svc = "_x._tcp.w.io";
        let targets: Vec<Rr> = (1..=4u16)
            .map(|k| {
                srv(
                    svc,
                    k,
                    &format!("t{k}.{}.example.com", vec!["x".repeat(48); 3].join(".")),
                )
            })
            .collect();
        let long = dns_response(7, svc, TYPE_SRV, &targets, &[]);
        let mut batch = EventBatch::default();
        for _ in 0..3 {
            // A response sent to port 53 from another is no response
            // connbal follows.
            for (msg, sport, dport) in [(&small, 5353, 53), (&wide, 53, 40000), (&long, 53, 40000)] {
                let frame = udp_frame(Frame::default(), SERVER, client, sport, dport, msg);
                memo.record(Link::Ethernet, 1, &frame, &mut batch);
            }
        }
        assert_eq!(memo.memo_hits(), 0);
        // Walked each time.
        assert_eq!(batch.counters.dns_ignored, 3);
        assert_eq!(batch.dns.len(), 6);
        assert!(batch.dns.iter().all(|d| d.backends.1 > d.backends.0));
    }

    #[test]
    fn the_memo_holds_its_bound_and_recalls_the_latest_used() {
        let client = Addr::V4([10, 1, 0, 1]);
        let memo = Dissector::default();
        let mut batch = EventBatch::default();
        let msg = |i: usize| {
            let name = format!("n{i}.example.com");
            dns_response(7, &name, TYPE_A, &[a(&name, 1, 300)], &[])
        };
        let send = |i: usize, batch: &mut EventBatch| {
            let frame = udp_frame(Frame::default(), SERVER, client, 53, 40000, &msg(i));
            batch.clear();
            memo.record(Link::Ethernet, 1, &frame, batch);
        };
        // Seen once, nothing is copied.
        for i in 0..SETS {
            send(i, &mut batch);
        }
        assert!(memo.memo.table.borrow().entries.is_empty());
        // Sixteen times as many messages as entries: each of the 512 sets
        // receives 64 on average (the keys are random per run), so that
        // every set fills (at four times as many, about one run in twenty
        // left some set with fewer than its four ways).
        let all = 16 * SETS * WAYS;
        for i in 0..all {
            send(i, &mut batch);
            send(i, &mut batch);
        }
        {
            let t = memo.memo.table.borrow();
            assert_eq!(t.entries.len(), SETS * WAYS * ENTRY);
            assert!(
                t.entries
                    .chunks_exact(ENTRY)
                    .all(|e| e.first() == Some(&1) && get_u16(e, 4) > 0)
            );
        }
        // The latest are kept; the first are long gone.
        let hits = memo.memo_hits();
        send(all - 1, &mut batch);
        assert_eq!(memo.memo_hits(), hits + 1);
        send(0, &mut batch);
        assert_eq!(memo.memo_hits(), hits + 1);
        // A clone starts empty.
        let copy = memo.clone();
        assert!(copy.memo.table.borrow().entries.is_empty());
    }
}
