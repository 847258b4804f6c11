//! `cone_fuzz::api_bodies` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cone_fuzz::api_bodies(data));
