//! The fuzz targets' bodies (`fuzz/fuzz_targets/*.rs` call these), also
//! replayed over the committed corpora by `cargo test`, so a crash found
//! once stays a test forever.
//!
//! Each function panics only when connbal breaks one of its promises: no
//! panic on any input, the mapped and streaming readers frame the same
//! records, every span stays inside its arena, no output row can be forged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Read;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::unbounded;

use crate::addr::Addr;
use crate::aggregate::{self, Aggregator};
use crate::capture::{Frame, Framer};
use crate::cli::OutputFormat;
use crate::dissect::{self, Dissector, Dns, DnsPacket, Link};
use crate::event::{Event, EventBatch, Found, NO_GROUP, RecordData, Span};
use crate::report::{self, Style};
use crate::source::{Ending, Source, Spares};
use crate::wire::dns::{presentation, presentation_string};

/// A reader that hands out at most `step` bytes a call, like a pipe.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What a reader made of the input: each record's (time, link, bytes), and
/// how reading ended.
type Framed = (Vec<(u64, Link, Vec<u8>)>, Ending);

fn read_all(source: Source) -> Framed {
    // Inline: small pipe buffers, as many as needed, so the reader never
    // waits for one to come back.
    let (tx, rx) = unbounded();
    let (_buf_tx, buf_rx) = unbounded();
    let (_rec_tx, rec_rx) = unbounded();
    let spares = Spares {
        buffer_size: 512,
        buffer_count: usize::MAX,
        ..Spares::new(buf_rx, rec_rx)
    };
    let ending = source.read(&tx, &spares, &AtomicBool::new(false));
    drop(tx);
    let mut records = Vec::new();
    for batch in rx {
        let bytes = batch.chunk.bytes();
        for m in &batch.records {
            let at = m.data_off as usize;
            records.push((m.ts, m.link, bytes[at..at + m.caplen as usize].to_vec()));
        }
    }
    (records, ending)
}

fn anonymous_map(data: &[u8]) -> Option<memmap2::Mmap> {
    let mut map = memmap2::MmapOptions::new().len(data.len()).map_anon().ok()?;
    map.copy_from_slice(data);
    map.make_read_only().ok()
}

/// Framing: the mapped and the streaming readers agree on every input,
/// whatever sizes the pipe delivers.
pub fn framing(data: &[u8]) {
    let step = 1 + usize::from(data.last().copied().unwrap_or(0)) * 37;
    let streamed = Source::from_reader(
        "input",
        Box::new(Trickle {
            data: data.to_vec(),
            pos: 0,
            step,
        }),
    );
    let Some(map) = (!data.is_empty()).then(|| anonymous_map(data)).flatten() else {
        // An empty input is not a capture either way.
        assert!(streamed.is_err());
        return;
    };
    let mapped = Source::from_map("input", map);
    match (mapped, streamed) {
        (Ok(m), Ok(s)) => {
            let (m, s) = (read_all(m), read_all(s));
            assert_eq!(
                m.0.len(),
                s.0.len(),
                "record counts differ: {:?} vs {:?}",
                m.1,
                s.1
            );
            assert!(m.0 == s.0, "records differ");
            assert_eq!(m.1, s.1, "endings differ");
        }
        (Err(m), Err(s)) => assert_eq!(format!("{m:?}"), format!("{s:?}")),
        (m, s) => panic!(
            "one reader took the input, the other did not: {:?} vs {:?}",
            m.is_ok(),
            s.is_ok()
        ),
    }
}

const LINKS: [Link; 9] = [
    Link::Ethernet,
    Link::Ipnet,
    Link::Raw,
    Link::Ipv4,
    Link::Ipv6,
    Link::Sll,
    Link::Sll2,
    Link::Null,
    Link::Loop,
];

fn span_ok(span: Span, arena: &[u8]) -> bool {
    span.start as usize + span.len as usize <= arena.len()
}

