//! Balance and TTL figures per (client, name), and the machine (JSON,
//! JSONL) and human (`--report`) forms of the summary.
//!
//! Balance, per (client, name, port) with two or more backends: the
//! connections each backend got, how many backends were used, the largest
//! over the smallest share, the coefficient of variation, and Pearson's
//! chi-square against the split the client should have made: even for an
//! A/AAAA name; by weight among the best (lowest) priority for an SRV name.
//! For an SRV name the group is the best-priority targets across their
//! ports (`port` is null when they differ).

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use crate::addr::Addr;
use crate::aggregate::{Aggregator, Kind, Service};
use crate::output::{self, Row};
use crate::stats::{Counters, Tally};

/// Balance figures of one group of backends.
#[derive(Clone, Debug, PartialEq)]
pub struct Balance {
    pub port: Option<u16>,
    pub conns: u64,
    pub backends_returned: u32,
    pub backends_used: u32,
    /// Largest share over smallest; `None` when a backend got nothing.
    pub max_min_share: Option<f64>,
    /// Standard deviation over mean of the per-backend counts.
    pub cv: Option<f64>,
    pub chi2: Option<f64>,
    pub df: u32,
    /// P(chi-square with `df` degrees of freedom >= `chi2`).
    pub p_value: Option<f64>,
}

/// One (client, name): its rows and its figures.
#[derive(Clone, Debug)]
pub struct ServiceReport {
    pub client: Addr,
    pub name: Arc<str>,
    pub kind: Kind,
    pub lookups: u32,
    pub ttl_min: Option<u32>,
    pub conns: u64,
    pub early_relookups: u32,
    pub stale_conns: u64,
    pub rows: Vec<Row>,
    pub balance: Vec<Balance>,
}

impl ServiceReport {
    pub fn lookups_per_conn(&self) -> Option<f64> {
        (self.conns > 0).then(|| f64::from(self.lookups) / self.conns as f64)
    }
}

/// Every reported (client, name), sorted like the rows.
pub fn services(agg: &Aggregator) -> Vec<ServiceReport> {
    let (ports, services) = output::summary_parts(agg);
    services
        .into_iter()
        .map(|(s, name)| service_report(agg, &ports, s, name))
        .collect()
}

/// One service's rows and figures.
fn service_report(
    agg: &Aggregator,
    ports: &output::PortsByBackend,
    s: &Service,
    name: Arc<str>,
) -> ServiceReport {
    let mut rows = Vec::new();
    output::service_rows(agg, ports, s, &mut rows);
    let balance = balance_of(agg, s, &rows);
    let (conns, stale_conns) = output::service_conns(agg, ports, s);
    ServiceReport {
        client: agg.client_of(s),
        name,
        kind: s.kind,
        lookups: s.lookups,
        ttl_min: s.ttl_min,
        conns,
        early_relookups: s.early_relookups,
        stale_conns,
        rows,
        balance,
    }
}

fn balance_of(agg: &Aggregator, s: &Service, rows: &[Row]) -> Vec<Balance> {
    match s.kind {
        Kind::Address => {
            let mut ports: Vec<u16> = rows.iter().filter_map(|r| r.port).collect();
            ports.sort_unstable();
            ports.dedup();
            ports
                .into_iter()
                .filter_map(|port| {
                    let counts: Vec<u64> = rows
                        .iter()
                        .filter(|r| r.port == Some(port))
                        .map(|r| r.conns)
                        .collect();
                    let weights = vec![1.0; counts.len()];
                    (counts.len() >= 2).then(|| balance(Some(port), &counts, &weights))
                })
                .collect()
        }
        Kind::Srv => {
            let backends: Vec<_> = agg
                .backends_of(s)
                .map(|(id, b)| (agg.backend_addr(id), b))
                .collect();
            let Some(best) = backends.iter().map(|(_, b)| b.srv_priority).min() else {
                return Vec::new();
            };
            let group: Vec<_> = backends.iter().filter(|(_, b)| b.srv_priority == best).collect();
            if group.len() < 2 {
                return Vec::new();
            }
            let counts: Vec<u64> = group
                .iter()
                .map(|(addr, _)| rows.iter().filter(|r| r.backend == *addr).map(|r| r.conns).sum())
                .collect();
            let weights: Vec<f64> = group.iter().map(|(_, b)| f64::from(b.srv_weight)).collect();
            let mut group_ports: Vec<u16> = rows
                .iter()
                .filter(|r| group.iter().any(|(addr, _)| *addr == r.backend))
                .filter_map(|r| r.port)
                .collect();
            group_ports.sort_unstable();
            group_ports.dedup();
            let port = match group_ports.as_slice() {
                [one] => Some(*one),
                _ => None,
            };
            vec![balance(port, &counts, &weights)]
        }
    }
}

