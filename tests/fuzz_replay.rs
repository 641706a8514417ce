//! Every file of the fuzz corpora (committed seeds and regressions, and
//! whatever local fuzzing left in `fuzz/corpus` and `fuzz/artifacts`)
//! through the same harness functions the fuzz targets call. No nightly
//! needed.

use std::path::{Path, PathBuf};

use connbal::fuzzing;

/// A fuzz target's name and body.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 4] = [
    ("framing", fuzzing::framing),
    ("dissect", fuzzing::dissect),
    ("dns", fuzzing::dns),
    ("pipeline", fuzzing::pipeline),
];

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn replay_fuzz_corpora() {
    let mut total = 0;
    for (target, run) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target));
        assert!(seeds.len() >= 5, "fuzz/seeds/{target} has too few seeds");
        let mut all = seeds;
        all.extend(files(&fuzz_dir().join("corpus").join(target)));
        all.extend(files(&fuzz_dir().join("artifacts").join(target)));
        // Inputs that once broke a promise, kept as regression tests.
        all.extend(files(&fuzz_dir().join("regressions").join(target)));
        for path in &all {
            // A running fuzzer may replace corpus files as it reduces them.
            let Ok(data) = std::fs::read(path) else { continue };
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            total += 1;
        }
    }
    assert!(total >= 20);
}

#[test]
fn every_cut_of_a_shared_capture_frames_the_same_both_ways() {
    for name in ["real_syn.snoop", "real_syn.pcap", "real_syn.pcapng"] {
        let data = crate::read(name);
        let data = &data[..data.len().min(6000)];
        for cut in (0..data.len()).step_by(97) {
            fuzzing::framing(&data[..cut]);
            fuzzing::pipeline(&data[..cut]);
        }
    }
}

#[test]
fn dns_pointer_loop_survives_every_harness() {
    let data = crate::read("dns_pointer_loop.snoop");
    for (_, run) in TARGETS {
        run(&data);
    }
}

/// Writes the seed corpora from the shared captures:
/// `cargo test --test connbal -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use connbal::synth::snoop_frames;
    let seeds = fuzz_dir().join("seeds");
    for (target, _) in TARGETS {
        std::fs::create_dir_all(seeds.join(target)).unwrap();
    }
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::write(seeds.join(target).join(name), bytes).unwrap();
    };
    for name in [
        "real_syn.snoop",
        "real_syn.pcap",
        "real_syn.pcapng",
        "vlan_ipopts.snoop",
        "ipv6.snoop",
        "syn_srv_edns.snoop",
        "dns_pointer_loop.snoop",
    ] {
        let data = crate::read(name);
        let small = &data[..data.len().min(3000)];
        write("framing", name, small);
        write("pipeline", name, small);
    }
    let mut n = 0;
    for capture in [
        "real_syn.snoop",
        "vlan_ipopts.snoop",
        "ipv6.snoop",
        "syn_srv_edns.snoop",
        "cname.snoop",
    ] {
        for (_, frame) in snoop_frames(&crate::read(capture))
            .into_iter()
            .step_by(23)
            .take(8)
        {
            let mut seed = vec![0u8]; // Ethernet
            seed.extend_from_slice(&frame);
            write("dissect", &format!("frame-{n:03}"), &seed);
            // The DNS message of a UDP frame (Ethernet, maybe one tag, IPv4/6).
            let (ethertype, ip) = if frame[12..14] == [0x81, 0x00] {
                (&frame[16..18], &frame[18..])
            } else {
                (&frame[12..14], &frame[14..])
            };
            let udp = match ethertype {
                [0x08, 0x00] if ip[9] == 17 => Some(&ip[usize::from(ip[0] & 15) * 4..]),
                [0x86, 0xdd] if ip[6] == 17 => Some(&ip[40..]),
                _ => None,
            };
            if let Some(udp) = udp.filter(|u| u.len() > 8) {
                write("dns", &format!("msg-{n:03}"), &udp[8..]);
            }
            n += 1;
        }
    }
}
