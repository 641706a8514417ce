//! Each stage of the pipeline alone, on one thread, over a generated
//! workload held in memory: where the time of a whole run goes.
//!
//!   cargo bench --bench stages                       # SYN and -a workloads
//!   STAGES_CONNECTIONS=1000000 cargo bench --bench stages
//!   STAGES_FILE=/tmp/syn.snoop cargo bench --bench stages   # a capture file
//!   STAGES_MESSAGES=1000000 cargo bench --bench stages      # one frame of each kind
//!   STAGES_MEMO=0 ...                      # no response recalled from the memo
//!   STAGES_MISS=1 STAGES_MESSAGES=...      # each response new to the memo
//!
//! Prints ns per record for framing (the reader's work), dissection (the
//! parser workers') and aggregation (the aggregator's), the best of
//! `STAGES_RUNS` runs (default 3).

use std::hint::black_box;
use std::time::Instant;

use connbal::aggregate::{Aggregator, Options};
#[path = "common.rs"]
mod common;

use common::{dissect_all, frame_all};
use connbal::capture::RecordMeta;
use connbal::dissect::{Dissector, Link};
use connbal::event::EventBatch;
use connbal::generate::{Workload, generate, sample_frames};
use connbal::pipeline::dissect_records;

const BATCH: usize = 4096;

/// The allocator the program runs with, so that the stages allocate as
/// they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Framing, timed (a named function for callgrind).
#[inline(never)]
fn frame_pass(bytes: &[u8], metas: &mut Vec<RecordMeta>) {
    frame_all(bytes, metas);
}

/// One timed pass of dissection, into batches already grown.
#[inline(never)]
fn dissect_pass(dissector: &Dissector, bytes: &[u8], metas: &[RecordMeta], batches: &mut [EventBatch]) {
    for (batch, part) in batches.iter_mut().zip(metas.chunks(BATCH)) {
        batch.clear();
        dissect_records(dissector, bytes, part, batch);
    }
}

/// One timed pass of aggregation, from a new aggregator told the
/// capture's length, as a mapped run's is (its tables' room reserved, so
/// that they grow in place and its vectors are not copied). The tables
/// are handed back, to be dropped after the timing: the program exits
/// without freeing them.
#[inline(never)]
fn aggregate_pass(all: bool, capture_len: u64, batches: &[EventBatch]) -> Aggregator {
    black_box(aggregated(all, capture_len, batches))
}

/// The tables after `batches`.
fn aggregated(all: bool, capture_len: u64, batches: &[EventBatch]) -> Aggregator {
    let mut agg = Aggregator::new(Options {
        all_segments: all,
        ..Default::default()
    });
    agg.expect_capture(capture_len);
    for batch in batches {
        agg.apply(batch);
    }
    agg
}

/// One timed pass of writing the TSV summary (into nothing); the bytes
/// it would have written.
#[inline(never)]
fn output_pass(agg: &Aggregator) -> u64 {
    let mut counted = CountingSink(0);
    connbal::output::write_summary_tsv(agg, &mut counted).expect("a sink takes every byte");
    counted.0
}