/// The figures for `counts`, against shares proportional to `weights`
/// (all-zero weights mean an even split).
pub fn balance(port: Option<u16>, counts: &[u64], weights: &[f64]) -> Balance {
    let n: u64 = counts.iter().sum();
    let k = counts.len();
    let used = counts.iter().filter(|&&c| c > 0).count() as u32;
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().min().unwrap_or(0);
    let max_min_share = (min > 0).then(|| max as f64 / min as f64);
    let cv = (n > 0 && k > 0).then(|| {
        let mean = n as f64 / k as f64;
        let var = counts.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        var.sqrt() / mean
    });
    let total_weight: f64 = weights.iter().sum();
    let expected: Vec<f64> = weights
        .iter()
        .map(|&w| {
            if total_weight > 0.0 {
                n as f64 * w / total_weight
            } else {
                n as f64 / k.max(1) as f64
            }
        })
        .collect();
    let cells = expected.iter().filter(|&&e| e > 0.0).count() as u32;
    let df = cells.saturating_sub(1);
    let (chi2, p_value) = if n == 0 || df == 0 {
        (None, None)
    } else {
        let mut chi2 = 0.0;
        let mut impossible = false;
        for (&o, &e) in counts.iter().zip(&expected) {
            if e > 0.0 {
                chi2 += (o as f64 - e).powi(2) / e;
            } else if o > 0 {
                impossible = true;
            }
        }
        if impossible {
            (Some(f64::INFINITY), Some(0.0))
        } else {
            (Some(chi2), Some(chi_square_p(chi2, df)))
        }
    };
    Balance {
        port,
        conns: n,
        backends_returned: k as u32,
        backends_used: used,
        max_min_share,
        cv,
        chi2,
        df,
        p_value,
    }
}

/// The upper tail of the chi-square distribution: Q(df/2, x/2).
pub fn chi_square_p(x: f64, df: u32) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    gamma_q(f64::from(df) / 2.0, x / 2.0).clamp(0.0, 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized upper incomplete gamma function Q(a, x).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x < a + 1.0 {
        // Series for P(a, x).
        let mut sum = 1.0 / a;
        let mut term = sum;
        for n in 1..1000 {
            term *= x / (a + f64::from(n));
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x + a * x.ln() - ln_gamma(a)).exp() * h
    }
}

// ---- JSON ----

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_f64(out: &mut String, v: Option<f64>) {
    match v {
        Some(x) if x.is_finite() => {
            // Six significant decimals are plenty and keep files stable.
            let s = format!("{:.6}", x);
            let s = s.trim_end_matches('0').trim_end_matches('.');
            out.push_str(if s.is_empty() || s == "-" { "0" } else { s });
        }
        _ => out.push_str("null"),
    }
}

fn json_opt_u64(out: &mut String, v: Option<u64>) {
    match v {
        Some(x) => {
            let _ = write!(out, "{x}");
        }
        None => out.push_str("null"),
    }
}

/// One row as a JSON object (canonical address forms, `port` null for `?`).
pub fn row_json(out: &mut String, r: &Row, name: &str) {
    out.push_str("{\"client\":");
    json_str(out, &r.client.canonical());
    out.push_str(",\"backend\":");
    json_str(out, &r.backend.canonical());
    out.push_str(",\"port\":");
    json_opt_u64(out, r.port.map(u64::from));
    let _ = write!(out, ",\"conns\":{},\"dns\":{},\"name\":", r.conns, r.dns);
    json_str(out, name);
    out.push('}');
}

