//! The machine's memory latency as the aggregator meets it: a chain of
//! dependent loads, each to a random cache line of a table of 1, 4, 16 or
//! 64 MiB held in memory advised for huge pages (as the aggregator's big
//! tables are), so that the figure is the caches' and the memory's, not
//! the TLB's.
//!
//!   cargo bench --bench memlat                          # one line, ns a load
//!   MEMLAT_SIZES=1,2,4,8,16,32,64,256 cargo bench --bench memlat
//!
//! On a VM whose last-level cache is shared with other tenants, these
//! move from one hour to the next, and connbal's speed with them (its
//! aggregator waits on such loads for most of its time): so
//! `benches/throughput.sh` prints them with each of its runs.

use std::hint::black_box;
use std::time::Instant;

/// One cache line: the index of the next line of the chain.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    next: u32,
}

/// Loads timed at each size (after as many untimed, to settle the caches).
const LOADS: usize = 1 << 21;

/// Nanoseconds a load along a random cycle through every line of `mib`
/// MiB.
fn chase(mib: usize) -> f64 {
    let lines = (mib << 20) / size_of::<Line>();
    let mut table = connbal::table::huge_vec(lines, Line { next: 0 });
    // A random order of the lines (Fisher-Yates, the generator's PRNG),
    // linked into one cycle: each load's address is the value the one
    // before read.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = connbal::generate::Rng::new(1);
    for i in (1..lines).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (k, &from) in order.iter().enumerate() {
        table[from as usize].next = order[(k + 1) % lines];
    }
    let mut at = 0u32;
    for _ in 0..LOADS {
        at = table[at as usize].next;
    }
    let start = Instant::now();
    for _ in 0..LOADS {
        at = table[at as usize].next;
    }
    black_box(at);
    start.elapsed().as_nanos() as f64 / LOADS as f64
}

fn main() {
    let sizes: Vec<usize> = std::env::var("MEMLAT_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16, 64]);
    let figures: Vec<String> = sizes
        .iter()
        .filter(|&&mib| mib > 0)
        .map(|&mib| format!("{mib} MiB {:.1}", chase(mib)))
        .collect();
    println!(
        "# memory latency, ns a dependent load to a random line of: {}",
        figures.join(", ")
    );
}