/// Every span of every event lies inside its arena, and every name
/// renders without a byte that could forge a row.
fn check_batch(batch: &EventBatch) {
    let name_ok = |span: Span| {
        assert!(
            span_ok(span, batch.names.as_slice()),
            "name span out of the arena"
        );
        let mut text = Vec::new();
        presentation(batch.name(span), &mut text);
        assert!(!text.iter().any(|&b| !(0x20..0x7f).contains(&b)));
    };
    let mut runs = 0;
    for ev in &batch.events {
        match *ev {
            Event::FilteredQuery { index, .. }
            | Event::Response { index, .. }
            | Event::Lookup { index, .. } => {
                let d = &batch.dns[index as usize];
                name_ok(d.qname);
                assert!(d.backends.0 <= d.backends.1 && d.backends.1 as usize <= batch.backends.len());
            }
            Event::TcpData { index, .. } => {
                assert!(span_ok(batch.tcp_data[index as usize].payload, &batch.payload));
            }
            Event::Fragment { index, .. } => {
                assert!(span_ok(batch.fragments[index as usize].payload, &batch.payload));
            }
            Event::Segment {
                index,
                group,
                follower,
                run,
                ..
            } => {
                assert!((index as usize) < batch.segments.len());
                // A follower's group has a lead: a group of the batch.
                assert!(group == NO_GROUP && !follower || batch.groups.group(group).is_some());
                // A run follows a segment of a group, and the runs take
                // `run_segments` in order, each where its head says.
                assert!(run == 0 || group != NO_GROUP);
                if run > 0 {
                    assert_eq!(batch.segments[index as usize].run_start as usize, runs);
                }
                runs += usize::from(run);
            }
            Event::Syn { .. } | Event::Query { .. } => {}
        }
    }
    // The runs take every run segment.
    assert_eq!(runs, batch.run_segments.len());
    for found in &batch.backends {
        if let Found::Target { name, .. } = found {
            name_ok(*name);
        }
    }
    for rec in &batch.records {
        name_ok(rec.owner);
        match rec.data {
            RecordData::Cname(t) | RecordData::Srv { target: t, .. } => name_ok(t),
            RecordData::Addr(_) => {}
        }
    }
}

/// Dissection of one packet, on the link type the first byte picks; with
/// the response memo, the packet seen again (from the memo) gives what it
/// gave the first time, and what it gives without the memo.
pub fn dissect(data: &[u8]) {
    let Some((&pick, packet)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(pick) % LINKS.len()];
    let dissector = Dissector {
        all_segments: pick & 0x80 != 0,
        filter: (pick & 0x40 != 0).then(|| b"e".to_vec()),
        ..Dissector::default()
    };
    let walked = Dissector {
        memoize: false,
        ..dissector.clone()
    };
    same_through_memo(&dissector, &walked, link, packet);
}

/// `packet` dissected without the memo, then twice with it (the second
/// time from it, if it kept the first): the same events and counters.
fn same_through_memo(memo: &Dissector, walked: &Dissector, link: Link, packet: &[u8]) {
    let mut outcomes = Vec::new();
    for d in [walked, memo, memo] {
        let mut batch = EventBatch::default();
        d.record(link, 0, packet, &mut batch);
        check_batch(&batch);
        outcomes.push((digests(&batch), batch.counters));
    }
    assert!(
        outcomes.iter().all(|o| *o == outcomes[0]),
        "the response memo changed a packet's digest"
    );
}

