//! `stats`: how much snapshots restore to, how much raw data they
//! reference (each blob once), what deduplication and compression save.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::browse::walk;
use crate::error::Result;
use crate::id::Id;
use crate::repository::IndexedRepository;
use crate::snapshot::Snapshot;
use crate::tree::NodeKind;

/// What `stats` measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: usize,
    /// Files, counted once per snapshot that holds them.
    pub files: u64,
    /// Bytes a restore of every counted snapshot would write.
    pub restore_bytes: u64,
    /// Distinct data and tree blobs they reference.
    pub blobs: u64,
    /// Plaintext bytes of those blobs (deduplicated).
    pub raw_bytes: u64,
    /// The part of `raw_bytes` that is file content (data blobs).
    pub data_bytes: u64,
    /// Their bytes as stored (compressed and encrypted).
    pub stored_bytes: u64,
    /// `restore_bytes / data_bytes`: what deduplication saves (1 = nothing).
    pub dedup_ratio: f64,
    /// `raw_bytes / stored_bytes`: what compression saves.
    pub compression_ratio: f64,
}

/// Sizes of `snapshots` together; blobs shared between them count once.
pub fn stats(repo: &IndexedRepository, snapshots: &[(Id, Snapshot)]) -> Result<Stats> {
    let mut st = Stats {
        snapshots: snapshots.len(),
        ..Default::default()
    };
    let mut seen: HashSet<Id> = HashSet::new();
    let index = repo.index();
    let mut count = |id: &Id, data: bool, st: &mut Stats| {
        if seen.insert(*id) {
            if let Some(loc) = index.get(id) {
                st.blobs += 1;
                st.raw_bytes += u64::from(loc.raw_length);
                st.stored_bytes += u64::from(loc.length);
                if data {
                    st.data_bytes += u64::from(loc.raw_length);
                }
            }
        }
    };
    for (_, s) in snapshots {
        count(&s.tree, false, &mut st);
        walk(repo, &s.tree, Path::new("/"), &mut |_, n| {
            if n.kind == NodeKind::File {
                st.files += 1;
                st.restore_bytes += n.size;
            }
            for b in &n.content {
                count(b, true, &mut st);
            }
            if let Some(t) = &n.subtree {
                count(t, false, &mut st);
            }
        })?;
    }
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    st.dedup_ratio = ratio(st.restore_bytes, st.data_bytes);
    st.compression_ratio = ratio(st.raw_bytes, st.stored_bytes);
    Ok(st)
}
