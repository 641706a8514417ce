//! SPEC §4–§5 one rule at a time, on captures written by `connbal::synth`.

use connbal::addr::Addr;
use connbal::aggregate;
use connbal::pipeline::{Config, Outcome, summarize};
use connbal::synth::{self, Rr, Script};
use connbal::wire::dns::{TYPE_A, TYPE_AAAA, TYPE_SRV};
use connbal::wire::tcp::{ACK, FIN, RST, SYN};

const C: Addr = Addr::V4([10, 1, 0, 1]);
const B1: Addr = Addr::V4([10, 2, 0, 1]);
const B2: Addr = Addr::V4([10, 2, 0, 2]);
const B3: Addr = Addr::V4([10, 2, 0, 3]);

fn octets(a: Addr) -> [u8; 4] {
    match a {
        Addr::V4(o) => o,
        Addr::V6(_) => unreachable!(),
    }
}

fn a(name: &str, b: Addr) -> Rr {
    Rr::A(name.into(), octets(b), 60)
}

fn srv(name: &str, target: &str, port: u16) -> Rr {
    Rr::Srv {
        name: name.into(),
        priority: 10,
        weight: 5,
        port,
        target: target.into(),
        ttl: 60,
    }
}

fn config(all: bool) -> Config {
    Config {
        threads: 2,
        interval: None,
        aggregate: aggregate::Options {
            all_segments: all,
            ..Default::default()
        },
    }
}

fn summary_with(s: &Script, config: &Config) -> (String, Outcome) {
    summarize(s.bytes(), config).expect("a capture")
}

fn summary(s: &Script) -> String {
    summary_with(s, &config(false)).0
}

fn summary_all(s: &Script) -> String {
    summary_with(s, &config(true)).0
}

#[test]
fn cname_chain_in_any_order_is_reported_under_the_asked_name() {
    let mut s = Script::default();
    // The answer lists the chain backwards: last link first.
    let answers = [
        a("real.example.net", B1),
        a("real.example.net", B2),
        Rr::Cname("mid.example.net".into(), "real.example.net".into(), 30),
        Rr::Cname("www.example.com".into(), "mid.example.net".into(), 30),
    ];
    s.lookup(C, "WWW.Example.COM", TYPE_A, &answers, &[]);
    s.syn(C, 40000, B1, 443);
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:443\t1\t1\twww.example.com.\n\
         010.001.000.001\t010.002.000.002:443\t0\t1\twww.example.com.\n"
    );
}

#[test]
fn addresses_outside_the_chain_are_not_backends() {
    let mut s = Script::default();
    let answers = [
        a("www.example.com", B1),
        a("www.example.com", B2),
        a("other.example.com", B3),
    ];
    s.lookup(C, "www.example.com", TYPE_A, &answers, &[]);
    assert!(!summary(&s).contains("010.002.000.003"));
}

#[test]
fn single_address_names_are_reported_only_when_they_rotate() {
    let mut s = Script::default();
    s.lookup(C, "one.example", TYPE_A, &[a("one.example", B1)], &[]);
    s.lookup(C, "one.example", TYPE_A, &[a("one.example", B1)], &[]);
    s.lookup(C, "rot.example", TYPE_A, &[a("rot.example", B1)], &[]);
    s.lookup(C, "rot.example", TYPE_A, &[a("rot.example", B2)], &[]);
    s.syn(C, 40000, B2, 80);
    // The connection goes to rot.example: its response came last.
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:80\t0\t1\trot.example.\n\
         010.001.000.001\t010.002.000.002:80\t1\t1\trot.example.\n"
    );
}

#[test]
fn a_name_never_connected_to_gets_one_row_with_port_unknown() {
    let mut s = Script::default();
    s.lookup(
        C,
        "idle.example",
        TYPE_A,
        &[a("idle.example", B2), a("idle.example", B1)],
        &[],
    );
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:?\t0\t1\tidle.example.\n\
         010.001.000.001\t010.002.000.002:?\t0\t1\tidle.example.\n"
    );
}

