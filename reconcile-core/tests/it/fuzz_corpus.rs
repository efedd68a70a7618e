//! The fuzz targets' corpora (`fuzz/corpus/`), replayed in the normal test run: every input the
//! fuzzer kept, and every input that once made a parser panic (kept there once fixed), must be
//! read without a panic.

fn replay(target: &str, run: fn(&str)) {
    let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let outcome = std::panic::catch_unwind(|| run(text));
            assert!(outcome.is_ok(), "{} panics", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "{dir} is empty");
}

#[test]
fn local_snapshot_corpus_reads_without_a_panic() {
    replay("snapshot_local", reconcile_core::fuzzing::local_snapshot);
}

#[test]
fn broker_snapshot_corpus_reads_without_a_panic() {
    replay("snapshot_broker", reconcile_core::fuzzing::broker_snapshot);
}

#[test]
fn plan_corpus_reads_without_a_panic() {
    replay("plan", reconcile_core::fuzzing::plan);
}
