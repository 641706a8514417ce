//! Criterion benches of the hot paths: framing, dissection, DNS parsing and
//! the aggregator, on a generated SYN workload held in memory.
//!
//! cargo bench --bench hot_paths

use std::hint::black_box;

use connbal::aggregate::{Aggregator, Options};
use connbal::dissect::{Dissector, Link};
use connbal::event::EventBatch;
use connbal::generate::{Workload, generate};
use connbal::pipeline::dissect_records;
use connbal::synth::{Rr, dns_response, udp_frame};
use connbal::wire::dns::TYPE_SRV;
#[path = "common.rs"]
mod common;

use common::{dissect_all, frame_all};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn capture() -> Vec<u8> {
    let mut bytes = Vec::new();
    let work = Workload {
        connections: 30_000,
        ..Default::default()
    };
    generate(&work, &mut bytes).expect("generate");
    bytes
}

fn benches(c: &mut Criterion) {
    let bytes = capture();
    let mut metas = Vec::new();
    frame_all(&bytes, &mut metas);
    let n = metas.len() as u64;

    let mut g = c.benchmark_group("syn_workload");
    g.throughput(Throughput::Elements(n));
    g.bench_function("framing", |b| {
        let mut framed = Vec::with_capacity(metas.len());
        b.iter(|| {
            frame_all(black_box(&bytes), &mut framed);
            black_box(framed.len())
        })
    });
    g.bench_function("dissection", |b| {
        let d = Dissector::default();
        let mut batch = EventBatch::default();
        b.iter(|| {
            batch.clear();
            dissect_records(&d, &bytes, &metas, &mut batch);
            black_box(batch.events.len())
        })
    });
    let batches = dissect_all(&Dissector::default(), &bytes, &metas, 4096);
    g.bench_function("aggregator_apply", |b| {
        b.iter(|| {
            let mut agg = Aggregator::new(Options::default());
            for batch in &batches {
                agg.apply(batch);
            }
            black_box(agg.tally.syns_counted)
        })
    });
    g.finish();

    // One SRV response with four targets and additional records.
    let srv = |k: u16| Rr::Srv {
        name: "_xmpp-client._tcp.example.com".into(),
        priority: 10,
        weight: 5,
        port: 5222 + k,
        target: format!("t{k}.example.com"),
        ttl: 60,
    };
    let answers: Vec<Rr> = (0..4).map(srv).collect();
    let additional: Vec<Rr> = (0..4)
        .map(|k| Rr::A(format!("t{k}.example.com"), [10, 0, 0, k as u8], 60))
        .collect();
    let msg = dns_response(
        7,
        "_xmpp-client._tcp.example.com",
        TYPE_SRV,
        &answers,
        &additional,
    );
    let frame = udp_frame(
        Default::default(),
        connbal::addr::Addr::V4([10, 0, 0, 53]),
        connbal::addr::Addr::V4([10, 0, 0, 1]),
        53,
        40000,
        &msg,
    );
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Elements(1));
    // Walked each time, and recalled from the response memo (the same
    // response again, as a busy client's resolver sends it).
    for (name, memoize) in [("srv_response_walk", false), ("srv_response_recall", true)] {
        g.bench_function(name, |b| {
            let d = Dissector {
                memoize,
                ..Dissector::default()
            };
            let mut batch = EventBatch::default();
            b.iter(|| {
                batch.clear();
                d.record(Link::Ethernet, 0, black_box(&frame), &mut batch);
                black_box(batch.backends.len())
            })
        });
    }
    g.finish();
}

/// Our framers against pcap-parser's on the same generated captures: the
/// measurement behind framing pcap/pcapng ourselves.
fn framing_against_pcap_parser(c: &mut Criterion) {
    use connbal::generate::Format;
    for format in [Format::Pcap, Format::Pcapng] {
        let mut bytes = Vec::new();
        let work = Workload {
            connections: 30_000,
            format,
            ..Default::default()
        };
        generate(&work, &mut bytes).expect("generate");
        let mut metas = Vec::new();
        frame_all(&bytes, &mut metas);
        let n = metas.len() as u64;
        let name = if format == Format::Pcap { "pcap" } else { "pcapng" };
        let mut g = c.benchmark_group(format!("framing_{name}"));
        g.throughput(Throughput::Elements(n));
        // Both sides count the records and their packet bytes, as a reader
        // would before handing them on.
        g.bench_function("connbal", |b| {
            b.iter(|| {
                frame_all(black_box(&bytes), &mut metas);
                let seen: usize = metas.iter().map(|m| m.caplen as usize).sum();
                black_box((metas.len(), seen))
            })
        });
        g.bench_function("pcap_parser", |b| {
            b.iter(|| {
                let mut count = 0usize;
                let mut bytes_seen = 0usize;
                if format == Format::Pcap {
                    let (mut rest, _) = pcap_parser::pcap::parse_pcap_header(&bytes).expect("header");
                    while let Ok((r, block)) = pcap_parser::pcap::parse_pcap_frame(rest) {
                        bytes_seen += block.data.len();
                        count += 1;
                        rest = r;
                    }
                } else {
                    let mut rest = &bytes[..];
                    while let Ok((r, block)) = pcap_parser::pcapng::parse_block_le(rest) {
                        if let pcap_parser::pcapng::Block::EnhancedPacket(epb) = block {
                            bytes_seen += epb.data.len();
                            count += 1;
                        }
                        rest = r;
                    }
                }
                black_box((count, bytes_seen))
            })
        });
        g.finish();
    }
}

criterion_group!(hot_paths, benches, framing_against_pcap_parser);
criterion_main!(hot_paths);