#[test]
fn every_port_used_on_a_name_is_shown_for_every_backend() {
    let mut s = Script::default();
    s.lookup(
        C,
        "multi.example",
        TYPE_A,
        &[a("multi.example", B1), a("multi.example", B2)],
        &[],
    );
    // B1 is connected to on three ports, the first the highest (its
    // other ports are counted apart from the first); B2 on one.
    s.syn(C, 40000, B1, 8080)
        .syn(C, 40001, B1, 80)
        .syn(C, 40002, B1, 80)
        .syn(C, 40003, B1, 443)
        .syn(C, 40004, B2, 443)
        .syn(C, 40005, B2, 443);
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:80\t2\t1\tmulti.example.\n\
         010.001.000.001\t010.002.000.001:443\t1\t1\tmulti.example.\n\
         010.001.000.001\t010.002.000.001:8080\t1\t1\tmulti.example.\n\
         010.001.000.001\t010.002.000.002:80\t0\t1\tmulti.example.\n\
         010.001.000.001\t010.002.000.002:443\t2\t1\tmulti.example.\n\
         010.001.000.001\t010.002.000.002:8080\t0\t1\tmulti.example.\n"
    );
}

#[test]
fn dns_count_is_per_response_and_repeats_within_one_count_once() {
    let mut s = Script::default();
    let answers = [a("d.example", B1), a("d.example", B1), a("d.example", B2)];
    s.lookup(C, "d.example", TYPE_A, &answers, &[]);
    s.lookup(C, "d.example", TYPE_A, &[a("d.example", B1)], &[]);
    let out = summary(&s);
    assert!(out.contains("010.002.000.001:?\t0\t2\td.example."), "{out}");
    assert!(out.contains("010.002.000.002:?\t0\t1\td.example."), "{out}");
}

#[test]
fn answers_in_another_order_or_with_another_set_count_each_backend_once() {
    // The first response's order is the service's list; later ones turn
    // it, drop from it and add to it.
    const B4: Addr = Addr::V4([10, 2, 0, 4]);
    let mut s = Script::default();
    let n = "rr.example";
    for order in [
        vec![B1, B2, B3],
        vec![B1, B2, B3],
        vec![B2, B3, B1],
        vec![B1, B3],
        vec![B3, B2, B1, B4],
        vec![B1, B2, B3, B4],
        vec![B4],
    ] {
        let answers: Vec<Rr> = order.iter().map(|&b| a(n, b)).collect();
        s.lookup(C, n, TYPE_A, &answers, &[]);
    }
    s.syn(C, 40000, B1, 80)
        .syn(C, 40001, B4, 80)
        .syn(C, 40002, B3, 80);
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:80\t1\t6\trr.example.\n\
         010.001.000.001\t010.002.000.002:80\t0\t5\trr.example.\n\
         010.001.000.001\t010.002.000.003:80\t1\t6\trr.example.\n\
         010.001.000.001\t010.002.000.004:80\t1\t3\trr.example.\n"
    );
}

#[test]
fn srv_with_additional_records_gives_each_target_its_port() {
    let mut s = Script::default();
    let x = |target: &str, port| srv("_x._tcp.example", target, port);
    s.lookup(
        C,
        "_x._tcp.example",
        TYPE_SRV,
        &[x("t1.example", 5222), x("t2.example", 5223)],
        &[a("t1.example", B1), a("t2.example", B2)],
    );
    s.syn(C, 40000, B2, 5223).syn(C, 40001, B2, 9999);
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:5222\t0\t1\t_x._tcp.example.\n\
         010.001.000.001\t010.002.000.002:5223\t1\t1\t_x._tcp.example.\n\
         010.001.000.001\t010.002.000.002:9999\t1\t1\t_x._tcp.example.\n"
    );
}

#[test]
fn a_target_with_more_srv_ports_than_held_inline_keeps_each_once_across_responses() {
    // Five ports for one target: three held in the backend, two beside
    // it; the second response repeats them all, in another order.
    let mut s = Script::default();
    let ports = [8001, 8002, 8003, 8004, 8005];
    for order in [ports, [8005, 8003, 8001, 8004, 8002]] {
        let records: Vec<Rr> = order
            .iter()
            .map(|&p| srv("_m._tcp.example", "m.example", p))
            .collect();
        s.lookup(C, "_m._tcp.example", TYPE_SRV, &records, &[a("m.example", B1)]);
    }
    s.syn(C, 40000, B1, 8004);
    let rows: String = ports
        .iter()
        .map(|p| {
            let conns = u32::from(*p == 8004);
            format!("010.001.000.001\t010.002.000.001:{p}\t{conns}\t2\t_m._tcp.example.\n")
        })
        .collect();
    assert_eq!(summary(&s), rows);
}