fn balance_json(out: &mut String, b: &Balance) {
    out.push_str("{\"port\":");
    json_opt_u64(out, b.port.map(u64::from));
    let _ = write!(
        out,
        ",\"conns\":{},\"backends_returned\":{},\"backends_used\":{},\"max_min_share\":",
        b.conns, b.backends_returned, b.backends_used
    );
    json_f64(out, b.max_min_share);
    out.push_str(",\"cv\":");
    json_f64(out, b.cv);
    out.push_str(",\"chi2\":");
    json_f64(out, b.chi2);
    let _ = write!(out, ",\"df\":{},\"p_value\":", b.df);
    json_f64(out, b.p_value);
    out.push('}');
}

fn service_json(out: &mut String, s: &ServiceReport) {
    out.push_str("{\"client\":");
    json_str(out, &s.client.canonical());
    out.push_str(",\"name\":");
    json_str(out, &s.name);
    let kind = match s.kind {
        Kind::Address => "A",
        Kind::Srv => "SRV",
    };
    let _ = write!(out, ",\"kind\":\"{kind}\",\"lookups\":{},\"ttl_min\":", s.lookups);
    json_opt_u64(out, s.ttl_min.map(u64::from));
    let _ = write!(out, ",\"conns\":{},\"balance\":[", s.conns);
    for (i, b) in s.balance.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        balance_json(out, b);
    }
    let _ = write!(
        out,
        "],\"ttl\":{{\"early_relookups\":{},\"stale_conns\":{},\"lookups_per_conn\":",
        s.early_relookups, s.stale_conns
    );
    json_f64(out, s.lookups_per_conn());
    out.push_str("}}");
}

fn stats_json(out: &mut String, c: &Counters, t: &Tally) {
    let secs = |ns: Option<u64>| ns.map(|v| v as f64 / 1e9);
    let _ = write!(
        out,
        "{{\"records\":{},\"bytes\":{},\"kernel_drops\":",
        c.records, c.bytes
    );
    json_opt_u64(out, c.drops);
    out.push_str(",\"first_ts\":");
    json_f64(out, secs(c.first_ts));
    out.push_str(",\"last_ts\":");
    json_f64(out, secs(c.last_ts));
    let fields: [(&str, u64); 25] = [
        ("truncated_packets", c.truncated),
        ("not_ip", c.not_ip),
        ("bad_ip_headers", c.bad_ip),
        ("ip_fragments", c.fragments),
        ("dns_messages", c.dns_messages),
        ("dns_malformed", c.dns_malformed),
        ("dns_ignored", c.dns_ignored),
        ("tcp_segments", c.tcp_segments),
        ("dns_queries", t.queries),
        ("dns_queries_filtered", t.queries_filtered),
        ("dns_responses_matched", t.responses_matched),
        ("dns_responses_unmatched", t.responses_unmatched),
        ("dns_responses_late", t.responses_late),
        ("pending_expired", t.pending_expired),
        ("pending_evicted", t.pending_evicted),
        ("syns_counted", t.syns_counted),
        ("syns_unattributed", t.syns_unattributed),
        ("syns_retransmitted", t.syns_retransmitted),
        ("conns_counted", t.conns_counted),
        ("conns_expired", t.conns_expired),
        ("conns_not_tracked", t.conns_evicted),
        ("syn_table_evicted", t.syn_table_evicted),
        ("srv_targets_evicted", t.srv_targets_evicted),
        ("reassembly_dropped", t.reassembly_dropped),
        ("tables_full", t.tables_full),
    ];
    for (k, v) in fields {
        let _ = write!(out, ",\"{k}\":{v}");
    }
    out.push('}');
}

/// `--format json`: one document, written a chunk at a time. Rows come
/// first and the services' figures after them, so each service's rows
/// are made twice rather than all of them kept.
pub fn write_json(agg: &Aggregator, out: &mut impl io::Write) -> io::Result<()> {
    write_json_blocks(agg, output::BLOCK_BACKENDS, out)
}

