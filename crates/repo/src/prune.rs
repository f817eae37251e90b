//! Prune: give back the space of data no snapshot needs, without locks.
//!
//! Prune never deletes a pack in the run that finds it unneeded. It marks
//! the pack (`obsolete_since` in a new index object); a later prune deletes
//! it only when the mark is older than the delete delay *and* no snapshot
//! that exists then needs any of its blobs — otherwise the mark is lifted.
//! Backups never deduplicate against marked packs, so only a backup that
//! started before the mark can come to need one, and it must finish within
//! the delay (default 24 h). This is the scheme rustic and Kopia use; it
//! needs no lock objects, which object stores cannot make exclusive.
//!
//! Write order, so that a crash at any point is harmless: repacked blobs
//! are uploaded (packs, then their index); then the compacted index,
//! carrying marks and tombstones for packs about to go; then the old index
//! objects are deleted; then the packs. A tombstone keeps a pack from being
//! re-indexed as "left over" while its deletion is in flight.

use std::collections::HashSet;
use std::time::Duration;

use lifeboat_store::Kind;
use serde::Serialize;

use crate::blob;
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::index::{IndexBlob, IndexPack};
use crate::packer::BlobSaver;
use crate::progress::Progress;
use crate::repository::IndexedRepository;

/// Options of a prune.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// How long a pack stays marked before it may be deleted. Zero deletes
    /// at once: safe only when no backup is running.
    pub delete_delay: Duration,
    /// Repack a pack when more than this share of its bytes is unused (0–100).
    pub max_unused_percent: f64,
    /// Only report what would be done.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            delete_delay: Duration::from_secs(24 * 3600),
            max_unused_percent: 10.0,
            dry_run: false,
        }
    }
}

/// What prune did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Packs in the index before.
    pub packs_before: usize,
    /// Packs newly marked for deletion.
    pub packs_marked: usize,
    /// Marks lifted because a snapshot needs the pack again.
    pub packs_unmarked: usize,
    /// Packs whose used blobs were copied to new packs.
    pub packs_repacked: usize,
    /// Packs deleted now.
    pub packs_deleted: usize,
    /// Bytes deleted now.
    pub bytes_deleted: u64,
    /// Bytes marked, to be deleted by a prune after the delay.
    pub bytes_marked: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: usize,
    /// Blobs no snapshot uses.
    pub blobs_unused: usize,
    /// Packs left by interrupted backups that were indexed first.
    pub packs_recovered: usize,
    /// Index objects replaced by the compacted index.
    pub index_objects_replaced: usize,
    /// Packs marked (now or by an earlier prune) and not deleted yet.
    pub packs_pending: usize,
    /// Their bytes.
    pub bytes_pending: u64,
    /// When the last of them may be deleted: a prune after this time
    /// deletes every pending pack that is still unneeded (Unix seconds).
    pub pending_until: Option<i64>,
    /// Packs the index lists but the store no longer has, holding nothing
    /// a snapshot needs: their index entries are dropped.
    pub packs_missing: usize,
    /// Packs the index lists but the store no longer has, holding data a
    /// snapshot needs that no other pack holds: prune refuses while there
    /// are any (dropping their entries would hide the loss that `check`
    /// reports).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packs_lost: Vec<Id>,
    /// In a dry run, the fate of every pack that would change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PackDecision>,
}

/// One pack's fate, as a dry run lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PackDecision {
    /// The pack.
    pub pack: Id,
    /// Its size.
    pub size: u64,
    /// What prune does with it.
    #[serde(flatten)]
    pub fate: Fate,
}

/// What a prune does with one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate", content = "since")]
pub enum Fate {
    /// Stays as it is (a mark on it, if any, is lifted).
    Keep,
    /// Marked for deletion since this time (Unix seconds): unneeded, but
    /// the delay has not passed.
    Mark(i64),
    /// Partly used: its used blobs are copied to new packs, then it is
    /// marked (or deleted with no delay).
    Repack,
    /// Deleted now (or only its index entry dropped, when the store no
    /// longer has it).
    Delete,
}

/// The decision for every pack, computed without I/O from what the
/// repository holds ([`plan`]); what `--dry-run` reports and what
/// [`prune`] then carries out.
#[derive(Debug, Clone, Default)]
pub struct PrunePlan {
    /// One fate per pack of the index, in index order.
    pub fates: Vec<Fate>,
    /// The counts a report gives.
    pub report: PruneReport,
}

