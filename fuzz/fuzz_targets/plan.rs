//! A plan file from any bytes: an answer or an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        reconcile_core::fuzzing::plan(text);
    }
});
