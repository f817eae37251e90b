//! Check: is every snapshot restorable from what the repository holds?
//!
//! Structure (always): every index object and snapshot verifies against its
//! name and decrypts; every pack an index names exists with the recorded
//! size; every tree of every snapshot is readable; every data blob a tree
//! names is indexed in an existing pack. Data (`read_data`): every selected
//! pack is read whole, its hash compared with its name, its header compared
//! with the index, and every blob decrypted and hashed.

mod data;
mod structure;

use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;
use crate::repository::Repository;

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

/// Checks the repository, phase by phase: snapshots, index, packs, trees,
/// and (with `read_data`) the packs' bytes.
pub fn check(repo: Repository, opts: CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    // Snapshots are listed before the index is read: a backup running
    // meanwhile writes its index before its snapshot, so every snapshot
    // seen here has its data in the index read next (read the other way
    // round, a snapshot saved in between is checked against a stale index).
    progress.phase("snapshots");
    let (snaps, bad) = repo.snapshots()?;
    r.errors.extend(bad.into_iter().map(|e| e.to_string()));
    r.snapshots = snaps.len();
    progress.phase("index");
    let repo = structure::load_index(repo, &mut r)?;
    progress.phase("packs");
    let packs = structure::check_packs(&repo, &mut r)?;
    progress.phase("trees");
    structure::check_trees(&repo, &snaps, &packs.missing, &mut r);
    if let Some(subset) = opts.read_data {
        progress.phase("read data");
        let chosen = data::choose(subset, &packs.listed, repo.index());
        data::read_packs(&repo, chosen, progress, &mut r);
    }
    Ok(r)
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
