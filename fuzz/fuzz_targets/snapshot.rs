//! Snapshot documents from untrusted bytes: parsing never panics, what
//! parses round-trips, and the filters `latest` uses accept any snapshot.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::snapshot::{Snapshot, SnapshotFilter};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<Snapshot>(data) {
        let again: Snapshot =
            serde_json::from_slice(&serde_json::to_vec(&s).expect("serializes")).expect("parses");
        assert_eq!(again, s);
        let _ = lifeboat_repo::snapshot::GroupBy::HOST_AND_PATHS.key(&s);
        let f = SnapshotFilter {
            hosts: vec![s.hostname.clone()],
            tags: vec![s.tags.clone()],
            paths: vec![],
        };
        assert!(f.matches(&s));
    }
});
