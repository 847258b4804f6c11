//! Replays every saved input of every fuzz target (`fuzz/corpus/<target>/`), the crashes once found among them,
//! so that a fixed finding stays fixed. Runs in seconds on stable; `bench/fuzz.sh` grows the corpus.

use std::path::Path;

#[test]
fn every_saved_input_passes_its_target() {
    // The CEL parser panics on some malformed input, and `Condition::compile` catches it; those are not failures
    // and would bury the ones that are.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.location().is_some_and(|l| l.file().contains("antlr4rust")) {
            report(info);
        }
    }));
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in cone_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).expect("a corpus file");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(input.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "these inputs fail their target (messages above): {failures:#?}");
}