/// Decides each pack's fate: `used` are the blobs some snapshot needs,
/// `listed` the packs the store has, `now` the time in Unix seconds.
pub fn plan(
    index: &crate::index::Index,
    used: &HashSet<Id>,
    listed: &HashSet<Id>,
    now: i64,
    opts: &PruneOptions,
) -> PrunePlan {
    let delay = opts.delete_delay.as_secs() as i64;
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        packs_before: index.packs().len(),
        ..Default::default()
    };
    let by_pack = index.blobs_by_pack();
    // Used blobs that some pack in the store holds: a missing pack's
    // blobs may have been stored again elsewhere.
    let present: HashSet<Id> = index
        .packs()
        .iter()
        .zip(&by_pack)
        .filter(|(p, _)| listed.contains(&p.id))
        .flat_map(|(_, blobs)| blobs.iter().map(|b| b.id))
        .filter(|id| used.contains(id))
        .collect();
    let mut fates = Vec::with_capacity(index.packs().len());
    for (pos, p) in index.packs().iter().enumerate() {
        let blobs = &by_pack[pos];
        if !listed.contains(&p.id) {
            if blobs
                .iter()
                .any(|b| used.contains(&b.id) && !present.contains(&b.id))
            {
                report.packs_lost.push(p.id);
            } else {
                report.packs_missing += 1;
            }
        }
        let used_bytes: u64 = blobs
            .iter()
            .filter(|b| used.contains(&b.id))
            .map(|b| u64::from(b.length))
            .sum();
        let all_bytes: u64 = blobs.iter().map(|b| u64::from(b.length)).sum();
        report.blobs_unused += blobs.iter().filter(|b| !used.contains(&b.id)).count();
        let fate = if !listed.contains(&p.id) {
            Fate::Delete // already gone: only the index entry remains to drop
        } else if let Some(since) = p.obsolete_since {
            if used_bytes > 0 {
                report.packs_unmarked += 1;
                Fate::Keep
            } else if now - since >= delay {
                Fate::Delete
            } else {
                Fate::Mark(since)
            }
        } else if used_bytes == all_bytes && all_bytes > 0 {
            Fate::Keep
        } else if used_bytes == 0 {
            if delay == 0 {
                Fate::Delete
            } else {
                report.packs_marked += 1;
                report.bytes_marked += p.size;
                Fate::Mark(now)
            }
        } else if (all_bytes - used_bytes) as f64 * 100.0
            > opts.max_unused_percent * all_bytes as f64
        {
            report.packs_repacked += 1;
            Fate::Repack
        } else {
            Fate::Keep
        };
        if let Fate::Mark(since) = fate {
            report.packs_pending += 1;
            report.bytes_pending += p.size;
            report.pending_until = report.pending_until.max(Some(since + delay));
        }
        if fate == Fate::Delete && listed.contains(&p.id) {
            report.packs_deleted += 1;
            report.bytes_deleted += p.size;
        }
        fates.push(fate);
    }
    // Deletions an earlier prune began (a tombstone, the pack still there)
    // are finished now.
    for t in index.tombstones() {
        if listed.contains(t) && index.pack_pos(t).is_none() {
            report.packs_deleted += 1;
        }
    }
    PrunePlan { fates, report }
}

