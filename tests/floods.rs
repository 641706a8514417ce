//! Hostile floods mixed into legitimate traffic: the tables stay within
//! their caps, the stats say what was dropped, and the legitimate rows are
//! still exactly right.

use connbal::aggregate;
use connbal::generate::{FLOOD_CLIENT, Flood, FloodKind, Workload, generate};
use connbal::pipeline::{Config, Outcome, summarize};

fn run(kind: FloodKind, all: bool, caps: aggregate::Options) -> (String, String, Outcome) {
    let work = Workload {
        connections: 3000,
        clients: 10,
        services: 10,
        noise_percent: 0,
        flood: Some(Flood { kind, count: 10_000 }),
        ..Default::default()
    };
    let mut capture = Vec::new();
    let generated = generate(&work, &mut capture).expect("generate");
    let config = Config {
        threads: 2,
        interval: None,
        aggregate: aggregate::Options {
            all_segments: all,
            ..caps
        },
    };
    let (rows, outcome) = summarize(&capture, &config).expect("a capture");
    let flood_client = format!("{}\t", FLOOD_CLIENT.padded());
    let legit: String = rows
        .lines()
        .filter(|l| !l.starts_with(&flood_client))
        .map(|l| format!("{l}\n"))
        .collect();
    (legit, generated.truth, outcome)
}

#[test]
fn unanswered_query_flood_is_evicted_oldest_first() {
    let caps = aggregate::Options {
        max_pending: 1_000,
        ..Default::default()
    };
    let (legit, truth, o) = run(FloodKind::Queries, false, caps);
    assert_eq!(legit, truth);
    assert!(
        o.aggregator.tally.pending_evicted >= 8_000,
        "{:?}",
        o.aggregator.tally
    );
}

#[test]
fn unique_name_flood_stops_at_the_service_cap() {
    let caps = aggregate::Options {
        max_services_per_client: 1_000,
        ..Default::default()
    };
    let (legit, truth, o) = run(FloodKind::Names, false, caps);
    assert_eq!(legit, truth);
    // The flood client's 1000, plus the legitimate clients' services and
    // their SRV targets' own lookups (about 160 here).
    assert!(
        o.aggregator.services.len() <= 1_200,
        "{} services",
        o.aggregator.services.len()
    );
    assert!(
        o.aggregator.names.len() <= 1_200,
        "{} names",
        o.aggregator.names.len()
    );
    assert!(
        o.aggregator.tally.tables_full >= 7_000,
        "{:?}",
        o.aggregator.tally
    );
}

#[test]
fn srv_target_flood_stops_at_its_cap() {
    let caps = aggregate::Options {
        max_srv_targets_per_client: 500,
        max_services_per_client: 2_000,
        ..Default::default()
    };
    let (legit, truth, o) = run(FloodKind::SrvTargets, false, caps);
    assert_eq!(legit, truth);
    let t = &o.aggregator.tally;
    assert!(t.srv_targets_evicted >= 1_000 && t.tables_full >= 7_000, "{t:?}");
}

#[test]
fn four_tuple_flood_with_all_stays_within_the_connection_table() {
    let caps = aggregate::Options {
        max_connections_per_client: 1_000,
        ..Default::default()
    };
    let (legit, truth, o) = run(FloodKind::Tuples, true, caps);
    assert_eq!(legit, truth);
    let t = &o.aggregator.tally;
    assert!(t.conns_evicted >= 8_000, "{t:?}");
    // The flood client's first 1000 4-tuples are followed and counted; past
    // its quota a mid-stream segment of an unknown 4-tuple is not counted
    // (it could be a later segment of one already counted).
    assert_eq!(t.conns_counted, 3000 + 1_000, "{t:?}");
}
