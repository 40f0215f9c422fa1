//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry
//! points the cargo-fuzz targets call, so the normal suite catches a regression on any
//! input the fuzzers ever kept. Fuzzing itself is run by hand (see `fuzz/README.md`).

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("config", countersign::fuzzing::config),
    ("request_json", countersign::fuzzing::request_json),
    ("public_key", countersign::fuzzing::public_key),
    ("duration", countersign::fuzzing::duration),
];

#[test]
fn every_corpus_input_runs_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{name}: corpus too small");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "panicked on: {failures:#?}");
}
