//! The `alpaca_wire` fuzz target's corpus (`fuzz/corpus/`), replayed in the normal test run:
//! every answer the fuzzer kept must be read without a panic.

#[test]
fn wire_corpus_reads_without_a_panic() {
    let dir = format!("{}/../fuzz/corpus/alpaca_wire", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| adapter_alpaca::fuzzing::answer(&bytes));
        assert!(outcome.is_ok(), "{} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "{dir} is empty");
}
