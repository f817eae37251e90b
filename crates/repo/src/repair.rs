//! Repair: the way out of damage that `check` found.
//!
//! - [`repair_index`] rebuilds the index from the packs themselves: every
//!   pack's header names its blobs, so a damaged or lost index object costs
//!   nothing but the time to read headers. Entries of intact index objects
//!   are reused for packs whose size still matches (their deletion marks
//!   too), unless every header is to be read.
//! - [`repair_snapshots`] rewrites snapshots that reference lost data: a
//!   file with a missing blob is dropped and a directory whose tree is lost
//!   becomes empty, and the new snapshot lists what was lost (`lost`) and
//!   which snapshot it replaces (`original`). The original is kept unless
//!   asked otherwise, as restic does.
//!
//! Both are safe next to running backups: new index objects are written
//! before the replaced ones are deleted (a backup's own index objects,
//! written after the listing, are never touched), and a repaired snapshot
//! is written only after every tree it needs.

use std::collections::HashMap;

use lifeboat_store::Kind;
use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::{RepoError, Result};
use crate::id::Id;
use crate::index::{merge_marks, IndexFile, IndexPack, INDEX_VERSION, PACKS_PER_INDEX_OBJECT};
use crate::packer::BlobSaver;
use crate::progress::Progress;
use crate::repository::{IndexedRepository, Repository};
use crate::snapshot::Snapshot;
use crate::tree::{Node, Tree};

/// Options of [`repair_index`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RepairIndexOptions {
    /// Read every pack's header, even where an intact index object already
    /// describes the pack.
    pub read_all_packs: bool,
    /// Say what would be done; write and delete nothing.
    pub dry_run: bool,
}

/// What [`repair_index`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Packs in the store.
    pub packs: usize,
    /// Packs whose header was read.
    pub headers_read: usize,
    /// Packs whose header could not be read: left unindexed (their blobs
    /// are unusable; `repair snapshots` then drops what needed them).
    pub packs_damaged: Vec<String>,
    /// Index objects read whole.
    pub index_objects_intact: usize,
    /// Index objects that were damaged.
    pub index_objects_damaged: Vec<String>,
    /// Index objects written.
    pub index_objects_written: usize,
    /// Index objects replaced (deleted).
    pub index_objects_removed: usize,
    /// Blobs in the new index.
    pub blobs: usize,
}

