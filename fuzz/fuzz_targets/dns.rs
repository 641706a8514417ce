#![no_main]
//! See `connbal::fuzzing::dns`: the same body runs in `cargo test` over the
//! committed corpus (`fuzz/seeds/dns`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connbal::fuzzing::dns(data));
