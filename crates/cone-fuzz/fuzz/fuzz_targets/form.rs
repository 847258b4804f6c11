//! `cone_fuzz::form` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cone_fuzz::form(data));
