#![no_main]
//! See `connbal::fuzzing::dissect`: the same body runs in `cargo test` over the
//! committed corpus (`fuzz/seeds/dissect`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connbal::fuzzing::dissect(data));
