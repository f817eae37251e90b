//! mariadb-backup xbstream archives from untrusted bytes (a stored
//! physical backup read back): reading never panics or allocates what a
//! length claims, and what it reports fits in the bytes read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_sources::mariadb::xbstream::scan;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = scan(data) {
        assert!(s.bytes <= data.len() as u64);
        assert!(s.files <= data.len() as u64 / 22 + 1);
    }
});