/// What the aggregator reads of a batch, spans resolved: its events in
/// order, each response or query with its names and backends (a digest
/// recalled from the memo puts its names elsewhere in the arena than a walk
/// does).
pub fn digests(batch: &EventBatch) -> Vec<String> {
    let name = |span: Span| presentation_string(batch.name(span));
    let dns = |index: u32| {
        let Some(d) = batch.dns.get(index as usize) else {
            return "missing".to_string();
        };
        let found: Vec<String> = batch
            .backends_of(d)
            .iter()
            .map(|f| match *f {
                Found::Backend { .. } => format!("{f:?}"),
                Found::Target { name: n, hash, srv } => format!("target {} {hash:x} {srv:?}", name(n)),
            })
            .collect();
        format!(
            "{} {:?} {} {} {:x} {:x} {:x} {:?} {found:?}",
            d.ts,
            d.client,
            d.qtype,
            name(d.qname),
            d.qname_hash,
            d.key,
            d.service,
            d.ttl
        )
    };
    batch
        .events
        .iter()
        .map(|e| match *e {
            Event::Response { index, .. } => format!("response {}", dns(index)),
            Event::Lookup { query_ts, index, .. } => format!("lookup {query_ts} {}", dns(index)),
            Event::FilteredQuery { index, .. } => format!("filtered query {}", dns(index)),
            _ => format!("{e:?}"),
        })
        .collect()
}

/// One DNS message, as a response and as a query; as a response, the
/// one-pass digest of plain A/AAAA answers and the general one agree, and
/// so do a walk and a recall from the response memo.
pub fn dns(data: &[u8]) {
    same_digest(data);
    if data.len() <= 60_000 {
        let (server, client) = (Addr::V4([10, 0, 0, 53]), Addr::V6([0xfd; 16]));
        let frame = crate::synth::udp_frame(crate::synth::Frame::default(), server, client, 53, 40000, data);
        let walked = Dissector {
            memoize: false,
            ..Dissector::default()
        };
        same_through_memo(&Dissector::default(), &walked, Link::Ethernet, &frame);
    }
    let (a, b) = (Addr::V4([10, 0, 0, 1]), Addr::V4([10, 0, 0, 53]));
    let mut batch = EventBatch::default();
    for (ts, src, dst, sport, dport) in [(1, b, a, 53, 40000), (2, a, b, 40000, 53)] {
        let packet = DnsPacket {
            ts,
            src,
            dst,
            sport,
            dport,
            bytes: data,
        };
        match dissect::dns_event(&packet, &mut batch) {
            Ok(Some(Dns::Query(index))) => batch.events.push(Event::FilteredQuery { ts, index }),
            Ok(Some(Dns::Response(index))) => batch.push_response(ts, index, false),
            _ => {}
        }
    }
    check_batch(&batch);
}

fn same_digest(data: &[u8]) {
    let (server, client) = (Addr::V4([10, 0, 0, 53]), Addr::V4([10, 0, 0, 1]));
    // As a query: the plain reader and the general one agree.
    let mut q = EventBatch::default();
    let packet = |src, dst, sport, dport| DnsPacket {
        ts: 1,
        src,
        dst,
        sport,
        dport,
        bytes: data,
    };
    let general = dissect::digest_message(&packet(client, server, 40000, 53), &mut q, false);
    let general = match general {
        Ok(Some(Dns::Query(i))) => {
            let d = &q.dns[i as usize];
            let id = u16::from_be_bytes([data[0], data[1]]);
            Some((d.key, d.qname_hash, d.qtype, id))
        }
        _ => None,
    };
    if let Some(p) = dissect::plain_query(data) {
        let key = crate::table::query_key(&client, &server, 40000, p.id);
        assert_eq!(
            Some((key, p.name_hash, p.qtype, p.id)),
            general,
            "the plain query differs"
        );
    }
    let (mut a, mut b) = (EventBatch::default(), EventBatch::default());
    let answer = packet(server, client, 53, 40000);
    let plain = dissect::dns_event(&answer, &mut a);
    let general = dissect::digest_message(&answer, &mut b, false);
    match (plain, general) {
        (Ok(Some(Dns::Response(i))), Ok(Some(Dns::Response(j)))) => {
            let (x, y) = (&a.dns[i as usize], &b.dns[j as usize]);
            assert_eq!(
                (x.ttl, x.key, x.service, x.qname_hash, x.qtype),
                (y.ttl, y.key, y.service, y.qname_hash, y.qtype),
                "the digests differ"
            );
            assert_eq!(a.name(x.qname), b.name(y.qname));
            let names = |batch: &EventBatch, found: &[Found]| -> Vec<String> {
                found
                    .iter()
                    .map(|f| match f {
                        Found::Backend { .. } => format!("{f:?}"),
                        Found::Target { name, hash, srv } => {
                            format!("{:?} {hash} {srv:?}", batch.name(*name))
                        }
                    })
                    .collect()
            };
            assert_eq!(
                names(&a, a.backends_of(x)),
                names(&b, b.backends_of(y)),
                "the backends differ"
            );
        }
        (plain, general) => assert_eq!(
            format!("{:?}", plain.map(|d| d.is_some())),
            format!("{:?}", general.map(|d| d.is_some())),
            "the two readers end differently"
        ),
    }
}

