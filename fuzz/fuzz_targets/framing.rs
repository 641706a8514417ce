#![no_main]
//! See `connbal::fuzzing::framing`: the same body runs in `cargo test` over the
//! committed corpus (`fuzz/seeds/framing`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connbal::fuzzing::framing(data));
