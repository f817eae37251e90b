//! Tree blobs (the plaintext of a directory listing) from untrusted bytes:
//! parsing never panics, and what parses serializes and parses again to the
//! same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_repo::tree::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::from_bytes(data) {
        assert_eq!(Tree::from_bytes(&t.to_bytes()).ok(), Some(t.clone()));
        for n in &t.nodes {
            let _ = n.name.is_safe();
            let _ = t.find(&n.name.0);
        }
    }
});
