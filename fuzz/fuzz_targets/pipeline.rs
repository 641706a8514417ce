#![no_main]
//! See `connbal::fuzzing::pipeline`: the same body runs in `cargo test` over the
//! committed corpus (`fuzz/seeds/pipeline`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connbal::fuzzing::pipeline(data));