/// The whole pipeline on arbitrary capture bytes, inline (no threads):
/// framing, dissection, aggregation in both modes, and every output form;
/// with lookups paired by the workers or not, responses from the memo or
/// not, and `-a` segments grouped or not, the same outcome (rows and
/// every counter).
pub fn pipeline(data: &[u8]) {
    let Ok((mut framer, mut pos)) = Framer::detect(data) else {
        return;
    };
    let mut batch = EventBatch::default();
    // The second also filters names (-F), so both query forms are seen.
    let dissectors = [
        Dissector {
            all_segments: false,
            filter: None,
            pair_lookups: false,
            ..Dissector::default()
        },
        Dissector {
            all_segments: true,
            filter: Some(b"e".to_vec()),
            pair_lookups: false,
            ..Dissector::default()
        },
    ];
    let mut metas = Vec::new();
    while pos < data.len() {
        match framer.next(&data[pos..]) {
            Frame::Record(meta, len) => {
                assert!(len > 0 && pos + len <= data.len(), "a record past the input");
                let at = pos + meta.data_off as usize;
                assert!(
                    at + meta.caplen as usize <= pos + len,
                    "packet bytes past the record"
                );
                metas.push((meta, at));
                pos += len;
            }
            Frame::Skip(len) => {
                assert!(len > 0, "a framer must always move on");
                pos += len;
            }
            Frame::Incomplete(_) | Frame::Damaged(_) | Frame::Unsupported(_) => break,
        }
    }
    for (i, unpaired) in dissectors.iter().enumerate() {
        let mut outcomes = Vec::new();
        for (pair_lookups, memoize, group_segments) in [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (true, true, true),
        ] {
            let dissector = Dissector {
                pair_lookups,
                memoize,
                group_segments,
                ..unpaired.clone()
            };
            let mut agg = Aggregator::new(aggregate::Options {
                all_segments: i == 1,
                all_names: i == 1,
                filter: dissector.filter.clone(),
                max_pending: 64,
                max_connections: 64,
                max_recent_syns: 64,
                max_srv_targets: 64,
                ..Default::default()
            });
            for chunk in metas.chunks(7) {
                batch.clear();
                for (meta, at) in chunk {
                    dissector.record(
                        meta.link,
                        meta.ts,
                        &data[*at..*at + meta.caplen as usize],
                        &mut batch,
                    );
                }
                check_batch(&batch);
                agg.apply(&batch);
            }
            let tsv = report::render(&agg, OutputFormat::Tsv, Style::default());
            for line in tsv.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert_eq!(
                    line.iter().filter(|&&b| b == b'\t').count(),
                    4,
                    "a row with a forged field"
                );
            }
            for format in [OutputFormat::Jsonl, OutputFormat::Report] {
                let _ = report::render(&agg, format, Style { terminal: i == 1 });
            }
            outcomes.push((tsv, report::render(&agg, OutputFormat::Json, Style::default())));
        }
        assert!(
            outcomes.iter().all(|o| Some(o) == outcomes.first()),
            "pairing lookups in the workers, the response memo or segment groups changed the outcome"
        );
    }
}
