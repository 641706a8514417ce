//! The one integration-test binary: connbal as its users run it.

mod captures;
mod cli;
#[path = "../benches/common.rs"]
mod common;
mod differential;
mod floods;
mod formats;
mod fuzz_replay;
mod generated;
mod machine;
mod scenarios;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn connbal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_connbal"))
}

/// Runs connbal with `args`, feeding `stdin` when given.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = connbal();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn connbal");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        // Write from a thread: connbal may stop reading early (damage).
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("wait connbal")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// This run's directory for temporary files: under the build's own
/// scratch directory (`CARGO_TARGET_TMPDIR`, which `cargo clean` empties),
/// not the system's, one per process. Made at the first call, which also
/// removes what runs that have ended left behind (each run writes a few
/// MB of cut captures).
fn temp_dir() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix("connbal-test-"));
                // A run still going (another `cargo test` in this tree) keeps its own.
                if pid.is_some_and(|p| !std::path::Path::new("/proc").join(p).exists()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("connbal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    })
}

/// Writes bytes to a fresh temporary file and returns its path.
pub fn temp_file(tag: &str, bytes: &[u8]) -> PathBuf {
    let path = temp_dir().join(tag);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}
