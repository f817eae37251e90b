//! The index: which pack holds each blob, and where.
//!
//! On disk, index objects list packs with their blobs; several index objects
//! together form the index. A pack may carry a deletion mark
//! (`obsolete_since`): prune put it there, and a later prune deletes the pack
//! once the mark is older than the delete delay and no snapshot needs it. A
//! `deleted` entry is a tombstone: the pack is being (or was) deleted and must
//! never be indexed again.
//!
//! Merging rule: a pack listed live by any index object is live; a blob found
//! in both a live and an obsolete pack resolves to the live one.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::id::Id;
use crate::pack::PackEntry;

/// Index object format version.
pub const INDEX_VERSION: u32 = 1;

/// One index object as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Format version ([`INDEX_VERSION`]).
    pub version: u32,
    /// Packs described by this object.
    pub packs: Vec<IndexPack>,
}

/// A pack in an index object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Pack size in bytes.
    pub size: u64,
    /// Set when prune marked the pack for deletion (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obsolete_since: Option<i64>,
    /// A tombstone: the pack is being deleted; never index it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Its blobs: `[id, kind, offset, length, raw_length]`.
    #[serde(default)]
    pub blobs: Vec<IndexBlob>,
}

/// A blob in an index object. Stored as the array
/// `[id, kind, offset, length, raw_length]` (compact: an index names
/// millions of blobs); named here.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "BlobTuple", into = "BlobTuple")]
pub struct IndexBlob {
    /// Blob id.
    pub id: Id,
    /// What it holds.
    pub kind: BlobKind,
    /// Offset of the stored blob in its pack.
    pub offset: u32,
    /// Stored (compressed, encrypted) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// The stored form of an [`IndexBlob`].
#[derive(Serialize, Deserialize)]
struct BlobTuple(Id, BlobKind, u32, u32, u32);

impl From<BlobTuple> for IndexBlob {
    fn from(t: BlobTuple) -> Self {
        IndexBlob {
            id: t.0,
            kind: t.1,
            offset: t.2,
            length: t.3,
            raw_length: t.4,
        }
    }
}

impl From<IndexBlob> for BlobTuple {
    fn from(b: IndexBlob) -> Self {
        BlobTuple(b.id, b.kind, b.offset, b.length, b.raw_length)
    }
}

impl From<&PackEntry> for IndexBlob {
    fn from(e: &PackEntry) -> Self {
        IndexBlob {
            id: e.id,
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        }
    }
}

impl IndexPack {
    /// A tombstone: the pack is being deleted and must never be re-indexed.
    pub fn tombstone(id: Id, size: u64) -> IndexPack {
        IndexPack {
            id,
            size,
            obsolete_since: None,
            deleted: true,
            blobs: vec![],
        }
    }

    /// A live pack entry built from a pack's header.
    pub fn live(id: Id, size: u64, entries: &[PackEntry]) -> IndexPack {
        IndexPack {
            id,
            size,
            obsolete_since: None,
            deleted: false,
            blobs: entries.iter().map(IndexBlob::from).collect(),
        }
    }
}

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`Index::packs`].
    pub pack: u32,
    /// Blob kind.
    pub kind: BlobKind,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Two index objects' deletion marks for one pack, merged: live (no mark)
/// wins over a mark; the oldest mark wins among marks.
pub fn merge_marks(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

/// Packs per index object when an index is written whole (prune, repair),
/// so that no single object grows without bound.
pub const PACKS_PER_INDEX_OBJECT: usize = 1000;

/// A pack known to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack id.
    pub id: Id,
    /// Size in bytes.
    pub size: u64,
    /// Deletion mark, if any.
    pub obsolete_since: Option<i64>,
    /// The store did not list it when this process looked (a lost pack):
    /// known only in memory, never written. Its blobs are not live, so a
    /// backup stores them again instead of referencing what is gone.
    pub missing: bool,
}

impl PackInfo {
    /// Whether backups may deduplicate against this pack's blobs: present
    /// and not marked for deletion.
    pub fn is_live(&self) -> bool {
        self.obsolete_since.is_none() && !self.missing
    }
}

/// The merged, in-memory index.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<PackInfo>,
    pack_pos: HashMap<Id, u32>,
    blobs: HashMap<Id, BlobLocation>,
    tombstones: HashSet<Id>,
    /// The packs the store listed before the index objects were read, if
    /// known: a pack an index object names but the listing lacks is lost
    /// ([`PackInfo::missing`]), because packs are written before the index
    /// objects that name them.
    present: Option<HashSet<Id>>,
}

impl Index {
    /// An empty index that will know which packs are missing: `present`
    /// is the store's pack listing, taken after the index objects to be
    /// merged were listed.
    pub fn with_present_packs(present: HashSet<Id>) -> Index {
        Index {
            present: Some(present),
            ..Index::default()
        }
    }

    /// Ends the merging of the listed index objects: packs added from now
    /// on (written by this process, or found later) are not weighed against
    /// the old listing.
    pub fn listing_done(&mut self) {
        self.present = None;
    }