/// [`write_json`] in blocks of `block_backends` (see
/// [`output::write_blocks`]).
pub fn write_json_blocks(
    agg: &Aggregator,
    block_backends: usize,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let (ports, sorted) = output::summary_parts(agg);
    let mut out = output::Chunked::new(out);
    out.put(b"{\"rows\":[")?;
    write_rows_json(agg, &ports, &sorted, block_backends, &mut out, ["\n", ",\n", ""])?;
    out.put(b"\n],\"services\":[")?;
    let services = |from: usize, part: &[(&Service, Arc<str>)], buf: &mut String| {
        for (j, (s, name)) in part.iter().enumerate() {
            buf.push_str(if from + j > 0 { ",\n" } else { "\n" });
            service_json(buf, &service_report(agg, &ports, s, Arc::clone(name)));
        }
    };
    output::write_blocks(&sorted, block_backends, services, |buf: &String| {
        out.put(buf.as_bytes())
    })?;
    let mut tail = String::from("\n],\"stats\":");
    stats_json(&mut tail, &agg.counters, &agg.tally);
    tail.push_str("}\n");
    out.put(tail.as_bytes())?;
    out.finish()
}

/// Writes the rows of `sorted` as JSON objects, each between `before` and
/// `after`, but the very first after `first` instead of `before`. (Blocks
/// are formatted apart, so none knows whether a row came before it: the
/// first row's `before` is swapped for `first` as it is written.)
fn write_rows_json<W: io::Write>(
    agg: &Aggregator,
    ports: &output::PortsByBackend,
    sorted: &[(&Service, Arc<str>)],
    block_backends: usize,
    out: &mut output::Chunked<'_, W>,
    [first, before, after]: [&str; 3],
) -> io::Result<()> {
    let rows = |_: usize, part: &[(&Service, Arc<str>)], buf: &mut String| {
        output::each_service_rows(agg, ports, part, |name, rows| {
            for r in rows {
                buf.push_str(before);
                row_json(buf, r, name);
                buf.push_str(after);
            }
        });
    };
    let mut started = false;
    output::write_blocks(sorted, block_backends, rows, |buf: &String| {
        let bytes = buf.as_bytes();
        if !started && !bytes.is_empty() {
            started = true;
            out.put(first.as_bytes())?;
            return out.put(bytes.get(before.len()..).unwrap_or_default());
        }
        out.put(bytes)
    })
}

/// `--format jsonl`: one row object a line, written a chunk at a time.
pub fn write_jsonl(agg: &Aggregator, out: &mut impl io::Write) -> io::Result<()> {
    write_jsonl_blocks(agg, output::BLOCK_BACKENDS, out)
}

/// [`write_jsonl`] in blocks of `block_backends`.
pub fn write_jsonl_blocks(
    agg: &Aggregator,
    block_backends: usize,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let (ports, sorted) = output::summary_parts(agg);
    let mut out = output::Chunked::new(out);
    write_rows_json(agg, &ports, &sorted, block_backends, &mut out, ["", "", "\n"])?;
    out.finish()
}

/// The summary in the chosen form, written to `out` (TSV and JSON a piece
/// at a time).
pub fn write_summary(
    agg: &Aggregator,
    format: crate::cli::OutputFormat,
    style: Style,
    out: &mut impl io::Write,
) -> io::Result<()> {
    use crate::cli::OutputFormat;
    match format {
        OutputFormat::Tsv => output::write_summary_tsv(agg, out),
        OutputFormat::Json => write_json(agg, out),
        OutputFormat::Jsonl => write_jsonl(agg, out),
        OutputFormat::Report => out.write_all(human(agg, style).as_bytes()),
    }
}

/// The summary in the chosen form, in memory.
pub fn render(agg: &Aggregator, format: crate::cli::OutputFormat, style: Style) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = write_summary(agg, format, style, &mut out);
    out
}

/// A capture time as `2026-11-26T20:38:57.000Z`.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3_600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The `#` line before each `--interval` block.
pub fn interval_header(start: u64, end: u64) -> String {
    format!(
        "# {} .. {} ({:.3} s of capture time)\n",
        utc(start),
        utc(end),
        (end - start) as f64 / 1e9
    )
}

