//! lifeboat's repository: an encrypted, deduplicated, content-addressed
//! format on top of a [`lifeboat_store`] store, and the operations on it
//! (backup, restore, check, forget, prune).
//!
//! The design decision a reader must know: everything is immutable and named
//! by content, and the write order (packs → index → snapshot) makes every
//! crash harmless. Deletion is delayed: prune marks packs and a later prune
//! deletes them, so no lock is ever needed for correctness (see
//! docs/FORMAT.md and [`prune`]).
//!
//! This crate knows nothing of databases, plans or terminals: progress goes
//! through the [`progress::Progress`] trait, partial failures come back as
//! values (warnings next to the result), never as printed text.
//!
//! Exported: the operations (`archiver`, `restorer`, `browse`, `check`,
//! `forget`, `prune`, `repair`, `tag`, `stats`, `diff`, `tar_dump`), the
//! repository and its objects, and the pieces the fuzz targets and examples
//! reach (`blob`, `pack`, `crypto`, `chunker`). The machinery behind them
//! (`file_sink`, `read_ahead`, `scan`, `faults`, `sys`, `metadata`, `xattr`)
//! is private.

pub mod archiver;
pub mod blob;
pub mod browse;
pub mod check;
pub mod chunker;
pub mod copy;
pub mod crypto;
pub mod diff;
pub mod error;
pub mod excludes;
mod faults;
mod file_sink;
pub mod forget;
pub mod id;
pub mod index;
pub mod logs;
mod metadata;
pub mod pack;
pub mod packer;
pub mod pattern;
pub mod progress;
pub mod prune;
mod read_ahead;
pub mod repair;
pub mod repository;
pub mod restorer;
mod scan;
pub mod snapshot;
pub mod stats;
mod sys;
pub mod tag;
pub mod tar_dump;
pub mod tree;
mod xattr;

pub use error::{RepoError, Result};

/// The cores this process may use (2 when the system cannot tell): the one
/// place thread counts of the pipelines are derived from.
pub(crate) fn cores() -> usize {
    // Asked once: the standard library reads cgroup files on every call
    // (measured: 3 % of a backup's CPU when it was asked per blob).
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}
pub use id::Id;
pub use repository::{IndexedRepository, InitOptions, Repository};
pub use snapshot::{Snapshot, SnapshotFilter};
