//! Check: is every snapshot restorable from what the repository holds?
//!
//! Structure (always): every index object and snapshot verifies against its
//! name and decrypts; every pack an index names exists with the recorded
//! size; every tree of every snapshot is readable; every data blob a tree
//! names is indexed in an existing pack. Data (`read_data`): every selected
//! pack is read whole, its hash compared with its name, its header compared
//! with the index, and every blob decrypted and hashed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use lifeboat_store::Kind;
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::blob;
use crate::error::Result;
use crate::id::Id;
use crate::index::{Index, IndexFile, INDEX_VERSION};
use crate::pack;
use crate::progress::Progress;
use crate::repository::{IndexedRepository, Repository};
use crate::tree::NodeKind;

/// Which packs `read_data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// All packs.
    All,
    /// A random share of the packs, in percent (0 < p ≤ 100).
    Percent(f64),
    /// Part `n` of `m` (1-based) of the packs sorted by id: run `1/7` … `7/7`
    /// on seven days to read everything once a week.
    Part(u32, u32),
}

impl std::str::FromStr for Subset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("invalid subset {s:?}: use a percentage like 5% or a part like 2/7");
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(bad());
            }
            return Ok(Subset::Percent(v));
        }
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            if n == 0 || m == 0 || n > m {
                return Err(bad());
            }
            return Ok(Subset::Part(n, m));
        }
        Err(bad())
    }
}

/// Options of a check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Read pack data, and which packs.
    pub read_data: Option<Subset>,
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Problems that make some data unrestorable or the repository inconsistent.
    pub errors: Vec<String>,
    /// Things worth knowing that lose nothing (unindexed packs, …).
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Packs read in full.
    pub packs_read: usize,
    /// Blobs in the index.
    pub blobs: usize,
    /// Trees walked.
    pub trees: usize,
    /// Bytes read in full.
    pub bytes_read: u64,
}

impl CheckReport {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks the repository.
pub fn check(repo: Repository, opts: CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    // Snapshots are listed before the index is read: a backup running
    // meanwhile writes its index before its snapshot, so every snapshot
    // seen here has its data in the index read next (read the other way
    // round, a snapshot saved in between is checked against a stale index).
    progress.phase("snapshots");
    let (snaps, bad) = repo.snapshots()?;
    progress.phase("index");
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
    let index = repo.index();
    r.packs = index.packs().len();
    r.blobs = index.blob_count();

    progress.phase("packs");
    let listed: HashMap<Id, u64> = repo
        .store()
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| Some((o.name.parse().ok()?, o.size)))
        .collect();
    let mut missing_packs = HashSet::new();
    for p in index.packs() {
        match listed.get(&p.id) {
            None if p.obsolete_since.is_none() => {
                missing_packs.insert(p.id);
                r.errors.push(format!(
                    "pack {} is named by the index but missing from the store",
                    p.id
                ));
            }
            None => {
                missing_packs.insert(p.id);
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

    progress.phase("trees");
    r.errors.extend(bad.into_iter().map(|e| e.to_string()));
    r.snapshots = snaps.len();
    let mut seen_trees = HashSet::new();
    for (sid, s) in &snaps {
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
                        for b in &n.content {
                            let problem = match index.get(b) {
                                None => Some("is not in the index"),
                                Some(l) if missing_packs.contains(&index.pack(l.pack).id) => {
                                    Some("is in a missing pack")
                                }
                                _ => None,
                            };
                            if let Some(why) = problem {
                                r.errors.push(format!(
                                    "snapshot {}: file {:?}: blob {} {why}",
                                    sid.short(),
                                    display(&p),
                                    b.short()
                                ));
                                break;
                            }
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

    if let Some(subset) = opts.read_data {
        progress.phase("read data");
        let mut packs: Vec<(Id, u64)> = listed
            .iter()
            .filter(|(id, _)| index.pack_pos(id).is_some())
            .map(|(id, s)| (*id, *s))
            .collect();
        packs.sort();
        let chosen: Vec<(Id, u64)> = match subset {
            Subset::All => packs,
            Subset::Percent(p) => {
                let n = ((packs.len() as f64 * p / 100.0).ceil() as usize).min(packs.len());
                packs.shuffle(&mut rand::thread_rng());
                packs.truncate(n);
                packs
            }
            Subset::Part(n, m) => packs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| (*i as u32) % m == n - 1)
                .map(|(_, p)| p)
                .collect(),
        };
        progress.set_total(chosen.iter().map(|p| p.1).sum());
        r.packs_read = chosen.len();
        let by_pack = index.blobs_by_pack();
        let queue = Mutex::new(chosen);
        let errors = Mutex::new(vec![]);
        let bytes = std::sync::atomic::AtomicU64::new(0);
        let workers = crate::cores();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    let mut decoder = blob::Decoder::new();
                    let mut buf = Vec::new();
                    loop {
                        // The size comes from the listing: no second stat.
                        let Some((id, size)) = queue.lock().pop() else {
                            break;
                        };
                        let errs = read_pack(&repo, &id, size, &by_pack, &mut decoder, &mut buf);
                        bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                        progress.add(size);
                        errors.lock().extend(errs);
                    }
                });
            }
        });
        r.errors.extend(errors.into_inner());
        r.bytes_read = bytes.into_inner();
    }
    Ok(r)
}

fn display(p: &std::path::Path) -> String {
    if p.as_os_str().is_empty() {
        "/".into()
    } else {
        p.display().to_string()
    }
}

/// Reads one pack whole and verifies everything in it.
fn read_pack(
    repo: &IndexedRepository,
    id: &Id,
    size: u64,
    by_pack: &[Vec<crate::index::IndexBlob>],
    decoder: &mut blob::Decoder,
    buf: &mut Vec<u8>,
) -> Vec<String> {
    let mut errs = vec![];
    if let Err(e) = repo
        .store()
        .get_range_into(Kind::Pack, &id.to_hex(), 0, size, buf)
    {
        return vec![format!("pack {id}: {e}")];
    }
    let bytes = &buf[..];
    if Id::hash_of(bytes) != *id {
        errs.push(format!(
            "pack {id}: content does not match its name (modified or truncated)"
        ));
    }
    let header = match pack::parse_pack(repo.key(), bytes) {
        Ok(h) => h,
        Err(e) => {
            errs.push(format!("pack {id}: {e}"));
            vec![]
        }
    };
    let in_header: HashMap<Id, &pack::PackEntry> = header.iter().map(|e| (e.id, e)).collect();
    let Some(pos) = repo.index().pack_pos(id) else {
        return errs;
    };
    for b in &by_pack[pos as usize] {
        let (bid, off, len, raw) = (b.id, b.offset, b.length, b.raw_length);
        if !header.is_empty() {
            match in_header.get(&bid) {
                Some(h) if h.offset == off && h.length == len => {}
                _ => errs.push(format!(
                    "pack {id}: blob {} in the index does not match the pack header",
                    bid.short()
                )),
            }
        }
        let Some(stored) = bytes.get(off as usize..off as usize + len as usize) else {
            errs.push(format!(
                "pack {id}: blob {} lies past the end of the pack",
                bid.short()
            ));
            continue;
        };
        if let Err(e) = decoder.decode(repo.key(), stored, &bid, raw) {
            errs.push(format!("pack {id}: blob {} is damaged: {e}", bid.short()));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parsing() {
        assert_eq!("5%".parse::<Subset>().unwrap(), Subset::Percent(5.0));
        assert_eq!("2/7".parse::<Subset>().unwrap(), Subset::Part(2, 7));
        for bad in ["0%", "101%", "0/3", "4/3", "x", "5"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad}");
        }
    }
}
