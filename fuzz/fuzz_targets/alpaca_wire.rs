//! Alpaca's answers from any bytes: an answer or an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    adapter_alpaca::fuzzing::answer(data);
});
