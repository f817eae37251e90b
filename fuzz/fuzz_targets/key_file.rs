//! Key files are read before any password is known: parse and unwrap must
//! fail cleanly on anything (with out-of-range KDF costs refused before use).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::crypto::KeyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut kf) = serde_json::from_slice::<KeyFile>(data) {
        // Keep the fuzzer fast: cap the cost it may ask for.
        kf.params.memory_kib = kf.params.memory_kib.min(64);
        kf.params.iterations = kf.params.iterations.min(2);
        let _ = kf.unwrap_with(b"password");
    }
});
