//! The stages on threads: one reader frames records into batches, parser
//! workers dissect batches into events, and the calling thread aggregates
//! events in capture order. Channels are bounded and every thread blocks
//! when it has nothing to do: an idle pipe costs no CPU.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, bounded, never, select, unbounded};

use crate::aggregate::{self, Aggregator};
use crate::capture::RecordMeta;
use crate::dissect::Dissector;
use crate::event::{EventBatch, GroupSlots};
use crate::prefault;
use crate::source::{Batch, Chunk, Ending, Source, Spares};

#[derive(Clone, Debug)]
pub struct Config {
    /// Parser workers.
    pub threads: usize,
    /// `--interval`: call the tick callback every this many nanoseconds of
    /// capture time.
    pub interval: Option<u64>,
    pub aggregate: aggregate::Options,
}

pub struct Outcome {
    pub aggregator: Aggregator,
    pub ending: Ending,
}

/// Reads `source` to its end (or until `interrupt` fires) and returns the
/// tables. On an interrupt it returns at once, without waiting for a reader
/// blocked on a silent pipe.
/// Called at each `--interval` boundary with the tables so far and the
/// capture-time span (start, end) of the interval just ended.
pub type Tick<'a> = &'a mut dyn FnMut(&Aggregator, u64, u64);

/// Told after each batch is applied: (bytes of the input read so far,
/// records so far).
pub type Progress<'a> = &'a dyn Fn(u64, u64);

/// What the caller hooks into a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// SIGINT/SIGTERM: stop and return what was applied.
    pub interrupt: Option<&'a Receiver<()>>,
    /// `--interval` blocks.
    pub tick: Option<Tick<'a>>,
    /// A progress display.
    pub progress: Option<Progress<'a>>,
}

pub fn run(source: Source, config: &Config, hooks: Hooks<'_>) -> Outcome {
    let Hooks {
        interrupt,
        mut tick,
        progress,
    } = hooks;
    let threads = config.threads.max(1);
    let dissector = Dissector {
        all_segments: config.aggregate.all_segments,
        filter: config.aggregate.filter.clone(),
        pair_lookups: config.interval.is_none(),
        group_segments: config.interval.is_none(),
        ..Dissector::default()
    };
    let (batch_tx, batch_rx) = bounded::<Batch>(threads * 2);
    let (event_tx, event_rx) = bounded::<EventBatch>(threads * 2);
    let (spare_events_tx, spare_events_rx) = unbounded::<EventBatch>();
    let (spare_buffers_tx, spare_buffers_rx) = unbounded::<Vec<u8>>();
    let (spare_records_tx, spare_records_rx) = unbounded::<Vec<RecordMeta>>();
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = threads * 3 + 2;
    let (tokens_tx, tokens_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = tokens_tx.send(());
    }

    let capture_len = source.len_hint();
    let reader = {
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("connbal-reader".into())
            .spawn(move || {
                yield_to_aggregator();
                let spares = Spares {
                    tokens: Some(tokens_rx),
                    ..Spares::new(spare_buffers_rx, spare_records_rx)
                };
                source.read(&batch_tx, &spares, &stop)
            })
    };
    let reader = match reader {
        Ok(h) => h,
        Err(e) => {
            return Outcome {
                aggregator: Aggregator::new(config.aggregate.clone()),
                ending: Ending::ReadError(format!("cannot start a thread: {e}")),
            };
        }
    };

    for i in 0..threads {
        let dissector = dissector.clone();
        let batch_rx = batch_rx.clone();
        let event_tx = event_tx.clone();
        let spare_events_rx = spare_events_rx.clone();
        let spare_buffers_tx = spare_buffers_tx.clone();
        let spare_records_tx = spare_records_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("connbal-parser-{i}"))
            .spawn(move || {
                yield_to_aggregator();
                // This worker's segment-group slots, lent to each batch it
                // fills (they stay in its cache; the batches go round).
                let mut slots = GroupSlots::default();
                for batch in batch_rx {
                    let mut events = spare_events_rx.try_recv().unwrap_or_default();
                    events.refill_with(&mut slots, |events| dissect_batch(&dissector, &batch, events));
                    let _ = spare_records_tx.send(batch.records);
                    if let Chunk::Owned { buf, .. } = batch.chunk {
                        let _ = spare_buffers_tx.send(buf);
                    }
                    if event_tx.send(events).is_err() {
                        return;
                    }
                }
            });
        if spawned.is_err() && i == 0 {
            return Outcome {
                aggregator: Aggregator::new(config.aggregate.clone()),
                ending: Ending::ReadError("cannot start a parser thread".into()),
            };
        }
    }
    drop(event_tx);
    drop(batch_rx);

    let mut aggregator = Aggregator::new(config.aggregate.clone());
    // A mapped file: the tables' room is reserved, and populated a little
    // ahead of the aggregator by a helper (see `prefault`). Through a pipe
    // memory is the budget: nothing is populated before it is used.
    let _prefaulting = capture_len.and_then(|_| prefault::start());
    if let Some(bytes) = capture_len {
        aggregator.expect_capture(bytes);
    }
    let mut waiting: BTreeMap<u64, EventBatch> = BTreeMap::new();
    let mut next = 0u64;
    let mut clock = IntervalClock::default();
    let never_rx = never();
    let interrupt = interrupt.unwrap_or(&never_rx);
    loop {
        select! {
            recv(event_rx) -> msg => match msg {
                Ok(batch) => {
                    waiting.insert(batch.seq, batch);
                    while let Some(batch) = waiting.remove(&next) {
                        match (config.interval, tick.as_mut()) {
                            (Some(every), Some(tick)) => clock.apply(&mut aggregator, &batch, every, &mut **tick),
                            _ => aggregator.apply(&batch),
                        }
                        if let Some(progress) = progress {
                            progress(batch.end_offset, aggregator.counters.records);
                        }
                        let _ = spare_events_tx.send(batch);
                        let _ = tokens_tx.try_send(());
                        next += 1;
                    }
                }
                Err(_) => break,
            },
            recv(interrupt) -> _ => {
                stop.store(true, Ordering::Relaxed);
                return Outcome { aggregator, ending: Ending::Stopped };
            }
        }
    }
    let ending = reader
        .join()
        .unwrap_or_else(|_| Ending::ReadError("the reader thread failed".into()));
    Outcome { aggregator, ending }
}

