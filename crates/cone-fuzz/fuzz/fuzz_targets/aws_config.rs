//! `cone_fuzz::aws_config` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cone_fuzz::aws_config(data));
