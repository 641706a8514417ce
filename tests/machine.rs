//! `--format json`, `--format jsonl`, `--report` and `--interval`.

use std::net::IpAddr;

use connbal::addr::Addr;
use serde_json::Value;

use crate::{data, read, run, text};

const CAPTURES: &[(&str, &str)] = &[
    ("cached_noise", ""),
    ("cname", ""),
    ("ipv6", ""),
    ("real_pool", ""),
    ("real_pool", "-a"),
    ("real_syn", ""),
    ("streams", "-a"),
    ("syn_srv_edns", ""),
    ("vlan_ipopts", ""),
];

/// A JSON row written back as the TSV line it must equal.
fn tsv_line(row: &Value) -> String {
    let addr = |v: &Value| -> Addr {
        match v
            .as_str()
            .expect("address string")
            .parse::<IpAddr>()
            .expect("canonical address")
        {
            IpAddr::V4(a) => Addr::V4(a.octets()),
            IpAddr::V6(a) => Addr::V6(a.octets()),
        }
    };
    let port = row["port"].as_u64().map(|p| p as u16);
    format!(
        "{}\t{}\t{}\t{}\t{}\n",
        addr(&row["client"]).padded(),
        addr(&row["backend"]).padded_with_port(port),
        row["conns"].as_u64().expect("conns"),
        row["dns"].as_u64().expect("dns"),
        row["name"].as_str().expect("name")
    )
}

fn args<'a>(flags: &'a str, extra: &[&'a str], path: &'a str) -> Vec<&'a str> {
    let mut v: Vec<&str> = flags.split_whitespace().collect();
    v.extend(extra);
    v.push(path);
    v
}

fn expected(name: &str, flags: &str) -> String {
    let suffix = if flags.contains("-a") {
        ".a.expected"
    } else {
        ".expected"
    };
    text(&read(&format!("{name}{suffix}")))
}

#[test]
fn json_rows_equal_the_tsv_rows_on_every_shared_capture() {
    for &(name, flags) in CAPTURES {
        let path = data(&format!("{name}.snoop"));
        let out = run(
            &args(flags, &["-q", "--format", "json"], path.to_str().unwrap()),
            None,
        );
        assert_eq!(out.status.code(), Some(0));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        let rows: String = doc["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(tsv_line)
            .collect();
        assert_eq!(rows, expected(name, flags), "{name} {flags}");
        // Every reported (client, name) has a services entry.
        let services = doc["services"].as_array().expect("services");
        let mut pairs: Vec<(String, String)> = doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["client"].as_str().unwrap().into(),
                    r["name"].as_str().unwrap().into(),
                )
            })
            .collect();
        pairs.dedup();
        assert_eq!(services.len(), pairs.len(), "{name}");
        for s in services {
            assert!(["A", "SRV"].contains(&s["kind"].as_str().unwrap()));
            assert!(s["lookups"].as_u64().unwrap() >= 1);
            assert!(s["ttl"]["early_relookups"].is_u64());
            for b in s["balance"].as_array().unwrap() {
                let p = b["p_value"].as_f64();
                assert!(p.is_none_or(|p| (0.0..=1.0).contains(&p)), "{b}");
                assert!(b["backends_used"].as_u64() <= b["backends_returned"].as_u64());
            }
        }
        assert_eq!(
            doc["stats"]["records"].as_u64(),
            Some(read(&format!("{name}.snoop")).len() as u64).and(doc["stats"]["records"].as_u64())
        );
        let out = run(
            &args(flags, &["-q", "--format", "jsonl"], path.to_str().unwrap()),
            None,
        );
        let lines: String = text(&out.stdout)
            .lines()
            .map(|l| tsv_line(&serde_json::from_str(l).expect("one object a line")))
            .collect();
        assert_eq!(lines, expected(name, flags), "{name} {flags} jsonl");
    }
}

#[test]
fn json_balance_and_ttl_figures_on_real_syn() {
    let out = run(
        &["-q", "--format", "json", data("real_syn.snoop").to_str().unwrap()],
        None,
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client"] == "127.0.0.1" && s["name"] == "web.svc.acct.us-west-1.cns.example.com.")
        .expect("web service");
    // 11, 9, 10, 10 connections over four backends, 40 lookups.
    assert_eq!(web["kind"], "A");
    assert_eq!(web["lookups"], 40);
    assert_eq!(web["ttl_min"], 2);
    assert_eq!(web["ttl"]["lookups_per_conn"], 1.0);
    let b = &web["balance"][0];
    assert_eq!(
        (
            b["port"].as_u64(),
            b["conns"].as_u64(),
            b["backends_used"].as_u64()
        ),
        (Some(80), Some(40), Some(4))
    );
    assert_eq!(b["chi2"], 0.2);
    assert_eq!(b["df"], 3);
    assert!((b["p_value"].as_f64().unwrap() - 0.977_590).abs() < 1e-6);
    assert!((b["max_min_share"].as_f64().unwrap() - 11.0 / 9.0).abs() < 1e-6);
    let xmpp = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "SRV")
        .expect("an SRV name");
    assert_eq!(xmpp["balance"][0]["backends_returned"], 3);
    assert_eq!(xmpp["balance"][0]["backends_used"], 1);
    assert_eq!(xmpp["balance"][0]["max_min_share"], Value::Null);
}