#[test]
fn srv_target_resolved_by_a_later_lookup_counts_for_the_srv_name() {
    let mut s = Script::default();
    let record = srv("_y._tcp.example", "late.example", 8443);
    s.lookup(C, "_y._tcp.example", TYPE_SRV, &[record], &[]);
    // Nothing yet: the target has no address.
    assert_eq!(summary(&s), "");
    s.lookup(
        C,
        "late.example",
        TYPE_A,
        &[a("late.example", B1), a("late.example", B3)],
        &[],
    );
    s.syn(C, 40000, B3, 8443);
    let out = summary(&s);
    assert!(
        out.contains("010.002.000.001:8443\t0\t1\t_y._tcp.example.\n"),
        "{out}"
    );
    assert!(
        out.contains("010.002.000.003:8443\t1\t1\t_y._tcp.example.\n"),
        "{out}"
    );
    // Another client's lookup of the same target is not this client's SRV.
    let mut s2 = Script::default();
    let record = srv("_y._tcp.example", "late.example", 8443);
    s2.lookup(C, "_y._tcp.example", TYPE_SRV, &[record], &[]);
    s2.lookup(
        B2,
        "late.example",
        TYPE_A,
        &[a("late.example", B1), a("late.example", B3)],
        &[],
    );
    assert!(!summary(&s2).contains("_y._tcp"));
}

#[test]
fn a_target_awaited_by_two_srv_names_and_two_ports_feeds_each() {
    // One SRV name gives the target twice (two ports), another once: the
    // target's later address reaches all three, in the order they came.
    let mut s = Script::default();
    let first = [
        srv("_a._tcp.example", "shared.example", 8443),
        srv("_a._tcp.example", "shared.example", 9443),
    ];
    s.lookup(C, "_a._tcp.example", TYPE_SRV, &first, &[]);
    s.lookup(
        C,
        "_b._tcp.example",
        TYPE_SRV,
        &[srv("_b._tcp.example", "shared.example", 7000)],
        &[],
    );
    s.lookup(C, "shared.example", TYPE_A, &[a("shared.example", B1)], &[]);
    s.syn(C, 40000, B1, 7000);
    assert_eq!(
        summary(&s),
        "010.001.000.001\t010.002.000.001:8443\t0\t1\t_a._tcp.example.\n\
         010.001.000.001\t010.002.000.001:9443\t0\t1\t_a._tcp.example.\n\
         010.001.000.001\t010.002.000.001:7000\t1\t1\t_b._tcp.example.\n"
    );
}

#[test]
fn an_awaited_srv_target_is_followed_past_the_filter_and_a_full_service_table() {
    let mut s = Script::default();
    let record = srv("_y._tcp.example", "late.example", 8443);
    s.lookup(C, "_y._tcp.example", TYPE_SRV, &[record], &[]);
    // Not "_y" (-F), and the client's one service is taken by the SRV
    // name: the target's own lookup only feeds the SRV name. The name is
    // matched whatever its case.
    s.lookup(
        C,
        "LATE.Example",
        TYPE_A,
        &[a("LATE.Example", B1), a("LATE.Example", B3)],
        &[],
    );
    s.syn(C, 40000, B3, 8443);
    let mut cfg = config(false);
    cfg.aggregate.filter = Some(b"_y".to_vec());
    cfg.aggregate.max_services_per_client = 1;
    let (out, outcome) = summary_with(&s, &cfg);
    assert_eq!(
        out,
        "010.001.000.001\t010.002.000.001:8443\t0\t1\t_y._tcp.example.\n\
         010.001.000.001\t010.002.000.003:8443\t1\t1\t_y._tcp.example.\n"
    );
    let t = &outcome.aggregator.tally;
    assert_eq!(
        (t.queries_filtered, t.tables_full, t.syns_counted),
        (0, 1, 1),
        "{t:?}"
    );
}

