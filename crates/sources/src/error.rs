//! The errors of sources.

use lifeboat_repo::RepoError;

/// A source's error: each variant names what and where. No variant ever
/// holds a password (URLs are kept in their shown form).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A malformed or unsupported source or target address (usage).
    #[error("{0}")]
    Usage(String),
    /// The target exists and overwriting was not asked for (usage).
    #[error("{what} already exists; give --overwrite to replace it")]
    Exists {
        /// What exists, as shown.
        what: String,
    },
    /// A program the source drives (pg_dump, psql, …) could not run or failed.
    #[error("{program} failed for {target}: {message}")]
    Tool {
        /// The program.
        program: String,
        /// The source or target, as shown.
        target: String,
        /// Its own words (the last lines of its stderr), or the exit status.
        message: String,
    },
    /// A restore or validation found different contents than the backup
    /// recorded.
    #[error("{0}")]
    Mismatch(String),
    /// A recovery target that the backups and the archived WAL cannot reach.
    #[error("{0}")]
    Unreachable(String),
    /// A snapshot that this source cannot restore.
    #[error("{0}")]
    WrongSnapshot(String),
    /// The repository's error.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl SourceError {
    /// Whether it is a usage or configuration error (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            SourceError::Usage(_) | SourceError::Exists { .. } | SourceError::WrongSnapshot(_) => {
                true
            }
            SourceError::Repo(e) => e.is_usage(),
            _ => false,
        }
    }
}

/// A source's result.
pub type Result<T, E = SourceError> = std::result::Result<T, E>;
