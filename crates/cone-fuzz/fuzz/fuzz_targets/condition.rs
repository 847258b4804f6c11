//! `cone_fuzz::condition` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // The CEL parser panics on some malformed input and `Condition::compile` catches that, as it must at load.
        // libfuzzer-sys's hook would abort before the unwind reached it; a panic that escapes still fails the run.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| cone_fuzz::condition(data)
);
