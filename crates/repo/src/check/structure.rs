//! The structural phases of a check: the index objects, the packs they
//! name against the store's listing, and every tree of every snapshot.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use lifeboat_store::Kind;

use super::CheckReport;
use crate::error::Result;
use crate::id::Id;
use crate::index::{Index, IndexFile, INDEX_VERSION};
use crate::repository::{IndexedRepository, Repository};
use crate::snapshot::Snapshot;
use crate::tree::NodeKind;

/// The store's packs as a check sees them.
pub(super) struct Packs {
    /// Every pack in the store's listing, with its size.
    pub listed: HashMap<Id, u64>,
    /// Packs the index names that the store lacks.
    pub missing: HashSet<Id>,
}

/// Reads every index object; one that is damaged or newer is an error, and
/// the check goes on with the rest.
pub(super) fn load_index(repo: Repository, r: &mut CheckReport) -> Result<IndexedRepository> {
    let mut index = Index::default();
    let mut files = vec![];
    for o in repo.store().list(Kind::Index)? {
        match repo.load_json::<IndexFile>(Kind::Index, &o.name) {
            Ok(f) if f.version > INDEX_VERSION => r.errors.push(format!(
                "index {}: unsupported version {}",
                o.name, f.version
            )),
            Ok(f) => {
                index.add_file(&f);
                files.push(o.name);
            }
            Err(e) => r.errors.push(e.to_string()),
        }
    }
    let repo = IndexedRepository::from_parts(repo, index, files);
    r.packs = repo.index().packs().len();
    r.blobs = repo.index().blob_count();
    Ok(repo)
}

/// Compares the index with the store's listing: missing and resized packs
/// and blobs past their pack's end are errors; packs marked for deletion,
/// stale partial objects and unindexed packs are warnings.
pub(super) fn check_packs(repo: &IndexedRepository, r: &mut CheckReport) -> Result<Packs> {
    let index = repo.index();
    let listed: HashMap<Id, u64> = repo
        .store()
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| Some((o.name.parse().ok()?, o.size)))
        .collect();
    let mut missing = HashSet::new();
    for p in index.packs() {
        match listed.get(&p.id) {
            None => {
                missing.insert(p.id);
                // A marked pack may be gone: that is prune finishing.
                if p.obsolete_since.is_none() {
                    r.errors.push(format!(
                        "pack {} is named by the index but missing from the store",
                        p.id
                    ));
                }
            }
            Some(&size) if size != p.size => {
                r.errors.push(format!(
                    "pack {} is {size} bytes but the index says {} (truncated or replaced)",
                    p.id, p.size
                ));
            }
            Some(_) => {}
        }
    }
    for (id, loc) in index.blobs() {
        let p = index.pack(loc.pack);
        if u64::from(loc.offset) + u64::from(loc.length) > p.size {
            r.errors
                .push(format!("blob {} lies past the end of pack {}", id, p.id));
        }
    }
    let marked: Vec<_> = index
        .packs()
        .iter()
        .filter(|p| p.obsolete_since.is_some() && listed.contains_key(&p.id))
        .collect();
    if let Some(oldest) = marked.iter().filter_map(|p| p.obsolete_since).min() {
        let bytes: u64 = marked.iter().map(|p| p.size).sum();
        let since = jiff::Timestamp::from_second(oldest)
            .map(|t| t.to_string())
            .unwrap_or_default();
        r.warnings.push(format!(
            "{} pack(s) ({bytes} bytes) are marked for deletion, the oldest since {since}: a prune deletes them once the delete delay has passed, if no snapshot needs them by then",
            marked.len()
        ));
    }
    // Partial objects of writers killed long ago (the age prune uses).
    let stale = repo
        .store()
        .temporaries(std::time::Duration::from_secs(3600))?;
    if stale.count > 0 {
        r.warnings.push(format!(
            "{} partial object(s) ({} bytes) left by interrupted writes over an hour ago: a prune removes them",
            stale.count, stale.bytes
        ));
    }
    let unindexed = listed.keys().filter(|id| !index.knows_pack(id)).count();
    if unindexed > 0 {
        r.warnings.push(format!(
            "{unindexed} pack(s) are not indexed yet (left by an interrupted backup, or being written); the next backup or prune indexes them"
        ));
    }
    Ok(Packs { listed, missing })
}

/// Walks every snapshot's trees once each: an unreadable tree, a directory
/// without one, and a file blob that is not indexed or lies in a `missing`
/// pack are errors (one per file).
pub(super) fn check_trees(
    repo: &IndexedRepository,
    snaps: &[(Id, Snapshot)],
    missing: &HashSet<Id>,
    r: &mut CheckReport,
) {
    let index = repo.index();
    let mut seen_trees = HashSet::new();
    for (sid, s) in snaps {
        let mut stack = vec![(s.tree, PathBuf::new())];
        while let Some((tid, path)) = stack.pop() {
            if !seen_trees.insert(tid) {
                continue;
            }
            r.trees += 1;
            let tree = match repo.load_tree(&tid) {
                Ok(t) => t,
                Err(e) => {
                    r.errors.push(format!(
                        "snapshot {}: directory {:?} unreadable: {e}",
                        sid.short(),
                        display(&path)
                    ));
                    continue;
                }
            };
            for n in tree.nodes {
                let p = path.join(n.name.as_os_str());
                match n.kind {
                    NodeKind::Dir => match n.subtree {
                        Some(st) => stack.push((st, p)),
                        None => r.errors.push(format!(
                            "snapshot {}: directory {:?} has no tree",
                            sid.short(),
                            display(&p)
                        )),
                    },
                    NodeKind::File => {
                        let problem = n.content.iter().find_map(|b| match index.get(b) {
                            None => Some((b, "is not in the index")),
                            Some(l) if missing.contains(&index.pack(l.pack).id) => {
                                Some((b, "is in a missing pack"))
                            }
                            _ => None,
                        });
                        if let Some((b, why)) = problem {
                            r.errors.push(format!(
                                "snapshot {}: file {:?}: blob {} {why}",
                                sid.short(),
                                display(&p),
                                b.short()
                            ));
                        }
                    }
                    NodeKind::Symlink
                    | NodeKind::Fifo
                    | NodeKind::Socket
                    | NodeKind::CharDevice
                    | NodeKind::BlockDevice => {}
                }
            }
        }
    }
}

/// A path inside a snapshot as errors show it (the root is `/`).
fn display(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "/".into()
    } else {
        p.display().to_string()
    }
}