/// Rebuilds the index from the packs in the store (see the module doc).
pub fn repair_index(
    repo: &Repository,
    opts: RepairIndexOptions,
    progress: &dyn Progress,
) -> Result<RepairIndexReport> {
    let mut report = RepairIndexReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    progress.phase("read index");
    let old_objects = repo.store().list(Kind::Index)?;
    // What the intact objects say of each pack: live entries win over marks
    // (as in `Index::add_pack`); the oldest mark wins among marks.
    let mut known: HashMap<Id, IndexPack> = HashMap::new();
    let mut tombstones = vec![];
    for o in &old_objects {
        match repo.load_json::<IndexFile>(Kind::Index, &o.name) {
            Ok(f) if f.version <= INDEX_VERSION => {
                report.index_objects_intact += 1;
                for p in f.packs {
                    if p.deleted {
                        tombstones.push(p.id);
                        continue;
                    }
                    match known.get_mut(&p.id) {
                        Some(k) => {
                            k.obsolete_since = merge_marks(k.obsolete_since, p.obsolete_since);
                        }
                        None => {
                            known.insert(p.id, p);
                        }
                    }
                }
            }
            Ok(f) => {
                return Err(RepoError::NewerVersion {
                    kind: Kind::Index,
                    name: o.name.clone(),
                    location: repo.location(),
                    version: f.version,
                    supported: INDEX_VERSION,
                })
            }
            Err(RepoError::Store(e)) if e.is_not_found() => {}
            Err(_) => report.index_objects_damaged.push(o.name.clone()),
        }
    }

    progress.phase("read pack headers");
    let listed = repo.store().list(Kind::Pack)?;
    let mut packs = Vec::with_capacity(listed.len());
    for o in &listed {
        let Ok(id) = o.name.parse::<Id>() else {
            continue;
        };
        report.packs += 1;
        match known.remove(&id) {
            Some(p) if !opts.read_all_packs && p.size == o.size => packs.push(p),
            prior => {
                report.headers_read += 1;
                match repo.read_pack_header(&o.name, o.size) {
                    Ok(entries) => {
                        let mut p = IndexPack::live(id, o.size, &entries);
                        p.obsolete_since = prior.and_then(|k| k.obsolete_since);
                        packs.push(p);
                    }
                    Err(RepoError::Store(e)) if e.is_not_found() => {}
                    Err(_) => report.packs_damaged.push(o.name.clone()),
                }
            }
        }
    }
    // A pack a prune had begun to delete stays marked so the next prune
    // finishes the deletion.
    let still_there: std::collections::HashSet<Id> = packs.iter().map(|p| p.id).collect();
    for t in tombstones {
        if !still_there.contains(&t) && listed.iter().any(|o| o.name == t.to_hex()) {
            packs.push(IndexPack::tombstone(t, 0));
        }
    }
    report.blobs = packs.iter().map(|p| p.blobs.len()).sum();
    report.index_objects_written = packs.len().div_ceil(PACKS_PER_INDEX_OBJECT);
    report.index_objects_removed = old_objects.len();
    if opts.dry_run {
        return Ok(report);
    }

    progress.phase("write index");
    // New objects first, then the old ones go: a crash in between leaves
    // both, which merge to the same index.
    for chunk in packs.chunks(PACKS_PER_INDEX_OBJECT) {
        repo.save_json(
            Kind::Index,
            &IndexFile {
                version: INDEX_VERSION,
                packs: chunk.to_vec(),
            },
        )?;
    }
    for o in &old_objects {
        repo.store().delete(Kind::Index, &o.name)?;
    }
    Ok(report)
}

/// Options of [`repair_snapshots`].
#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsOptions {
    /// Delete each original once its repaired snapshot is written.
    pub forget: bool,
    /// Say what would be done; write and delete nothing.
    pub dry_run: bool,
}

/// One snapshot that referenced lost data.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    /// The snapshot as it was.
    pub original: Id,
    /// The repaired snapshot (absent in a dry run).
    pub repaired: Option<Id>,
    /// What it lost: paths, directories ending in `/`.
    pub lost: Vec<String>,
}

/// What [`repair_snapshots`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Snapshots looked at.
    pub snapshots: usize,
    /// Those that lost data, and what became of them.
    pub repaired: Vec<RepairedSnapshot>,
    /// Originals deleted (`forget`).
    pub forgotten: usize,
    /// Snapshot objects that cannot be read at all (nothing to repair
    /// from; `forget` them by id).
    pub unreadable: Vec<String>,
}

/// A tree as repaired: its new id when it changed, and what it lost
/// (relative to the tree).
#[derive(Clone)]
struct Rewrite {
    new: Option<Id>,
    lost: Vec<String>,
}

