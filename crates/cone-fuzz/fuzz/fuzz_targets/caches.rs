//! `cone_fuzz::caches` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cone_fuzz::caches(data));
