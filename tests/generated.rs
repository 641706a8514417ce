//! Generated workloads: connbal's rows equal the generator's ground truth,
//! at sizes and mixes no fixture has.

use connbal::aggregate;
use connbal::generate::{Format, Workload, generate};
use connbal::pipeline::{Config, summarize};

fn check(work: &Workload) {
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
