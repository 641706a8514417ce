//! Plain counters, each owned by one thread and added up by the aggregator.

use std::fmt::Write as _;

/// What the reader and the parser workers count per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub records: u64,
    pub bytes: u64,
    /// The snoop header's cumulative drop count, as of the last record.
    pub drops: Option<u64>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub truncated: u64,
    pub not_ip: u64,
    pub bad_ip: u64,
    pub fragments: u64,
    pub dns_messages: u64,
    pub dns_malformed: u64,
    pub dns_ignored: u64,
    pub tcp_segments: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.records += o.records;
        self.bytes += o.bytes;
        if o.drops.is_some() {
            self.drops = o.drops;
        }
        self.first_ts = match (self.first_ts, o.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ts = match (self.last_ts, o.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.truncated += o.truncated;
        self.not_ip += o.not_ip;
        self.bad_ip += o.bad_ip;
        self.fragments += o.fragments;
        self.dns_messages += o.dns_messages;
        self.dns_malformed += o.dns_malformed;
        self.dns_ignored += o.dns_ignored;
        self.tcp_segments += o.tcp_segments;
    }

    pub fn note_record(&mut self, ts: u64, len: usize) {
        self.records += 1;
        self.bytes += len as u64;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
    }
}

/// What the aggregator counts while applying events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub queries: u64,
    pub queries_filtered: u64,
    pub responses_matched: u64,
    pub responses_unmatched: u64,
    pub responses_late: u64,
    pub pending_expired: u64,
    pub pending_evicted: u64,
    pub syns_counted: u64,
    pub syns_unattributed: u64,
    pub syns_retransmitted: u64,
    pub conns_counted: u64,
    pub conns_expired: u64,
    pub conns_evicted: u64,
    pub syn_table_evicted: u64,
    pub srv_targets_evicted: u64,
    /// DNS over TCP and fragmented UDP DNS given up (gaps, limits, age).
    pub reassembly_dropped: u64,
    /// Services, backends or connection counters not created because their
    /// table was full (a flood of unique names or ports).
    pub tables_full: u64,
}

/// The statistics block printed on stderr, one line per concern.
pub fn render(c: &Counters, t: &Tally, all_mode: bool) -> String {
    let mut s = String::new();
    let span = match (c.first_ts, c.last_ts) {
        (Some(a), Some(b)) => format!("{:.3} s", (b.saturating_sub(a)) as f64 / 1e9),
        _ => "0.000 s".to_string(),
    };
    let drops = c.drops.map_or_else(|| "n/a".to_string(), |d| d.to_string());
    let _ = writeln!(
        s,
        "connbal: {} records, {} bytes, {} of capture time, {} dropped by the kernel",
        c.records, c.bytes, span, drops
    );
    let _ = writeln!(
        s,
        "connbal: dns: {} queries ({} filtered out), {} matched responses, {} unmatched, {} late, {} malformed messages",
        t.queries,
        t.queries_filtered,
        t.responses_matched,
        t.responses_unmatched,
        t.responses_late,
        c.dns_malformed
    );
    if all_mode {
        let _ = writeln!(
            s,
            "connbal: tcp: {} segments, {} connections counted, {} SYN retransmissions, {} expired idle, {} not tracked (table full)",
            c.tcp_segments, t.conns_counted, t.syns_retransmitted, t.conns_expired, t.conns_evicted
        );
    } else {
        let _ = writeln!(
            s,
            "connbal: tcp: {} SYNs counted, {} unattributed, {} retransmitted",
            t.syns_counted, t.syns_unattributed, t.syns_retransmitted
        );
    }
    let _ = writeln!(
        s,
        "connbal: packets: {} truncated by the snap length, {} not IP, {} bad IP headers, {} IP fragments; pending queries: {} expired, {} evicted",
        c.truncated, c.not_ip, c.bad_ip, c.fragments, t.pending_expired, t.pending_evicted
    );
    let limits =
        t.syn_table_evicted + t.srv_targets_evicted + t.reassembly_dropped + t.tables_full + t.conns_evicted;
    if limits > 0 {
        let _ = writeln!(
            s,
            "connbal: limits reached: {} SYNs forgotten early, {} SRV targets not remembered, {} reassemblies dropped, {} entries not created (tables full)",
            t.syn_table_evicted, t.srv_targets_evicted, t.reassembly_dropped, t.tables_full
        );
    }
    s
}
