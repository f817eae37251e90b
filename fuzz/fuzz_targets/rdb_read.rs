//! Redis RDB files from untrusted bytes (a server's snapshot, a stored
//! file read back): reading never panics or allocates what a length
//! claims, and every key found is counted in the summary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_sources::redis::rdb::{read, Item};

fuzz_target!(|data: &[u8]| {
    let mut keys = 0u64;
    let r = read(data, true, |item| {
        if let Item::Key { payload, .. } = item {
            assert!(payload.len() >= 11, "type, version and checksum at least");
            keys += 1;
        }
        Ok(())
    });
    if let Ok(summary) = r {
        assert_eq!(summary.dbs.values().map(|d| d.keys).sum::<u64>(), keys);
        assert_eq!(summary.bytes, data.len() as u64);
    }
});
