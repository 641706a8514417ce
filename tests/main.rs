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

/// Writes bytes to a fresh temporary file and returns its path.
pub fn temp_file(tag: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("connbal-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(tag);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}
