//! Each stage of the pipeline alone, on one thread, over a generated
//! workload held in memory: where the time of a whole run goes.
//!
//!   cargo bench --bench stages                       # SYN and -a workloads
//!   STAGES_CONNECTIONS=1000000 cargo bench --bench stages
//!   STAGES_FILE=/tmp/syn.snoop cargo bench --bench stages   # a capture file
//!
//! Prints ns per record for framing (the reader's work), dissection (the
//! parser workers') and aggregation (the aggregator's), the best of
//! `STAGES_RUNS` runs (default 3).

use std::hint::black_box;
use std::time::Instant;

use connbal::aggregate::{Aggregator, Options};
use connbal::capture::{Frame, Framer, RecordMeta};
use connbal::dissect::Dissector;
use connbal::event::EventBatch;
use connbal::generate::{Workload, generate};
use connbal::pipeline::dissect_records;

const BATCH: usize = 4096;

#[inline(never)]
fn frame_all(bytes: &[u8], metas: &mut Vec<RecordMeta>) {
    let Ok((mut framer, mut pos)) = Framer::detect(bytes) else {
        panic!("not a capture")
    };
    metas.clear();
    while let Some(rest) = bytes.get(pos..) {
        match framer.next(rest) {
            Frame::Record(mut meta, len) => {
                meta.data_off += pos as u32;
                metas.push(meta);
                pos += len;
            }
            Frame::Skip(len) => pos += len,
            _ => break,
        }
    }
}

/// One timed pass of dissection, into batches already grown.
#[inline(never)]
fn dissect_pass(dissector: &Dissector, bytes: &[u8], metas: &[RecordMeta], batches: &mut [EventBatch]) {
    for (batch, part) in batches.iter_mut().zip(metas.chunks(BATCH)) {
        batch.clear();
        dissect_records(dissector, bytes, part, batch);
    }
}

/// One timed pass of aggregation, from a new aggregator.
#[inline(never)]
fn aggregate_pass(all: bool, batches: &[EventBatch]) -> u64 {
    let mut agg = Aggregator::new(Options {
        all_segments: all,
        ..Default::default()
    });
    for batch in batches {
        agg.apply(batch);
    }
    black_box(agg.tally.responses_matched)
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
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
    let (t_frame, ()) = best(runs, || frame_all(black_box(bytes), &mut metas));
    let n = metas.len() as f64;
    let dissector = Dissector { all_segments: all };
    let dissect_into = |part: &[RecordMeta], batch: &mut EventBatch| {
        dissect_records(&dissector, bytes, part, batch);
    };
    let mut batches: Vec<EventBatch> = metas
        .chunks(BATCH)
        .enumerate()
        .map(|(i, part)| {
            let mut batch = EventBatch {
                seq: i as u64,
                ..Default::default()
            };
            dissect_into(part, &mut batch);
            batch
        })
        .collect();
    let (t_dissect, ()) = best(runs, || dissect_pass(&dissector, bytes, &metas, &mut batches));
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    let (t_aggregate, _) = best(runs, || aggregate_pass(all, &batches));
    let per = |t: f64| t * 1e9 / n;
    println!(
        "{name:<8} {:>11} records {:>11} events | framing {:>6.1} ns/rec | dissection {:>6.1} ns/rec | aggregation {:>6.1} ns/rec | sum {:>6.1} ns/rec",
        metas.len(),
        events,
        per(t_frame),
        per(t_dissect),
        per(t_aggregate),
        per(t_frame + t_dissect + t_aggregate)
    );
}

fn main() {
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