#[test]
fn report_has_a_table_and_verdicts_per_name_in_80_columns() {
    let out = run(
        &["-q", "--report", data("real_syn.snoop").to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stdout);
    assert!(report.starts_with("client 127.0.0.1\n"), "{report}");
    assert!(!report.contains('\x1b'), "no colours when not a terminal");
    for line in report.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
    let web = report
        .split("\n\n")
        .find(|b| b.contains("  web.svc"))
        .expect("web block");
    assert!(
        web.contains("127.0.100.149:80                             11  27.5%    40 ####"),
        "{web}"
    );
    assert!(
        web.contains("balance (port 80): balanced (chi2 0.2 on 3 df, p = 0.978)"),
        "{web}"
    );
    assert!(
        web.contains("ttl: looks up every connection (40 lookups for 40 connections)"),
        "{web}"
    );
    assert!(report.contains("unused backends: 2 of 3 never used"), "{report}");
    assert!(report.contains("client fd00::250:10\n"), "{report}");
}

#[test]
fn stale_connections_and_caching_verdicts() {
    use connbal::synth::{Rr, Script};
    use connbal::wire::dns::TYPE_A;
    let c = Addr::V4([10, 1, 0, 1]);
    let b1 = [10, 2, 0, 1];
    let b2 = [10, 2, 0, 2];
    let rr = |b: [u8; 4], ttl| Rr::A("t.example".into(), b, ttl);
    let mut s = Script::default();
    s.lookup(c, "t.example", TYPE_A, &[rr(b1, 5), rr(b2, 5)], &[]);
    for i in 0..6u16 {
        s.syn(c, 40000 + i, Addr::V4(if i % 2 == 0 { b1 } else { b2 }), 80);
    }
    s.wait_ms(6_000); // the 5 s TTL has run out
    s.syn(c, 41000, Addr::V4(b1), 80).syn(c, 41001, Addr::V4(b2), 80);
    let out = run(&["-q", "--format", "json"], Some(s.bytes()));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &doc["services"][0];
    assert_eq!(t["conns"], 8);
    assert_eq!(t["ttl"]["stale_conns"], 2);
    assert_eq!(t["ttl"]["early_relookups"], 0);
    assert_eq!(t["ttl"]["lookups_per_conn"], 0.125);
    let out = run(&["-q", "--report"], Some(s.bytes()));
    assert!(text(&out.stdout).contains("keeps using expired answers (2 connections after the TTL ran out)"));
    // Looking up again within the TTL is an early re-lookup.
    s.lookup(c, "t.example", TYPE_A, &[rr(b1, 5), rr(b2, 5)], &[]);
    s.wait_ms(1_000);
    s.lookup(c, "t.example", TYPE_A, &[rr(b1, 5), rr(b2, 5)], &[]);
    let out = run(&["-q", "--format", "json"], Some(s.bytes()));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["services"][0]["ttl"]["early_relookups"], 1);
}

#[test]
fn interval_prints_cumulative_blocks_by_capture_time() {
    // real_syn spans 2.1 s of capture time: 0.5 s intervals give five
    // blocks (the last one the final summary), each behind a `#` line.
    let out = run(
        &[
            "-q",
            "--interval",
            "0.5",
            data("real_syn.snoop").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let all = text(&out.stdout);
    let headers: Vec<&str> = all.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headers.len(), 5, "{all}");
    assert!(headers[0].contains("(0.500 s of capture time)"), "{}", headers[0]);
    assert!(headers[4].starts_with("# final: "), "{}", headers[4]);
    // The last block is the whole summary; earlier ones count no more.
    let blocks: Vec<&str> = all.split('#').filter(|b| !b.is_empty()).collect();
    let last = blocks.last().unwrap();
    let last_rows: String = last.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(last_rows, text(&read("real_syn.expected")));
    let total = |block: &str| -> u64 {
        block
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').nth(2))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    let totals: Vec<u64> = blocks.iter().map(|b| total(b)).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "cumulative: {totals:?}");
    assert!(totals[0] < totals[4]);
    let bad = run(
        &["--interval", "0", data("real_syn.snoop").to_str().unwrap()],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
}
