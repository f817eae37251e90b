//! Progress reporting without a terminal: the library calls this trait, the
//! CLI draws bars.

/// Receives progress of long operations. Implementations must be cheap:
/// `add` is called from worker threads for every chunk.
pub trait Progress: Send + Sync {
    /// The total amount of work, when known (bytes).
    fn set_total(&self, _bytes: u64) {}
    /// The total grew by `bytes` (a scan running ahead of the work).
    fn add_total(&self, _bytes: u64) {}
    /// `bytes` more done.
    fn add(&self, _bytes: u64) {}
    /// Whether anyone sees this progress; work done only to report it (a
    /// scan for totals) is skipped when nobody does.
    fn is_shown(&self) -> bool {
        false
    }
    /// A short label for the current phase.
    fn phase(&self, _name: &str) {}
    /// The total grew by `files` files (a backup's scan).
    fn add_total_files(&self, _files: u64) {}
    /// The total is complete: no more `add_total` will come.
    fn total_known(&self) {}
    /// A file is being read now (called from reader threads).
    fn file_started(&self, _path: &std::path::Path) {}
    /// One more file is done (read, or taken unchanged from the parent).
    fn file_done(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
