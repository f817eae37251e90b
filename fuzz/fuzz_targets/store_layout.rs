//! The repository as the commands read it, with one untrusted object
//! planted: the first byte picks the folder (keys, snapshots, index, data)
//! and whether the name is the object's hash, a wrong id, or no id at all;
//! the rest is the content. Opening, listing snapshots and keys, loading
//! the index and walking every snapshot's trees must never panic.
#![no_main]
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use lifeboat_repo::crypto::KdfParams;
use lifeboat_repo::{InitOptions, Repository};
use lifeboat_store::WriteStore;

const PASSWORD: &[u8] = b"fuzz";

fn repo_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lifeboat-fuzz-{}", std::process::id()));
        let store: Arc<dyn WriteStore> =
            Arc::from(lifeboat_store::open(dir.to_str().expect("utf-8")).expect("store"));
        let opts = InitOptions {
            kdf: KdfParams::INSECURE_FAST,
            ..InitOptions::default()
        };
        Repository::init(store, PASSWORD, opts).expect("init");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let dir = repo_dir();
    let folder = ["keys", "snapshots", "index", "data/ab"][usize::from(sel % 4)];
    let name = match (sel >> 2) % 3 {
        0 => blake3::hash(body).to_hex().to_string(),
        1 => "ab".repeat(32),
        _ => "not-an-id".to_string(),
    };
    let path = dir.join(folder).join(&name);
    let _ = std::fs::create_dir_all(path.parent().expect("parent"));
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let store: Arc<dyn WriteStore> =
        Arc::from(lifeboat_store::open(dir.to_str().expect("utf-8")).expect("store"));
    if let Ok(repo) = Repository::open(store, PASSWORD) {
        let _ = repo.keys();
        let snaps = repo.snapshots();
        if let Ok(indexed) = repo.load_index() {
            if let Ok((list, _)) = snaps {
                let roots: Vec<_> = list.iter().map(|(_, s)| s.tree).collect();
                let _ = indexed.reachable_blobs(&roots);
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
