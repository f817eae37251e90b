//! Progress reporting without a terminal: the library calls this trait, the
//! CLI draws bars.

/// Receives progress of long operations. Implementations must be cheap:
/// `add` is called from worker threads for every chunk.
pub trait Progress: Send + Sync {
    /// The total amount of work, when known (bytes).
    fn set_total(&self, _bytes: u64) {}
    /// `bytes` more done.
    fn add(&self, _bytes: u64) {}
    /// A short label for the current phase.
    fn phase(&self, _name: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