/// Counts what is written to it.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
        // The last run's result goes before the timer starts.
        drop(out.take());
        let start = Instant::now();
        let v = f();
        best = best.min(start.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

fn stages(name: &str, bytes: &[u8], all: bool, runs: usize) {
    // Framing with offsets relative to the whole input (u32 offsets limit
    // an in-memory capture to 4 GiB).
    assert!(bytes.len() < u32::MAX as usize, "use a capture under 4 GiB");
    // Vectors are grown once, outside the timed runs, as the pipeline
    // recycles its own.
    let mut metas = Vec::new();
    frame_all(bytes, &mut metas);
    let (t_frame, ()) = best(runs, || frame_pass(black_box(bytes), &mut metas));
    let n = metas.len() as f64;
    let dissector = Dissector {
        all_segments: all,
        // STAGES_MEMO=0: every response walked, none recalled.
        memoize: memo_on(),
        ..Dissector::default()
    };
    let mut batches = dissect_all(&dissector, bytes, &metas, BATCH);
    eprintln!(
        "{name}: {} responses recalled from the memo",
        dissector.memo_hits()
    );
    let (t_dissect, ()) = best(runs, || dissect_pass(&dissector, bytes, &metas, &mut batches));
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    let (t_aggregate, agg) = best(runs, || aggregate_pass(all, bytes.len() as u64, &batches));
    let (t_output, written) = best(runs, || output_pass(&agg));
    let per = |t: f64| t * 1e9 / n;
    println!(
        "{name:<8} {:>11} records {:>11} events | framing {:>6.1} ns/rec | dissection {:>6.1} ns/rec | aggregation {:>6.1} ns/rec | sum {:>6.1} ns/rec | output {:>8.2} ms ({written} bytes)",
        metas.len(),
        events,
        per(t_frame),
        per(t_dissect),
        per(t_aggregate),
        per(t_frame + t_dissect + t_aggregate),
        t_output * 1e3,
    );
}

/// Each kind of frame alone, dissected `n` times (one named function per
/// kind, so that callgrind can count each).
///
/// A response is recalled from the memo after its first time; with
/// `STAGES_MEMO=0` it is walked every time, and with `STAGES_MISS=1` its
/// first TTL changes every time (each one a miss, walked and kept).
fn messages(n: usize) {
    let frames = sample_frames();
    let dissector = Dissector {
        memoize: memo_on(),
        ..Dissector::default()
    };
    let miss = std::env::var("STAGES_MISS").is_ok_and(|v| v == "1");
    let all = Dissector {
        all_segments: true,
        ..Dissector::default()
    };
    let mut batch = EventBatch::default();
    let only = std::env::var("STAGES_ONLY").ok();
    for (name, frame) in &frames {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let start = Instant::now();
        let f: fn(&Dissector, &[u8], &mut EventBatch, usize, Option<usize>) = match *name {
            "syn" => msg_syn,
            "segment_ack" => msg_segment,
            "query" => msg_query,
            "a_response_4" => msg_a,
            "cname_response_3" => msg_cname,
            _ => msg_srv,
        };
        let d = if *name == "segment_ack" { &all } else { &dissector };
        let vary = if miss { first_ttl(frame) } else { None };
        f(d, frame, &mut batch, n, vary);
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "message  {name:<18} {:>4} bytes  dissection {ns:>6.1} ns",
            frame.len()
        );
    }
}

/// The aggregator alone, in its steady state: a lookup of a name the client
/// has looked up before (query and A response), and SYNs to a bound backend.
fn aggregator_messages(n: usize) {
    let frames = sample_frames();
    let frame = |name: &str| {
        frames
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, b)| b.clone())
            .expect("sample frame")
    };
    let d = Dissector::default();
    let mut lookup = EventBatch::default();
    for _ in 0..64 {
        d.record(Link::Ethernet, 1, &frame("query"), &mut lookup);
        d.record(Link::Ethernet, 1, &frame("a_response_4"), &mut lookup);
    }
    let mut syns = EventBatch::default();
    for _ in 0..128 {
        d.record(Link::Ethernet, 2, &frame("syn"), &mut syns);
    }
    // -a: one connection's segments after its SYN (the connection stays
    // open: each round sees it again, counted already).
    let all = Dissector {
        all_segments: true,
        ..Dissector::default()
    };
    let mut segments = EventBatch::default();
    all.record(Link::Ethernet, 2, &frame("syn"), &mut segments);
    for _ in 0..127 {
        all.record(Link::Ethernet, 2, &frame("segment_ack"), &mut segments);
    }
    let mut agg = Aggregator::new(Options::default());
    agg.apply(&lookup);
    let only = std::env::var("STAGES_ONLY").ok();
    for (name, f, batch) in [
        (
            "agg_lookup_pair",
            agg_lookup as fn(&mut Aggregator, &EventBatch, usize),
            &lookup,
        ),
        ("agg_syn", agg_syn, &syns),
        ("agg_segment", agg_segment, &segments),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        if name == "agg_segment" {
            agg = Aggregator::new(Options {
                all_segments: true,
                ..Default::default()
            });
            agg.apply(&lookup);
        }
        let start = Instant::now();
        let rounds = n / batch.events.len();
        f(&mut agg, batch, rounds);
        let ns = start.elapsed().as_nanos() as f64 / (rounds * batch.events.len()) as f64;
        println!("message  {name:<18} aggregation {ns:>6.1} ns per event");
    }
}