    /// Merges one index object.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p);
        }
    }

    /// Merges one pack entry.
    pub fn add_pack(&mut self, p: &IndexPack) {
        if p.deleted {
            self.tombstones.insert(p.id);
            return;
        }
        let pos = match self.pack_pos.get(&p.id) {
            Some(&pos) => {
                let info = &mut self.packs[pos as usize];
                info.obsolete_since = merge_marks(info.obsolete_since, p.obsolete_since);
                pos
            }
            None => {
                let pos = self.packs.len() as u32;
                self.packs.push(PackInfo {
                    id: p.id,
                    size: p.size,
                    obsolete_since: p.obsolete_since,
                    missing: self.present.as_ref().is_some_and(|s| !s.contains(&p.id)),
                });
                self.pack_pos.insert(p.id, pos);
                pos
            }
        };
        let live = self.packs[pos as usize].is_live();
        for b in &p.blobs {
            let loc = BlobLocation {
                pack: pos,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            };
            match self.blobs.get(&b.id) {
                Some(old) if !live || self.packs[old.pack as usize].is_live() => {}
                _ => {
                    self.blobs.insert(b.id, loc);
                }
            }
        }
    }

    /// Where a blob is, if indexed (live or marked).
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether a blob is in a pack without a deletion mark. Backups
    /// deduplicate only against these, so a marked pack never gains new users.
    pub fn has_live(&self, id: &Id) -> bool {
        self.blobs
            .get(id)
            .is_some_and(|l| self.packs[l.pack as usize].is_live())
    }

    /// The pack at a position.
    pub fn pack(&self, pos: u32) -> &PackInfo {
        &self.packs[pos as usize]
    }

    /// Every pack.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// The position of a pack.
    pub fn pack_pos(&self, id: &Id) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }

    /// Packs with a tombstone.
    pub fn tombstones(&self) -> &HashSet<Id> {
        &self.tombstones
    }

    /// Whether the index mentions a pack at all (live, marked or tombstone).
    pub fn knows_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id) || self.tombstones.contains(id)
    }

    /// Iterates every blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The blobs of each pack, as index entries, grouped by pack position.
    pub fn blobs_by_pack(&self) -> Vec<Vec<IndexBlob>> {
        let mut out = vec![Vec::new(); self.packs.len()];
        for (id, l) in &self.blobs {
            out[l.pack as usize].push(IndexBlob {
                id: *id,
                kind: l.kind,
                offset: l.offset,
                length: l.length,
                raw_length: l.raw_length,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8, obsolete: Option<i64>, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: Id([n; 32]),
            size: 100,
            obsolete_since: obsolete,
            deleted: false,
            blobs: blobs
                .iter()
                .map(|&b| IndexBlob {
                    id: Id([b; 32]),
                    kind: BlobKind::Data,
                    offset: 0,
                    length: 10,
                    raw_length: 10,
                })
                .collect(),
        }
    }

    #[test]
    fn live_listing_wins_over_mark_in_any_order() {
        for order in [[0, 1], [1, 0]] {
            let files = [pack(1, Some(5), &[9]), pack(1, None, &[9])];
            let mut idx = Index::default();
            for i in order {
                idx.add_pack(&files[i]);
            }
            assert_eq!(idx.packs()[0].obsolete_since, None);
            assert!(idx.has_live(&Id([9; 32])));
        }
    }

    #[test]
    fn blob_resolves_to_live_pack() {
        let mut idx = Index::default();
        idx.add_pack(&pack(1, Some(5), &[9]));
        assert!(!idx.has_live(&Id([9; 32])));
        assert!(
            idx.get(&Id([9; 32])).is_some(),
            "marked blobs stay readable"
        );
        idx.add_pack(&pack(2, None, &[9]));
        assert_eq!(
            idx.pack(idx.get(&Id([9; 32])).unwrap().pack).id,
            Id([2; 32])
        );
        idx.add_pack(&pack(3, Some(1), &[9]));
        assert_eq!(
            idx.pack(idx.get(&Id([9; 32])).unwrap().pack).id,
            Id([2; 32])
        );
    }

    #[test]
    fn a_missing_pack_is_not_live_and_a_present_copy_wins_in_any_order() {
        for order in [[0, 1], [1, 0]] {
            let files = [pack(1, None, &[9]), pack(2, None, &[9])];
            let mut idx = Index::with_present_packs([Id([2; 32])].into());
            for i in order {
                idx.add_pack(&files[i]);
            }
            assert!(idx.packs().iter().any(|p| p.missing && p.id == Id([1; 32])));
            assert!(idx.has_live(&Id([9; 32])));
            assert_eq!(
                idx.pack(idx.get(&Id([9; 32])).unwrap().pack).id,
                Id([2; 32])
            );
        }
        let mut idx = Index::with_present_packs(HashSet::new());
        idx.add_pack(&pack(1, None, &[9]));
        assert!(!idx.has_live(&Id([9; 32])), "only copy is lost");
        assert!(idx.get(&Id([9; 32])).is_some(), "still named, for errors");
        // What this process writes after loading is present.
        idx.listing_done();
        idx.add_pack(&pack(3, None, &[8]));
        assert!(idx.has_live(&Id([8; 32])));
    }

    #[test]
    fn index_file_json_round_trip() {
        let f = IndexFile {
            version: 1,
            packs: vec![pack(1, Some(7), &[2, 3]), pack(4, None, &[])],
        };
        let json = serde_json::to_string(&f).unwrap();
        let back: IndexFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.packs.len(), 2);
        assert_eq!(back.packs[0].blobs, f.packs[0].blobs);
        assert_eq!(back.packs[0].obsolete_since, Some(7));
    }
}
