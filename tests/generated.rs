//! Generated workloads: connbal's rows equal the generator's ground truth,
//! at sizes and mixes no fixture has.

use connbal::aggregate;
use connbal::generate::{Format, Workload, generate};
use connbal::pipeline::{Config, summarize};

/// Runs `work` through the pipeline, checks its rows against the ground
/// truth, and returns the run's tables and the truth.
fn check(work: &Workload) -> (connbal::pipeline::Outcome, String) {
    let mut capture = Vec::new();
    let generated = generate(work, &mut capture).expect("generate");
    assert_eq!(generated.bytes, capture.len() as u64);
    assert!(generated.truth.lines().count() > 10);
    let config = Config {
        threads: 2,
        interval: None,
        aggregate: aggregate::Options {
            all_segments: work.streams,
            ..Default::default()
        },
    };
    let (rows, outcome) = summarize(&capture, &config).expect("a capture");
    assert_eq!(outcome.aggregator.counters.records, generated.records);
    assert!(
        rows == generated.truth,
        "{work:?}: rows differ from the ground truth"
    );
    (outcome, generated.truth)
}

#[test]
fn syn_workloads_in_every_format_match_the_ground_truth() {
    for format in [Format::Snoop, Format::Pcap, Format::Pcapng] {
        check(&Workload {
            connections: 6000,
            clients: 12,
            services: 9,
            format,
            ..Default::default()
        });
    }
}

#[test]
fn stream_workload_with_all_matches_the_ground_truth() {
    check(&Workload {
        connections: 4000,
        clients: 7,
        services: 8,
        streams: true,
        seed: 7,
        ..Default::default()
    });
}

#[test]
fn lookup_before_every_connection_and_no_noise() {
    check(&Workload {
        connections: 3000,
        lookup_every: 1,
        noise_percent: 0,
        vlan_percent: 50,
        seed: 3,
        ..Default::default()
    });
}

#[test]
fn wide_workload_many_clients_few_connections_each() {
    check(&Workload {
        connections: 5000,
        clients: 300,
        services: 25,
        seed: 11,
        ..Default::default()
    });
}

/// A mapped capture's length reserves room for the services and backends
/// it could make, within the caps; a capture that makes more (SRV targets
/// that fan out to many SRV names can) grows its tables past that room,
/// and its rows are the same.
#[test]
fn tables_grow_past_the_room_reserved_for_a_capture() {
    use connbal::aggregate::{Aggregator, Options};
    use connbal::dissect::Dissector;

    let caps = Options {
        max_services: 1000,
        ..Default::default()
    };
    let mut agg = Aggregator::new(caps);
    agg.expect_capture(1 << 20);
    if connbal::table::reserving_is_free() {
        assert!(
            (1000..2000).contains(&agg.services.capacity()),
            "services at their cap"
        );
        assert!(
            (65536..131072).contains(&agg.backends.capacity()),
            "2^20 / 16 backends"
        );
    } else {
        assert_eq!((agg.services.capacity(), agg.backends.capacity()), (0, 0));
    }

    let work = Workload {
        connections: 3000,
        clients: 40,
        services: 20,
        seed: 9,
        ..Default::default()
    };
    let mut capture = Vec::new();
    let generated = generate(&work, &mut capture).expect("generate");
    let mut metas = Vec::new();
    crate::common::frame_all(&capture, &mut metas);
    let batches = crate::common::dissect_all(&Dissector::default(), &capture, &metas, 512);
    let mut agg = Aggregator::new(Options::default());
    agg.expect_capture(64 * 16);
    let room = (agg.services.capacity(), agg.backends.capacity());
    for batch in &batches {
        agg.apply(batch);
    }
    assert!(
        agg.services.len() > room.0 && agg.backends.len() > room.1,
        "{} services and {} backends in room for {room:?}",
        agg.services.len(),
        agg.backends.len()
    );
    let mut out = Vec::new();
    connbal::output::write_summary_tsv(&agg, &mut out).expect("into memory");
    assert!(
        String::from_utf8_lossy(&out) == generated.truth,
        "rows differ from the ground truth"
    );
}