/// `salt` keeps the per-kind wrappers below distinct functions (see
/// [`dissect_frame`]).
fn apply_rounds(agg: &mut Aggregator, batch: &EventBatch, rounds: usize, salt: u8) {
    black_box(salt);
    for _ in 0..rounds {
        agg.apply(batch);
    }
}

#[inline(never)]
fn agg_lookup(agg: &mut Aggregator, batch: &EventBatch, rounds: usize) {
    apply_rounds(agg, batch, rounds, 0);
}

#[inline(never)]
fn agg_segment(agg: &mut Aggregator, batch: &EventBatch, rounds: usize) {
    apply_rounds(agg, batch, rounds, 2);
}

#[inline(never)]
fn agg_syn(agg: &mut Aggregator, batch: &EventBatch, rounds: usize) {
    apply_rounds(agg, batch, rounds, 1);
}

/// Whether responses may be recalled from the memo (`STAGES_MEMO=0`: no).
fn memo_on() -> bool {
    std::env::var("STAGES_MEMO").map_or(true, |v| v != "0")
}

/// Where the TTL of a response frame's first answer lies (the first TTL
/// of 300 after the DNS header), if it has one.
fn first_ttl(frame: &[u8]) -> Option<usize> {
    (54..frame.len().saturating_sub(4)).find(|&i| frame[i..i + 4] == 300u32.to_be_bytes())
}

/// `salt` keeps the per-kind wrappers below distinct functions (the
/// compiler would merge identical ones, and callgrind count them as one).
/// With `vary`, the two low bytes of the TTL there change every time.
fn dissect_frame(
    d: &Dissector,
    frame: &[u8],
    batch: &mut EventBatch,
    n: usize,
    vary: Option<usize>,
    salt: u8,
) {
    black_box(salt);
    let mut frame = frame.to_vec();
    for i in 0..n {
        if i % 1024 == 0 {
            batch.clear();
        }
        if let Some(at) = vary {
            frame[at + 2..at + 4].copy_from_slice(&(i as u16).to_be_bytes());
        }
        d.record(Link::Ethernet, 1, black_box(&frame), batch);
    }
    black_box(batch.events.len());
}

#[inline(never)]
fn msg_syn(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 0);
}

#[inline(never)]
fn msg_segment(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 5);
}

#[inline(never)]
fn msg_query(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 1);
}

#[inline(never)]
fn msg_a(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 2);
}

#[inline(never)]
fn msg_cname(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 3);
}

#[inline(never)]
fn msg_srv(d: &Dissector, f: &[u8], b: &mut EventBatch, n: usize, vary: Option<usize>) {
    dissect_frame(d, f, b, n, vary, 4);
}

fn main() {
    if let Ok(n) = std::env::var("STAGES_MESSAGES") {
        let n = n.parse().unwrap_or(1_000_000);
        messages(n);
        aggregator_messages(n);
        return;
    }
    let runs = std::env::var("STAGES_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if let Ok(path) = std::env::var("STAGES_FILE") {
        let bytes = std::fs::read(&path).expect("read STAGES_FILE");
        let all = std::env::var("STAGES_ALL").is_ok_and(|v| v == "1");
        stages(&path, &bytes, all, runs);
        return;
    }
    let connections: u64 = std::env::var("STAGES_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    for (name, streams) in [("syn", false), ("streams", true)] {
        let work = Workload {
            connections: if streams { connections * 3 / 7 } else { connections },
            streams,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        generate(&work, &mut bytes).expect("generate");
        stages(name, &bytes, streams, runs);
    }
}
