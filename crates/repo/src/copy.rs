//! Copying snapshots into another repository (a second region's):
//! re-encrypted for its key, deduplicated against what it holds, resumable
//! after a kill, and verified before a copied snapshot is written.
//!
//! Two ways, chosen by the keys:
//!
//! - The destination names blobs as the source does (it was created with
//!   [`Repository::init_like`], see [`MasterKey::same_ids`]): a blob's id
//!   and a tree's bytes mean the same in both, so the blobs the destination
//!   lacks are read pack by pack, checked against their ids and resealed
//!   with its key — never decompressed for good, re-chunked or re-hashed.
//! - Otherwise every blob is re-identified: data is read, verified and
//!   saved under the destination's ids (compressed again), and every tree
//!   is rewritten with the new ids. Data blobs already copied are found by
//!   pairing earlier copies' trees with their originals, so an incremental
//!   copy reads only new data.
//!
//! Either way the packs and index objects go first and a snapshot last,
//! once everything it reaches is known to be in the destination: a copy
//! killed at any point leaves no snapshot that is not whole, and the next
//! one indexes the packs it left (at most the open pack is sent again).
//! A copied snapshot keeps its time, paths, host and tags and records the
//! snapshot it copies as `original` (the first one of a chain), which is
//! how a later copy knows it is there.
//!
//! [`Repository::init_like`]: crate::Repository::init_like
//! [`MasterKey::same_ids`]: crate::crypto::MasterKey::same_ids

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::bounded;
use lifeboat_store::Kind;
use parking_lot::Mutex;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::index::BlobLocation;
use crate::packer::BlobSaver;
use crate::progress::Progress;
use crate::repository::IndexedRepository;
use crate::snapshot::Snapshot;

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied: the source's id and the copy's.
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the destination already held a copy of.
    pub present: Vec<Id>,
    /// Blobs written into the destination.
    pub blobs_copied: u64,
    /// Their stored bytes.
    pub bytes_copied: u64,
    /// Blobs the destination already had.
    pub blobs_present: u64,
    /// Whether blobs were re-identified (the destination names blobs
    /// differently; see the module documentation).
    pub reidentified: bool,
}

/// The snapshot a snapshot stands for across copies and rewrites: the
/// first of its chain of `original`s.
pub fn origin(id: &Id, s: &Snapshot) -> Id {
    s.original.unwrap_or(*id)
}

