//! Index objects from untrusted bytes: parsing and merging never panic, in
//! any combination of live entries, deletion marks and tombstones.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::index::{Index, IndexFile};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = serde_json::from_slice::<IndexFile>(data) {
        let mut idx = Index::default();
        idx.add_file(&f);
        idx.add_file(&f);
        let _ = idx.blobs_by_pack();
        for (id, _) in idx.blobs() {
            let _ = idx.has_live(id);
        }
        let mut lost = Index::with_present_packs(Default::default());
        lost.add_file(&f);
        for (id, _) in lost.blobs() {
            assert!(!lost.has_live(id), "a blob of a missing pack is never live");
        }
    }
});