// ---- the human report ----

/// How to draw the report: bars and colours only on a terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub terminal: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.terminal {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The balance verdict of one group.
pub fn balance_verdict(b: &Balance) -> (&'static str, String) {
    let unused = b.backends_returned - b.backends_used;
    let p = b.p_value.map_or_else(String::new, |p| format!(", p = {p:.3}"));
    if b.conns == 0 {
        ("none", "no connections".into())
    } else if unused > 0 && b.conns >= u64::from(b.backends_returned) {
        (
            "bad",
            format!(
                "unused backends: {unused} of {} never used{p}",
                b.backends_returned
            ),
        )
    } else if b.conns < 5 * u64::from(b.backends_returned) {
        (
            "none",
            format!(
                "few connections: {} over {} backends{p}",
                b.conns, b.backends_returned
            ),
        )
    } else if b.p_value.is_some_and(|p| p < 0.01) {
        (
            "bad",
            format!("skewed (chi2 {:.1} on {} df{p})", b.chi2.unwrap_or(0.0), b.df),
        )
    } else {
        (
            "good",
            format!("balanced (chi2 {:.1} on {} df{p})", b.chi2.unwrap_or(0.0), b.df),
        )
    }
}

/// The TTL verdict of one (client, name).
pub fn ttl_verdict(s: &ServiceReport) -> (&'static str, String) {
    let per = s.lookups_per_conn();
    if s.stale_conns > 0 {
        (
            "bad",
            format!(
                "keeps using expired answers ({} after the TTL ran out)",
                plural(s.stale_conns, "connection")
            ),
        )
    } else if s.conns >= 2 && per.is_some_and(|p| p >= 0.9) {
        (
            "bad",
            format!(
                "looks up every connection ({} for {})",
                plural(s.lookups.into(), "lookup"),
                plural(s.conns, "connection")
            ),
        )
    } else if s.lookups >= 2 && s.early_relookups * 2 > s.lookups {
        (
            "bad",
            format!(
                "re-looks up before the TTL runs out ({} of {} lookups)",
                s.early_relookups, s.lookups
            ),
        )
    } else if s.conns == 0 {
        (
            "none",
            format!("{}, no connections", plural(s.lookups.into(), "lookup")),
        )
    } else {
        (
            "good",
            format!(
                "caches ({} for {})",
                plural(s.lookups.into(), "lookup"),
                plural(s.conns, "connection")
            ),
        )
    }
}