#[test]
fn aaaa_and_ipv6_clients() {
    let client = Addr::V6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    let b = |last| [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, last];
    let mut s = Script::default();
    let answers = [
        Rr::Aaaa("six.example".into(), b(1), 60),
        Rr::Aaaa("six.example".into(), b(2), 60),
    ];
    s.lookup(client, "six.example", TYPE_AAAA, &answers, &[]);
    s.syn(client, 50000, Addr::V6(b(2)), 443);
    assert_eq!(
        summary(&s),
        "fd00:0000:0000:0000:0000:0000:0000:0009\t[fd00:0000:0000:0000:0000:0000:0000:0201]:443\t0\t1\tsix.example.\n\
         fd00:0000:0000:0000:0000:0000:0000:0009\t[fd00:0000:0000:0000:0000:0000:0000:0202]:443\t1\t1\tsix.example.\n"
    );
}

fn two_backends(s: &mut Script) {
    s.lookup(
        C,
        "w.example",
        TYPE_A,
        &[a("w.example", B1), a("w.example", B2)],
        &[],
    );
}

#[test]
fn retransmitted_syn_counts_once_and_ecn_bits_are_ignored() {
    let mut s = Script::default();
    two_backends(&mut s);
    s.segment(C, B1, 40000, 80, 1000, SYN | 0x40 | 0x80); // ECE | CWR
    s.wait_ms(1000).segment(C, B1, 40000, 80, 1000, SYN); // retransmission
    s.segment(C, B1, 40000, 80, 5000, SYN); // same 4-tuple, new ISN
    s.segment(C, B1, 40001, 80, 1000, SYN | ACK); // not a connection attempt
    let (out, outcome) = summary_with(&s, &config(false));
    assert!(out.contains("010.002.000.001:80\t2\t1\tw.example."), "{out}");
    assert_eq!(outcome.aggregator.tally.syns_retransmitted, 1);
    assert_eq!(outcome.aggregator.tally.syns_counted, 2);
}

#[test]
fn a_syn_repeated_after_the_retransmission_window_is_a_new_connection() {
    let mut s = Script::default();
    two_backends(&mut s);
    s.segment(C, B1, 40000, 80, 1000, SYN);
    s.wait_ms(121_000).segment(C, B1, 40000, 80, 1000, SYN);
    assert!(summary(&s).contains("010.002.000.001:80\t2\t1"));
}

#[test]
fn syn_to_an_address_not_from_dns_is_unattributed() {
    let mut s = Script::default();
    two_backends(&mut s);
    s.syn(C, 40000, B3, 80);
    let (out, outcome) = summary_with(&s, &config(false));
    assert!(out.contains(":?"), "{out}");
    assert_eq!(outcome.aggregator.tally.syns_unattributed, 1);
}

#[test]
fn all_mode_counts_a_connection_once_and_not_again_after_it_closes() {
    let mut s = Script::default();
    two_backends(&mut s);
    // A pooled connection already open: no SYN captured.
    s.segment(C, B1, 41000, 80, 1, ACK);
    s.segment(B1, C, 80, 41000, 9, ACK);
    s.segment(C, B1, 41000, 80, 2, ACK | FIN);
    s.segment(B1, C, 80, 41000, 10, ACK | FIN);
    s.segment(C, B1, 41000, 80, 3, ACK); // final ACK of a closed connection
    s.segment(C, B1, 41000, 80, 2, ACK | FIN); // retransmitted FIN
    // A new connection on the same 4-tuple: counts again.
    s.segment(C, B1, 41000, 80, 777, SYN);
    s.segment(B1, C, 80, 41000, 888, SYN | ACK);
    s.segment(C, B1, 41000, 80, 778, RST);
    // The server side seen first counts for the client, with the backend's port.
    s.segment(B2, C, 443, 41001, 5, ACK);
    assert_eq!(
        summary_all(&s),
        "010.001.000.001\t010.002.000.001:80\t2\t1\tw.example.\n\
         010.001.000.001\t010.002.000.001:443\t0\t1\tw.example.\n\
         010.001.000.001\t010.002.000.002:80\t0\t1\tw.example.\n\
         010.001.000.001\t010.002.000.002:443\t1\t1\tw.example.\n"
    );
}

