//! Stored blobs from untrusted bytes, both raw and authenticated (so the
//! flag byte and the zstd frame are reached).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::blob;
use lifeboat_repo::crypto::MasterKey;
use lifeboat_repo::Id;
use std::sync::OnceLock;

fn key() -> &'static MasterKey {
    static K: OnceLock<MasterKey> = OnceLock::new();
    K.get_or_init(MasterKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = blob::decode(key(), data, &Id::default(), 1 << 20);
    let sealed = key().seal(data);
    if let Ok(plain) = blob::decode(key(), &sealed, &Id::default(), 1 << 20) {
        // Only the real id may match.
        assert_eq!(key().blob_id(&plain), Id::default());
    }
});