/// The reader and the parser workers run a little below the aggregator's
/// priority: on a machine with few cores, the one thread that must apply
/// events in order then runs whenever it has work, and the workers (who
/// can run ahead) fill the time it leaves. Only lowers this thread's
/// priority, which needs no privilege; best effort.
fn yield_to_aggregator() {
    let tid = rustix::thread::gettid();
    if let Ok(nice) = rustix::process::getpriority_process(Some(tid)) {
        let _ = rustix::process::setpriority_process(Some(tid), (nice + 5).min(19));
    }
}

/// Cuts the event stream at every `--interval` boundary of capture time.
#[derive(Default)]
struct IntervalClock {
    /// The current interval: its start, and its end (none when that would
    /// lie past the largest capture time: the interval never ends).
    current: Option<(u64, Option<u64>)>,
}

impl IntervalClock {
    fn apply(
        &mut self,
        agg: &mut Aggregator,
        batch: &EventBatch,
        every: u64,
        tick: &mut dyn FnMut(&Aggregator, u64, u64),
    ) {
        let every = every.max(1);
        let mut at = 0;
        loop {
            if self.current.is_none()
                && let Some(first) = batch.events.get(at).map(|e| e.ts())
            {
                self.current = Some((first, first.checked_add(every)));
            }
            let Some((start, end)) = self.current else {
                // No event yet: only the batch's record counters.
                agg.apply_until(batch, at, None);
                return;
            };
            at = agg.apply_until(batch, at, end);
            let (Some(end), Some(ts)) = (end, batch.events.get(at).map(|e| e.ts())) else {
                return;
            };
            tick(agg, start, end);
            // The interval that holds `ts` (at or past `end`), found in one
            // step: those with nothing in them are skipped, not printed
            // empty. No overflow: the start is at most `ts`.
            let next = end + (ts - end) / every * every;
            self.current = Some((next, next.checked_add(every)));
        }
    }
}

/// Dissects every record of a batch into `out`.
pub fn dissect_batch(dissector: &Dissector, batch: &Batch, out: &mut EventBatch) {
    out.seq = batch.seq;
    out.end_offset = batch.end_offset;
    out.counters = batch.counters;
    dissect_records(dissector, batch.chunk.bytes(), &batch.records, out);
}

/// Dissects `records`, framed from `bytes`, into `out`.
pub fn dissect_records(dissector: &Dissector, bytes: &[u8], records: &[RecordMeta], out: &mut EventBatch) {
    // The packets were last touched by the reader, on another core: start
    // loading them a few records ahead.
    const AHEAD: usize = 4;
    let packet_start = |meta: &RecordMeta| bytes.get(meta.data_off as usize..);
    for meta in records.iter().take(AHEAD) {
        if let Some(p) = packet_start(meta) {
            crate::table::prefetch_lines::<2, _>(p);
        }
    }
    for (i, meta) in records.iter().enumerate() {
        if let Some(p) = records.get(i + AHEAD).and_then(packet_start) {
            crate::table::prefetch_lines::<2, _>(p);
        }
        let start = meta.data_off as usize;
        let Some(data) = bytes.get(start..start + meta.caplen as usize) else {
            continue;
        };
        dissector.record(meta.link, meta.ts, data, out);
    }
}

/// Runs the whole pipeline over a capture held in memory and returns the
/// TSV summary and the ending (for tests, fuzzing and benches).
pub fn summarize(bytes: &[u8], config: &Config) -> Result<(String, Outcome), crate::source::OpenError> {
    let source = Source::from_reader("memory", Box::new(std::io::Cursor::new(bytes.to_vec())))?;
    let outcome = run(source, config, Hooks::default());
    let mut out = Vec::new();
    let _ = crate::output::write_summary_tsv(&outcome.aggregator, &mut out);
    Ok((String::from_utf8_lossy(&out).into_owned(), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn syn(ts: u64) -> Event {
        Event::Syn {
            ts,
            forward: 1,
            syn_key: 1,
            dst_port: 80,
        }
    }

    /// The interval after a long gap is found in one step (with 1-ns
    /// intervals, stepping through the empty ones took as many steps as
    /// nanoseconds), and the last interval before the largest capture time
    /// has no end: its events are applied, not waited on forever.
    #[test]
    fn intervals_step_over_gaps_and_end_at_the_largest_time() {
        let batch = EventBatch {
            events: vec![syn(5), syn(1_000_000_000_000_000_000), syn(u64::MAX), syn(7)],
            ..Default::default()
        };
        let mut agg = Aggregator::new(aggregate::Options::default());
        let mut ticks = Vec::new();
        IntervalClock::default().apply(&mut agg, &batch, 1, &mut |agg: &Aggregator, start, end| {
            ticks.push((start, end, agg.tally.syns_unattributed));
        });
        assert_eq!(
            ticks,
            [
                (5, 6, 1),
                (1_000_000_000_000_000_000, 1_000_000_000_000_000_001, 2)
            ]
        );
        assert_eq!(agg.tally.syns_unattributed, 4, "every event applied");
    }
}