#[test]
fn all_mode_a_retransmitted_syn_is_not_a_new_connection_open_closed_or_forgotten() {
    let mut s = Script::default();
    two_backends(&mut s);
    s.segment(C, B1, 42000, 80, 500, SYN);
    s.wait_ms(1000).segment(C, B1, 42000, 80, 500, SYN); // open: a retransmission
    s.segment(C, B1, 42000, 80, 501, RST);
    s.wait_ms(2000).segment(C, B1, 42000, 80, 500, SYN); // closed: a retransmission
    // Long enough for the closed connection to be forgotten (swept), well
    // within the retransmission window: still a retransmission.
    s.wait_ms(30_000).segment(C, B2, 42001, 80, 7, SYN); // sweeps
    s.wait_ms(1000).segment(C, B1, 42000, 80, 500, SYN);
    // A new ISN on the 4-tuple: a new connection, whose retransmission is one.
    s.wait_ms(1000).segment(C, B1, 42000, 80, 900, SYN);
    s.wait_ms(1000).segment(C, B1, 42000, 80, 900, SYN);
    let (out, outcome) = summary_with(&s, &config(true));
    assert!(out.contains("010.002.000.001:80\t2\t1\tw.example."), "{out}");
    let t = outcome.aggregator.tally;
    assert_eq!((t.conns_counted, t.syns_retransmitted), (3, 4), "{t:?}");
    assert_eq!(t.conns_expired, 1, "{t:?}");
}

#[test]
fn all_mode_segments_before_the_binding_do_not_count_but_later_ones_do() {
    let mut s = Script::default();
    s.segment(C, B1, 41000, 80, 1, ACK);
    two_backends(&mut s);
    s.segment(C, B1, 41000, 80, 2, ACK);
    s.segment(C, B1, 41000, 80, 3, ACK);
    assert!(summary_all(&s).contains("010.002.000.001:80\t1\t1"));
}

#[test]
fn all_mode_idle_connections_expire() {
    let mut s = Script::default();
    two_backends(&mut s);
    s.segment(C, B1, 41000, 80, 1, ACK);
    s.wait_ms(20_000).segment(C, B2, 41001, 80, 1, ACK); // sweeps
    s.wait_ms(20_000).segment(C, B1, 41000, 80, 2, ACK);
    let mut cfg = config(true);
    cfg.aggregate.idle_timeout = 5_000_000_000;
    let (out, outcome) = summary_with(&s, &cfg);
    assert!(out.contains("010.002.000.001:80\t2\t1"), "{out}");
    assert!(outcome.aggregator.tally.conns_expired >= 1);
    // With the default timeout the same capture counts it once.
    assert!(summary_all(&s).contains("010.002.000.001:80\t1\t1"));
}

#[test]
fn responses_match_only_their_query() {
    let mut s = Script::default();
    // A response with no query, and one for a different name under the
    // same key, are not used.
    let stray = synth::dns_response(
        999,
        "w.example",
        TYPE_A,
        &[a("w.example", B1), a("w.example", B2)],
        &[],
    );
    s.packet(&synth::udp_frame(
        s.frame,
        synth::DNS_SERVER,
        C,
        53,
        33333,
        &stray,
    ));
    let q = synth::dns_query(7, "w.example", TYPE_A);
    s.packet(&synth::udp_frame(s.frame, C, synth::DNS_SERVER, 33334, 53, &q));
    let other = synth::dns_response(
        7,
        "x.example",
        TYPE_A,
        &[a("x.example", B1), a("x.example", B2)],
        &[],
    );
    s.packet(&synth::udp_frame(
        s.frame,
        synth::DNS_SERVER,
        C,
        53,
        33334,
        &other,
    ));
    let (out, outcome) = summary_with(&s, &config(false));
    assert_eq!(out, "");
    assert_eq!(outcome.aggregator.tally.responses_unmatched, 2);
    assert_eq!(outcome.aggregator.tally.responses_matched, 0);
}

