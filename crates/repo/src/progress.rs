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
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
