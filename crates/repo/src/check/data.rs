//! The data phase of a check: which packs to read, and reading each whole
//! to verify its name, its header against the index, and every blob.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_store::Kind;
use parking_lot::Mutex;
use rand::seq::SliceRandom;

use super::{CheckReport, Subset};
use crate::blob;
use crate::id::Id;
use crate::index::{Index, IndexBlob};
use crate::pack;
use crate::progress::Progress;
use crate::repository::IndexedRepository;

/// The indexed packs of `listed` (id, size) that `subset` reads, sorted by
/// id except for a random percentage.
pub(super) fn choose(subset: Subset, listed: &HashMap<Id, u64>, index: &Index) -> Vec<(Id, u64)> {
    let mut packs: Vec<(Id, u64)> = listed
        .iter()
        .filter(|(id, _)| index.pack_pos(id).is_some())
        .map(|(id, s)| (*id, *s))
        .collect();
    packs.sort();
    match subset {
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
    }
}

/// Reads the `chosen` packs on every core and records what is wrong.
pub(super) fn read_packs(
    repo: &IndexedRepository,
    chosen: Vec<(Id, u64)>,
    progress: &dyn Progress,
    r: &mut CheckReport,
) {
    progress.set_total(chosen.iter().map(|p| p.1).sum());
    r.packs_read = chosen.len();
    let by_pack = repo.index().blobs_by_pack();
    let queue = Mutex::new(chosen);
    let errors = Mutex::new(vec![]);
    let bytes = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..crate::cores() {
            s.spawn(|| {
                let mut decoder = blob::Decoder::new();
                let mut buf = Vec::new();
                // The size comes from the listing: no second stat. (The
                // lock is taken and released here: a `while let` on the
                // guard would hold it through the read, one thread at a
                // time — measured: check --read-data 4.1 s instead of 2.4.)
                loop {
                    let Some((id, size)) = queue.lock().pop() else {
                        break;
                    };
                    let errs = read_pack(repo, &id, size, &by_pack, &mut decoder, &mut buf);
                    bytes.fetch_add(size, Ordering::Relaxed);
                    progress.add(size);
                    errors.lock().extend(errs);
                }
            });
        }
    });
    r.errors.extend(errors.into_inner());
    r.bytes_read = bytes.into_inner();
}

/// Reads one pack whole and verifies everything in it.
fn read_pack(
    repo: &IndexedRepository,
    id: &Id,
    size: u64,
    by_pack: &[Vec<IndexBlob>],
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
    use crate::index::IndexPack;

    fn setup() -> (HashMap<Id, u64>, Index) {
        let mut index = Index::default();
        let mut listed = HashMap::new();
        for i in 0..20u64 {
            let id = Id::hash_of(&i.to_le_bytes());
            listed.insert(id, 100 + i);
            // Every fourth listed pack is not indexed (an interrupted backup's).
            if i % 4 != 3 {
                index.add_pack(&IndexPack::live(id, 100 + i, &[]));
            }
        }
        (listed, index)
    }

    #[test]
    fn the_parts_of_a_week_read_every_indexed_pack_exactly_once() {
        let (listed, index) = setup();
        let mut seen: Vec<Id> = (1..=7)
            .flat_map(|n| choose(Subset::Part(n, 7), &listed, &index))
            .map(|(id, _)| id)
            .collect();
        let all: Vec<Id> = choose(Subset::All, &listed, &index)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(all.len(), 15, "unindexed packs are never chosen");
        seen.sort();
        assert_eq!(seen, all, "the 7 parts are disjoint and cover all");
        for (id, size) in choose(Subset::All, &listed, &index) {
            assert_eq!(listed[&id], size, "the size is the listing's");
        }
    }

    #[test]
    fn a_percentage_reads_its_share_rounded_up() {
        let (listed, index) = setup();
        assert_eq!(choose(Subset::Percent(10.0), &listed, &index).len(), 2);
        assert_eq!(choose(Subset::Percent(100.0), &listed, &index).len(), 15);
        let mut some = choose(Subset::Percent(50.0), &listed, &index);
        some.sort();
        some.dedup();
        assert_eq!(some.len(), 8);
    }
}
