//! Flags, exit codes, error text, damaged and cut-off input, signals.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::{connbal, data, read, run, temp_file, text};

fn path_of(name: &str) -> String {
    data(name).to_str().expect("utf-8 path").to_string()
}

/// Byte offsets where each record of a snoop capture starts, and its end.
fn record_offsets(capture: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 16;
    while pos + 24 <= capture.len() {
        offsets.push(pos);
        let len = u32::from_be_bytes(capture[pos + 8..pos + 12].try_into().unwrap()) as usize;
        pos += len;
    }
    offsets.push(pos);
    offsets
}

#[test]
fn missing_file_is_an_io_error_with_status_1() {
    let out = run(&["-f", "/nonexistent/capture.snoop"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "connbal: /nonexistent/capture.snoop: No such file or directory\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_have_status_1() {
    let out = run(&["--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--no-such-flag"));
    let out = run(&["-f", &path_of("real_syn.snoop"), &path_of("cname.snoop")], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "connbal: give the capture either with -f or as an argument, not both\n"
    );
    let out = run(&["--threads", "0"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_and_version_succeed() {
    let out = run(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "-a",
        "-F",
        "-f",
        "--all-names",
        "--idle-timeout",
        "--threads",
        "-q",
        "Exit status",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    let out = run(&["--version"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("connbal "));
}

#[test]
fn not_a_capture_is_status_2_with_one_line() {
    let out = run(&[], Some(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "connbal: standard input: not a snoop, pcap or pcapng capture (it starts with 47 45 54 20 2f 20 48 54)\n"
    );
    let out = run(&[], Some(b""));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "connbal: standard input: empty input: not a capture\n"
    );
    let path = temp_file("short.snoop", b"snoop\0\0\0\0\0");
    let out = run(&["-f", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("too short"), "{}", text(&out.stderr));
}

#[test]
fn unknown_snoop_datalink_is_named() {
    let mut capture = read("real_syn.snoop");
    capture[12..16].copy_from_slice(&8u32.to_be_bytes());
    let out = run(&[], Some(&capture));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "connbal: standard input: snoop datalink type 8 (0x8) is not supported (Ethernet 0 and 4, ipnet 0x80000005)\n"
    );
    capture[8..12].copy_from_slice(&3u32.to_be_bytes());
    let out = run(&[], Some(&capture));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("snoop version 3 is not supported"));
}

#[test]
fn damaged_record_stops_with_its_offset_and_the_summary_before_it() {
    let capture = read("real_syn.snoop");
    let offsets = record_offsets(&capture);
    // Several damage points across the capture, each kind SPEC §2 names.
    for (k, &at) in offsets.iter().enumerate().step_by(37).take(8) {
        if at + 24 > capture.len() {
            continue;
        }
        let before = run(&[], Some(&capture[..at]));
        assert_eq!(before.status.code(), Some(0));
        let damages: [(&str, usize, u32); 3] = [
            ("shorter than the 24-byte record header", 8, 12),
            ("is over 16 MiB", 8, 17 << 20),
            ("larger than the record", 4, 0xFFFF),
        ];
        for (what, field, value) in damages {
            let mut bad = capture.clone();
            bad[at + field..at + field + 4].copy_from_slice(&value.to_be_bytes());
            let path = temp_file(&format!("damaged-{k}-{field}-{value}.snoop"), &bad);
            for out in [run(&["-f", path.to_str().unwrap()], None), run(&[], Some(&bad))] {
                assert_eq!(out.status.code(), Some(2), "record {k}: {what}");
                let err = text(&out.stderr);
                assert!(
                    err.contains(&format!("damaged capture at byte offset {at}: ")),
                    "{err}"
                );
                assert!(err.contains(what), "{err}");
                assert_eq!(text(&out.stdout), text(&before.stdout), "record {k}: {what}");
            }
        }
    }
}

#[test]
fn capture_cut_inside_a_record_warns_and_succeeds() {
    let capture = read("real_syn.snoop");
    let offsets = record_offsets(&capture);
    for &at in offsets.iter().step_by(50) {
        let Some(&next) = offsets.iter().find(|&&o| o > at) else {
            continue;
        };
        let whole = run(&["-q"], Some(&capture[..at]));
        assert_eq!(whole.status.code(), Some(0));
        assert!(whole.stderr.is_empty(), "a cut at a record boundary is clean");
        for cut in [at + 1, at + 23, at + 24, next - 1] {
            let path = temp_file(&format!("cut-{cut}.snoop"), &capture[..cut]);
            for out in [
                run(&["-f", path.to_str().unwrap()], None),
                run(&[], Some(&capture[..cut])),
            ] {
                assert_eq!(out.status.code(), Some(0));
                let err = text(&out.stderr);
                assert!(
                    err.contains(&format!(
                        "the capture ends inside a record at byte offset {at} ({} bytes ignored)",
                        cut - at
                    )),
                    "{err}"
                );
                assert_eq!(out.stdout, whole.stdout);
            }
        }
    }
}

#[test]
fn quiet_silences_statistics_and_they_are_complete_otherwise() {
    let out = run(&["-q", "-f", &path_of("real_syn.snoop")], None);
    assert!(out.stderr.is_empty());
    let out = run(&["-f", &path_of("real_syn.snoop")], None);
    let err = text(&out.stderr);
    for part in [
        "313 records",
        "32554 bytes",
        "2.115 s of capture time",
        "0 dropped by the kernel",
    ] {
        assert!(err.contains(part), "{part} missing from {err}");
    }
    assert!(
        err.contains("68 queries") && err.contains("68 matched responses"),
        "{err}"
    );
    assert!(
        err.contains("177 SYNs counted, 0 unattributed, 0 retransmitted"),
        "{err}"
    );
}

#[test]
fn kernel_drop_count_is_reported() {
    let mut capture = read("real_syn.snoop");
    let offsets = record_offsets(&capture);
    let last = offsets[offsets.len() - 2];
    capture[last + 12..last + 16].copy_from_slice(&42u32.to_be_bytes());
    let out = run(&[], Some(&capture));
    assert!(
        text(&out.stderr).contains("42 dropped by the kernel"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn filter_keeps_only_matching_names_case_insensitively() {
    let expected = text(&read("real_syn.expected"));
    let xmpp: String = expected
        .lines()
        .filter(|l| l.contains("_xmpp"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!xmpp.is_empty());
    for filter in ["xmpp", "XMPP-Client"] {
        let out = run(&["-F", filter, "-f", &path_of("real_syn.snoop")], None);
        assert_eq!(text(&out.stdout), xmpp, "-F {filter}");
        assert!(text(&out.stderr).contains("filtered out"));
    }
}

#[test]
fn all_names_adds_single_address_names() {
    let expected = text(&read("real_syn.expected"));
    let out = run(&["--all-names", "-q", "-f", &path_of("real_syn.snoop")], None);
    let all = text(&out.stdout);
    for line in expected.lines() {
        assert!(all.contains(line), "{line} missing with --all-names");
    }
    let extra: Vec<&str> = all.lines().filter(|l| !expected.contains(l)).collect();
    assert!(!extra.is_empty(), "the single-address name appears");
    for line in extra {
        assert_eq!(line.split('\t').count(), 5, "{line}");
    }
}

/// Rewrites an Ethernet snoop capture as `snoop -I` would have written it.
fn as_ipnet(capture: &[u8]) -> Vec<u8> {
    let mut w = connbal::synth::SnoopWriter::new(0x8000_0005);
    let offsets = record_offsets(capture);
    for pair in offsets.windows(2) {
        let at = pair[0];
        let incl = u32::from_be_bytes(capture[at + 4..at + 8].try_into().unwrap()) as usize;
        let secs = u32::from_be_bytes(capture[at + 16..at + 20].try_into().unwrap()) as u64;
        let usecs = u32::from_be_bytes(capture[at + 20..at + 24].try_into().unwrap()) as u64;
        let frame = &capture[at + 24..at + 24 + incl];
        let family = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0800 => 2,
            0x86DD => 26,
            _ => 0,
        };
        let mut rec = vec![1, family, 0, 0];
        rec.extend_from_slice(&((incl - 14) as u32).to_be_bytes());
        rec.extend_from_slice(&[0; 16]);
        rec.extend_from_slice(&frame[14..]);
        w.record(secs * 1_000_000_000 + usecs * 1_000, &rec, 0);
    }
    w.bytes
}

#[test]
fn ipnet_datalink_gives_the_same_rows() {
    for name in ["real_syn", "ipv6"] {
        let capture = as_ipnet(&read(&format!("{name}.snoop")));
        let path = temp_file(&format!("{name}-ipnet.snoop"), &capture);
        let out = run(&["-q", "-f", path.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            text(&read(&format!("{name}.expected"))),
            "{name} as ipnet"
        );
    }
}

/// Feeds `capture` to connbal through a pipe that stays open, as from a
/// running snoop; gives connbal time to read it, then sends `signal`.
fn signal_a_live_pipe(signal: &str, args: &[&str], capture: &str) -> std::process::Output {
    let mut child = connbal()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&read(capture)).expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(700));
    let killed = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    drop(stdin);
    out
}

#[test]
fn sigint_on_a_live_pipe_prints_the_summary_and_exits_0() {
    let out = signal_a_live_pipe("-INT", &[], "real_syn.snoop");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), text(&read("real_syn.expected")));
    assert!(text(&out.stderr).contains("313 records"));
}

#[test]
fn sigterm_also_prints_the_summary() {
    let out = signal_a_live_pipe("-TERM", &["-q"], "cname.snoop");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), text(&read("cname.expected")));
}

#[test]
fn closed_stdout_ends_quietly() {
    let mut child = connbal()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close the reading end first, so every write connbal makes fails.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&read("cname.snoop")).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn readme_set_up_commands_work() {
    // The README's first command: `cargo run --release -- tests/data/real_syn.snoop`.
    let readme = std::fs::read_to_string(data("../../README.md")).expect("README");
    assert!(readme.contains("cargo run --release -- tests/data/real_syn.snoop"));
    assert!(readme.contains("\ncargo test "));
    let manifest = std::fs::read_to_string(data("../../Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("default-run = \"connbal\""),
        "cargo run must pick connbal"
    );
}
