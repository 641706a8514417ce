//! pcap and pcapng: the shared captures' own pcap/pcapng forms, and every
//! link type, byte order and timestamp resolution built from them.

use connbal::synth::{PcapWriter, PcapngWriter, relink, snoop_frames};

use crate::{data, read, run, temp_file, text};

fn expect_both_ways(capture: &[u8], tag: &str, flags: &[&str], expected: &str) {
    let want = text(&read(expected));
    let path = temp_file(tag, capture);
    let mut args = flags.to_vec();
    let p = path.to_str().expect("path").to_string();
    args.push(&p);
    let out = run(&args, None);
    assert_eq!(out.status.code(), Some(0), "{tag}: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want, "{tag} from a file");
    let out = run(flags, Some(capture));
    assert_eq!(out.status.code(), Some(0), "{tag}: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want, "{tag} through a pipe");
}

#[test]
fn shared_pcap_and_pcapng_forms_match() {
    for name in ["real_syn", "real_pool"] {
        for ext in ["pcap", "pcapng"] {
            let capture = read(&format!("{name}.{ext}"));
            expect_both_ways(
                &capture,
                &format!("{name}.{ext}"),
                &[],
                &format!("{name}.expected"),
            );
            expect_both_ways(
                &capture,
                &format!("{name}-a.{ext}"),
                &["-a"],
                &format!("{name}.a.expected"),
            );
        }
    }
}

#[test]
fn every_pcap_link_type_byte_order_and_resolution() {
    let frames = snoop_frames(&read("real_syn.snoop"));
    assert_eq!(frames.len(), 313);
    let links: [(u32, bool); 9] = [
        (1, false),
        (101, false),
        (12, false),
        (14, false),
        (113, false),
        (276, false),
        (0, false),
        (0, true),
        (108, false),
    ];
    for (linktype, big_null) in links {
        for (big, nanos) in [(false, false), (true, true)] {
            let mut w = PcapWriter::new(linktype, big, nanos);
            for (ts, frame) in &frames {
                w.record(*ts, &relink(frame, linktype, big_null));
            }
            let tag = format!("link{linktype}-{big_null}-{big}-{nanos}.pcap");
            expect_both_ways(&w.bytes, &tag, &["-q"], "real_syn.expected");
        }
    }
}

#[test]
fn pcapng_sections_interfaces_and_resolutions() {
    let frames = snoop_frames(&read("real_pool.snoop"));
    let mut w = PcapngWriter::new(false);
    let eth = w.interface(1, 6);
    let raw = w.interface(101, 9);
    let half = frames.len() / 2;
    for (i, (ts, frame)) in frames[..half].iter().enumerate() {
        if i % 2 == 0 {
            w.packet(eth, *ts, frame);
        } else {
            w.packet(raw, *ts, &relink(frame, 101, false));
        }
        if i % 100 == 0 {
            w.other_block();
        }
    }
    // A second section, big-endian, with its interfaces in another order
    // and a binary resolution.
    w.section(true);
    let sll2 = w.interface(276, 0x80 | 20);
    let eth2 = w.interface(1, 3);
    for (i, (ts, frame)) in frames[half..].iter().enumerate() {
        if i % 3 == 0 {
            w.packet(sll2, *ts, &relink(frame, 276, false));
        } else {
            w.packet(eth2, *ts, frame);
        }
    }
    expect_both_ways(&w.bytes, "sections.pcapng", &["-q"], "real_pool.expected");
    expect_both_ways(
        &w.bytes,
        "sections-a.pcapng",
        &["-q", "-a"],
        "real_pool.a.expected",
    );
}

#[test]
fn unsupported_link_types_are_named() {
    let w = PcapWriter::new(147, false, false);
    let out = run(&[], Some(&w.bytes));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("connbal: standard input: pcap link type 147 is not supported"),
        "{}",
        text(&out.stderr)
    );
    let mut w = PcapngWriter::new(false);
    let i = w.interface(1, 6);
    let frames = snoop_frames(&read("real_syn.snoop"));
    w.packet(i, frames[0].0, &frames[0].1);
    let usb = w.interface(189, 6);
    w.packet(usb, frames[1].0, &frames[1].1);
    let out = run(&[], Some(&w.bytes));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("pcapng interface 1 has link type 189, which is not supported"),
        "{err}"
    );
    assert!(
        err.contains("1 records"),
        "the summary of what came before: {err}"
    );
}

#[test]
fn pcapng_damage_is_reported_with_its_offset() {
    let mut capture = read("real_syn.pcapng");
    // Find the third block and give it a length that is not a multiple of 4.
    let mut pos = 0;
    for _ in 0..3 {
        pos += u32::from_le_bytes(capture[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    capture[pos + 4..pos + 8].copy_from_slice(&(1234567u32).to_le_bytes());
    let out = run(&["-f", data("real_syn.pcapng").to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&[], Some(&capture));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "damaged capture at byte offset {pos}: block length 1234567 is not a multiple of 4"
        )),
        "{err}"
    );
}

#[test]
fn pcap_cut_inside_a_record_warns() {
    let capture = read("real_syn.pcap");
    let out = run(&[], Some(&capture[..capture.len() - 5]));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("the capture ends inside a record"));
}