/// `--report`: per client and name, the backends with their shares, and
/// the balance and TTL verdicts. Fits in 80 columns.
pub fn human(agg: &Aggregator, style: Style) -> String {
    let services = services(agg);
    let mut out = String::new();
    let mut client: Option<Addr> = None;
    for s in &services {
        if client != Some(s.client) {
            client = Some(s.client);
            let _ = writeln!(
                out,
                "{}",
                style.paint("1", &format!("client {}", s.client.canonical()))
            );
        }
        let kind = match s.kind {
            Kind::Address => "A/AAAA",
            Kind::Srv => "SRV",
        };
        let ttl = s
            .ttl_min
            .map_or_else(|| "no TTL".to_string(), |t| format!("TTL {t} s"));
        let _ = writeln!(
            out,
            "  {}  ({kind}, {}, {ttl})",
            s.name,
            plural(s.lookups.into(), "lookup")
        );
        let _ = writeln!(
            out,
            "    {:<39} {:>7} {:>6} {:>5}",
            "backend", "conns", "share", "dns"
        );
        let total: u64 = s.rows.iter().map(|r| r.conns).sum();
        for r in &s.rows {
            let backend = match (r.backend, r.port) {
                (Addr::V6(_), Some(p)) => format!("[{}]:{p}", r.backend.canonical()),
                (Addr::V6(_), None) => format!("[{}]:?", r.backend.canonical()),
                (_, Some(p)) => format!("{}:{p}", r.backend.canonical()),
                (_, None) => format!("{}:?", r.backend.canonical()),
            };
            let share = if total > 0 {
                r.conns as f64 / total as f64
            } else {
                0.0
            };
            let bar_len = (share * 14.0).round() as usize;
            let bar = if style.terminal {
                "█".repeat(bar_len)
            } else {
                "#".repeat(bar_len)
            };
            let _ = writeln!(
                out,
                "    {backend:<39} {:>7} {:>5.1}% {:>5} {bar}",
                r.conns,
                share * 100.0,
                r.dns
            );
        }
        let colour = |kind: &str| match kind {
            "good" => "32",
            "bad" => "31",
            _ => "33",
        };
        for b in &s.balance {
            let (kind, text) = balance_verdict(b);
            let port = b
                .port
                .map_or_else(|| "all ports".to_string(), |p| format!("port {p}"));
            let _ = writeln!(out, "    balance ({port}): {}", style.paint(colour(kind), &text));
        }
        if s.balance.is_empty() {
            let _ = writeln!(
                out,
                "    balance: {}",
                style.paint("33", "no group of two or more backends with connections")
            );
        }
        let (kind, text) = ttl_verdict(s);
        let _ = writeln!(out, "    ttl: {}", style.paint(colour(kind), &text));
        out.push('\n');
    }
    if services.is_empty() {
        out.push_str("no client connected to a name that gave it two or more addresses\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn p_values_match_tables() {
        // Critical values of the chi-square distribution at p = 0.05/0.01.
        assert!(close(chi_square_p(3.841_458_8, 1), 0.05, 1e-7));
        assert!(close(chi_square_p(6.634_896_6, 1), 0.01, 1e-7));
        assert!(close(chi_square_p(5.991_464_5, 2), 0.05, 1e-7));
        assert!(close(chi_square_p(7.814_727_9, 3), 0.05, 1e-7));
        assert!(close(chi_square_p(11.070_497_7, 5), 0.05, 1e-7));
        assert!(close(chi_square_p(37.566_234_8, 20), 0.01, 1e-7));
        // df = 2 is exactly exp(-x/2).
        for x in [0.1, 1.0, 4.0, 30.0] {
            assert!(close(chi_square_p(x, 2), (-x / 2.0f64).exp(), 1e-12));
        }
        assert_eq!(chi_square_p(0.0, 3), 1.0);
        assert!(chi_square_p(1e6, 3) < 1e-100);
    }

    #[test]
    fn balance_by_hand() {
        // 11, 9, 10, 10 over four backends: E = 10 each, chi2 = 0.2.
        let b = balance(Some(80), &[11, 9, 10, 10], &[1.0; 4]);
        assert_eq!(
            (b.conns, b.backends_returned, b.backends_used, b.df),
            (40, 4, 4, 3)
        );
        assert!(close(b.chi2.unwrap(), 0.2, 1e-12));
        assert!(close(b.p_value.unwrap(), 0.977_589_0, 1e-6));
        assert!(close(b.max_min_share.unwrap(), 11.0 / 9.0, 1e-12));
        assert!(close(b.cv.unwrap(), (0.5f64).sqrt() / 10.0, 1e-12));
        // An unused backend: no max/min share, a large chi-square.
        let b = balance(None, &[12, 0, 0], &[1.0; 3]);
        assert_eq!(b.max_min_share, None);
        assert!(close(b.chi2.unwrap(), 24.0, 1e-12));
        assert!(close(b.p_value.unwrap(), (-12.0f64).exp(), 1e-12));
        // SRV weights 3:1 and counts 30:10 fit exactly.
        let b = balance(None, &[30, 10], &[3.0, 1.0]);
        assert!(close(b.chi2.unwrap(), 0.0, 1e-12));
        assert_eq!(b.p_value, Some(1.0));
        // No connections: no test.
        let b = balance(Some(80), &[0, 0], &[1.0, 1.0]);
        assert_eq!((b.chi2, b.p_value, b.cv), (None, None, None));
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123_000_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn json_strings_and_numbers() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001\"");
        let mut s = String::new();
        json_f64(&mut s, Some(0.25));
        json_f64(&mut s, Some(f64::INFINITY));
        json_f64(&mut s, Some(3.0));
        assert_eq!(s, "0.25null3");
    }
}