/// Copies `chosen` (snapshots of `src`, oldest first) into `dst`, skipping
/// those `dst` already holds a copy of.
pub fn copy_snapshots(
    src: &IndexedRepository,
    dst: &mut IndexedRepository,
    chosen: &[(Id, Snapshot)],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let mut report = CopyReport::default();
    let (dst_snapshots, _) = dst.snapshots()?;
    let mut copies: HashMap<Id, Id> = dst_snapshots
        .iter()
        .map(|(id, s)| (origin(id, s), *id))
        .collect();
    let mut todo = vec![];
    for (id, s) in chosen {
        if copies.contains_key(&origin(id, s)) {
            report.present.push(*id);
        } else {
            todo.push((id, s));
        }
    }
    if todo.is_empty() {
        return Ok(report);
    }
    // Packs a killed copy (or backup) left unindexed are reused, not sent again.
    dst.reconcile_with_store()?;
    let src_roots: Vec<Id> = todo.iter().map(|(_, s)| s.tree).collect();
    let bases = earlier_copies(src, dst, &todo, &dst_snapshots)?;
    let roots = if src.key().same_ids(dst.key()) {
        // A base whose copy is the same tree: every blob it reaches is in
        // the destination (a snapshot's blobs are kept while it exists) —
        // unless packs the index names are missing from the store; then
        // every tree is walked and whatever is lost is sent again.
        let whole = dst.index().packs().iter().all(|p| !p.missing);
        let walk: Vec<(Id, Option<Id>)> = src_roots
            .iter()
            .zip(&bases)
            .map(|(r, b)| {
                let base = b.filter(|(s, d)| whole && s == d).map(|(s, _)| s);
                (*r, base)
            })
            .collect();
        let (reached, packs) = copy_blobs(src, dst, &walk, &mut report, progress)?;
        dst.add_written_packs(&packs);
        // Verified before any snapshot is written: every blob the copies
        // reach beyond their bases is now in the destination.
        if let Some(lost) = reached.iter().find(|b| !dst.index().has_live(b)) {
            return Err(lacks(dst, lost));
        }
        src_roots
    } else {
        report.reidentified = true;
        let mut pairs: Vec<(Id, Id)> = vec![];
        for p in bases.iter().flatten() {
            if !pairs.contains(p) {
                pairs.push(*p);
            }
        }
        let (roots, packs) = reidentify(src, dst, &src_roots, &pairs, &mut report, progress)?;
        dst.add_written_packs(&packs);
        // Verified before any snapshot is written: every rewritten tree
        // reads back from the destination and every blob it names is there.
        let (reached, errors) = dst.reachable_blobs(&roots);
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        if let Some(lost) = reached.iter().find(|b| !dst.index().has_live(b)) {
            return Err(lacks(dst, lost));
        }
        roots
    };
    let src_origin: HashMap<Id, Id> = todo.iter().map(|(id, s)| (**id, origin(id, s))).collect();
    for ((id, s), root) in todo.into_iter().zip(roots) {
        let mut copy = s.clone();
        copy.tree = root;
        copy.original = Some(origin(id, s));
        copy.parent = s
            .parent
            .and_then(|p| copies.get(src_origin.get(&p).unwrap_or(&p)).copied());
        let new = dst.save_snapshot(&copy)?;
        crate::faults::crash_point("copy-after-snapshot");
        copies.insert(origin(id, s), new);
        report.copied.push((*id, new));
    }
    Ok(report)
}

fn lacks(dst: &IndexedRepository, blob: &Id) -> RepoError {
    RepoError::Internal(format!(
        "the copy into {} lacks blob {} after writing it; no snapshot was written",
        dst.location(),
        blob.short()
    ))
}

/// Every blob reachable from the tree `root` of `src` that the tree `base`
/// (whose every blob the destination holds) does not hold at the same
/// path, into `out`: an unchanged directory is not walked, so a copy after
/// a small backup reads only the trees on the paths that changed.
fn changed_blobs(
    src: &IndexedRepository,
    root: Id,
    base: Option<Id>,
    out: &mut HashSet<Id>,
) -> Result<()> {
    if base == Some(root) || !out.insert(root) {
        return Ok(());
    }
    let tree = src.load_tree(&root)?;
    let base_tree = base.map(|b| src.load_tree(&b)).transpose()?;
    for n in &tree.nodes {
        let was = base_tree.as_ref().and_then(|t| t.find(&n.name.0));
        if was.is_none_or(|w| w.content != n.content) {
            out.extend(n.content.iter().copied());
        }
        if let Some(sub) = n.subtree {
            changed_blobs(src, sub, was.and_then(|w| w.subtree), out)?;
        }
    }
    Ok(())
}