/// Prunes the repository.
pub fn prune(
    mut repo: IndexedRepository,
    opts: PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if let Some(name) = repo.damaged_index.first() {
        return Err(RepoError::Refused(format!(
            "prune refuses to run while an index object is damaged (index {name})"
        )));
    }
    if !opts.dry_run {
        // Packs no index names must be weighed like the rest, not forgotten.
        report.packs_recovered = repo.reconcile_with_store()?.recovered;
    }
    progress.phase("find used data");
    let (snaps, bad) = repo.snapshots()?;
    if let Some(e) = bad.into_iter().next() {
        return Err(RepoError::Refused(format!(
            "prune refuses to run while a snapshot is unreadable ({e})"
        )));
    }
    let roots: Vec<Id> = snaps.iter().map(|(_, s)| s.tree).collect();
    let (used, errors) = repo.reachable_blobs(&roots);
    if let Some(e) = errors.into_iter().next() {
        return Err(RepoError::Refused(format!(
            "prune refuses to run while a tree is unreadable ({e})"
        )));
    }

    let now = jiff::Timestamp::now().as_second();
    let delay = opts.delete_delay.as_secs() as i64;
    let listed: HashSet<Id> = repo
        .store()
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| o.name.parse().ok())
        .collect();
    let PrunePlan {
        fates,
        report: planned,
    } = plan(repo.index(), &used, &listed, now, &opts);
    if let Some(first) = planned.packs_lost.first() {
        let more = match planned.packs_lost.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(RepoError::Refused(format!(
            "prune refuses to run: pack {}{more} is missing from the store and holds data that snapshots need; \
             `lifeboat repair snapshots` drops what it held from the snapshots (`lifeboat check` names them), and prune runs after that",
            first.short()
        )));
    }
    let by_pack = repo.index().blobs_by_pack();
    let recovered = report.packs_recovered;
    let mut report = PruneReport {
        packs_recovered: recovered,
        ..planned
    };
    report.index_objects_replaced = repo.index_files.len();
    if opts.dry_run {
        report.plan = repo
            .index()
            .packs()
            .iter()
            .zip(&fates)
            .filter(|(_, f)| **f != Fate::Keep)
            .map(|(p, f)| PackDecision {
                pack: p.id,
                size: p.size,
                fate: *f,
            })
            .collect();
        return Ok(report);
    }

    // 1. Repack: copy the used blobs of partly used packs into new packs.
    progress.phase("repack");
    let repack: Vec<usize> = fates
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Fate::Repack))
        .map(|(i, _)| i)
        .collect();
    let mut repack_failed = HashSet::new();
    if !repack.is_empty() {
        let repo_ref: &IndexedRepository = &repo;
        // An empty index: repacked blobs must land in new packs even though
        // the index still lists their old ones.
        let empty = crate::index::Index::default();
        let saver = BlobSaver::new(repo_ref, &empty);
        let result = std::thread::scope(|s| {
            let pipeline = saver.start(s);
            for &pos in &repack {
                match copy_used(repo_ref, pos, &by_pack[pos], &used, &saver) {
                    Ok(n) => report.blobs_repacked += n,
                    Err(e) => {
                        tracing::warn!(
                            "not repacking pack {}: {e}",
                            repo_ref.index().packs()[pos].id.short()
                        );
                        repack_failed.insert(pos);
                    }
                }
            }
            pipeline.finish(&saver)
        });
        result?;
    }

    crate::faults::crash_point("prune-after-repack");
    // 2. The compacted index: every pack that stays, with marks and tombstones.
    progress.phase("write index");
    let mut packs = vec![];
    let mut to_delete = vec![];
    for (pos, p) in repo.index().packs().iter().enumerate() {
        let blobs: Vec<IndexBlob> = by_pack[pos].clone();
        let entry = |obsolete_since| IndexPack {
            id: p.id,
            size: p.size,
            obsolete_since,
            deleted: false,
            blobs: blobs.clone(),
        };
        match fates[pos] {
            Fate::Keep => packs.push(entry(None)),
            Fate::Repack if repack_failed.contains(&pos) => packs.push(entry(None)),
            Fate::Repack if delay == 0 => {
                to_delete.push(p.id);
                packs.push(IndexPack::tombstone(p.id, p.size));
            }
            Fate::Repack => packs.push(entry(Some(now))),
            Fate::Mark(since) => packs.push(entry(Some(since))),
            Fate::Delete => {
                if listed.contains(&p.id) {
                    to_delete.push(p.id);
                    packs.push(IndexPack::tombstone(p.id, p.size));
                }
            }
        }
    }
    // Old tombstones: keep while the pack file still exists (a crash
    // interrupted its deletion), and finish the deletion now.
    for t in repo.index().tombstones() {
        if listed.contains(t) && repo.index().pack_pos(t).is_none() {
            to_delete.push(*t);
            packs.push(IndexPack::tombstone(*t, 0));
        }
    }
    let old_index = std::mem::take(&mut repo.index_files);
    for chunk in packs.chunks(crate::index::PACKS_PER_INDEX_OBJECT) {
        repo.save_json(
            Kind::Index,
            &crate::index::IndexFile {
                version: crate::index::INDEX_VERSION,
                packs: chunk.to_vec(),
            },
        )?;
    }
    crate::faults::crash_point("prune-after-index-write");
    // 3. Old index objects, then 4. the packs.
    for name in &old_index {
        repo.store().delete(Kind::Index, name)?;
        crate::faults::crash_point("prune-during-index-delete");
    }
    crate::faults::crash_point("prune-after-index-delete");
    progress.phase("delete");
    for id in &to_delete {
        repo.store().delete(Kind::Pack, &id.to_hex())?;
        crate::faults::crash_point("prune-during-pack-delete");
    }
    // Temporary files of writers killed long ago; an hour is far longer
    // than any single object write takes.
    let _ = repo
        .store()
        .remove_stale_temporaries(Duration::from_secs(3600));
    Ok(report)
}