/// A lookup the workers hand over with its query still ages the pending
/// queries at the query's time: an unanswered query two generations old
/// is forgotten by then, and its response, when it comes, is unmatched
/// (as when nothing is paired: with `--interval`), not late.
#[test]
fn paired_lookups_age_the_pending_queries_as_their_queries_would() {
    let mut s = Script::default();
    let q = synth::dns_query(7, "w.example", TYPE_A);
    s.packet(&synth::udp_frame(s.frame, C, synth::DNS_SERVER, 33334, 53, &q));
    for _ in 0..3 {
        s.wait_ms(12_000);
        s.lookup(C, "x.example", TYPE_A, &[a("x.example", B1)], &[]);
    }
    let r = synth::dns_response(7, "w.example", TYPE_A, &[a("w.example", B2)], &[]);
    s.packet(&synth::udp_frame(s.frame, synth::DNS_SERVER, C, 53, 33334, &r));
    let unpaired = Config {
        interval: Some(u64::MAX),
        ..config(false)
    };
    for config in [config(false), unpaired] {
        let t = summary_with(&s, &config).1.aggregator.tally;
        assert_eq!(
            (
                t.queries,
                t.responses_matched,
                t.responses_unmatched,
                t.responses_late,
                t.pending_expired
            ),
            (4, 3, 1, 0, 1),
            "interval {:?}",
            config.interval
        );
    }
}

#[test]
fn a_query_expires_after_ten_seconds() {
    let mut s = Script::default();
    let q = synth::dns_query(7, "w.example", TYPE_A);
    s.packet(&synth::udp_frame(s.frame, C, synth::DNS_SERVER, 33334, 53, &q));
    s.wait_ms(10_500);
    let r = synth::dns_response(
        7,
        "w.example",
        TYPE_A,
        &[a("w.example", B1), a("w.example", B2)],
        &[],
    );
    s.packet(&synth::udp_frame(s.frame, synth::DNS_SERVER, C, 53, 33334, &r));
    let (out, outcome) = summary_with(&s, &config(false));
    assert_eq!(out, "");
    assert_eq!(outcome.aggregator.tally.responses_late, 1);
}

#[test]
fn pending_table_is_bounded_and_evictions_counted() {
    let mut s = Script::default();
    for id in 0..50u16 {
        let q = synth::dns_query(id, "flood.example", TYPE_A);
        s.packet(&synth::udp_frame(
            s.frame,
            C,
            synth::DNS_SERVER,
            30000 + id,
            53,
            &q,
        ));
    }
    let mut cfg = config(false);
    cfg.aggregate.max_pending = 10;
    let (_, outcome) = summary_with(&s, &cfg);
    assert_eq!(outcome.aggregator.tally.pending_evicted, 40);
    assert_eq!(outcome.aggregator.tally.queries, 50);
}