/// The summary is written a block of services at a time, every other block
/// formatted on a helper thread: however small the blocks, the bytes are
/// those of one block written alone, and a failing writer stops it.
#[test]
fn summaries_written_in_blocks_on_two_threads_are_the_same_bytes() {
    use connbal::{output, report};
    let (outcome, truth) = check(&Workload {
        connections: 4000,
        clients: 60,
        services: 12,
        seed: 5,
        ..Default::default()
    });
    let agg = &outcome.aggregator;
    let whole = |write: &dyn Fn(usize, &mut Vec<u8>) -> std::io::Result<()>| {
        let mut out = Vec::new();
        write(usize::MAX, &mut out).expect("into memory");
        out
    };
    let tsv = whole(&|b, out| output::write_summary_tsv_blocks(agg, b, out));
    let json = whole(&|b, out| report::write_json_blocks(agg, b, out));
    let jsonl = whole(&|b, out| report::write_jsonl_blocks(agg, b, out));
    assert_eq!(String::from_utf8_lossy(&tsv), truth);
    for block_backends in [1, 2, 7, 100] {
        let mut out = Vec::new();
        output::write_summary_tsv_blocks(agg, block_backends, &mut out).expect("into memory");
        assert!(out == tsv, "TSV in blocks of {block_backends} backends");
        out.clear();
        report::write_json_blocks(agg, block_backends, &mut out).expect("into memory");
        assert!(out == json, "JSON in blocks of {block_backends} backends");
        out.clear();
        report::write_jsonl_blocks(agg, block_backends, &mut out).expect("into memory");
        assert!(out == jsonl, "JSONL in blocks of {block_backends} backends");
    }

    // The blocks reach the writer once each, in order; a writer that
    // fails stops the walk (the helper thread does not hang on to it).
    let services = output::sorted_services(agg);
    assert!(services.len() > 100, "{} services", services.len());
    let mut firsts = Vec::new();
    let format = |from: usize, part: &[(&aggregate::Service, std::sync::Arc<str>)], buf: &mut Vec<u8>| {
        buf.extend_from_slice(&(from as u64).to_le_bytes());
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
    };
    output::write_blocks(&services, 3, format, |buf: &Vec<u8>| {
        let word = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes")) as usize;
        firsts.push((word(0), word(8)));
        Ok(())
    })
    .expect("no error");
    assert!(firsts.len() > 10, "{} blocks", firsts.len());
    let mut next = 0;
    for &(from, len) in &firsts {
        assert_eq!(from, next, "blocks in order, none left out");
        assert!(len > 0);
        next = from + len;
    }
    assert_eq!(next, services.len());
    let mut calls = 0;
    let stopped = output::write_blocks(&services, 3, format, |_: &Vec<u8>| {
        calls += 1;
        if calls == 4 {
            return Err(std::io::Error::other("closed"));
        }
        Ok(())
    });
    assert_eq!(stopped.map_err(|e| e.to_string()), Err("closed".to_string()));
    assert_eq!(calls, 4);
}

/// A response that comes right after its own query in a batch is handed
/// to the aggregator with it, as one event: on every shared capture and
/// on generated workloads (floods of unanswered queries with a small cap
/// among them), in batches of 1 to 4096 records, the rows and every
/// counter are those of the unpaired events.
/// Two shortcuts of the workers change nothing the aggregator makes of
/// the events: pairing a response with its query, and digesting a response
/// seen before from the response memo.
#[test]
fn paired_lookups_and_recalled_responses_change_no_row_and_no_counter() {
    use connbal::aggregate::{Aggregator, Options};
    use connbal::cli::OutputFormat;
    use connbal::dissect::Dissector;
    use connbal::event::Event;
    use connbal::generate::{Flood, FloodKind};
    use connbal::report::{Style, render};

    let mut captures: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for entry in std::fs::read_dir(crate::data("")).expect("tests/data") {
        let path = entry.expect("an entry").path();
        let name = path.display().to_string();
        if [".snoop", ".pcap", ".pcapng"].iter().any(|e| name.ends_with(e)) {
            let bytes = std::fs::read(&path).expect("a capture");
            captures.push((name.clone(), bytes.clone(), true));
            captures.push((name, bytes, false));
        }
    }
    for (seed, streams, flood) in [
        (21, false, None),
        (22, true, None),
        (23, false, Some(FloodKind::Queries)),
        (24, false, Some(FloodKind::SrvTargets)),
    ] {
        let work = Workload {
            connections: 3000,
            clients: 15,
            services: 10,
            seed,
            streams,
            flood: flood.map(|kind| Flood { kind, count: 3000 }),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        generate(&work, &mut bytes).expect("generate");
        captures.push((format!("{work:?}"), bytes, streams));
    }
    let (mut paired, mut recalled) = (0, 0);
    for (name, bytes, all) in &captures {
        let mut metas = Vec::new();
        crate::common::frame_all(bytes, &mut metas);
        for batch_records in [1, 5, 4096] {
            let mut outcome = |pair_lookups: bool, memoize: bool| {
                let dissector = Dissector {
                    all_segments: *all,
                    pair_lookups,
                    memoize,
                    ..Dissector::default()
                };
                let batches = crate::common::dissect_all(&dissector, bytes, &metas, batch_records);
                paired += batches
                    .iter()
                    .flat_map(|b| &b.events)
                    .filter(|e| matches!(e, Event::Lookup { .. }))
                    .count();
                recalled += dissector.memo_hits();
                let mut agg = Aggregator::new(Options {
                    all_segments: *all,
                    max_pending: 500,
                    ..Default::default()
                });
                for batch in &batches {
                    agg.apply(batch);
                }
                let style = Style::default();
                (
                    render(&agg, OutputFormat::Tsv, style),
                    render(&agg, OutputFormat::Json, style),
                )
            };
            let plain = outcome(false, false);
            assert!(
                outcome(true, false) == plain,
                "{name}, batches of {batch_records}: pairing changed the outcome"
            );
            assert!(
                outcome(false, true) == plain,
                "{name}, batches of {batch_records}: the response memo changed the outcome"
            );
        }
    }
    assert!(paired > 10_000, "only {paired} lookups were paired");
    assert!(recalled > 10_000, "only {recalled} responses were recalled");
}