/// Copies the used blobs of one pack (verified) into the saver.
fn copy_used(
    repo: &IndexedRepository,
    pos: usize,
    blobs: &[IndexBlob],
    used: &HashSet<Id>,
    saver: &BlobSaver<'_>,
) -> Result<usize> {
    let p = &repo.index().packs()[pos];
    let bytes = repo.store().get(Kind::Pack, &p.id.to_hex())?;
    let mut n = 0;
    for b in blobs.iter().filter(|b| used.contains(&b.id)) {
        let stored = bytes
            .get(b.offset as usize..(b.offset + b.length) as usize)
            .ok_or_else(|| {
                RepoError::damaged(
                    Kind::Pack,
                    p.id.to_hex(),
                    repo.location(),
                    format!("blob {} lies past the end", b.id.short()),
                )
            })?;
        // Never copy damage silently into a fresh pack.
        blob::decode(repo.key(), stored, &b.id, b.raw_length).map_err(|e| {
            RepoError::damaged(
                Kind::Pack,
                p.id.to_hex(),
                repo.location(),
                format!("blob {}: {e}", b.id.short()),
            )
        })?;
        saver.save_encoded(b.kind, b.id, stored.to_vec(), b.raw_length)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobKind;
    use crate::index::{Index, IndexBlob, IndexPack};

    fn pack(n: u8, marked: Option<i64>, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: Id([n; 32]),
            size: 1000,
            obsolete_since: marked,
            deleted: false,
            blobs: blobs
                .iter()
                .map(|&b| IndexBlob {
                    id: Id([b; 32]),
                    kind: BlobKind::Data,
                    offset: 0,
                    length: 100,
                    raw_length: 100,
                })
                .collect(),
        }
    }

    #[test]
    fn every_fate_from_what_the_repository_holds() {
        let mut index = Index::default();
        index.add_pack(&pack(1, None, &[10, 11])); // all used: keep
        index.add_pack(&pack(2, None, &[20])); // unused: mark now
        index.add_pack(&pack(3, Some(0), &[30])); // marked long ago, unused: delete
        index.add_pack(&pack(4, Some(990), &[40])); // marked lately: stays marked
        index.add_pack(&pack(5, Some(0), &[50])); // marked, used again: unmark
        index.add_pack(&pack(6, None, &[60, 61])); // half used: repack
        index.add_pack(&pack(7, None, &[70])); // gone from the store: drop
        index.add_pack(&IndexPack::tombstone(Id([8; 32]), 0)); // deletion to finish
        index.add_pack(&pack(9, None, &[10])); // gone, but its used blob is in pack 1
        let used: HashSet<Id> = [10, 11, 50, 60].map(|b| Id([b; 32])).into();
        let listed: HashSet<Id> = [1, 2, 3, 4, 5, 6, 8].map(|n| Id([n; 32])).into();
        let opts = PruneOptions {
            delete_delay: Duration::from_secs(100),
            ..Default::default()
        };
        let p = plan(&index, &used, &listed, 1000, &opts);
        assert_eq!(
            p.fates,
            vec![
                Fate::Keep,
                Fate::Mark(1000),
                Fate::Delete,
                Fate::Mark(990),
                Fate::Keep,
                Fate::Repack,
                Fate::Delete,
                Fate::Delete,
            ]
        );
        assert_eq!((p.report.packs_missing, p.report.packs_lost.len()), (2, 0));
        let r = &p.report;
        assert_eq!(
            (r.packs_marked, r.packs_unmarked, r.packs_repacked),
            (1, 1, 1)
        );
        assert_eq!(
            r.packs_deleted, 2,
            "pack 3 and the tombstoned 8 (7 is already gone)"
        );
        assert_eq!((r.packs_pending, r.pending_until), (2, Some(1100)));
        // No delay: unneeded packs go at once.
        let now = PruneOptions {
            delete_delay: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            plan(&index, &used, &listed, 1000, &now).fates[1],
            Fate::Delete
        );
        // A missing pack holding a used blob no other pack has is lost.
        index.add_pack(&pack(10, None, &[99]));
        let used: HashSet<Id> = [10, 99].map(|b| Id([b; 32])).into();
        let p = plan(&index, &used, &listed, 1000, &opts);
        assert_eq!(p.report.packs_lost, vec![Id([10; 32])]);
        assert_eq!(p.report.packs_missing, 2);
    }
}