#[test]
fn dns_over_tcp_whole_messages_are_read() {
    let mut s = Script::default();
    let q = synth::dns_query(9, "t.example", TYPE_A);
    let r = synth::dns_response(
        9,
        "t.example",
        TYPE_A,
        &[a("t.example", B1), a("t.example", B2)],
        &[],
    );
    let framed = |m: &[u8]| {
        let mut v = (m.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(m);
        v
    };
    let seg = |src, dst, sp, dp, payload: &[u8]| {
        synth::ethernet(s.frame, src, dst, 6, &synth::tcp(sp, dp, 1, ACK, payload))
    };
    let qf = seg(C, synth::DNS_SERVER, 45000, 53, &framed(&q));
    let rf = seg(synth::DNS_SERVER, C, 53, 45000, &framed(&r));
    s.packet(&qf).packet(&rf);
    s.syn(C, 40000, B1, 80);
    assert!(summary(&s).contains("010.002.000.001:80\t1\t1\tt.example."));
}

#[test]
fn hostile_label_bytes_cannot_forge_a_row() {
    let mut s = Script::default();
    let name = "evil\t10.0.0.1\n.example";
    s.lookup(C, name, TYPE_A, &[a(name, B1), a(name, B2)], &[]);
    let out = summary(&s);
    assert_eq!(out.lines().count(), 2, "{out}");
    // The builder splits at dots, so the labels are "evil\t10", "0", "0",
    // "1\n" and "example".
    assert!(out.contains("\tevil\\00910.0.0.1\\010.example.\n"), "{out}");
}

#[test]
fn vlan_tags_and_ip_options_are_dissected() {
    let mut s = Script::default();
    s.frame = synth::Frame {
        vlan: Some(100),
        ip_options: 12,
    };
    two_backends(&mut s);
    s.syn(C, 40000, B2, 80);
    assert!(summary(&s).contains("010.002.000.002:80\t1\t1\tw.example."));
}

#[test]
fn truncated_packets_are_counted_and_never_read_past() {
    let mut s = Script::default();
    two_backends(&mut s);
    let syn = synth::tcp_frame(s.frame, C, B1, 40000, 80, 1, SYN);
    // Cut inside the TCP header but after the flags: still a SYN.
    let cut = &syn[..14 + 20 + 14];
    s.packet(cut);
    for len in 0..syn.len() {
        s.packet(&syn[..len]);
    }
    let (out, outcome) = summary_with(&s, &config(false));
    assert!(out.contains("010.002.000.001:80\t1\t1"), "{out}");
    assert!(outcome.aggregator.counters.truncated > 30);
}

#[test]
fn a_name_with_many_addresses_counts_each_once_per_response() {
    // More addresses than a service scans linearly: the index takes over
    // part-way through, and counts stay exact.
    let addrs: Vec<Addr> = (1..=30).map(|i| Addr::V4([10, 9, 0, i])).collect();
    let mut s = Script::default();
    let first: Vec<Rr> = addrs[..5].iter().map(|&b| a("big.example", b)).collect();
    s.lookup(C, "big.example", TYPE_A, &first, &[]);
    let all: Vec<Rr> = addrs.iter().map(|&b| a("big.example", b)).collect();
    s.lookup(C, "big.example", TYPE_A, &all, &[]);
    s.lookup(C, "big.example", TYPE_A, &all[20..], &[]);
    s.syn(C, 40000, addrs[25], 443).syn(C, 40001, addrs[2], 443);
    let out = summary(&s);
    assert_eq!(out.lines().count(), 30, "{out}");
    for (i, b) in addrs.iter().enumerate() {
        let dns = match i {
            0..5 => 2,
            5..20 => 1,
            _ => 2,
        };
        let conns = u32::from(i == 25 || i == 2);
        let want = format!(
            "{}\t{}\t{conns}\t{dns}\tbig.example.\n",
            C.padded(),
            b.padded_with_port(Some(443))
        );
        assert!(out.contains(&want), "{want} missing from\n{out}");
    }
}

/// A response with enough addresses that it must be split.
fn big_response(id: u16, name: &str, n: u8) -> Vec<u8> {
    let answers: Vec<Rr> = (1..=n).map(|i| Rr::A(name.into(), [10, 3, 0, i], 60)).collect();
    synth::dns_response(id, name, TYPE_A, &answers, &[])
}

#[test]
fn dns_over_tcp_split_across_segments_is_reassembled() {
    let mut s = Script::default();
    let q = synth::dns_query(21, "split.example", TYPE_A);
    let r = big_response(21, "split.example", 40);
    let mut framed_q = (q.len() as u16).to_be_bytes().to_vec();
    framed_q.extend_from_slice(&q);
    let mut framed_r = (r.len() as u16).to_be_bytes().to_vec();
    framed_r.extend_from_slice(&r);
    let server = synth::DNS_SERVER;
    let seg = |s: &Script, src, dst, sp, dp, seq, flags, payload: &[u8]| {
        synth::ethernet(s.frame, src, dst, 6, &synth::tcp(sp, dp, seq, flags, payload))
    };
    let f = seg(&s, C, server, 45001, 53, 1000, SYN, &[]);
    s.packet(&f);
    let f = seg(&s, server, C, 53, 45001, 5000, SYN | ACK, &[]);
    s.packet(&f);
    let f = seg(&s, C, server, 45001, 53, 1001, ACK | 0x08, &framed_q);
    s.packet(&f);
    // The response in three segments; the middle one retransmitted.
    let (a, rest) = framed_r.split_at(1);
    let (b, c) = rest.split_at(200);
    let f = seg(&s, server, C, 53, 45001, 5001, ACK, a);
    s.packet(&f);
    let f = seg(&s, server, C, 53, 45001, 5002, ACK, b);
    s.packet(&f);
    s.packet(&f);
    let f = seg(&s, server, C, 53, 45001, 5202, ACK | 0x08, c);
    s.packet(&f);
    s.syn(C, 40000, Addr::V4([10, 3, 0, 33]), 443);
    let (out, outcome) = summary_with(&s, &config(false));
    assert_eq!(out.lines().count(), 40, "{out}");
    assert!(
        out.contains("010.003.000.033:443\t1\t1\tsplit.example.\n"),
        "{out}"
    );
    assert_eq!(outcome.aggregator.tally.responses_matched, 1);
    assert_eq!(outcome.aggregator.tally.reassembly_dropped, 0);
}

#[test]
fn fragmented_udp_answers_are_reassembled_in_any_order() {
    for client in [C, Addr::V6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])] {
        let server = match client {
            Addr::V4(_) => synth::DNS_SERVER,
            Addr::V6(_) => Addr::V6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]),
        };
        let v6 = matches!(client, Addr::V6(_));
        let mut s = Script::default();
        let q = synth::dns_query(31, "frag.example", TYPE_A);
        let qf = synth::udp_frame(s.frame, client, server, 46000, 53, &q);
        s.packet(&qf);
        let response = synth::udp(53, 46000, &big_response(31, "frag.example", 120));
        let mut frags = synth::ip_fragments(server, client, 0xBEEF, 17, &response, 600);
        assert!(frags.len() >= 3);
        frags.swap(0, 2); // out of order: a later piece first
        for f in &frags {
            let frame = synth::ethernet_ip(s.frame, f, v6);
            s.packet(&frame);
        }
        s.syn(client, 40000, Addr::V4([10, 3, 0, 77]), 443);
        let (out, outcome) = summary_with(&s, &config(false));
        assert_eq!(outcome.aggregator.tally.responses_matched, 1, "{client:?}");
        assert_eq!(out.lines().count(), 120, "{client:?}");
        if !v6 {
            assert!(
                out.contains("010.003.000.077:443\t1\t1\tfrag.example.\n"),
                "{out}"
            );
        }
    }
}

