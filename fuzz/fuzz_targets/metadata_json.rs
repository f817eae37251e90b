//! Tree, index and snapshot documents (the plaintext of metadata objects and
//! tree blobs) from untrusted bytes; parsing must never panic, and what
//! parses must serialize and parse again to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::index::{Index, IndexFile};
use lifeboat_repo::snapshot::Snapshot;
use lifeboat_repo::tree::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::from_bytes(data) {
        assert_eq!(Tree::from_bytes(&t.to_bytes()).ok(), Some(t.clone()));
        for n in &t.nodes {
            let _ = n.name.is_safe();
        }
    }
    if let Ok(f) = serde_json::from_slice::<IndexFile>(data) {
        let mut idx = Index::default();
        idx.add_file(&f);
        let _ = idx.blobs_by_pack();
    }
    let _ = serde_json::from_slice::<Snapshot>(data);
});