/// Rewrites snapshots that reference lost data (see the module doc).
/// `only` limits the work to these snapshots (empty: all).
pub fn repair_snapshots(
    repo: &IndexedRepository,
    only: &[Id],
    opts: &RepairSnapshotsOptions,
    progress: &dyn Progress,
) -> Result<RepairSnapshotsReport> {
    let mut report = RepairSnapshotsReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let (snaps, bad) = repo.snapshots()?;
    report.unreadable = bad.iter().map(ToString::to_string).collect();
    let snaps: Vec<(Id, Snapshot)> = snaps
        .into_iter()
        .filter(|(id, _)| only.is_empty() || only.contains(id))
        .collect();
    report.snapshots = snaps.len();
    progress.phase("repair snapshots");
    let saver = BlobSaver::new(repo, repo.index());
    let mut memo: HashMap<Id, Rewrite> = HashMap::new();
    let mut new_snaps = vec![];
    let written = std::thread::scope(|s| {
        let pipeline = (!opts.dry_run).then(|| saver.start(s));
        let mut run = || -> Result<()> {
            for (id, snap) in &snaps {
                let save = |t: &Tree| -> Result<Id> {
                    if opts.dry_run {
                        Ok(Id::default())
                    } else {
                        saver.save(BlobKind::Tree, &t.to_bytes())
                    }
                };
                let root = match repo.load_tree(&snap.tree) {
                    Ok(t) => rewrite_tree(repo, snap.tree, t, &mut memo, &save)?,
                    Err(_) => Rewrite {
                        new: Some(save(&Tree::new(vec![]))?),
                        lost: vec!["/".into()],
                    },
                };
                if let Some(tree) = root.new {
                    let lost: Vec<String> = root
                        .lost
                        .iter()
                        .map(|p| if p == "/" { p.clone() } else { format!("/{p}") })
                        .collect();
                    new_snaps.push((*id, snap.clone(), tree, lost));
                }
            }
            Ok(())
        };
        let walked = run();
        let finished = pipeline.map(|p| p.finish(&saver)).transpose();
        walked.and(finished)
    });
    written?;
    for (original, snap, tree, lost) in new_snaps {
        let mut repaired = None;
        if !opts.dry_run {
            let mut s = snap.clone();
            s.tree = tree;
            s.original = Some(original);
            s.lost = lost.clone();
            if !s.has_tag("repaired") {
                s.tags.push("repaired".into());
            }
            // The trees it needs are in packs named by index objects that
            // the pipeline wrote before returning.
            repaired = Some(repo.save_snapshot(&s)?);
            if opts.forget {
                repo.delete_snapshot(&original)?;
                report.forgotten += 1;
            }
        }
        report.repaired.push(RepairedSnapshot {
            original,
            repaired,
            lost,
        });
    }
    Ok(report)
}

/// Whether every blob of a file is stored in a pack the store still has.
fn content_present(repo: &IndexedRepository, node: &Node) -> bool {
    node.content.iter().all(|b| {
        repo.index()
            .get(b)
            .is_some_and(|l| !repo.index().pack(l.pack).missing)
    })
}

fn rewrite_tree(
    repo: &IndexedRepository,
    id: Id,
    tree: Tree,
    memo: &mut HashMap<Id, Rewrite>,
    save: &dyn Fn(&Tree) -> Result<Id>,
) -> Result<Rewrite> {
    if let Some(r) = memo.get(&id) {
        return Ok(r.clone());
    }
    let mut lost = vec![];
    let mut changed = false;
    let mut nodes = Vec::with_capacity(tree.nodes.len());
    for mut node in tree.nodes {
        let name = node.name.display().to_string();
        if !content_present(repo, &node) {
            lost.push(name);
            changed = true;
            continue;
        }
        if let Some(sub) = node.subtree {
            let r = match repo.load_tree(&sub) {
                Ok(t) => rewrite_tree(repo, sub, t, memo, save)?,
                Err(_) => Rewrite {
                    new: Some(save(&Tree::new(vec![]))?),
                    lost: vec![String::new()],
                },
            };
            for l in &r.lost {
                lost.push(if l.is_empty() {
                    format!("{name}/")
                } else {
                    format!("{name}/{l}")
                });
            }
            if let Some(n) = r.new {
                node.subtree = Some(n);
                changed = true;
            }
        }
        nodes.push(node);
    }
    let r = Rewrite {
        new: if changed {
            Some(save(&Tree::new(nodes))?)
        } else {
            None
        },
        lost,
    };
    memo.insert(id, r.clone());
    Ok(r)
}