/// (offset, length) of each pcapng block.
fn pcapng_blocks(capture: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= capture.len() {
        let len = u32::from_le_bytes(capture[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push((pos, len));
        pos += len;
    }
    out
}

/// (offset, length) of each pcap record.
fn pcap_records(capture: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= capture.len() {
        let len = 16 + u32::from_le_bytes(capture[pos + 8..pos + 12].try_into().unwrap()) as usize;
        out.push((pos, len));
        pos += len;
    }
    out
}

fn expect_damage(bad: &[u8], at: usize, what: &str, before: &[u8]) {
    let path = temp_file(&format!("damaged-{at}-{}.cap", what.len()), bad);
    for out in [run(&["-f", path.to_str().unwrap()], None), run(&[], Some(bad))] {
        assert_eq!(out.status.code(), Some(2), "{what} at {at}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("damaged capture at byte offset {at}: ")),
            "{err}"
        );
        assert!(err.contains(what), "{what}: {err}");
        let whole = run(&["-q"], Some(before));
        assert_eq!(out.stdout, whole.stdout, "the summary of what came before {at}");
    }
}

#[test]
fn pcapng_damage_of_every_kind_at_many_offsets() {
    let capture = read("real_syn.pcapng");
    let blocks = pcapng_blocks(&capture);
    // Skip the section and interface blocks; damage packet blocks.
    for &(at, len) in blocks.iter().skip(2).step_by(41) {
        let before = &capture[..at];
        let mut bad = capture.clone();
        bad[at + 4..at + 8].copy_from_slice(&((len as u32) + 2).to_le_bytes());
        expect_damage(&bad, at, "is not a multiple of 4", before);
        let mut bad = capture.clone();
        bad[at + 4..at + 8].copy_from_slice(&(20u32 << 20).to_le_bytes());
        expect_damage(&bad, at, "is over 16 MiB", before);
        let mut bad = capture.clone();
        bad[at + 20..at + 24].copy_from_slice(&(len as u32).to_le_bytes()); // caplen
        expect_damage(&bad, at, "is larger than the block", before);
        let mut bad = capture.clone();
        bad[at + len - 4] ^= 0x40; // trailing length
        expect_damage(&bad, at, "trailing length", before);
        // A cut at the boundary is clean; inside the block, a warning.
        let out = run(&[], Some(&capture[..at]));
        assert_eq!(
            (out.status.code(), out.stderr.is_empty()),
            (Some(0), false),
            "stats only"
        );
        assert!(!text(&out.stderr).contains("warning"));
        let out = run(&["-q"], Some(&capture[..at + len / 2]));
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stderr).contains(&format!("ends inside a record at byte offset {at}")));
    }
}

#[test]
fn pcap_damage_and_cuts_at_many_offsets() {
    let capture = read("real_syn.pcap");
    for &(at, len) in pcap_records(&capture).iter().step_by(37) {
        let before = &capture[..at];
        let mut bad = capture.clone();
        bad[at + 8..at + 12].copy_from_slice(&(17u32 << 20).to_le_bytes());
        expect_damage(&bad, at, "record length 17825792 is over 16 MiB", before);
        for cut in [at, at + 1, at + 15, at + 16, at + len - 1] {
            let out = run(&["-q"], Some(&capture[..cut]));
            assert_eq!(out.status.code(), Some(0));
            let warned = text(&out.stderr).contains(&format!("ends inside a record at byte offset {at}"));
            assert_eq!(warned, cut != at, "cut at {cut}");
            assert_eq!(out.stdout, run(&["-q"], Some(before)).stdout);
        }
    }
}

/// A pcapng timestamp past the last nanosecond a u64 holds (the year 2554
/// and on) is taken as that last nanosecond. A record with it once stopped
/// the aggregator short (the rest of its batch was never applied: here,
/// every row) and `--interval` never left the interval holding it.
#[test]
fn a_timestamp_past_the_largest_applies_the_rest_of_its_batch_and_ends_intervals() {
    use connbal::dissect::{Dissector, Link};
    use connbal::event::{Event, EventBatch};
    use std::time::{Duration, Instant};

    let frames = snoop_frames(&read("real_syn.snoop"));
    let is_syn = |ts: u64, frame: &[u8]| {
        let mut batch = EventBatch::default();
        Dissector::default().record(Link::Ethernet, ts, frame, &mut batch);
        matches!(batch.events.as_slice(), [Event::Syn { .. }])
    };
    let mut w = PcapngWriter::new(false);
    let iface = w.interface(1, 6);
    let mut patched = None;
    for (ts, frame) in &frames {
        let block = w.bytes.len();
        w.packet(iface, *ts, frame);
        if patched.is_none() && is_syn(*ts, frame) {
            // The block's timestamp (after its type, length and interface):
            // 2^64 - 1 microseconds.
            w.bytes[block + 12..block + 20].fill(0xFF);
            patched = Some(block);
        }
    }
    assert!(patched.is_some(), "a SYN to patch");
    expect_both_ways(&w.bytes, "far-future.pcapng", &["-q"], "real_syn.expected");

    let path = temp_file("far-future-interval.pcapng", &w.bytes);
    let mut child = crate::connbal()
        .args(["-q", "--interval", "1"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn connbal");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("connbal --interval did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let last = stdout.rsplit("# final: ").next().expect("a final block");
    let rows = last.split_once('\n').map_or("", |(_, rows)| rows);
    assert_eq!(rows, text(&read("real_syn.expected")));
}