/// Same ids on both sides: the blobs of each root (beyond its base) that
/// `dst` lacks, read pack by pack from `src` and resealed for `dst`. The
/// blobs reached, and the packs written.
fn copy_blobs(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    roots: &[(Id, Option<Id>)],
    report: &mut CopyReport,
    progress: &dyn Progress,
) -> Result<(HashSet<Id>, Vec<crate::index::IndexPack>)> {
    let started = std::time::Instant::now();
    let mut reached = HashSet::new();
    for (root, base) in roots {
        changed_blobs(src, *root, *base, &mut reached)?;
    }
    tracing::debug!(
        "copy: {} blobs reached in {:.2}s",
        reached.len(),
        started.elapsed().as_secs_f64()
    );
    let needed = &reached;
    let mut by_pack: HashMap<u32, Vec<(Id, BlobLocation)>> = HashMap::new();
    let mut total = 0u64;
    for &id in needed {
        if dst.index().has_live(&id) {
            report.blobs_present += 1;
            continue;
        }
        let loc = *src.index().get(&id).ok_or(RepoError::BlobNotIndexed(id))?;
        total += u64::from(loc.length);
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    progress.set_total(total);
    progress.total_known();
    let mut jobs: Vec<Vec<(Id, BlobLocation)>> = by_pack.into_values().collect();
    for j in &mut jobs {
        j.sort_by_key(|(_, l)| l.offset);
    }
    let saver = BlobSaver::new(dst, dst.index());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RepoError>> = Mutex::new(None);
    let (bytes, blobs) = (AtomicU64::new(0), AtomicU64::new(0));
    let packs = std::thread::scope(|scope| {
        let pipeline = saver.start(scope);
        let (tx, rx) = bounded::<Vec<(Id, BlobLocation)>>(jobs.len().max(1));
        for j in jobs {
            let _ = tx.send(j);
        }
        drop(tx);
        let workers: Vec<_> = (0..crate::cores())
            .map(|_| {
                let rx = rx.clone();
                let (saver, failed, first_error) = (&saver, &failed, &first_error);
                let (bytes, blobs) = (&bytes, &blobs);
                scope.spawn(move || {
                    // One read buffer per worker: a fresh 16 MiB one per
                    // pack was a fifth of the copy's time in page faults.
                    let mut buf = Vec::new();
                    for job in rx {
                        if failed.load(Ordering::Relaxed) || saver.has_failed() {
                            break;
                        }
                        let done = reseal_pack(src, dst, &job, saver, &mut buf, progress);
                        match done {
                            Ok(b) => {
                                bytes.fetch_add(b, Ordering::Relaxed);
                                blobs.fetch_add(job.len() as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error.lock().get_or_insert(e);
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        pipeline.finish(&saver)
    });
    if let Some(e) = first_error.into_inner() {
        return Err(e);
    }
    tracing::debug!(
        "copy: blobs resealed and stored in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    report.blobs_copied += blobs.into_inner();
    report.bytes_copied += bytes.into_inner();
    Ok((reached, packs?))
}

/// Gaps up to this size between wanted blobs of a pack are read through
/// rather than asked for separately.
const READ_THROUGH: u64 = 256 << 10;

/// One source pack's wanted blobs (sorted by offset), read in as few
/// ranges as make sense, resealed into `saver` (each authenticated by
/// its seal: what arrives is what the source's writer sealed); the stored
/// bytes copied.
fn reseal_pack(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    blobs: &[(Id, BlobLocation)],
    saver: &BlobSaver<'_>,
    bytes: &mut Vec<u8>,
    progress: &dyn Progress,
) -> Result<u64> {
    let pack = src.index().pack(blobs[0].1.pack).id.to_hex();
    let damaged = |why: String| RepoError::damaged(Kind::Pack, &pack, src.location(), why);
    let mut copied = 0;
    let mut i = 0;
    while i < blobs.len() {
        // One range: from this blob through every next one close enough.
        let start = u64::from(blobs[i].1.offset);
        let mut end = start + u64::from(blobs[i].1.length);
        let mut j = i + 1;
        while j < blobs.len() && u64::from(blobs[j].1.offset) <= end + READ_THROUGH {
            end = end.max(u64::from(blobs[j].1.offset) + u64::from(blobs[j].1.length));
            j += 1;
        }
        src.store()
            .get_range_into(Kind::Pack, &pack, start, end - start, bytes)?;
        for (id, loc) in &blobs[i..j] {
            let at = (u64::from(loc.offset) - start) as usize;
            let stored = bytes
                .get_mut(at..at + loc.length as usize)
                .ok_or_else(|| damaged(format!("blob {} lies past the end", id.short())))?;
            blob::reseal(src.key(), dst.key(), stored)
                .map_err(|e| damaged(format!("blob {}: {e}", id.short())))?;
            if saver.save_encoded_here(loc.kind, *id, stored, loc.raw_length)? {
                copied += stored.len() as u64;
            }
            progress.add(u64::from(loc.length));
        }
        i = j;
    }
    Ok(copied)
}

/// For each snapshot to copy, the earlier copy it most likely shares data
/// with, as (source tree, destination tree): its parent's copy, else the
/// newest copy of a snapshot of the same host and paths. Only copies
/// nothing was removed from (`repair snapshots`) qualify.
fn earlier_copies(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    todo: &[(&Id, &Snapshot)],
    dst_snapshots: &[(Id, Snapshot)],
) -> Result<Vec<Option<(Id, Id)>>> {
    let (src_snapshots, _) = src.snapshots()?;
    let by_origin: HashMap<Id, &Snapshot> = src_snapshots
        .iter()
        .map(|(id, s)| (origin(id, s), s))
        .collect();
    // Newest first; each copy with the source snapshot it was made from.
    let mut known: Vec<(&Snapshot, &Snapshot)> = dst_snapshots
        .iter()
        .filter(|(_, d)| d.lost.is_empty() && dst.index().has_live(&d.tree))
        .filter_map(|(id, d)| by_origin.get(&origin(id, d)).map(|s| (*s, d)))
        .filter(|(s, _)| s.lost.is_empty())
        .collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.1.time));
    let mut pairs = vec![];
    for (_, s) in todo {
        let parent_tree = s
            .parent
            .and_then(|p| src_snapshots.iter().find(|(id, _)| *id == p))
            .map(|(_, p)| p.tree);
        let found = known
            .iter()
            .find(|(ks, _)| Some(ks.tree) == parent_tree)
            .or_else(|| {
                known
                    .iter()
                    .find(|(ks, _)| ks.hostname == s.hostname && ks.paths == s.paths)
            });
        pairs.push(found.map(|(ks, kd)| (ks.tree, kd.tree)));
    }
    Ok(pairs)
}

/// Different ids: the trees of `roots` rewritten into `dst` with every
/// blob re-identified; the new roots and the packs written.
fn reidentify(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    roots: &[Id],
    pairs: &[(Id, Id)],
    report: &mut CopyReport,
    progress: &dyn Progress,
) -> Result<(Vec<Id>, Vec<crate::index::IndexPack>)> {
    let saver = BlobSaver::new(dst, dst.index());
    let mut state = Reidentify {
        src,
        dst,
        saver: &saver,
        data: HashMap::new(),
        seeded: HashSet::new(),
        trees: HashMap::new(),
        report,
        progress,
    };
    for (s, d) in pairs {
        state.seed(*s, *d)?;
    }
    let (new_roots, packs) = std::thread::scope(|scope| {
        let pipeline = state.saver.start(scope);
        let rewritten: Result<Vec<Id>> = roots.iter().map(|r| state.tree(r)).collect();
        let packs = pipeline.finish(state.saver);
        (rewritten, packs)
    });
    let new_roots = new_roots?;
    let packs = packs?;
    report.blobs_copied += saver.stats.data_blobs.load(Ordering::Relaxed)
        + saver.stats.tree_blobs.load(Ordering::Relaxed);
    report.bytes_copied += saver.stats.bytes_stored.load(Ordering::Relaxed);
    Ok((new_roots, packs))
}

struct Reidentify<'a, 'r> {
    src: &'a IndexedRepository,
    dst: &'a IndexedRepository,
    saver: &'a BlobSaver<'a>,
    /// Source data blob → destination data blob.
    data: HashMap<Id, Id>,
    /// Source trees already paired by [`Reidentify::seed`].
    seeded: HashSet<Id>,
    /// Source tree → rewritten destination tree.
    trees: HashMap<Id, Id>,
    report: &'r mut CopyReport,
    progress: &'a dyn Progress,
}

impl Reidentify<'_, '_> {
    /// Learns the destination ids of the data an earlier copy holds, by
    /// walking its source and destination trees side by side: the same
    /// file in both has the same chunks, in the same order, under each
    /// side's ids (and the same lengths, checked).
    fn seed(&mut self, s: Id, d: Id) -> Result<()> {
        if !self.seeded.insert(s) {
            return Ok(());
        }
        let (st, dt) = (self.src.load_tree(&s)?, self.dst.load_tree(&d)?);
        for sn in &st.nodes {
            let Some(dn) = dt.find(&sn.name.0) else {
                continue;
            };
            if let (Some(ss), Some(ds)) = (sn.subtree, dn.subtree) {
                self.seed(ss, ds)?;
            }
            if sn.content.len() == dn.content.len() && sn.size == dn.size {
                for (a, b) in sn.content.iter().zip(&dn.content) {
                    let same_length = match (self.src.index().get(a), self.dst.index().get(b)) {
                        (Some(x), Some(y)) => {
                            x.raw_length == y.raw_length && self.dst.index().has_live(b)
                        }
                        _ => false,
                    };
                    if same_length {
                        self.data.insert(*a, *b);
                    }
                }
            }
        }
        Ok(())
    }

    /// The tree `id` rewritten into the destination; its new id.
    fn tree(&mut self, id: &Id) -> Result<Id> {
        if let Some(d) = self.trees.get(id) {
            return Ok(*d);
        }
        let mut tree = self.src.load_tree(id)?;
        for n in &mut tree.nodes {
            for c in &mut n.content {
                *c = self.data_blob(c)?;
            }
            if let Some(s) = n.subtree {
                n.subtree = Some(self.tree(&s)?);
            }
        }
        let new = self.saver.save(BlobKind::Tree, &tree.to_bytes())?;
        self.trees.insert(*id, new);
        Ok(new)
    }

    /// The data blob `id` saved under its destination id.
    fn data_blob(&mut self, id: &Id) -> Result<Id> {
        if let Some(d) = self.data.get(id) {
            self.report.blobs_present += 1;
            return Ok(*d);
        }
        let plain = self.src.read_blob(id)?;
        self.progress.add(plain.len() as u64);
        let before = self.saver.stats.data_blobs.load(Ordering::Relaxed);
        let new = self.saver.save(BlobKind::Data, &plain)?;
        if self.saver.stats.data_blobs.load(Ordering::Relaxed) == before {
            self.report.blobs_present += 1;
        }
        self.data.insert(*id, new);
        Ok(new)
    }
}

/// What [`copy_logs`] did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LogCopy {
    /// Pieces copied.
    pub copied: u64,
    /// Their bytes (as the destination stores them).
    pub bytes: u64,
    /// Pieces the destination already had.
    pub present: u64,
}

/// Copies the log objects of `src` whose names `wanted` accepts and that
/// `dst` lacks, each verified (content and name) and stored again for
/// `dst`'s key, in name order.
pub fn copy_logs(
    src: &crate::Repository,
    dst: &crate::Repository,
    wanted: &(dyn Fn(&str) -> bool + Sync),
    progress: &dyn Progress,
) -> Result<LogCopy> {
    let have: HashSet<String> = dst.list_logs()?.into_iter().map(|o| o.name).collect();
    let mut out = LogCopy::default();
    let mut todo = vec![];
    for o in src.list_logs()? {
        if !wanted(&o.name) {
            continue;
        }
        if have.contains(&o.name) {
            out.present += 1;
        } else {
            todo.push(o);
        }
    }
    progress.add_total(todo.iter().map(|o| o.size).sum());
    let (copied, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let next = AtomicU64::new(0);
    let first_error: Mutex<Option<RepoError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..crate::cores() {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= todo.len() || first_error.lock().is_some() {
                    break;
                }
                let o = &todo[i];
                let done = src.get_log(&o.name).and_then(|p| dst.put_log_piece(&p));
                match done {
                    Ok(_) => {
                        copied.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(o.size, Ordering::Relaxed);
                        progress.add(o.size);
                    }
                    Err(e) => {
                        first_error.lock().get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner() {
        return Err(e);
    }
    out.copied = copied.into_inner();
    out.bytes = bytes.into_inner();
    Ok(out)
}