#[test]
fn a_fragment_that_never_completes_is_dropped_and_counted() {
    let mut s = Script::default();
    let q = synth::dns_query(41, "lost.example", TYPE_A);
    let qf = synth::udp_frame(s.frame, C, synth::DNS_SERVER, 46001, 53, &q);
    s.packet(&qf);
    let response = synth::udp(53, 46001, &big_response(41, "lost.example", 60));
    let frags = synth::ip_fragments(synth::DNS_SERVER, C, 7, 17, &response, 400);
    for f in &frags[..frags.len() - 1] {
        let frame = synth::ethernet_ip(s.frame, f, false);
        s.packet(&frame);
    }
    s.wait_ms(31_000);
    // The next fragment to arrive finds the first datagram too old.
    let other = synth::ip_fragments(synth::DNS_SERVER, C, 8, 17, &response, 400);
    let frame = synth::ethernet_ip(s.frame, &other[0], false);
    s.packet(&frame);
    s.syn(C, 40000, B1, 80);
    let (out, outcome) = summary_with(&s, &config(false));
    assert_eq!(out, "");
    assert_eq!(outcome.aggregator.tally.reassembly_dropped, 1);
    assert_eq!(outcome.aggregator.tally.responses_matched, 0);
}

#[test]
fn all_mode_with_a_full_table_counts_syns_once_and_skips_unknown_mid_stream_segments() {
    let mut s = Script::default();
    two_backends(&mut s);
    for port in 0..5u16 {
        s.segment(C, B1, 41000 + port, 80, 100 + u32::from(port), SYN);
    }
    // The table holds 2: the later SYNs are counted but not followed; their
    // retransmissions are still recognised; their ACKs are not counted.
    for port in 0..5u16 {
        s.segment(C, B1, 41000 + port, 80, 100 + u32::from(port), SYN);
        s.segment(C, B1, 41000 + port, 80, 101 + u32::from(port), ACK);
    }
    let mut cfg = config(true);
    cfg.aggregate.max_connections = 2;
    let (out, outcome) = summary_with(&s, &cfg);
    assert!(out.contains("010.002.000.001:80\t5\t1"), "{out}");
    let t = outcome.aggregator.tally;
    assert_eq!((t.conns_counted, t.syns_retransmitted), (5, 5), "{t:?}");
}
