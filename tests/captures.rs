//! The shared reference captures: connbal's stdout equals the expected
//! output byte for byte, from a file (mapped) and through a pipe.

use crate::{data, read, run, text};

const DEFAULT: &[&str] = &[
    "cached_noise",
    "cname",
    "ipv6",
    "real_pool",
    "real_syn",
    "syn_srv_edns",
    "vlan_ipopts",
];
const ALL_MODE: &[&str] = &["real_pool", "real_syn", "streams"];

fn check(name: &str, flags: &[&str], expected: &str) {
    let path = data(&format!("{name}.snoop"));
    let path = path.to_str().expect("utf-8 path");
    let want = text(&read(expected));
    let mut args = flags.to_vec();
    args.extend(["-f", path]);
    let from_file = run(&args, None);
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{name} {flags:?}: {}",
        text(&from_file.stderr)
    );
    assert_eq!(text(&from_file.stdout), want, "{name} {flags:?} from the file");

    let from_pipe = run(flags, Some(&read(&format!("{name}.snoop"))));
    assert_eq!(
        from_pipe.status.code(),
        Some(0),
        "{name} {flags:?}: {}",
        text(&from_pipe.stderr)
    );
    assert_eq!(text(&from_pipe.stdout), want, "{name} {flags:?} through a pipe");
}

#[test]
fn default_mode_matches_every_expected_output() {
    for name in DEFAULT {
        check(name, &[], &format!("{name}.expected"));
    }
}

#[test]
fn all_mode_matches_every_expected_output() {
    for name in ALL_MODE {
        check(name, &["-a"], &format!("{name}.a.expected"));
    }
}

#[test]
fn one_parser_thread_and_many_give_the_same_rows() {
    for threads in ["1", "7"] {
        check("syn_srv_edns", &["--threads", threads], "syn_srv_edns.expected");
        check("streams", &["-a", "--threads", threads], "streams.a.expected");
    }
}

#[test]
fn positional_file_and_dash_for_stdin() {
    let path = data("real_syn.snoop");
    let out = run(&[path.to_str().expect("path")], None);
    assert_eq!(text(&out.stdout), text(&read("real_syn.expected")));
    let out = run(&["-"], Some(&read("real_syn.snoop")));
    assert_eq!(text(&out.stdout), text(&read("real_syn.expected")));
}

#[test]
fn dns_pointer_loop_is_counted_as_malformed_and_not_fatal() {
    let out = run(
        &["-f", data("dns_pointer_loop.snoop").to_str().expect("path")],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("1 malformed messages"), "{err}");
    assert!(err.contains("0 queries"), "{err}");
}

#[test]
fn pooled_connections_opened_before_the_capture_only_count_with_all() {
    // real_pool.expected (SYNs only) and real_pool.a.expected differ exactly
    // in the www.example.com rows: the pooled connections.
    let syn = text(&read("real_pool.expected"));
    let all = text(&read("real_pool.a.expected"));
    assert_ne!(syn, all);
    let out = run(
        &["-a", "-f", data("real_pool.snoop").to_str().expect("path")],
        None,
    );
    assert_eq!(text(&out.stdout), all);
}
