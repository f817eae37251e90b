//! Pack trailers and headers from untrusted bytes. The key is fixed and the
//! input is also sealed with it, so the fuzzer reaches the parser behind
//! the authentication as well as the authentication itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::crypto::MasterKey;
use lifeboat_repo::pack;
use std::sync::OnceLock;

fn key() -> &'static MasterKey {
    static K: OnceLock<MasterKey> = OnceLock::new();
    K.get_or_init(MasterKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = pack::parse_pack(key(), data);
    // Authenticated garbage: exercises the entry parser itself.
    let sealed = key().seal(data);
    let _ = pack::parse_header(key(), &sealed, u64::from(u32::MAX));
    let _ = pack::parse_header(key(), &sealed, data.len() as u64);
});
